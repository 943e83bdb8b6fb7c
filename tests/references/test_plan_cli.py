"""`seedance plan` lists every planned fix, encodes nothing and opens no connection."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from seedance_prefect.cli import main
from seedance_prefect.references import preprocess
from tests.references.conftest import request_for


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("seedance plan tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(preprocess, "_normalizer", lambda target: refuse)


def _write(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(body))
    return path


def test_plan_lists_every_planned_fix(media, tmp_path, capsys, offline):
    body = request_for(
        input_images=[media.s("exif6"), media.s("jpeg_ok")],
        input_videos=[media.s("rotated"), media.s("vfr")],
        input_audios=[media.s("wav20")],
    )
    assert main(["plan", str(_write(tmp_path, body))]) == 0
    out = capsys.readouterr().out
    assert "Planned fixes (4)" in out
    for line in (
        f"input_images[0] ({media.s('exif6')}): orient",
        f"input_videos[0] ({media.s('rotated')}): rotate: stored 854x480, rotation 90 -> 480x854 upright",
        f"input_videos[1] ({media.s('vfr')}): frame rate",
        f"input_audios[0] ({media.s('wav20')}): trim: 20.0 s -> 0.0-15.0 s (15.0 s)",
    ):
        assert line in out
    assert "jpeg_ok" not in out.split("Planned fixes")[1].split("Request is valid")[0]  # compliant: no fix
    assert "Request is valid" in out


def test_plan_json_has_the_planned_fixes(media, tmp_path, capsys, offline):
    body = request_for(input_videos=[media.s("v1080_20s")])
    assert main(["plan", "--json", str(_write(tmp_path, body))]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["errors"] == []
    assert [(f["what"], f["before"], f["after"]) for f in data["planned_fixes"]] == [
        ("scale", "1920x1080 = 2,073,600 px", "1284x722 = 927,048 px"),
        ("trim", "20.0 s", "0.0-15.0 s (15.0 s)"),
    ]


def test_plan_refuses_what_cannot_be_fixed_naming_field_and_file(media, tmp_path, capsys, offline):
    body = request_for(input_videos=[media.s("v_1s")], input_images=[media.s("text")])
    assert main(["plan", str(_write(tmp_path, body))]) == 2
    err = capsys.readouterr().err
    assert "error: input_videos: Videos too short in total" in err
    assert f"error: input_images[0]: Not a readable image file (found: {media.s('text')}" in err
