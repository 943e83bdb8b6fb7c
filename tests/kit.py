"""Helpers shared by every test folder: the test API key, emulator faults and stats, waiting on conditions."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

API_KEY = "sk-test-4f1c9e2b7a5d4c3e8f6a0b1c2d3e4f5a"
#: Every API key the Prefect-backed tests use: the session's secret scan looks for each.
SECRETS = [API_KEY]
#: The task runs of one ``reference_to_video`` flow run (queue mode), by task name.
FLOW_STEPS = frozenset(
    {
        "validate_request",
        "prepare_references",
        "enqueue_generation",
        "wait_for_generation",
        "download_video",
        "verify_video",
        "deliver_video",
    }
)


def set_faults(emu: object, spec: str) -> None:
    """Change the emulator's fault injection at run time."""
    response = httpx.post(f"{emu.url}/_emulator/faults", json={"spec": spec})  # type: ignore[attr-defined]
    response.raise_for_status()


def stats(emu: object) -> dict:
    """The emulator's statistics."""
    return httpx.get(f"{emu.url}/_emulator/stats").json()  # type: ignore[attr-defined]


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stop_process(proc: subprocess.Popen[Any], grace: float = 30.0) -> None:
    """Stop a server or worker the way Ctrl-C does; kill it if it is still there after ``grace`` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def recorded_task_runs(flow_run_id: Any, count: int, timeout: float = 30.0) -> list[Any]:
    """The flow run's task runs once the server has recorded ``count`` of them in a final state.

    Prefect writes task runs from the events the engine sends, so right after a flow returns the
    API may still list a task run without its state (or not list it yet).
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    def settled() -> list[Any] | None:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
        done = len(runs) >= count and all(r.state is not None and r.state.is_final() for r in runs)
        return runs if done else None

    what = f"{count} task runs of flow run {flow_run_id} recorded in a final state"
    return wait_until(settled, timeout, what)
