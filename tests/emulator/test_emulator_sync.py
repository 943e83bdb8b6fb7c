"""``POST /api/ai/videos/generate``: documented shapes, validation messages/order, real MP4 results."""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx
import pytest

from seedance_prefect.emulator import RunningEmulator
from tests.emulator.emulatorkit import MODEL, assert_structured_error, inspect_mp4, request_body

RESULT_URL = re.compile(
    r"^http://localhost:(\d+)/api/repos/emulator/results/files/main/[^/]+/video\.mp4\?sig=\w+$"
)


def test_url_answer_matches_contract_and_result_is_a_real_mp4(
    emu: RunningEmulator, client: httpx.Client
) -> None:
    response = client.post("/ai/videos/generate", json=request_body(seed=1))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"created", "model", "videos"}
    assert isinstance(body["created"], int) and body["model"] == MODEL
    assert len(body["videos"]) == 1 and set(body["videos"][0]) == {"url"}
    url = body["videos"][0]["url"]
    match = RESULT_URL.match(url)
    assert match and int(match.group(1)) == emu.port  # result_host "localhost", same port

    with httpx.Client(trust_env=False, timeout=30) as anon:  # results are presigned: no auth header
        download = anon.get(url)
    assert download.status_code == 200
    assert download.headers["content-type"] == "video/mp4"
    assert int(download.headers["content-length"]) == len(download.content)
    info = inspect_mp4(download.content)
    assert "mp4" in info["format"] and info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (854, 480)
    assert info["fps"] == 24 and info["frames"] == 96
    assert abs(info["duration"] - 4.0) <= 1 / 24
    assert info["audio"] is not None and info["audio"]["codec"] == "aac"  # generate_audio defaults to true
    assert abs(info["audio"]["duration"] - 4.0) <= 1 / 24

    stats = emu.stats()
    assert stats["generate_calls"] == 1 and stats["sync_generations"] == 1
    record = next(iter(stats["generations"].values()))
    assert record["kind"] == "sync" and record["result"]["size"] == len(download.content)


def test_b64_json_answer_portrait_without_audio(client: httpx.Client) -> None:
    body = request_body(response_format="b64_json", aspect_ratio="9:16", generate_audio=False)
    response = client.post("/ai/videos/generate", json=body)
    assert response.status_code == 200
    videos = response.json()["videos"]
    assert len(videos) == 1 and set(videos[0]) == {"b64_json"}
    info = inspect_mp4(base64.b64decode(videos[0]["b64_json"]))
    assert (info["width"], info["height"]) == (480, 854)
    assert info["audio"] is None
    assert abs(info["duration"] - 4.0) <= 1 / 24


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("auto", 5), (-1, 5), (None, 5), (6, 6), ("6", 6)],
)
def test_both_duration_profiles_are_accepted(client: httpx.Client, duration: Any, seconds: int) -> None:
    body = request_body(duration=duration, aspect_ratio="adaptive", response_format="b64_json")
    if duration is None:
        body.pop("duration", None)
    response = client.post("/ai/videos/generate", json=body)
    assert response.status_code == 200, response.text
    info = inspect_mp4(base64.b64decode(response.json()["videos"][0]["b64_json"]))
    assert abs(info["duration"] - seconds) <= 1 / 24
    assert (info["width"], info["height"]) == (854, 480)


def _urls(n: int, kind: str) -> list[str]:
    return [f"https://example.com/{kind}{i}" for i in range(n)]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prompt": None}, "Field required"),
        ({"prompt": "  "}, "Field required"),
        (
            {"input_images": _urls(9, "i"), "input_videos": _urls(3, "v"), "input_audios": _urls(1, "a")},
            "Too many input files",
        ),
        ({"input_audios": _urls(1, "a")}, "Audio requires at least one image or video"),
        ({"duration": "3"}, "Invalid duration"),
        ({"duration": "16"}, "Invalid duration"),
        ({"duration": 4.5}, "Invalid duration"),
        ({"duration": "adaptive"}, "Invalid duration"),
        ({"resolution": "1080p"}, "Invalid resolution"),
        ({"aspect_ratio": "5:4"}, "Invalid aspect_ratio"),
        ({"input_images": _urls(10, "i")}, "Too many input images (max 9)"),
        # documented order: prompt -> total files -> audio needs visual -> duration -> resolution
        ({"prompt": None, "duration": "3", "resolution": "4k"}, "Field required"),
        ({"input_audios": _urls(13, "a"), "duration": "3"}, "Too many input files"),
        ({"input_audios": _urls(1, "a"), "duration": "3"}, "Audio requires at least one image or video"),
        ({"duration": "3", "resolution": "4k"}, "Invalid duration"),
    ],
)
def test_documented_validation_messages(
    emu: RunningEmulator, client: httpx.Client, overrides: dict[str, Any], message: str
) -> None:
    body = request_body(**overrides)
    if "prompt" in overrides and overrides["prompt"] is None:
        body.pop("prompt", None)
    response = client.post("/ai/videos/generate", json=body)
    assert_structured_error(response, 400, "invalid_params", message)
    assert emu.stats()["sync_generations"] == 0  # rejected before any work


def test_unknown_and_missing_model_use_the_simple_envelope(client: httpx.Client) -> None:
    response = client.post("/ai/videos/generate", json=request_body(model="bad-model-name"))
    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Model not found: bad-model-name"}}
    response = client.post("/ai/videos/generate", json=request_body(model=None))
    assert response.status_code == 400 and set(response.json()["error"]) == {"message"}


def test_num_generations_is_ignored_by_the_sync_endpoint(client: httpx.Client) -> None:
    response = client.post("/ai/videos/generate", json=request_body(num_generations=3))
    assert response.status_code == 200 and len(response.json()["videos"]) == 1


def test_unfetchable_reference_is_a_400_naming_it(emu: RunningEmulator, client: httpx.Client) -> None:
    missing = f"{emu.url}/api/repos/emulator/assets/file/main/missing.png"
    response = client.post("/ai/videos/generate", json=request_body(input_images=[missing]))
    assert_structured_error(response, 400, "invalid_params")
    detail = response.json()["error"]["detail"]
    assert "input_images[0]" in detail and "404" in detail


def test_non_json_body_is_a_400(client: httpx.Client) -> None:
    response = client.post(
        "/ai/videos/generate", content=b"not json", headers={"content-type": "application/json"}
    )
    assert_structured_error(response, 400, "invalid_params")
