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
from tests.kit import stats


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


def test_a_lease_taken_by_a_row_task_outlives_the_task_run(prefect_server):
    """The batch pool's lease belongs to the flow run: Prefect releases what a task run leased when
    that task run ends, which let other flow runs take slots the pool was still handing out (10
    generations in flight under a limit of 6, across three flow runs on three workers)."""
    import uuid

    from prefect import flow, task

    from seedance_prefect.slots import LimitLeases, ensure_concurrency_limit, free_slots

    name = f"seedance-test-lease-{uuid.uuid4().hex[:8]}"
    ensure_concurrency_limit(name, 3)
    held: list[object] = []

    @task
    def take_two(leases: LimitLeases) -> int:
        lease = leases.lease(2)
        lease.__enter__()
        held.append(lease)
        return free_slots(name)

    @flow
    def batch_like() -> tuple[int, int, int]:
        leases = LimitLeases(name, None)
        during = take_two(leases)
        after_the_task = free_slots(name)  # the task run is over; the pool still holds the lease
        held[0].__exit__(None, None, None)  # type: ignore[attr-defined]
        return during, after_the_task, free_slots(name)

    assert batch_like() == (1, 1, 3)
