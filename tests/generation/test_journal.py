"""The durable journal: atomic files, fingerprints, flow-run links, an exclusive lock; row matching."""

from __future__ import annotations

import json
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


def test_an_entry_of_an_earlier_version_loads_and_unknown_fields_survive(tmp_path):
    (tmp_path / "abc.json").write_text(
        json.dumps(
            {
                "fingerprint": "abc",
                "body": {"prompt": "p"},
                "attempts": [
                    {
                        "started_at": 1.0,
                        "state": "posting",
                        "generation_ids": [],
                        "detail": None,
                        "from_the_future": 1,
                    }
                ],
                "deliveries": {},
                "flow_runs": ["r"],
                "shiny_new_field": {"x": 1},
            }
        )
    )
    journal = Journal(tmp_path)
    entry = journal.load("abc")
    assert entry is not None and entry.claim is None and entry.lease_holder() is None
    assert entry.last_attempt is not None and entry.last_attempt.state == "posting"
    entry.last_attempt.record(["g1"])
    journal.save(entry)
    on_disk = json.loads((tmp_path / "abc.json").read_text())
    assert on_disk["shiny_new_field"] == {"x": 1} and on_disk["attempts"][0]["from_the_future"] == 1
    assert on_disk["attempts"][0]["generation_ids"] == ["g1"] and on_disk["claim"] is None


def test_today_layout_in_the_default_store(tmp_path, monkeypatch):
    monkeypatch.delenv("SEEDANCE_STATE", raising=False)
    monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path))
    journal = Journal()
    assert journal.directory == tmp_path / "journal"
    journal.save(JournalEntry(fingerprint="abc"))
    journal.link_flow_run("run-1", "abc")
    assert (tmp_path / "journal" / "abc.json").is_file()
    assert (tmp_path / "journal" / "runs" / "run-1" / "abc").is_file()
    assert Journal(tmp_path / "journal").load("abc") is not None  # the folder as earlier versions named it
    (tmp_path / "journal" / "runs" / "run-0.json").write_text('["old1"]')  # the oldest marker format
    assert journal.fingerprints_of_flow_run("run-0") == ["old1"]


def test_journal_at_prefers_state_over_journal_dir(tmp_path):
    assert Journal.at(str(tmp_path / "s"), tmp_path / "j").directory == tmp_path / "s" / "journal"
    assert Journal.at(None, tmp_path / "j").directory == tmp_path / "j"
    with pytest.raises(ValueError):
        Journal(tmp_path, store=str(tmp_path))


def test_update_rereads_after_a_concurrent_write(tmp_path):
    journal = Journal(tmp_path)
    journal.save(JournalEntry(fingerprint="abc"))
    calls = []

    def add(entry):
        calls.append(list(entry.flow_runs))
        if len(calls) == 1:  # someone else writes between our read and our write
            other = journal.load("abc")
            other.flow_runs.append("theirs")
            journal.save(other)
        entry.flow_runs.append("ours")
        return entry

    assert journal.update("abc", add).flow_runs == ["theirs", "ours"]
    assert calls == [[], ["theirs"]]


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
