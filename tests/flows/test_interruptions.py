"""Crashes, interrupts and cancellation: never pay twice, never leave a paid generation running.

These tests start real processes (the CLI, a flow run, a served deployment) against the session's
Prefect server and a slow emulator, and act on them with signals or Prefect's cancellation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from seedance_prefect.emulator import EmulatorConfig, run_emulator
from seedance_prefect.flows import reference_to_video
from tests.flows.flowkit import API_KEY, stats, stop_process, wait_until

pytestmark = pytest.mark.usefixtures("prefect_server")
REPO = Path(__file__).resolve().parents[2]
REQUEST = {
    "prompt": "A lighthouse in a storm",
    "resolution": "480p",
    "duration": "4",
    "aspect_ratio": "16:9",
    "seed": 11,
}


@pytest.fixture
def slow_emulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """An emulator whose generations take 40 s, so there is time to act on a running flow."""
    with run_emulator(EmulatorConfig(latency=40.0, keepalive=1.0)) as emu:
        monkeypatch.setenv("OXEN_API_KEY", API_KEY)
        monkeypatch.setenv("OXEN_BASE_URL", emu.base_url)
        monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "state"))
        yield emu


def _env(prefect_server: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PREFECT_API_URL"] = prefect_server
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _status(emu: Any) -> str | None:
    generations = stats(emu)["generations"]
    return next(iter(generations.values()))["status"] if generations else None


def _processing(emu: Any) -> bool:
    return _status(emu) == "processing"


def _waited_on(emu: Any) -> bool:
    """The generation is processing and was polled: the flow recorded its id and is in its wait step.

    (Processing alone is seen right after the POST, before the journal records the id; a signal
    landing there is the gap between the answer and the journal, not an interrupt mid-wait.)
    """
    generations = stats(emu)["generations"]
    row = next(iter(generations.values()), None)
    return bool(row) and row["status"] == "processing" and row["polls"] >= 1


def test_sigkill_after_enqueue_then_rerun_reattaches(slow_emulator, prefect_server, tmp_path):
    out = tmp_path / "out"
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(REQUEST))
    code = (
        "import json, sys; from seedance_prefect.flows import reference_to_video; "
        "reference_to_video(json.load(open(sys.argv[1])), output=sys.argv[2], poll_interval=1.0)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(request_file), str(out)],
        env=_env(prefect_server),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _processing(slow_emulator), 90, "the flow's generation to be processing")
        journal = tmp_path / "state" / "journal"
        wait_until(
            lambda: any("enqueued" in p.read_text() for p in journal.glob("*.json")),
            30,
            "the journal to record the generation id",
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert stats(slow_emulator)["enqueue_calls"] == 1
    [generation_id] = stats(slow_emulator)["generations"]

    httpx.post(f"{slow_emulator.url}/_emulator/faults", json={"spec": ""})
    delivered = reference_to_video(REQUEST, output=str(out), poll_interval=1.0)

    assert delivered[0]["generation_id"] == generation_id
    assert stats(slow_emulator)["enqueue_calls"] == 1
    assert Path(delivered[0]["video"]).exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_the_cli_cancels_the_remote_generation(slow_emulator, prefect_server, tmp_path, sig):
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(REQUEST))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seedance_prefect.cli",
            "generate",
            str(request_file),
            "--out",
            str(tmp_path / "o"),
        ],
        env=_env(prefect_server),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: _waited_on(slow_emulator), 90, "the CLI to wait for its generation")
        proc.send_signal(sig)
        sent = time.monotonic()
        wait_until(lambda: _status(slow_emulator) == "cancelled", 5, "the remote generation to be cancelled")
        assert time.monotonic() - sent < 5
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert "Traceback" not in output
    assert API_KEY not in output


def test_cancelling_a_served_flow_run_cancels_the_remote_generation(slow_emulator, prefect_server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    serve = subprocess.Popen(
        [sys.executable, str(REPO / "flows" / "reference_to_video.py"), "--name", "cancel-test"],
        env=_env(prefect_server),
        cwd=tmp_path,
        stdout=(tmp_path / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:

        def deployment_ready() -> bool:
            with get_client(sync_client=True) as client:
                try:
                    client.read_deployment_by_name("seedance-reference-to-video/cancel-test")
                    return True
                except Exception:
                    return False

        wait_until(deployment_ready, 120, "the served deployment")
        run = run_deployment(
            "seedance-reference-to-video/cancel-test",
            parameters={"request": REQUEST, "output": str(tmp_path / "o"), "poll_interval": 1.0},
            timeout=0,
        )
        wait_until(lambda: _waited_on(slow_emulator), 120, "the served run to wait for its generation")
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Cancelling(), force=True)
        sent = time.monotonic()
        wait_until(lambda: _status(slow_emulator) == "cancelled", 5, "the remote generation to be cancelled")
        assert time.monotonic() - sent < 5

        def final_state() -> str | None:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(run.id).state
                return state.type.value if state and state.is_final() else None

        assert wait_until(final_state, 60, "the flow run to end") == "CANCELLED"
    finally:
        stop_process(serve)
