"""The durable journal, row matching for lost answers, and safe, idempotent delivery."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import ClassVar

import pytest

from seedance_prefect.client import sha256_file
from seedance_prefect.delivery import deliver_to_folder, safe_name
from seedance_prefect.errors import InvalidRequest
from seedance_prefect.generation.journal import Journal, JournalEntry, row_matches
from seedance_prefect.limits import MODEL_ID
from seedance_prefect.models import Generation


class TestJournal:
    def test_round_trip_and_atomic_files(self, tmp_path):
        journal = Journal(tmp_path)
        entry = JournalEntry(fingerprint="ab12", body={"prompt": "p"})
        attempt = entry.begin_attempt()
        journal.save(entry)
        assert journal.load("ab12").last_attempt.state == "posting"
        attempt.record(["g1", "g2"])
        journal.save(entry)
        loaded = journal.load("ab12")
        assert loaded.generation_ids == ["g1", "g2"] and loaded.last_attempt.state == "enqueued"
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["ab12.json"]

    def test_refuses_path_like_fingerprints(self, tmp_path):
        with pytest.raises(ValueError):
            Journal(tmp_path).load("../evil")

    def test_flow_run_links(self, tmp_path):
        journal = Journal(tmp_path)
        journal.link_flow_run("run-1", "fp1")
        journal.link_flow_run("run-1", "fp2")
        journal.link_flow_run("run-1", "fp1")
        assert journal.fingerprints_of_flow_run("run-1") == ["fp1", "fp2"]
        assert journal.fingerprints_of_flow_run("run-2") == []

    def test_lock_is_exclusive_across_processes(self, tmp_path):
        journal = Journal(tmp_path)
        ctx = multiprocessing.get_context("fork")
        with journal.lock("fp"):
            proc = ctx.Process(target=_take_lock, args=(str(tmp_path),))
            proc.start()
            proc.join(0.5)
            assert proc.is_alive(), "the other process got the lock while we held it"
        proc.join(10)
        assert proc.exitcode == 0


def _take_lock(directory: str) -> None:
    with Journal(directory).lock("fp"):
        pass


class TestRowMatches:
    body: ClassVar[dict] = {
        "model": MODEL_ID,
        "prompt": "p",
        "duration": "8",
        "aspect_ratio": "auto",
        "seed": 5,
        "input_images": ["data:...;sha256=ab"],
        "num_generations": 2,
    }

    def row(self, **fields):
        base = {"generation_id": "g", "model_name": MODEL_ID, "prompt": "p", "enqueued_at": 1000}
        return Generation.model_validate({**base, **fields})

    def test_matches_echoed_parameters_in_either_profile(self):
        assert row_matches(self.row(duration=8, aspect_ratio="adaptive", seed=5), self.body, since=1000)

    def test_other_prompt_param_or_time_does_not_match(self):
        assert not row_matches(self.row(prompt="q"), self.body, since=1000)
        assert not row_matches(self.row(seed=6), self.body, since=1000)
        assert not row_matches(self.row(enqueued_at=500), self.body, since=1000)
        assert not row_matches(self.row(model_name="other"), self.body, since=1000)


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
