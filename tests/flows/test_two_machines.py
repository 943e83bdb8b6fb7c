"""Issue 12 A, the acceptance test: one request on two machines is paid once.

Two "machines" are two Python processes, each with its own HOME, PREFECT_HOME, SEEDANCE_STATE_DIR and
working folder (nothing shared on disk). They share what machines share: the service (the emulator,
over HTTP), one S3 server (a serial moto server; the state is ``s3://...`` through ``AWS_ENDPOINT_URL``
and fake credentials) and one Prefect server (the session's ``prefect_server``). Each machine runs the
``reference_to_video`` flow as a function, one request per line it reads on stdin (started once, so
that the pairs are quick), and answers one JSON line.

- (a) one request started on both machines at once: the emulator creates exactly one generation and
  both runs deliver the same video (same generation, same sha256). The emulator holds the generation
  in ``processing`` until both runs have written their decision to the journal, so the two runs
  overlap whatever their start-up times, and the POSTs cross a slow network (:class:`SlowPostProxy`:
  held until both runs are enqueuing, then 0.5 s): the run that lost the claim finds it while the
  winner's POST has not created anything yet, and must wait for it (its lease) rather than list the
  queue and post.
- (b) machine A is killed with SIGKILL right after its POST reached the service (the emulator holds
  the generation, so A is still waiting on it); machine B then runs the same request and reattaches
  to A's generation (at once when A had recorded its ids, else once A's lease has expired, by
  listing the queue): one generation.

The pair is repeated (``SEEDANCE_TWO_MACHINES_PAIRS``, default 20) with lost enqueue answers injected
(``drop_enqueue``, a seeded rate of 0.3: the POST creates the generation, then its connection is
reset), and the figures are printed for the release note. The machines use a 2 s lease renewed
every 0.5 s and 0.5 s of clock skew (instead of 10 s / 3 s / 2 s), so that a dead owner's lease
expires quickly; nothing else is changed. Waits are on conditions with deadlines, never sleeps.

Rerun: ``python -m pytest -q -s -m slow tests/flows/test_two_machines.py``
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from seedance_prefect.emulator import EmulatorConfig, run_emulator
from seedance_prefect.generation.journal import Journal
from seedance_prefect.state import S3StateStore
from tests.kit import API_KEY, set_faults, stats, wait_until
from tests.state.statekit import AWS_ENV, fresh_bucket, serial_moto_server

pytestmark = pytest.mark.slow

BUCKET = "seedance-two-machines"
PAIRS = int(os.environ.get("SEEDANCE_TWO_MACHINES_PAIRS", "20"))
FAULTS = "drop_enqueue=0.3"
LEASE = {"LEASE_SECONDS": 2.0, "RENEW_SECONDS": 0.5, "LEASE_SKEW_SECONDS": 0.5}
RESULT = "@@machine "
#: Seconds the POSTs of scenario (a) spend in the network once both runs are enqueuing.
POST_DELAY = 0.5

#: What a machine runs: the flow as a function, one request per stdin line, one result line each.
MACHINE = f"""
import json, sys, traceback
from seedance_prefect.generation import enqueue, journal
enqueue.LEASE_SECONDS, enqueue.RENEW_SECONDS = {LEASE["LEASE_SECONDS"]!r}, {LEASE["RENEW_SECONDS"]!r}
journal.LEASE_SKEW_SECONDS = {LEASE["LEASE_SKEW_SECONDS"]!r}
from seedance_prefect.cli.prefect_env import local_flow_settings
from seedance_prefect.flows import reference_to_video

def say(**answer):
    sys.stdout.write({RESULT!r} + json.dumps(answer) + "\\n")
    sys.stdout.flush()

with local_flow_settings():
    # warm up, so that a new machine starts a request as fast as one that ran many: Prefect (a run that
    # fails at once: no prompt), the account's event stream, boto3 and the shared store
    try:
        reference_to_video({{"duration": "4"}}, output="warm-up")
    except Exception:
        pass
    from seedance_prefect.credentials import resolve_credentials
    from seedance_prefect.state import resolve_state

    resolve_credentials(None).completion_hub().ensure_connected(5.0)
    resolve_state(sys.argv[1]).read("warm-up")
    say(ready=True)
    for line in sys.stdin:
        order = json.loads(line)
        try:
            delivered = reference_to_video(order["request"], output=order["output"], state=order["state"])
            say(ok=True, deliveries=delivered)
        except BaseException as exc:
            say(ok=False, error=repr(exc), trace=traceback.format_exc()[-2000:])
"""


class SlowPostProxy:
    """A TCP proxy in front of the emulator that holds each ``POST /api/ai/queue`` until ``gate`` is
    open, then ``delay`` seconds more, before passing it on: a slow network between a machine and the
    service. Everything else (polls, the SSE stream, downloads) passes at once, byte for byte; a reset
    by the emulator (lost enqueue answers) closes the machine's connection too.

    This opens the window that the claim's lease protects: the owner has claimed and posted, but the
    service has not created anything yet, so another machine that listed the queue instead of waiting
    for the owner would find nothing and post again.
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.split("//", 1)[1].split("/", 1)[0].split(":")
        self.upstream = (host, int(port))
        self.delay = 0.0
        self.gate: threading.Event | None = None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, name="slow-post-proxy", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_service: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if to_service and chunk.startswith(b"POST /api/ai/queue "):
                    if self.gate is not None:
                        self.gate.wait(90)
                    time.sleep(self.delay)  # a slow network, not a wait for state
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.listener.close()


@dataclass
class Machine:
    """One machine: a process with its own folders, fed requests on stdin."""

    name: str
    root: Path
    proc: subprocess.Popen[str]
    answers: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)

    @classmethod
    def start(cls, name: str, root: Path, env: dict[str, str], state: str) -> Machine:
        for folder in ("home", "prefect", "state", "work"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        own = {
            **env,
            "HOME": str(root / "home"),
            "PREFECT_HOME": str(root / "prefect"),
            "SEEDANCE_STATE_DIR": str(root / "state"),
        }
        log = open(root / "machine.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-c", MACHINE, state],
            cwd=root / "work",
            env=own,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
        )
        machine = cls(name, root, proc)
        threading.Thread(target=machine._read, daemon=True).start()
        return machine

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(RESULT):
                self.answers.put(json.loads(line[len(RESULT) :]))

    def ready(self, timeout: float = 120.0) -> None:
        answer = self.answer(timeout, "start")
        assert answer == {"ready": True}, answer

    def run(self, request: dict[str, Any], state: str) -> None:
        assert self.proc.stdin is not None
        order = {"request": request, "output": str(self.root / "out"), "state": state}
        self.proc.stdin.write(json.dumps(order) + "\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                return self.answers.get(timeout=0.5)
            if self.proc.poll() is not None:  # the machine died (e.g. an import error): say so now
                with contextlib.suppress(queue.Empty):
                    return self.answers.get(timeout=2.0)  # its last line may still be on its way
                break
        log = (self.root / "machine.log").read_text()[-3000:]
        raise AssertionError(f"machine {self.name}: no answer to {what} (exit {self.proc.poll()})\n{log}")

    def delivered(self, timeout: float = 120.0) -> list[dict[str, Any]]:
        answer = self.answer(timeout, "a request")
        assert answer.get("ok"), f"machine {self.name} failed: {answer}"
        return answer["deliveries"]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class World:
    """What the machines share: the service, S3 and Prefect; and how to start a machine."""

    emulator: Any
    proxy: SlowPostProxy
    env: dict[str, str]
    state: str
    root: Path
    started: list[Machine] = field(default_factory=list)
    _journal: Journal | None = None

    def machine(self, name: str) -> Machine:
        started = Machine.start(name, self.root / f"{name}-{len(self.started)}", self.env, self.state)
        self.started.append(started)
        return started

    def journal(self) -> Journal:
        """The shared journal, as the test process reads it."""
        if self._journal is None:
            import boto3

            client = boto3.session.Session().client(
                "s3", endpoint_url=self.env["AWS_ENDPOINT_URL"], region_name="us-east-1", **_keys()
            )
            self._journal = Journal(store=S3StateStore.from_url(self.state, client=client))
        return self._journal

    def linked(self, fingerprint: str) -> int:
        """How many flow runs have started to enqueue a fingerprint (their markers in the journal)."""
        return sum(1 for key in self.journal().store.list("journal/runs/") if key.endswith("/" + fingerprint))

    def hold(self, on: bool) -> None:
        httpx.post(f"{self.emulator.url}/_emulator/hold", json={"hold": on}).raise_for_status()

    def generations_of(self, prompt: str) -> list[str]:
        return [
            g["id"]
            for g in stats(self.emulator)["generations"].values()
            if g["params"].get("prompt") == prompt
        ]


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture(scope="module")
def world(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    pytest.importorskip("moto")
    config = EmulatorConfig(latency=0.2, max_running=16, keepalive=1.0, seed=12)
    with run_emulator(config) as emu, serial_moto_server() as endpoint:
        fresh_bucket(endpoint, BUCKET)
        proxy = SlowPostProxy(emu.base_url)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SEEDANCE_", "PREFECT_"))},
            **AWS_ENV,
            "AWS_ENDPOINT_URL": endpoint,
            "OXEN_API_KEY": API_KEY,
            "OXEN_BASE_URL": f"http://127.0.0.1:{proxy.port}/api",
            "PREFECT_API_URL": prefect_server,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_TO_API_ENABLED": "false",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }
        world = World(emu, proxy, env, f"s3://{BUCKET}/state/", tmp_path_factory.mktemp("machines"))
        try:
            yield world
        finally:
            world.hold(False)
            for machine in world.started:
                machine.stop()
            proxy.close()


def _request(prompt: str) -> dict[str, Any]:
    return {"prompt": prompt, "duration": "4", "resolution": "480p"}


def _fingerprint(request: dict[str, Any]) -> str:
    from seedance_prefect.models import SeedanceRequest

    return SeedanceRequest.model_validate(request).fingerprint()


def _both_decided(world: World, fingerprint: str, runs: int) -> bool:
    entry = world.journal().load(fingerprint)
    return entry is not None and len(entry.flow_runs) >= runs


def both_at_once(world: World, a: Machine, b: Machine, prompt: str) -> list[str]:
    """(a): the same request on both machines at once; return the generations the emulator created."""
    request, fingerprint = _request(prompt), _fingerprint(_request(prompt))
    world.hold(True)  # the generation stays processing until both runs have decided
    # The winner's POST stays in the network until both runs are in enqueue_once (each links its
    # flow run first), then POST_DELAY more: the loser reads the claim while nothing exists yet.
    gate = threading.Event()
    world.proxy.gate, world.proxy.delay = gate, POST_DELAY
    try:
        a.run(request, world.state)
        b.run(request, world.state)
        wait_until(lambda: world.linked(fingerprint) >= 2, 90, f"both runs of {prompt!r} to start enqueuing")
        gate.set()
        wait_until(lambda: _both_decided(world, fingerprint, 2), 90, f"both runs of {prompt!r} to decide")
    finally:
        gate.set()
        world.proxy.gate, world.proxy.delay = None, 0.0
    world.hold(False)
    got_a, got_b = a.delivered(), b.delivered()
    assert len(got_a) == len(got_b) == 1, (got_a, got_b)
    assert got_a[0]["generation_id"] == got_b[0]["generation_id"], (got_a, got_b)
    assert got_a[0]["sha256"] == got_b[0]["sha256"]  # the same video on both machines
    assert Path(got_a[0]["video"]).is_relative_to(a.root) and Path(got_b[0]["video"]).is_relative_to(b.root)
    return world.generations_of(prompt)


def killed_after_post(world: World, a: Machine, b: Machine, prompt: str) -> list[str]:
    """(b): A is killed right after its POST reached the service; B runs the request after it."""
    request = _request(prompt)
    world.hold(True)
    a.run(request, world.state)
    wait_until(lambda: world.generations_of(prompt), 90, f"machine A's POST of {prompt!r}")
    a.kill()
    b.run(request, world.state)
    wait_until(
        lambda: _both_decided(world, _fingerprint(request), 2), 90, f"machine B to decide on {prompt!r}"
    )
    world.hold(False)
    [got] = b.delivered()
    assert got["generation_id"] in world.generations_of(prompt)
    return world.generations_of(prompt)


def test_one_request_on_two_machines_at_once_is_paid_once(world):
    set_faults(world.emulator, "")
    a, b = world.machine("a"), world.machine("b")
    a.ready()
    b.ready()

    assert len(both_at_once(world, a, b, "Two machines, one boat")) == 1


def test_a_machine_killed_after_its_post_is_taken_over_without_a_second_generation(world):
    set_faults(world.emulator, "")
    a, b = world.machine("a"), world.machine("b")
    a.ready()
    b.ready()

    assert len(killed_after_post(world, a, b, "A machine dies after its POST")) == 1


def test_pairs_repeated_with_lost_enqueue_answers_never_pay_twice(world, capsys):
    world.emulator.reset()  # re-seeds the fault RNG: the same faults on every run of this test
    set_faults(world.emulator, FAULTS)
    started = time.monotonic()
    b = world.machine("b")
    a = world.machine("a")
    b.ready()
    created: dict[str, int] = {}
    for pair in range(PAIRS):
        a.ready()
        created[f"at once {pair}"] = len(both_at_once(world, a, b, f"Pair {pair}: both at once"))
        created[f"killed {pair}"] = len(
            killed_after_post(world, a, b, f"Pair {pair}: A killed after its POST")
        )
        if pair < PAIRS - 1:
            a = world.machine("a")  # a new machine A (its start overlaps the next steps)
    seconds = time.monotonic() - started
    snapshot = stats(world.emulator)
    duplicates = sum(n - 1 for n in created.values() if n > 1)
    lost = snapshot["faults"].get("drop_enqueue", 0)
    with capsys.disabled():
        print(
            f"\ntwo machines: {PAIRS} pairs, {2 * len(created)} flow runs ({PAIRS} killed by SIGKILL), "
            f"{len(created)} requests, {sum(created.values())} generations created, {duplicates} duplicates, "
            f"{snapshot['enqueue_calls']} POSTs, {lost} enqueue answers lost, {seconds:.1f} s"
        )
    assert all(n >= 1 for n in created.values()), created
    assert duplicates == 0, {k: n for k, n in created.items() if n > 1}
    assert snapshot["enqueue_calls"] == len(created)  # one POST per request, lost answers included
