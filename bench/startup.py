"""Start-up: ``seedance generate`` from process start to its first POST, against a bare Prefect flow.

Issue 13: the time from starting ``seedance generate request.json`` to the moment the service
receives the enqueue request (``POST /api/ai/queue``), compared with a bare two-task Prefect flow
that POSTs the same body on the same backend: its first task builds the payload, its second POSTs
it with httpx (the same URL, JSON body, ``Authorization``, ``User-Agent`` and ``Accept`` headers as
:class:`seedance_prefect.client.SeedanceClient` sends; the body is built here with
``SeedanceRequest.to_body("queue")`` and written into the script). Goal: within 1.2x of the bare
flow, on a warm Prefect home and on a fresh one.

How it is measured: every run is a fresh process (the ``seedance`` console script next to this
Python, or ``python bare_flow.py``), started in its own session; the clock starts just before
``subprocess.Popen`` (``time.time()``) and stops at the emulator's own timestamp of the enqueue
(the ``queued`` entry of the generation's history in ``GET /_emulator/stats``, also
``time.time()``, same machine). The stats are polled every 50 ms only to notice the POST; then the
child's process group (the CLI or script and the embedded Prefect server it started) is sent
SIGTERM, and SIGKILL if it is still there 5 s later. The emulator runs in its own process with a
60 s latency, so nothing happens after the POST while the child is being stopped.

The same backend: neither side has a ``PREFECT_API_URL``, so both start Prefect's embedded
(ephemeral) server. The ``seedance`` commands set the environment defaults of
:data:`seedance_prefect.cli.prefect_env.PREFECT_DEFAULTS` before importing Prefect (a 180 s server
start-up timeout, no analytics, a quiet server log, leases on disk); the bare flow's process gets
the same variables in its environment, so both wait on the same server start-up. Every child gets
this process's environment minus every ``PREFECT_*`` variable, plus its own ``PREFECT_HOME``,
``SEEDANCE_STATE_DIR`` (a new one per run, so the CLI never reattaches to an earlier generation)
and ``OXEN_API_KEY``/``OXEN_BASE_URL`` pointing at the emulator.

Two conditions:

- **warm**: one ``PREFECT_HOME`` per side (separate, so neither warms the other's database),
  primed by one unmeasured run of each, then reused by every measured run;
- **fresh**: a new empty ``PREFECT_HOME`` per run, so the time includes the embedded server's
  database creation and migrations (about 10-35 s on a 2-core machine).

The two sides alternate which one runs first. Medians of 3 runs per side for warm and 2 for fresh
(``--quick``: 1 each). The machine's two cores run the child, its Prefect server and the emulator,
so figures move by a second or so from run to run, the same way for both sides.

Run alone: ``python bench/startup.py [--quick]`` (prints the table), or ``bench/run startup``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/startup.py``
    sys.path.insert(0, str(ROOT))

from bench._kit import seedance_command, start_emulator  # noqa: E402
from tests.stackkit import free_port  # noqa: E402

LATENCY = 60.0  # the emulated generation outlives the child: nothing happens after the POST
POLL = 0.05  # how often the stats are read to notice the POST (the time comes from the emulator)
RUN_TIMEOUT = 240.0  # a fresh Prefect home takes ~35 s on a slow 2-core machine; be generous
GOAL_FACTOR = 1.2
API_KEY = "bench-key-for-the-local-emulator"
REQUEST = {"prompt": "A paper boat on a pond", "duration": "4", "resolution": "480p", "aspect_ratio": "16:9"}

BARE_FLOW = '''"""A bare two-task Prefect flow that POSTs one enqueue request (by bench/startup.py)."""

import httpx
from prefect import flow, task

URL = {url!r}
BODY = {body!r}
HEADERS = {headers!r}


@task
def build_payload() -> dict:
    return dict(BODY)


@task
def post(payload: dict) -> dict:
    response = httpx.post(URL, json=payload, headers=HEADERS, timeout=30)
    response.raise_for_status()
    return response.json()


@flow
def bare_enqueue() -> dict:
    return post(build_payload())


if __name__ == "__main__":
    bare_enqueue()
'''


class Bench:
    """The emulator, the request and bare-flow files, and one child run at a time."""

    def __init__(self, tmp: Path, port: int) -> None:
        from seedance_prefect.cli.prefect_env import PREFECT_DEFAULTS
        from seedance_prefect.client._config import user_agent_header
        from seedance_prefect.models import SeedanceRequest

        self.tmp = tmp
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/api"
        self.stats_url = f"http://127.0.0.1:{port}/_emulator/stats"
        self.defaults = dict(PREFECT_DEFAULTS)
        self.request_file = tmp / "request.json"
        self.request_file.write_text(json.dumps(REQUEST))
        body = SeedanceRequest.model_validate(REQUEST).to_body("queue")
        headers = {
            "Authorization": f"Bearer {API_KEY}",
            "User-Agent": user_agent_header(None),
            "Accept": "application/json",
        }
        self.bare_script = tmp / "bare_flow.py"
        url = f"{self.base_url}/ai/queue"
        self.bare_script.write_text(BARE_FLOW.format(url=url, body=body, headers=headers))
        self.runs = 0
        self.seen: set[str] = set()

    def _queued_at(self) -> dict[str, float]:
        """Generation id -> the emulator's time of its enqueue, for every generation so far."""
        generations = httpx.get(self.stats_url, timeout=5).json()["generations"]
        return {gid: g["history"][0]["at"] for gid, g in generations.items() if g["history"]}

    def run(self, side: str, prefect_home: Path) -> float:
        """Start one ``side`` ("seedance" or "bare") process; seconds from its start to its POST."""
        self.runs += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(prefect_home),
            SEEDANCE_STATE_DIR=str(self.tmp / f"state-{self.runs}"),
            OXEN_API_KEY=API_KEY,
            OXEN_BASE_URL=self.base_url,
        )
        if side == "seedance":
            out = self.tmp / f"out-{self.runs}"
            cmd = [*seedance_command(), "generate", str(self.request_file), "--out", str(out)]
        else:
            env.update(self.defaults)  # what the seedance commands set before importing Prefect
            cmd = [sys.executable, str(self.bare_script)]
        prefect_home.mkdir(parents=True, exist_ok=True)
        log = self.tmp / f"{side}-{self.runs}.log"
        with open(log, "wb") as handle:
            started = time.time()
            proc = subprocess.Popen(
                cmd, env=env, cwd=self.tmp, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                deadline = time.monotonic() + RUN_TIMEOUT
                while True:
                    new = {gid: at for gid, at in self._queued_at().items() if gid not in self.seen}
                    if new:
                        self.seen.update(new)
                        return min(new.values()) - started
                    if proc.poll() is not None:
                        tail = log.read_text(errors="replace")[-1500:]
                        raise RuntimeError(f"{side} exited with {proc.returncode} before its POST:\n{tail}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{side}: no POST within {RUN_TIMEOUT:.0f} s")
                    time.sleep(POLL)
            finally:
                _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the child's whole process group (the child and the embedded Prefect server)."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)  # anyone left in the group (the server outlives a dead child)?
            except ProcessLookupError:
                proc.wait()
                return
            proc.poll()  # reap the child so that only the rest of the group keeps it alive
            time.sleep(0.05)
    proc.wait()


def measure(quick: bool) -> dict[str, dict[str, list[float]]]:
    """Seconds to the first POST: ``{condition: {side: [runs]}}``."""
    warm_n, fresh_n = (1, 1) if quick else (3, 2)
    results: dict[str, dict[str, list[float]]] = {c: {"seedance": [], "bare": []} for c in ("warm", "fresh")}
    with tempfile.TemporaryDirectory(prefix="seedance-bench-startup-") as name:
        tmp = Path(name)
        port = free_port()
        emulator = start_emulator(port, "--latency", str(LATENCY))
        try:
            bench = Bench(tmp, port)
            sides = ("seedance", "bare")
            warm_homes = {side: tmp / f"prefect-home-warm-{side}" for side in sides}
            for side in sides:  # priming: creates each warm home's database, not measured
                bench.run(side, warm_homes[side])
            for i in range(warm_n):
                for side in sides if i % 2 == 0 else sides[::-1]:
                    results["warm"][side].append(bench.run(side, warm_homes[side]))
            for i in range(fresh_n):
                for side in sides[::-1] if i % 2 == 0 else sides:
                    home = tmp / f"prefect-home-fresh-{side}-{i}"
                    results["fresh"][side].append(bench.run(side, home))
        finally:
            emulator.terminate()
            emulator.wait(10)
    return results


def main(quick: bool = False) -> list[dict[str, Any]]:
    """Run the benchmark; return rows (metric, goal, measured, baseline, ok)."""
    results = measure(quick)
    rows = []
    for condition, label in (("warm", "warm Prefect home"), ("fresh", "fresh Prefect home")):
        ours, bare = results[condition]["seedance"], results[condition]["bare"]
        mine, base = statistics.median(ours), statistics.median(bare)
        ratio = mine / base

        def each(values: list[float]) -> str:
            return ", ".join(f"{v:.1f}" for v in values)

        rows.append(
            {
                "metric": f"`seedance generate` start-up to first POST, {label}",
                "goal": f"<= {GOAL_FACTOR}x bare flow",
                "measured": f"{mine:.1f} s (ratio {ratio:.2f}x), median of {len(ours)} ({each(ours)} s)",
                "baseline": f"bare two-task flow: {base:.1f} s, median of {len(bare)} ({each(bare)} s)",
                "ok": ratio <= GOAL_FACTOR,
            }
        )
    return rows


if __name__ == "__main__":
    table = main(quick="--quick" in sys.argv)
    print("| metric | goal | measured | baseline | ok |\n|---|---|---|---|---|")
    for row in table:
        print(f"| {row['metric']} | {row['goal']} | {row['measured']} | {row['baseline']} | {row['ok']} |")
