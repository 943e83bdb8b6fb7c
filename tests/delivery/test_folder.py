"""Delivery to a local folder: safe names, video and sidecar, idempotent, never overwriting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seedance_prefect.client import sha256_file
from seedance_prefect.delivery import deliver_to_folder, safe_name
from seedance_prefect.errors import InvalidRequest


class TestDelivery:
    def test_safe_names(self):
        assert safe_name("My clip #1") == "My_clip_1"
        assert safe_name("a:b*c") == "a_b_c"
        assert len(safe_name("n" * 500)) == 100
        for bad in ("", "..", "///", "\x00", "../../x", "a/b", "a\\b", "x..y"):
            with pytest.raises(InvalidRequest):
                safe_name(bad)

    def _video(self, tmp_path: Path, content: bytes, name: str = "v.mp4") -> Path:
        path = tmp_path / "work" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
        return path

    def test_delivers_video_and_sidecar_and_is_idempotent(self, tmp_path):
        out = tmp_path / "out"
        d1 = deliver_to_folder(self._video(tmp_path, b"A"), out, "clip", generation_id="g1", sidecar={"k": 1})
        assert Path(d1.video) == out / "clip.mp4" and not d1.reused
        assert json.loads((out / "clip.json").read_text())["sha256"] == sha256_file(out / "clip.mp4").sha256
        d2 = deliver_to_folder(self._video(tmp_path, b"A"), out, "clip", generation_id="g1", sidecar={"k": 1})
        assert d2.reused and Path(d2.video) == out / "clip.mp4"

    def test_never_overwrites_a_different_file(self, tmp_path):
        out = tmp_path / "out"
        deliver_to_folder(self._video(tmp_path, b"A"), out, "clip", generation_id="g1aaaaaaaa", sidecar={})
        other = deliver_to_folder(
            self._video(tmp_path, b"B"), out, "clip", generation_id="g2bbbbbbbb", sidecar={}
        )
        assert Path(other.video).name == "clip-g2bbbbbb.mp4"
        assert (out / "clip.mp4").read_bytes() == b"A"

    def test_name_cannot_escape_the_folder(self, tmp_path):
        out = tmp_path / "out"
        with pytest.raises(InvalidRequest):
            deliver_to_folder(self._video(tmp_path, b"A"), out, "../../escape", generation_id="g", sidecar={})
        assert not list(tmp_path.rglob("escape*"))
