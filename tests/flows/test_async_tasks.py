"""The async twins of the tasks, run from an async flow against the emulator and the real Prefect server.

Each twin is a task of the same name and options that runs the sync task's function in a worker
thread: the flow's event loop keeps running while a generation is awaited, Prefect's artifacts are
created (inside the thread the run context names the sync task, so Prefect's sync/async helpers do
not hand back a coroutine), and the lifecycle events are the sync tasks' own.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from seedance_prefect import tasks
from seedance_prefect.credentials import OxenCredentials
from seedance_prefect.delivery.sidecar import build_sidecar
from seedance_prefect.tasks import (
    adeliver_video,
    adownload_video,
    aenqueue_generation,
    agenerate_sync,
    aprepare_references,
    avalidate_request,
    averify_video,
    await_for_generation,
)
from tests.kit import API_KEY, FLOW_STEPS, recorded_task_runs, stats

pytestmark = pytest.mark.usefixtures("prefect_server")

TWINS = {
    "avalidate_request": "validate_request",
    "aprepare_references": "prepare_references",
    "aenqueue_generation": "enqueue_generation",
    "await_for_generation": "wait_for_generation",
    "adownload_video": "download_video",
    "agenerate_sync": "generate_sync",
    "averify_video": "verify_video",
    "adeliver_video": "deliver_video",
}
REQUEST: dict[str, Any] = {"prompt": "A kite over a windy beach", "resolution": "480p", "duration": "4"}


@pytest.mark.parametrize(("twin", "sync"), sorted(TWINS.items()))
def test_a_twin_is_an_async_task_with_the_options_of_its_sync_task(twin: str, sync: str) -> None:
    a, s = getattr(tasks, twin), getattr(tasks, sync)
    assert a.isasync and not s.isasync
    assert (a.name, a.task_run_name, a.retries, a.retry_delay_seconds, a.retry_jitter_factor) == (
        s.name,
        s.task_run_name,
        s.retries,
        s.retry_delay_seconds,
        s.retry_jitter_factor,
    )
    assert a.retry_condition_fn is s.retry_condition_fn and a.cache_policy == s.cache_policy
    assert inspect.signature(a.fn) == inspect.signature(s.fn)  # how Prefect binds the parameters
    assert a.fn.__name__ == twin and a.fn.__wrapped__ is s.fn  # one implementation


def _artifact_types(run_id: Any) -> set[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.type for a in found}


def test_an_async_flow_runs_the_queue_steps_and_its_loop_stays_free(emulator, out_dir: Path) -> None:
    credentials = OxenCredentials(api_key=API_KEY, base_url=emulator.base_url)

    @flow
    async def generate(data: dict[str, Any]) -> dict[str, Any]:
        request = await avalidate_request(data)
        prepared = await aprepare_references(request, credentials)
        [gid] = await aenqueue_generation(prepared, credentials)
        ticks = 0
        waiting = True

        async def tick() -> None:  # runs only if the loop is free while the generation is awaited
            nonlocal ticks
            while waiting:
                ticks += 1
                await asyncio.sleep(0.05)

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        row = await await_for_generation(gid, credentials, poll_interval=1.0)
        waited, waiting = time.monotonic() - started, False
        await ticker
        video = await adownload_video(row, credentials, str(out_dir / "work"))
        probe = await averify_video(video, request, str(out_dir / "rejected"))
        sidecar = build_sidecar(video, row, request, probe, "queue", None, None)
        delivered = await adeliver_video(video, str(out_dir), "kite", sidecar)
        return {"gid": gid, "ticks": ticks, "waited": waited, "video": delivered.video}

    state = asyncio.run(generate(dict(REQUEST), return_state=True))
    assert state.is_completed(), state.message
    result = state.result()
    assert Path(result["video"]) == out_dir / "kite.mp4" and Path(result["video"]).stat().st_size > 0
    assert result["ticks"] >= result["waited"] / 0.05 / 4  # the loop ran while the wait blocked a thread
    assert stats(emulator)["enqueue_calls"] == 1

    run_id = state.state_details.flow_run_id
    runs = recorded_task_runs(run_id, count=len(FLOW_STEPS))
    assert {r.name.rsplit("-", 1)[0] for r in runs} == FLOW_STEPS
    assert all(r.state.is_completed() for r in runs)
    assert "progress" in _artifact_types(run_id)  # created from the worker thread, not left a coroutine

    from tests.flows.test_lifecycle_events import _wait_for

    events = _wait_for(result["gid"], {"seedance.generation.enqueued", "seedance.generation.succeeded"})
    assert [e.event for e in events] == ["seedance.generation.enqueued", "seedance.generation.succeeded"]
    assert all(str(run_id) in {r.id.rsplit(".", 1)[-1] for r in e.related} for e in events)


def test_an_async_flow_reattaches_and_runs_the_sync_endpoint(emulator, out_dir: Path) -> None:
    credentials = OxenCredentials(api_key=API_KEY, base_url=emulator.base_url)

    @flow
    async def twice_then_sync(data: dict[str, Any]) -> tuple[list[str], list[str], str]:
        request = await avalidate_request(data)
        first, again = await asyncio.gather(
            aenqueue_generation(request, credentials, journal_dir=str(out_dir / "journal")),
            aenqueue_generation(request, credentials, journal_dir=str(out_dir / "journal")),
        )
        video = await agenerate_sync(request, credentials, str(out_dir / "work"))
        return first, again, video.path

    first, again, path = asyncio.run(twice_then_sync(dict(REQUEST)))
    assert first == again and len(first) == 1  # two concurrent enqueues, one POST (the journal's claim)
    assert stats(emulator)["enqueue_calls"] == 1
    assert Path(path).stat().st_size > 0
