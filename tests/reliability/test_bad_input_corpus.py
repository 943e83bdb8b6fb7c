"""A corpus of bad input: each case is refused locally, before any call to the service, with an error
that names the field, and nothing is written outside the output folder.

Every case runs through the real ``reference_to_video`` flow (Prefect server + emulator), except the
request-file cases, which run through ``seedance generate`` in-process (they fail before Prefect).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from seedance_prefect.cli import main
from seedance_prefect.errors import InvalidRequest
from seedance_prefect.flows import reference_to_video
from seedance_prefect.media.samples import make_audio, make_image, make_video
from tests.kit import stats

pytestmark = pytest.mark.usefixtures("prefect_server")

URL_IMG = "https://example.com/a.png"
URL_VID = "https://example.com/v.mp4"
URL_AUD = "https://example.com/a.mp3"
Case = Callable[[Path], tuple[dict[str, Any], str]]


def _file(tmp: Path, name: str, content: bytes) -> str:
    path = tmp / name
    path.write_bytes(content)
    return str(path)


# Each case: (request, field the error must name). Built lazily: some need files.
CASES: dict[str, Case] = {
    "missing prompt": lambda t: ({"duration": "5"}, "prompt"),
    "empty prompt": lambda t: ({"prompt": ""}, "prompt"),
    "blank prompt": lambda t: ({"prompt": " \n\t "}, "prompt"),
    "prompt not a string": lambda t: ({"prompt": 42}, "prompt"),
    "very long prompt": lambda t: ({"prompt": "a" * 50_000}, "prompt"),
    "NUL in prompt": lambda t: ({"prompt": "hello\x00world"}, "prompt"),
    "duration too short": lambda t: ({"prompt": "x", "duration": "3"}, "duration"),
    "duration too long": lambda t: ({"prompt": "x", "duration": "16"}, "duration"),
    "duration not a number": lambda t: ({"prompt": "x", "duration": "ten"}, "duration"),
    "duration fractional": lambda t: ({"prompt": "x", "duration": 4.5}, "duration"),
    "resolution 1080p": lambda t: ({"prompt": "x", "resolution": "1080p"}, "resolution"),
    "resolution without p": lambda t: ({"prompt": "x", "resolution": "720"}, "resolution"),
    "aspect ratio unknown": lambda t: ({"prompt": "x", "aspect_ratio": "2:1"}, "aspect_ratio"),
    "num_generations 0": lambda t: ({"prompt": "x", "num_generations": 0}, "num_generations"),
    "num_generations 5": lambda t: ({"prompt": "x", "num_generations": 5}, "num_generations"),
    "num_generations as text": lambda t: ({"prompt": "x", "num_generations": "2"}, "num_generations"),
    "seed not an integer": lambda t: ({"prompt": "x", "seed": "abc"}, "seed"),
    "generate_audio not a bool": lambda t: ({"prompt": "x", "generate_audio": "maybe"}, "generate_audio"),
    "response_format unknown": lambda t: ({"prompt": "x", "response_format": "mp4"}, "response_format"),
    "another model": lambda t: ({"prompt": "x", "model": "kling-video-o3-pro"}, "model"),
    "unknown parameter": lambda t: ({"prompt": "x", "durations": "5"}, "durations"),
    "extra_params shadows a field": lambda t: (
        {"prompt": "x", "extra_params": {"duration": "5"}},
        "extra_params",
    ),
    "10 images": lambda t: ({"prompt": "x", "input_images": [URL_IMG] * 10}, "input_images"),
    "4 videos": lambda t: ({"prompt": "x", "input_videos": [URL_VID] * 4}, "input_videos"),
    "4 audios": lambda t: (
        {"prompt": "x", "input_images": [URL_IMG], "input_audios": [URL_AUD] * 4},
        "input_audios",
    ),
    "13 files in total": lambda t: (
        {
            "prompt": "x",
            "input_images": [URL_IMG] * 9,
            "input_videos": [URL_VID] * 3,
            "input_audios": [URL_AUD],
        },
        "input_images",
    ),
    "audio without image or video": lambda t: ({"prompt": "x", "input_audios": [URL_AUD]}, "input_audios"),
    "tag past the images": lambda t: ({"prompt": "@Image2 jumps", "input_images": [URL_IMG]}, "prompt"),
    "video tag without video": lambda t: ({"prompt": "@Video1 dances"}, "prompt"),
    "input_images not a list": lambda t: ({"prompt": "x", "input_images": URL_IMG}, "input_images"),
    "input_images holds a number": lambda t: ({"prompt": "x", "input_images": [12]}, "input_images"),
    "ftp URI": lambda t: ({"prompt": "x", "input_images": ["ftp://example.com/a.png"]}, "input_images[0]"),
    "s3 URI": lambda t: ({"prompt": "x", "input_images": ["s3://bucket/a.png"]}, "input_images[0]"),
    "missing local file": lambda t: (
        {"prompt": "x", "input_images": [str(t / "nope.png")]},
        "input_images[0]",
    ),
    "text file named .jpg": lambda t: (
        {"prompt": "x", "input_images": [_file(t, "fake.jpg", b"just some text, not a picture")]},
        "input_images[0]",
    ),
    "image given as a video": lambda t: (
        {"prompt": "x", "input_videos": [str(make_image(t / "still.mp4", 640, 640, format="PNG"))]},
        "input_videos[0]",
    ),
    "corrupt MP4": lambda t: (
        {
            "prompt": "x",
            "input_videos": [_file(t, "broken.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))],
        },
        "input_videos[0]",
    ),
    "video of 1 s in total": lambda t: (
        {"prompt": "x", "input_videos": [str(make_video(t / "short.mp4", 640, 640, seconds=1.0))]},
        "input_videos",
    ),
    "audio given as an image": lambda t: (
        {"prompt": "x", "input_images": [str(make_audio(t / "sound.png", 2.0))]},
        "input_images[0]",
    ),
    "data URI with bad base64": lambda t: (
        {"prompt": "x", "input_images": ["data:image/png;base64,@@@not-base64@@@"]},
        "input_images[0]",
    ),
    "data URI holding text": lambda t: (
        {"prompt": "x", "input_images": ["data:image/png;base64," + base64.b64encode(b"hello").decode()]},
        "input_images[0]",
    ),
}


def _snapshot(root: Path, skip: tuple[Path, ...]) -> set[Path]:
    return {p for p in root.rglob("*") if not any(p == s or s in p.parents for s in skip)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_before_any_call(case, emulator, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    request, field = CASES[case](inputs)
    out = tmp_path / "out"
    before = _snapshot(tmp_path, (out, tmp_path / "state"))
    with pytest.raises(InvalidRequest) as info:
        reference_to_video(request, output=str(out), poll_interval=1.0)
    problems = info.value.problems
    assert any(p.field == field or p.field.startswith(field + "[") for p in problems), [
        str(p) for p in problems
    ]
    assert all(p.message and (p.fix or p.limit) for p in problems), [str(p) for p in problems]
    api_calls = {r: n for r, n in stats(emulator)["requests_by_route"].items() if " /api/" in r}
    assert api_calls == {}
    assert _snapshot(tmp_path, (out, tmp_path / "state")) == before


@pytest.mark.parametrize("name", ["../../escape", "/etc/passwd", "..", "a/../../b"])
def test_hostile_output_names_are_refused(name, emulator, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InvalidRequest) as info:
        reference_to_video({"prompt": "x", "duration": "4"}, output=str(out), name=name)
    assert info.value.fields == ["name"]
    assert {r for r in stats(emulator)["requests_by_route"] if " /api/" in r} == set()
    assert not list(tmp_path.parent.glob("escape*")) and not (tmp_path / "escape.mp4").exists()


FILE_CASES = {
    "not JSON": b"{prompt: nope",
    "a JSON list": b'[{"prompt": "x"}]',
    "invalid UTF-8": b'{"prompt": "\xff\xfe"}',
    "lone surrogate escape": b'{"prompt": "bad \\udcff text"}',
    "duplicate keys": b'{"prompt": "x", "prompt": "y"}',
    "NaN": b'{"prompt": "x", "seed": NaN}',
    "huge file": b'{"prompt": "' + b"a" * 11_000_000 + b'"}',
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_bad_request_files_exit_2_without_calls(case, emulator, tmp_path, capsys):
    path = tmp_path / "request.json"
    path.write_bytes(FILE_CASES[case])
    assert main(["generate", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert {r for r in stats(emulator)["requests_by_route"] if " /api/" in r} == set()
    assert not (tmp_path / "out").exists()


def test_corpus_is_large_enough():
    assert len(CASES) + len(FILE_CASES) + 4 >= 40
    json.dumps(sorted(CASES))  # the case names are plain text
