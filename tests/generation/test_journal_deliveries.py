"""``Journal.record_deliveries``: where the flows note what was delivered (no Prefect, no service)."""

from __future__ import annotations

import json

from seedance_prefect.delivery.folder import DeliveredVideo
from seedance_prefect.generation import Journal, JournalEntry


def _delivered(gid: str, video: str) -> DeliveredVideo:
    return DeliveredVideo(
        generation_id=gid, video=video, sidecar=video + ".json", sha256=gid * 8, size_bytes=3, reused=False
    )


def test_deliveries_are_added_to_the_entry_on_disk(journal: Journal):
    entry = JournalEntry(fingerprint="abc123", body={"prompt": "p"})
    entry.begin_attempt().record(["g1", "g2"])
    journal.save(entry)

    saved = journal.record_deliveries("abc123", [_delivered("g1", "out/a.mp4")])
    journal.record_deliveries("abc123", iter([_delivered("g2", "out/b.mp4")]))

    on_disk = json.loads((journal.directory / "abc123.json").read_text())
    assert on_disk["deliveries"] == {
        "g1": {"video": "out/a.mp4", "sha256": "g1" * 8},
        "g2": {"video": "out/b.mp4", "sha256": "g2" * 8},
    }
    assert saved is not None and saved.generation_ids == ["g1", "g2"]  # the attempts are kept
    assert on_disk["attempts"][0]["generation_ids"] == ["g1", "g2"]


def test_nothing_is_written_without_deliveries_or_without_an_entry(journal: Journal):
    assert journal.record_deliveries("abc123", []) is None
    assert journal.record_deliveries("abc123", [_delivered("g1", "out/a.mp4")]) is None
    assert not journal.directory.exists() or not (journal.directory / "abc123.json").exists()
