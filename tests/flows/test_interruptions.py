"""Crashes, interrupts and cancellation: never pay twice, never leave a paid generation running.

These tests start real processes (the CLI, a flow run, a served deployment) against the session's
Prefect server and a slow emulator, and act on them with signals or Prefect's cancellation.
"""

from __future__ import annotations

import json
import os
import signal
import socket
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
from tests.kit import API_KEY, stats, stop_process, wait_until

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


def _start_cli_generate(prefect_server: str, tmp_path: Path, **popen: Any) -> subprocess.Popen[str]:
    """``seedance generate`` of :data:`REQUEST` in its own process, its output piped."""
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(REQUEST))
    command = ["generate", str(request_file), "--out", str(tmp_path / "o")]
    return subprocess.Popen(
        [sys.executable, "-m", "seedance_prefect.cli", *command],
        env=_env(prefect_server),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def _start_flow(prefect_server: str, tmp_path: Path, out: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """The ``reference_to_video`` flow of :data:`REQUEST` run by a bare Python process."""
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(REQUEST))
    code = (
        "import json, sys; from seedance_prefect.flows import reference_to_video; "
        "reference_to_video(json.load(open(sys.argv[1])), output=sys.argv[2], poll_interval=1.0)"
    )
    argv = [sys.executable, "-c", code, str(request_file), str(out)]
    return subprocess.Popen(argv, env=_env(prefect_server), **popen)


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
    proc = _start_flow(prefect_server, tmp_path, out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    proc = _start_cli_generate(prefect_server, tmp_path, preexec_fn=preexec)
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


# ---------------------------------------------------------------------------------------------------
# The interrupt window (issue 12 D): the POST reached the service, its answer has not come back, so
# the journal does not know the generation yet (the attempt is still "posting"). An interrupt, a
# crash or a cancellation must still end in a remote cancel: the queue is listed, as a re-run does.

HELD_ANSWER_SECONDS = 10.0  # the emulator holds the enqueue's answer this long (slow_enqueue)


@pytest.fixture
def held_answer_emulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """An emulator that creates each queued generation (40 s long), then holds the POST's answer."""
    config = EmulatorConfig(
        latency=40.0, keepalive=1.0, faults="slow_enqueue", slow_enqueue_seconds=HELD_ANSWER_SECONDS
    )
    with run_emulator(config) as emu:
        monkeypatch.setenv("OXEN_API_KEY", API_KEY)
        monkeypatch.setenv("OXEN_BASE_URL", emu.base_url)
        monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "state"))
        yield emu


def _answer_held(emu: Any) -> bool:
    """The POST reached the service: its generation exists and its answer is being held."""
    now = stats(emu)
    return bool(now["generations"]) and now["faults"].get("slow_enqueue", 0) >= 1


def _attempt_states(tmp_path: Path) -> list[str]:
    return [
        attempt["state"]
        for path in (tmp_path / "state" / "journal").glob("*.json")
        for attempt in json.loads(path.read_text())["attempts"]
    ]


def _active(emu: Any) -> list[str]:
    return [g["id"] for g in stats(emu)["generations"].values() if g["status"] in ("queued", "processing")]


def test_interrupting_the_cli_while_its_post_is_in_flight_cancels_the_generation(
    held_answer_emulator, prefect_server, tmp_path
):
    """SIGINT right after the POST reached the service (answer not yet received) ends in a remote cancel.

    The journal cannot name the generation yet: the watcher finds it by listing the queue. It is
    cancelled before the held answer could even have arrived, and the journal never records its id.
    """
    emu = held_answer_emulator
    proc = _start_cli_generate(prefect_server, tmp_path)
    try:
        wait_until(lambda: _answer_held(emu), 120, "the CLI's POST to reach the service")
        assert _attempt_states(tmp_path) == ["posting"]  # the journal does not know the generation
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        wait_until(lambda: _status(emu) == "cancelled", 5, "the remote generation to be cancelled")
        assert time.monotonic() - sent < 5 < HELD_ANSWER_SECONDS  # before the answer was sent
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    [generation_id] = stats(emu)["generations"]
    assert proc.returncode != 0
    assert f"Cancelled remote generation {generation_id}" in output
    assert stats(emu)["deletes"] >= 1 and _active(emu) == []
    assert stats(emu)["enqueue_calls"] == 1
    assert _attempt_states(tmp_path) == ["posting"]  # released, never answered: a re-run lists first
    assert "Traceback" not in output and API_KEY not in output


def test_a_flow_run_crashing_while_its_post_is_in_flight_cancels_the_generation(
    held_answer_emulator, prefect_server, tmp_path
):
    """SIGTERM to a flow run (no CLI watcher) during the POST: Prefect records the crash, the hook cancels."""
    emu = held_answer_emulator
    log = tmp_path / "flow.log"
    output = {"stdout": log.open("w"), "stderr": subprocess.STDOUT}
    proc = _start_flow(prefect_server, tmp_path, tmp_path / "o", **output)
    try:
        wait_until(lambda: _answer_held(emu), 120, "the flow's POST to reach the service")
        assert _attempt_states(tmp_path) == ["posting"]
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: _status(emu) == "cancelled", 30, "the crash hook to cancel the generation")
        proc.wait(60)
    finally:
        proc.kill()
    assert _active(emu) == [] and stats(emu)["enqueue_calls"] == 1, log.read_text()[-3000:]
    assert "Cancelled remote generation" in log.read_text()


def _claim_posting(journal: Journal, run_id: str, owner: str, lease_seconds: float) -> str:
    """Journal a claimed ``posting`` attempt of REQUEST for ``run_id`` and POST it: as if its answer were
    lost in flight. Returns the generation id the service created."""
    from seedance_prefect.credentials import resolve_credentials
    from seedance_prefect.generation.enqueue import journal_body
    from seedance_prefect.generation.journal import Claim, JournalEntry
    from seedance_prefect.models import SeedanceRequest

    request = SeedanceRequest.model_validate(REQUEST)
    entry = JournalEntry(fingerprint="f1", body=journal_body(request), flow_runs=[run_id])
    attempt = entry.begin_attempt()
    entry.claim = Claim(owner, 0, lease_until=attempt.started_at + lease_seconds)
    journal.save(entry)
    journal.link_flow_run(run_id, "f1")
    with resolve_credentials(None).get_client() as client:
        [row] = client.enqueue(request)
    return row.generation_id


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


@pytest.mark.parametrize(
    ("owner", "lease", "cancelled"),
    [
        (lambda: f"{socket.gethostname()}:{os.getpid()}:ab12", 10.0, True),  # posted by this process
        (lambda: f"{socket.gethostname()}:{_dead_pid()}:ab12", 10.0, True),  # its poster was killed
        (lambda: "another-machine:4242:ab12", -60.0, True),  # lease expired: its poster is gone
        (lambda: "another-machine:4242:ab12", 10.0, False),  # another live process posts it now
    ],
    ids=["this-process", "dead-process", "expired-lease", "another-live-process"],
)
def test_the_hook_cancels_a_posting_attempt_only_when_it_is_the_runs_own(
    slow_emulator, tmp_path, owner, lease, cancelled
):
    from types import SimpleNamespace

    from seedance_prefect.flows import cancel_remote_generations

    journal = Journal(tmp_path / "journal")
    generation_id = _claim_posting(journal, "run-1", owner(), lease)
    run = SimpleNamespace(id="run-1", parameters={"journal_dir": str(tmp_path / "journal")})
    cancel_remote_generations(None, run, SimpleNamespace(name="Crashed"))
    assert _status(slow_emulator) == ("cancelled" if cancelled else "processing")
    assert stats(slow_emulator)["deletes"] == (1 if cancelled else 0)
    assert list(stats(slow_emulator)["generations"]) == [generation_id]


def test_a_posting_attempt_of_another_flow_run_is_left_alone(slow_emulator, tmp_path):
    """A run that only waited for another run's claim (linked, not recorded in the entry) did not post it."""
    from types import SimpleNamespace

    from seedance_prefect.flows import cancel_remote_generations

    journal = Journal(tmp_path / "journal")
    _claim_posting(journal, "run-1", "another-machine:4242:ab12", -60.0)
    journal.link_flow_run("run-2", "f1")  # run-2 waited for run-1's claim
    run = SimpleNamespace(id="run-2", parameters={"journal_dir": str(tmp_path / "journal")})
    cancel_remote_generations(None, run, SimpleNamespace(name="Cancelled"))
    assert _status(slow_emulator) == "processing" and stats(slow_emulator)["deletes"] == 0


def test_the_interrupt_cancels_a_posting_attempt_of_its_flow_run(slow_emulator, tmp_path):
    """cancel_first_on_interrupt in this process: a POST in flight here (claim of this pid) is cancelled."""
    from seedance_prefect.credentials import resolve_credentials

    journal = Journal(tmp_path / "journal")
    runs: dict[str, Any] = {}
    with cancel_first_on_interrupt(journal, lambda: runs) as interrupt:
        generation_id = _claim_posting(journal, "run-1", f"{socket.gethostname()}:{os.getpid()}:ab12", 10.0)
        runs["run-1"] = resolve_credentials(None)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)
        status_at_interrupt = _status(slow_emulator)
    assert status_at_interrupt == "cancelled"
    assert interrupt.cancelled == interrupt.recovered == [generation_id]
    assert f"Cancelled remote generation {generation_id}" in interrupt.describe()
