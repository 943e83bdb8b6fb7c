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

from seedance_prefect.cli.interrupt import cancel_first_on_interrupt
from seedance_prefect.emulator import EmulatorConfig, run_emulator
from seedance_prefect.flows import reference_to_video
from seedance_prefect.generation.journal import Journal
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


def _ignore_sigint() -> None:
    """In the child before exec: SIGINT ignored, as for a process started in the background by a script."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("sig", "preexec"),
    [(signal.SIGINT, None), (signal.SIGTERM, None), (signal.SIGINT, _ignore_sigint)],
    ids=["ctrl-c", "sigterm", "sigint-ignored-by-the-parent"],
)
def test_interrupting_the_cli_cancels_the_remote_generation(
    slow_emulator, prefect_server, tmp_path, sig, preexec
):
    """The DELETE is sent within 5 s of the signal (measured here: from the signal to the emulator's answer).

    ``sigint-ignored-by-the-parent``: a process started in the background of a non-interactive shell
    (``pytest ... &`` in a script, CI) inherits SIGINT *ignored*; the CLI must still act on it.
    """
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
        preexec_fn=preexec,
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
    assert "Cancelled remote generation" in output
    assert "Traceback" not in output
    assert API_KEY not in output


def test_interrupting_a_batch_cancels_every_generation_in_flight(slow_emulator, prefect_server, tmp_path):
    """Batch rows wait on threads, out of KeyboardInterrupt's reach: the CLI cancels them from the journal."""
    manifest = tmp_path / "batch.jsonl"
    rows = [{**REQUEST, "name": name, "prompt": f"{REQUEST['prompt']} ({name})"} for name in ("a", "b")]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "seedance_prefect.cli", "batch", str(manifest)),
            *("--out", str(tmp_path / "o"), "--concurrency", "2", "--limit-name", "interrupt-test"),
        ],
        env=_env(prefect_server),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def both_waited_on() -> bool:
        generations = list(stats(slow_emulator)["generations"].values())
        return len(generations) == 2 and all(g["status"] == "processing" for g in generations)

    def both_cancelled() -> bool:
        return all(g["status"] == "cancelled" for g in stats(slow_emulator)["generations"].values())

    try:
        wait_until(both_waited_on, 120, "the batch to have both generations processing")
        journal = tmp_path / "state" / "journal"
        wait_until(
            lambda: sum("enqueued" in p.read_text() for p in journal.glob("*.json")) == 2,
            30,
            "the journal to record both generation ids",
        )
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        wait_until(both_cancelled, 5, "both remote generations to be cancelled")
        assert time.monotonic() - sent < 5
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert "Cancelled remote generations" in output
    assert "Traceback" not in output
    assert API_KEY not in output


# ---------------------------------------------------------------------------------------------------
# cancel_first_on_interrupt in this process: the DELETE is sent before the interrupt is raised


def _enqueue_and_journal(tmp_path: Path, run_id: str) -> tuple[Any, Journal, str]:
    from seedance_prefect.credentials import resolve_credentials
    from seedance_prefect.generation.journal import JournalEntry
    from seedance_prefect.models import SeedanceRequest

    creds = resolve_credentials(None)
    with creds.get_client() as client:
        [row] = client.enqueue(SeedanceRequest.model_validate(REQUEST))
    journal = Journal(tmp_path / "journal")
    entry = JournalEntry(fingerprint="f1")
    entry.begin_attempt().record([row.generation_id])
    journal.save(entry)
    journal.link_flow_run(run_id, "f1")
    return creds, journal, row.generation_id


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_the_interrupt_is_raised_after_the_delete(slow_emulator, tmp_path, sig):
    runs: dict[str, Any] = {}
    with cancel_first_on_interrupt(Journal(tmp_path / "journal"), lambda: runs) as interrupt:
        creds, _, generation_id = _enqueue_and_journal(tmp_path, "run-1")
        runs["run-1"] = creds  # a flow run started inside the block
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
            time.sleep(10)
        status_at_interrupt = _status(slow_emulator)
    assert status_at_interrupt == "cancelled"
    assert interrupt.signal == sig and interrupt.cancelled == [generation_id]
    assert stats(slow_emulator)["deletes"] == 1


def test_a_sigterm_taken_by_another_handler_still_cancels_at_once(slow_emulator, tmp_path):
    """During a flow run Prefect replaces the SIGTERM handler; the watcher thread still sends the DELETE."""

    class Terminated(BaseException):
        pass

    def prefects_bridge(signum: int, frame: Any) -> None:
        raise Terminated

    runs: dict[str, Any] = {}
    with cancel_first_on_interrupt(Journal(tmp_path / "journal"), lambda: runs) as interrupt:
        creds, _, generation_id = _enqueue_and_journal(tmp_path, "run-1")
        runs["run-1"] = creds
        ours = signal.signal(signal.SIGTERM, prefects_bridge)
        try:
            with pytest.raises(Terminated):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(10)
            wait_until(lambda: _status(slow_emulator) == "cancelled", 5, "the watcher's DELETE")
        finally:
            signal.signal(signal.SIGTERM, ours)
    assert interrupt.cancelled == [generation_id]


def test_flow_runs_from_before_the_block_are_left_alone(slow_emulator, tmp_path):
    runs: dict[str, Any] = {}
    creds, journal, _ = _enqueue_and_journal(tmp_path, "earlier-run")
    runs["earlier-run"] = creds
    with cancel_first_on_interrupt(journal, lambda: runs) as interrupt, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)
    assert interrupt.cancelled == [] and _status(slow_emulator) == "processing"


def test_sigint_inherited_ignored_is_handled_inside_and_ignored_again_after(tmp_path):
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        journal = Journal(tmp_path / "journal")
        with cancel_first_on_interrupt(journal, dict) as interrupt, pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)
        assert interrupt.signal == signal.SIGINT and interrupt.cancelled == []
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


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
