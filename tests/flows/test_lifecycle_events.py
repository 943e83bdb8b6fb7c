"""Lifecycle events of a generation (issue #14), read back from the session's real Prefect server.

A flow run emits ``seedance.generation.enqueued`` and ``succeeded`` (and ``seedance.video.delivered``)
once each, about ``seedance.generation.<id>``, related to the flow run and task run that emitted them;
a failed generation emits ``failed``; a deadline that cancels it emits ``cancelled``; a re-run that
reattaches emits no second ``enqueued``. The events are sent by Prefect's events worker: it is drained
before the server is asked, and the server persists in batches, so each read waits for the events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from prefect import flow

from seedance_prefect.credentials import OxenCredentials
from seedance_prefect.emulator import EmulatorConfig, RunningEmulator, run_emulator
from seedance_prefect.flows import reference_to_video
from seedance_prefect.jobs import SeedanceJob, run_seedance_job
from seedance_prefect.limits import MODEL_ID
from seedance_prefect.models import SeedanceRequest
from seedance_prefect.tasks import enqueue_generation, wait_for_generation
from tests.kit import API_KEY, set_faults, stats, wait_until

pytestmark = pytest.mark.usefixtures("prefect_server")

LIFECYCLE = {
    "seedance.generation.enqueued",
    "seedance.generation.succeeded",
    "seedance.generation.failed",
    "seedance.generation.cancelled",
}
#: What one run that delivers one video emits about its generation.
ONE_RUN = {"seedance.generation.enqueued", "seedance.generation.succeeded", "seedance.video.delivered"}
REQUEST: dict[str, Any] = {"prompt": "Lanterns drift down a river", "resolution": "480p", "duration": "4"}


def _drain() -> None:
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=30)


def _events(generation_id: str) -> list[Any]:
    """Every ``seedance.*`` event about one generation, oldest first."""
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(
                event=EventNameFilter(prefix=["seedance."]),
                resource=EventResourceFilter(id=[f"seedance.generation.{generation_id}"]),
            ),
            limit=50,
        )
    return sorted(page.events, key=lambda e: e.occurred)


def _wait_for(generation_id: str, expected: set[str], timeout: float = 30.0) -> list[Any]:
    """The generation's events once every name of ``expected`` is there."""
    _drain()
    return wait_until(
        lambda: (found := _events(generation_id)) and expected <= {e.event for e in found} and found,
        timeout,
        f"events {sorted(expected)} of {generation_id}",
        interval=0.5,
    )


def _one_of_each(generation_id: str, names: set[str]) -> list[Any]:
    """The generation's events once every name of ``names`` is there, each exactly once."""
    events = _wait_for(generation_id, names)
    assert Counter(e.event for e in events) == dict.fromkeys(names, 1)
    return events


def _related(event: Any, role: str) -> list[str]:
    return [r.id for r in event.related if r.role == role]


def _no_secrets(event: Any) -> None:
    text = event.model_dump_json()
    assert API_KEY not in text and "base64," not in text


def test_a_flow_run_emits_enqueued_succeeded_and_delivered_once_each(emulator, out_dir):
    state = reference_to_video(dict(REQUEST), output=str(out_dir), poll_interval=2.0, return_state=True)
    assert state.is_completed()
    [delivered] = state.result()
    gid, run_id = delivered["generation_id"], str(state.state_details.flow_run_id)

    events = _one_of_each(gid, ONE_RUN)
    order = [e.event for e in events]
    assert order.index("seedance.generation.enqueued") < order.index("seedance.generation.succeeded")
    for event in events:
        _no_secrets(event)
        assert _related(event, "flow-run") == [f"prefect.flow-run.{run_id}"], event.event
    by_name = {e.event: e for e in events}
    for name in ("seedance.generation.enqueued", "seedance.generation.succeeded"):
        event = by_name[name]
        assert event.resource.id == f"seedance.generation.{gid}"
        assert event.resource.name == gid and event.resource["seedance.model"] == MODEL_ID
        assert len(_related(event, "task-run")) == 1  # the task run that emitted it
    enqueued = by_name["seedance.generation.enqueued"].payload
    assert enqueued["recovered"] is False and enqueued["estimated_cost_usd"] > 0
    assert enqueued["duration"] == "4" and enqueued["num_generations"] == 1
    succeeded = by_name["seedance.generation.succeeded"].payload
    assert succeeded["status"] == "succeeded" and succeeded["error"] is None
    assert succeeded["seconds"] >= 0 and succeeded["wait_seconds"] >= 0
    assert succeeded["estimated_cost_usd"] == enqueued["estimated_cost_usd"]

    # a re-run delivers the same video again: nothing is enqueued, so no second enqueued event
    again = reference_to_video(dict(REQUEST), output=str(out_dir / "again"), poll_interval=2.0)
    assert [d["generation_id"] for d in again] == [gid] and stats(emulator)["enqueue_calls"] == 1
    _drain()
    wait_until(
        lambda: Counter(e.event for e in _events(gid))["seedance.video.delivered"] == 2,
        30,
        "the re-run's delivered event",
        interval=0.5,
    )
    counts = Counter(e.event for e in _events(gid))
    assert counts["seedance.generation.enqueued"] == 1 and counts["seedance.generation.succeeded"] == 1


def test_a_reattach_emits_no_second_enqueued(emulator, tmp_path):
    request = SeedanceRequest(prompt="A heron in the reeds", resolution="480p", duration="4")
    credentials = OxenCredentials(api_key=API_KEY, base_url=emulator.base_url)

    @flow
    def enqueue_twice() -> tuple[list[str], list[str]]:
        first = enqueue_generation(request, credentials, journal_dir=str(tmp_path / "journal"))
        again = enqueue_generation(request, credentials, journal_dir=str(tmp_path / "journal"))
        return first, again

    first, again = enqueue_twice()
    assert first == again and stats(emulator)["enqueue_calls"] == 1
    [gid] = first
    _wait_for(gid, {"seedance.generation.enqueued"})

    @flow
    def reattach_and_wait() -> list[str]:
        ids = enqueue_generation(request, credentials, journal_dir=str(tmp_path / "journal"))
        wait_for_generation(ids[0], credentials, poll_interval=1.0, progress=False)
        return ids

    assert reattach_and_wait() == first and stats(emulator)["enqueue_calls"] == 1
    # succeeded is emitted after the reattach, by the same events worker: once it is stored, an
    # enqueued event of the reattach would be stored too
    counts = Counter(e.event for e in _wait_for(gid, {"seedance.generation.succeeded"}))
    assert counts == {"seedance.generation.enqueued": 1, "seedance.generation.succeeded": 1}


def test_a_failed_generation_emits_failed(emulator, out_dir):
    set_faults(emulator, "fail=1")
    state = reference_to_video(dict(REQUEST), output=str(out_dir), poll_interval=2.0, return_state=True)
    assert state.is_failed()
    [gid] = stats(emulator)["generations"]

    events = _wait_for(gid, {"seedance.generation.enqueued", "seedance.generation.failed"})
    counts = Counter(e.event for e in events)
    assert counts == {"seedance.generation.enqueued": 1, "seedance.generation.failed": 1}
    failed = next(e for e in events if e.event == "seedance.generation.failed")
    assert failed.payload["status"] == "failed"
    assert failed.payload["error"] in ("Insufficient credits", "Internal generation error")
    assert _related(failed, "flow-run") == [f"prefect.flow-run.{state.state_details.flow_run_id}"]
    _no_secrets(failed)


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[RunningEmulator]:
    with run_emulator(EmulatorConfig(latency=30.0, keepalive=1.0)) as emu:
        yield emu


def test_a_deadline_that_cancels_the_generation_emits_cancelled(slow_emulator, monkeypatch, tmp_path):
    slow_emulator.reset()
    monkeypatch.setenv("OXEN_API_KEY", API_KEY)
    monkeypatch.setenv("OXEN_BASE_URL", slow_emulator.base_url)
    monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "state"))
    state = reference_to_video(
        dict(REQUEST), output=str(tmp_path / "out"), timeout_seconds=3, poll_interval=1.0, return_state=True
    )
    assert state.is_failed()
    [(gid, generation)] = stats(slow_emulator)["generations"].items()
    assert generation["status"] == "cancelled"

    events = _wait_for(gid, {"seedance.generation.enqueued", "seedance.generation.cancelled"})
    counts = Counter(e.event for e in events)
    assert counts == {"seedance.generation.enqueued": 1, "seedance.generation.cancelled": 1}
    cancelled = next(e for e in events if e.event == "seedance.generation.cancelled")
    assert cancelled.payload["reason"] == "timeout" and cancelled.payload["wait_seconds"] >= 3
    assert "not finished after 3 s" in cancelled.payload["error"]


def test_a_seedance_job_emits_enqueued_and_succeeded(emulator, tmp_path):
    job = SeedanceJob(
        credentials=OxenCredentials(api_key=API_KEY, base_url=emulator.base_url),
        request={**REQUEST, "prompt": "A paper boat drifts across a pond"},
        output=str(tmp_path / "out"),
        poll_interval=1.0,
        timeout_seconds=60,
        journal_dir=str(tmp_path / "journal"),
    )
    state = run_seedance_job(job, return_state=True)
    assert state.is_completed()
    [delivered] = state.result()
    gid = delivered["generation_id"]

    events = _one_of_each(gid, ONE_RUN)
    run_id = f"prefect.flow-run.{state.state_details.flow_run_id}"
    assert all(_related(e, "flow-run") == [run_id] for e in events)
    assert {e.event for e in events} - {"seedance.video.delivered"} <= LIFECYCLE


def test_a_batch_emits_delivered_for_each_video(emulator, tmp_path):
    """A contact-sheet trigger on seedance.video.delivered must fire for batch deliveries too."""
    from seedance_prefect.batch_flows import batch_reference_to_video

    rows = [
        {**REQUEST, "name": f"lantern-{i}", "prompt": f"Lanterns drift down a river, take {i}"}
        for i in range(2)
    ]
    result = batch_reference_to_video(rows, output=str(tmp_path / "out"), concurrency=2, poll_interval=2.0)
    ids = [str(r["generation"]) for r in result["rows"]]
    assert len(ids) == 2 and all(ids)
    for gid, row in zip(ids, rows, strict=True):
        events = _wait_for(gid, {"seedance.video.delivered"})
        [delivered] = [e for e in events if e.event == "seedance.video.delivered"]
        assert delivered.payload["video"].endswith(f"{row['name']}.mp4")
        assert delivered.payload["prompt"] == row["prompt"]
        _no_secrets(delivered)
