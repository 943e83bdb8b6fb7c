"""`seedance plan`: exit codes, messages naming the field, no network, no Prefect import."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from seedance_prefect.cli import main
from seedance_prefect.media.samples import make_audio, make_image

SEED_EXAMPLES = {
    "text-only": {
        "model": "bytedance-seedance-2-0-reference-to-video",
        "prompt": "A paper boat drifts on a pond at dawn",
        "duration": "5",
    },
    "reference-images": {
        "model": "bytedance-seedance-2-0-reference-to-video",
        "prompt": "@Image1 and @Image2 dance together in a ballroom",
        "input_images": ["https://example.com/a.png", "https://example.com/b.png"],
        "duration": "8",
        "aspect_ratio": "16:9",
    },
    "video-and-audio": {
        "model": "bytedance-seedance-2-0-reference-to-video",
        "prompt": "Move like @Video1 while @Audio1 plays",
        "input_videos": ["https://example.com/move.mp4"],
        "input_audios": ["https://example.com/song.mp3"],
        "duration": "10",
    },
    "portrait-480p": {
        "model": "bytedance-seedance-2-0-reference-to-video",
        "prompt": "A dancer spins in the rain",
        "resolution": "480p",
        "aspect_ratio": "9:16",
        "duration": "6",
    },
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("seedance plan tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _write(tmp_path: Path, body: dict, name: str = "request.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return path


@pytest.mark.parametrize("example", sorted(SEED_EXAMPLES))
def test_seed_examples_are_accepted(tmp_path, capsys, example):
    assert main(["plan", str(_write(tmp_path, SEED_EXAMPLES[example]))]) == 0
    out = capsys.readouterr().out
    assert "Estimated cost" in out and "bytedance-seedance-2-0-reference-to-video" in out


def test_local_references_relative_to_the_file(tmp_path, capsys):
    make_image(tmp_path / "refs" / "cat.png", 640, 640, format="PNG")
    make_audio(tmp_path / "refs" / "meow.wav", 2.0)
    body = {
        "prompt": "@Image1 sings @Audio1",
        "input_images": ["refs/cat.png"],
        "input_audios": ["refs/meow.wav"],
    }
    assert main(["plan", str(_write(tmp_path, body))]) == 0
    out = capsys.readouterr().out
    assert "cat.png" in out and "base64" not in out


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"duration": "8"}, "prompt", "Field required"),
        ({"prompt": "x", "duration": "3"}, "duration", "Invalid duration"),
        ({"prompt": "x", "resolution": "1080p"}, "resolution", "Invalid resolution"),
        (
            {"prompt": "x", "num_generations": 9},
            "num_generations",
            "num_generations must be an integer between 1 and 4",
        ),
        (
            {"prompt": "x", "input_audios": ["https://e.com/a.mp3"]},
            "input_audios",
            "Audio requires at least one image or video",
        ),
        (
            {
                "prompt": "x",
                "input_images": ["https://e.com/a.png"] * 10,
                "input_videos": ["https://e.com/v.mp4"] * 3,
            },
            "input_images",
            "Too many input files",
        ),
        ({"prompt": "x", "durration": "5"}, "durration", "did you mean 'duration'"),
        ({"prompt": "@Image2 runs", "input_images": ["https://e.com/a.png"]}, "prompt", "@Image2"),
        ({"prompt": "x", "input_images": ["ftp://e.com/a.png"]}, "input_images[0]", "ftp"),
    ],
)
def test_bad_requests_exit_2_naming_the_field(tmp_path, capsys, body, field, text):
    assert main(["plan", str(_write(tmp_path, body))]) == 2
    err = capsys.readouterr().err
    assert f"error: {field}" in err and text in err
    assert "Traceback" not in err


def test_json_output(tmp_path, capsys):
    assert main(["plan", "--json", str(_write(tmp_path, {"prompt": "x", "duration": "3"}))]) == 2
    data = json.loads(capsys.readouterr().out)
    assert any(p["field"] == "duration" for p in data["errors"])


def test_sync_refuses_several_generations(tmp_path, capsys):
    assert main(["plan", "--sync", str(_write(tmp_path, {"prompt": "x", "num_generations": 2}))]) == 2


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe\x00garbage"])
def test_unreadable_request_files(tmp_path, capsys, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert main(["plan", str(path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_missing_file_and_bad_usage(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "nope.json")]) == 2
    with pytest.raises(SystemExit) as info:
        main(["plan"])
    assert info.value.code == 2


def test_plan_does_not_import_prefect(tmp_path):
    path = _write(tmp_path, SEED_EXAMPLES["text-only"])
    code = (
        "import sys; from seedance_prefect.cli import main; rc = main(['plan', sys.argv[1]]); "
        "assert not any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules), 'prefect'; "
        "sys.exit(rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
