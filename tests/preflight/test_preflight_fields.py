"""Field-level preflight: documented API errors, unknown keys, counts, endpoints, the report itself."""

from __future__ import annotations

import json

import pytest

from seedance_prefect.errors import InvalidRequest
from seedance_prefect.models import SeedanceRequest
from seedance_prefect.preflight import PreflightReport, check_request, validate_request

MODEL = "bytedance-seedance-2-0-reference-to-video"
IMG = "https://example.com/ref/image-{}.png"
VID = "https://example.com/ref/video-{}.mp4"
AUD = "https://example.com/ref/audio-{}.mp3"

# The seed document's four examples, rebuilt from its parameter tables.
SEED_EXAMPLES = {
    "text-only": {
        "model": MODEL,
        "prompt": "A paper boat drifts across a pond at sunrise, gentle ripples",
        "resolution": "720p",
        "duration": "8",
    },
    "reference-images": {
        "model": MODEL,
        "prompt": "@Image1 walks through the scene from @Image2, cinematic lighting",
        "input_images": [
            "https://hub.oxen.ai/api/repos/elau/assets/file/main/bloxy/bloxy_cropped_512x512.png",
            "https://example.com/forest.jpg",
        ],
        "resolution": "720p",
        "duration": "10",
        "aspect_ratio": "16:9",
        "generate_audio": True,
    },
    "reference-video-and-audio": {
        "model": MODEL,
        "prompt": "Recreate the camera move of @Video1, timed to the beat of @Audio1",
        "input_videos": [
            "https://hub.oxen.ai/api/repos/ox/Oxen-AI-Assets/file/main/images/winter_summer_ox.mp4"
        ],
        "input_audios": ["https://example.com/beat.mp3"],
        "duration": "6",
        "seed": 42,
    },
    "portrait-480p": {
        "model": MODEL,
        "prompt": "A dancer spins in the rain, neon reflections",
        "resolution": "480p",
        "aspect_ratio": "9:16",
        "duration": "5",
    },
}


def messages(report: PreflightReport, field: str | None = None) -> list[str]:
    return [p.message for p in report.errors if field is None or p.field == field]


@pytest.mark.parametrize("name", sorted(SEED_EXAMPLES))
@pytest.mark.parametrize("endpoint", ["queue", "sync"])
def test_seed_examples_are_accepted(name, endpoint):
    report = check_request(SEED_EXAMPLES[name], endpoint=endpoint)
    assert report.ok, report.errors
    assert report.request is not None and report.cost is not None
    assert report.body()["model"] == MODEL


def test_minimal_request_has_defaults_and_cost():
    report = check_request({"prompt": "A paper boat"})
    assert report.ok and report.warnings == []
    body = report.body()
    assert body["resolution"] == "720p" and body["duration"] == "auto" and body["num_generations"] == 1
    assert report.cost.seconds == 15 and report.cost.assumption


# The six documented errors carry exactly the documented message and fix -------------------------


@pytest.mark.parametrize(
    ("body", "field", "message", "fix"),
    [
        ({"duration": "8"}, "prompt", "Field required", "Provide a text prompt"),
        ({"prompt": None}, "prompt", "Field required", "Provide a text prompt"),
        ({"prompt": "   "}, "prompt", "Field required", "Provide a text prompt"),
        (
            {
                "prompt": "x",
                "input_images": [IMG.format(i) for i in range(9)],
                "input_videos": [VID.format(i) for i in range(3)],
                "input_audios": [AUD.format(0)],
            },
            "input_images",
            "Too many input files",
            "Reduce the number of reference files",
        ),
        (
            {"prompt": "x", "input_audios": [AUD.format(0)]},
            "input_audios",
            "Audio requires at least one image or video",
            "Add at least one reference image or video",
        ),
        ({"prompt": "x", "duration": "3"}, "duration", "Invalid duration", "Use a supported duration value"),
        ({"prompt": "x", "duration": 16}, "duration", "Invalid duration", "Use a supported duration value"),
        (
            {"prompt": "x", "duration": "eight"},
            "duration",
            "Invalid duration",
            "Use a supported duration value",
        ),
        ({"prompt": "x", "resolution": "1080p"}, "resolution", "Invalid resolution", 'Use "480p" or "720p"'),
        (
            {"prompt": "x", "num_generations": 5},
            "num_generations",
            "num_generations must be an integer between 1 and 4",
            "Use 1–4",
        ),
        (
            {"prompt": "x", "num_generations": 0},
            "num_generations",
            "num_generations must be an integer between 1 and 4",
            "Use 1–4",
        ),
        (
            {"prompt": "x", "num_generations": "2"},
            "num_generations",
            "num_generations must be an integer between 1 and 4",
            "Use 1–4",
        ),
    ],
)
def test_documented_errors(body, field, message, fix):
    report = check_request(body)
    assert not report.ok
    matching = [p for p in report.errors if p.field == field and p.message == message]
    assert matching, report.errors
    assert matching[0].fix == fix
    assert matching[0].severity == "error" and not matching[0].fixable


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("auto", True),
        ("4", True),
        ("15", True),
        (8, True),
        (-1, True),
        ("16", False),
        ("0", False),
        (3.5, False),
    ],
)
def test_duration_values(value, ok):
    assert check_request({"prompt": "x", "duration": value}).ok is ok


def test_found_and_limit_are_filled():
    problem = check_request({"prompt": "x", "resolution": "4k"}).errors[0]
    assert problem.found == "'4k'" and problem.limit == '"480p" or "720p"'


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"prompt": "x", "aspect_ratio": "5:4"}, "aspect_ratio", "Invalid aspect_ratio"),
        ({"prompt": "x", "response_format": "mp4"}, "response_format", "Invalid response_format"),
        ({"prompt": "x", "model": "kling"}, "model", "Model not supported"),
        ({"prompt": "x", "seed": "7"}, "seed", "seed must be an integer"),
        ({"prompt": "x", "generate_audio": "maybe"}, "generate_audio", "valid boolean"),
        ({"prompt": 42}, "prompt", "valid string"),
        ({"prompt": "x", "input_images": "https://example.com/a.png"}, "input_images", "valid list"),
        ({"prompt": "x", "input_images": [7]}, "input_images[0]", "valid string"),
        ({"prompt": "x", "extra_params": {"seed": 1}}, "extra_params", "extra_params may not repeat"),
    ],
)
def test_other_field_errors_name_the_field(body, field, text):
    report = check_request(body)
    assert any(p.field == field and text in p.message for p in report.errors), report.errors
    assert all(p.fix for p in report.errors)


# Unknown keys --------------------------------------------------------------------------------------


def test_unknown_keys_with_did_you_mean():
    report = check_request({"prompt": "x", "durations": "5", "input_image": [IMG.format(0)], "colour": "red"})
    by_field = {p.field: p for p in report.errors}
    assert by_field["durations"].message == "Unknown parameter 'durations' (did you mean 'duration'?)"
    assert by_field["durations"].fix == "Rename it to 'duration'"
    assert "did you mean 'input_images'" in by_field["input_image"].message
    assert by_field["colour"].message == "Unknown parameter 'colour'"
    assert "extra_params" in by_field["colour"].fix
    assert report.request is not None  # the known fields are fine


def test_extra_params_pass_through():
    report = check_request({"prompt": "x", "extra_params": {"watermark": False}})
    assert report.ok and report.body()["watermark"] is False


# Counts: both sides of every limit ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "videos", "audios", "expected"),
    [
        (9, 0, 0, []),
        (10, 0, 0, ["Too many reference images"]),
        (0, 3, 0, []),
        (0, 4, 0, ["Too many reference videos"]),
        (1, 0, 3, []),
        (1, 0, 4, ["Too many reference audio files"]),
        (9, 3, 0, []),
        (9, 2, 1, []),
        (6, 3, 3, []),
        (9, 3, 1, ["Too many input files"]),
        (7, 3, 3, ["Too many input files"]),
        (
            10,
            4,
            4,
            [
                "Too many reference images",
                "Too many reference videos",
                "Too many reference audio files",
                "Too many input files",
            ],
        ),
        (0, 0, 1, ["Audio requires at least one image or video"]),
        (0, 1, 1, []),
        (1, 0, 1, []),
    ],
)
def test_counts(images, videos, audios, expected):
    body = {
        "prompt": "x",
        "input_images": [IMG.format(i) for i in range(images)],
        "input_videos": [VID.format(i) for i in range(videos)],
        "input_audios": [AUD.format(i) for i in range(audios)],
    }
    assert sorted(messages(check_request(body))) == sorted(expected)


def test_counting_rules_apply_even_when_other_fields_are_invalid():
    body = {"prompt": "x", "duration": "99", "input_audios": [AUD.format(0)], "input_videos": "oops"}
    got = messages(check_request(body))
    assert "Invalid duration" in got and "Audio requires at least one image or video" in got
    assert "Input should be a valid list" in got


def test_too_many_files_found_text():
    body = {
        "prompt": "x",
        "input_images": [IMG.format(i) for i in range(9)],
        "input_videos": [VID.format(i) for i in range(3)],
        "input_audios": [AUD.format(0)],
    }
    problem = next(p for p in check_request(body).errors if p.message == "Too many input files")
    assert problem.found == "13 files (9 images, 3 videos, 1 audio)"


# Endpoint rules ----------------------------------------------------------------------------------


def test_several_generations_need_the_queue():
    assert check_request({"prompt": "x", "num_generations": 4}, endpoint="queue").ok
    report = check_request({"prompt": "x", "num_generations": 2}, endpoint="sync")
    assert messages(report, "num_generations") == ["num_generations must be 1 for the synchronous endpoint"]
    assert check_request({"prompt": "x", "num_generations": 1}, endpoint="sync").ok


def test_b64_json_on_the_queue_is_a_warning():
    report = check_request({"prompt": "x", "response_format": "b64_json"}, endpoint="queue")
    assert report.ok and [p.field for p in report.warnings] == ["response_format"]
    sync = check_request({"prompt": "x", "response_format": "b64_json"}, endpoint="sync")
    assert sync.ok and sync.warnings == [] and sync.body()["response_format"] == "b64_json"


def test_bad_endpoint_is_a_programming_error():
    with pytest.raises(ValueError, match="endpoint"):
        check_request({"prompt": "x"}, endpoint="batch")  # type: ignore[arg-type]


# All problems together ------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once(tmp_path):
    body = {
        "prompt": "@Image1 meets @Video4\x00",
        "durations": "5",
        "resolution": "1080p",
        "duration": "3",
        "num_generations": 7,
        "input_images": ["ftp://example.com/a.png", str(tmp_path / "missing.png")],
        "input_audios": [AUD.format(0)],
    }
    report = check_request(body)
    fields = {p.field for p in report.errors}
    assert {
        "durations",
        "resolution",
        "duration",
        "num_generations",
        "input_images[0]",
        "input_images[1]",
        "prompt",
    } <= fields
    prompt_messages = messages(report, "prompt")
    assert "@Video4 refers to a video that is not attached" in prompt_messages
    assert "Prompt contains control characters" in prompt_messages
    assert report.errors[0].field == "durations"  # unknown keys first, then the documented order
    with pytest.raises(InvalidRequest) as info:
        report.raise_for_errors()
    assert len(info.value.problems) == len(report.errors) >= 8


def test_not_a_mapping():
    report = check_request(["prompt"])  # type: ignore[arg-type]
    assert not report.ok and report.errors[0].field == "request" and report.request is None


# Report API ------------------------------------------------------------------------------------------


def test_seedance_request_input_is_rechecked():
    request = SeedanceRequest(prompt="@Image1 and @Image2", input_images=[IMG.format(0)])
    report = check_request(request)
    assert not report.ok
    assert messages(report, "prompt") == ["@Image2 refers to an image that is not attached"]
    assert report.request is not None and report.request is not request


def test_validate_request_returns_or_raises():
    assert validate_request({"prompt": "x", "duration": 8}).duration == "8"
    with pytest.raises(InvalidRequest) as info:
        validate_request({"duration": "2", "resolution": "8k"})
    assert info.value.fields == ["prompt", "resolution", "duration"]


def test_to_dict_is_json_ready():
    report = check_request(
        {
            "prompt": "@Image1",
            "input_images": [IMG.format(0)],
            "duration": "5",
            "num_generations": 2,
            "response_format": "b64_json",
        }
    )
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["endpoint"] == "queue"
    assert data["cost"]["usd"] == pytest.approx(4.0)
    assert data["references"][0]["kind"] == "url"
    assert data["warnings"][0]["field"] == "response_format"
    assert data["body"]["input_images"] == [IMG.format(0)]


def test_str_summarises():
    text = str(check_request({"prompt": "x", "duration": "3"}))
    assert text.startswith("REFUSED: 1 error(s)") and "Invalid duration" in text
