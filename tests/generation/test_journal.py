"""The durable journal: atomic files, fingerprints, flow-run links, an exclusive lock; row matching."""

from __future__ import annotations

import multiprocessing
from typing import ClassVar

import pytest

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
