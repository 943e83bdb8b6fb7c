"""The enqueue step and its concurrency slot: the attempt is claimed after the slot is taken, right
before the POST, so its lease is fresh when the POST leaves (a run on another machine never mistakes
a long wait for the slot for a dead owner)."""

from __future__ import annotations

import time

from prefect.logging import disable_run_logger

from seedance_prefect.credentials import resolve_credentials
from seedance_prefect.generation.journal import Journal
from seedance_prefect.models import SeedanceRequest
from seedance_prefect.tasks import enqueue_generation
from tests.flows.flowkit import stats


def test_attempt_is_claimed_after_the_slot_and_posted_right_after(emulator, tmp_path):
    journal_dir = str(tmp_path / "journal")
    request = SeedanceRequest(prompt="Harbour at dusk", duration="4", resolution="480p")
    seen: dict[str, object] = {}
    acquired: list[float] = []

    class Slot:
        def acquire(self) -> None:
            entry = Journal(journal_dir).load(request.fingerprint())
            seen["on disk"] = [a.state for a in entry.attempts] if entry else None
            seen["posts"] = stats(emulator)["enqueue_calls"]
            acquired.append(time.time())

        def release(self) -> None:
            raise AssertionError("the enqueue step never gives its slot back")

    with disable_run_logger():
        ids = enqueue_generation.fn(request, resolve_credentials(None), None, journal_dir, Slot())

    assert seen == {"on disk": None, "posts": 0}  # nothing claimed while waiting for the slot
    entry = Journal(journal_dir).load(request.fingerprint())
    assert [a.state for a in entry.attempts] == ["enqueued"] and entry.generation_ids == ids
    # the lost-answer window starts at the POST, not while the slot was waited for
    assert entry.attempts[0].started_at >= acquired[0] and stats(emulator)["enqueue_calls"] == 1

    # run again: it reattaches under its slot, without a second POST
    seen.clear()
    with disable_run_logger():
        again = enqueue_generation.fn(request, resolve_credentials(None), None, journal_dir, Slot())
    assert again == ids and seen == {"on disk": ["enqueued"], "posts": 1}
    assert stats(emulator)["enqueue_calls"] == 1
