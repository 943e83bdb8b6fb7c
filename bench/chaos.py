"""Benchmark: a batch on the production stack while a machine dies and the Prefect server restarts.

The stack (``tests/stackkit.py``): a PostgreSQL 15 cluster of its own, ``prefect server start`` on
it (leases of the limit on disk), a process work pool, the ``batch`` and ``resume-crashed-batches``
deployments of ``flows/prefect.yaml`` and the zombie automation of ``flows/automations.yaml``, three
workers that behave as separate machines (own ``HOME``, Prefect home, state folder and working
folder; the manifest, the journal and the videos in S3 on a moto server), the emulator as the API.
The manifest is split into three shards, one flow run per machine (each machine also listens on
the pool's default queue, where resumed runs go).

Two runs, each on a fresh stack:

1. **fault-free**: the batch alone: its wall time is the yardstick.
2. **chaos**: transient faults at the API (5xx, 429, connection resets) and lost enqueue answers
   (the generation is created, the answer never arrives); when a third of the rows are delivered,
   one machine is killed (SIGKILL of its worker's process group: the worker and its flow run);
   when two thirds are delivered, the Prefect server is stopped and started again. The killed run
   sends no more heartbeats; the automation marks it Crashed; its Crashed event starts
   ``resume-crashed-batches``, whose new run of the shard reattaches to what the dead run enqueued
   (shared journal) and goes on with the rest.

Heartbeats and the automation are shortened for the benchmark (30 s heartbeats, Crashed after 60 s
of silence; the shipped files use 60 s and 180 s): with the shipped values the dead shard waits up
to 3 minutes longer, which a 150-row batch cannot hide.

The table: ``rows delivered / rows`` (videos in S3), ``billed generations / rows`` (generations the
API created: each is paid), ``flow runs left Running`` (after the batch), ``slots held after the
run`` (the limit's active slots once every run is final) and ``wall vs fault-free run``.

Run alone: ``python bench/chaos.py [--quick]`` (``--quick``: 30 rows of 4 s, a smoke test: its
batch is too short to hide the minute a dead run takes to be marked Crashed, so its wall ratio
misses the goal).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._kit import manifest  # noqa: E402
from tests.kit import wait_until  # noqa: E402
from tests.stackkit import Machine, PrefectServer, postgres_cluster, prefect_cli, stack_env  # noqa: E402

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto serves S3: one line per request

API_KEY = "sk-bench-chaos-0000000000000000"
BUCKET = "seedance-chaos"
POOL = "seedance-process"
MACHINES = ("machine-a", "machine-b", "machine-c")
FAULTS = "5xx=0.04,429=0.03,reset=0.02,drop_enqueue=0.1"
HEARTBEAT = 30
SILENCE = 60
WALL_GOAL = 1.5
POLL = 0.5  # seconds between two looks at the bucket (moto serves one request at a time)


class Sizes:
    """The batch's size: rows, seconds per generation, the limit."""

    def __init__(self, quick: bool) -> None:
        self.rows = 30 if quick else 150
        self.latency = 4.0 if quick else 10.0
        self.limit = 6 if quick else 10
        self.deadline = 600.0 if quick else 1200.0

    @property
    def ideal(self) -> float:
        return self.rows * self.latency / self.limit


def _log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _automation_file(folder: Path) -> Path:
    """flows/automations.yaml with the benchmark's shorter silence window."""
    config = yaml.safe_load((ROOT / "flows" / "automations.yaml").read_text())
    for automation in config["automations"]:
        automation["trigger"]["within"] = SILENCE
    path = folder / "automations.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _s3(endpoint: str) -> Any:
    from tests.state.statekit import fresh_bucket

    return fresh_bucket(endpoint, BUCKET)


def _delivered(s3: Any, shard: int | None = None) -> int:
    """Videos delivered (of one shard's rows: ``row-NNNN`` with NNNN modulo 3 == shard)."""
    names = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="videos/"):
        names |= {o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".mp4") and o["Size"] > 0}
    if shard is not None:
        names = {n for n in names if int(n.rsplit("-", 1)[1][:4]) % len(MACHINES) == shard}
    return len(names)


def _settled(runs: list[Any]) -> bool:
    """Every run final, and every crashed batch run resumed (its resume run exists and is final)."""
    if not runs or not all(r.state and r.state.is_final() for r in runs):
        return False
    resumed = {str((r.parameters or {}).get("flow_run_id", "")).rsplit(".", 1)[-1] for r in runs}
    crashed = [r for r in runs if r.state.is_crashed() and "shard" in (r.parameters or {})]
    return all(str(r.id) in resumed for r in crashed)


def _runs(client: Any) -> list[Any]:
    from prefect.client.schemas.sorting import FlowRunSort

    return list(client.read_flow_runs(sort=FlowRunSort.START_TIME_ASC, limit=200))


def _slots(client: Any, name: str = "seedance-generations") -> int:
    return int(client.read_global_concurrency_limit_by_name(name).active_slots)


def _recovery(runs: list[Any], killed: float) -> dict[str, float]:
    """Seconds from the kill to the dead run marked Crashed and to its resumed run's start."""
    found: dict[str, float] = {}
    crashed = [r for r in runs if r.state and r.state.is_crashed() and "shard" in (r.parameters or {})]
    resumed = [r for r in runs if any(t.startswith("seedance-resume:") for t in r.tags or [])]
    if crashed:
        found["crashed_after"] = crashed[0].state.timestamp.timestamp() - killed
    if resumed and resumed[0].start_time:
        found["resumed_after"] = resumed[0].start_time.timestamp() - killed
    return found


def run_batch(
    sizes: Sizes, chaos: bool, folder: Path, watch: Callable[[str, Any], None] | None = None
) -> dict[str, Any]:
    """Run the batch on a fresh stack; with ``chaos``, kill a machine and restart the server.

    ``watch(api_url, emulator)`` is called once the stack is up (e.g. to start a monitor thread).
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from seedance_prefect.emulator import EmulatorConfig, run_emulator
    from tests.state.statekit import serial_moto_server

    config = EmulatorConfig(
        latency=sizes.latency, max_running=sizes.limit * 3, keepalive=2.0, log_level="error"
    )
    out: dict[str, Any] = {"rows": sizes.rows}
    with (
        postgres_cluster() as database,
        PrefectServer(database, folder / "server") as server,
        run_emulator(config) as emu,
        serial_moto_server() as endpoint,
    ):
        s3 = _s3(endpoint)
        body = manifest(sizes.rows, "row-{i:04d}", "A paper boat on a canal, take {i}")
        s3.put_object(Bucket=BUCKET, Key="manifests/batch.jsonl", Body=body)
        env = stack_env(server.client_env(), emu.base_url, endpoint, API_KEY)
        prefect_cli(env, "work-pool", "create", "--type", "process", POOL)
        for queue in MACHINES:
            prefect_cli(env, "work-queue", "create", queue, "--pool", POOL)
        prefect_cli(
            env, "global-concurrency-limit", "create", "seedance-generations", "--limit", str(sizes.limit)
        )
        heartbeat = json.dumps({"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT)}})
        for name in ("batch", "resume-crashed-batches"):
            prefect_cli(
                env, "--no-prompt", "deploy", "--name", name, "--job-variable", heartbeat, cwd=ROOT / "flows"
            )
        prefect_cli(env, "automation", "create", "--from-file", str(_automation_file(folder)))
        machines = []
        for name in MACHINES:
            machine = Machine(name, folder, env, POOL, limit=3)
            machine.argv += ["--work-queue", name, "--work-queue", "default"]
            machines.append(machine.start())
        if watch is not None:
            watch(server.url, emu)
        try:
            with temporary_settings({PREFECT_API_URL: server.url}), get_client(sync_client=True) as client:
                deployment = client.read_deployment_by_name("seedance-batch-reference-to-video/batch")
                if chaos:
                    httpx.post(f"{emu.url}/_emulator/faults", json={"spec": FAULTS}).raise_for_status()
                started = time.monotonic()
                shards = [
                    client.create_flow_run_from_deployment(
                        deployment.id,
                        parameters={
                            "manifest": f"s3://{BUCKET}/manifests/batch.jsonl",
                            "deliver_to": f"s3://{BUCKET}/videos/",
                            "output": "seedance-output",
                            "state": f"s3://{BUCKET}/state/",
                            "concurrency": sizes.limit,
                            "poll_interval": 10.0,
                            "shard": i,
                            "shards": len(MACHINES),
                        },
                        work_queue_name=MACHINES[i],
                    )
                    for i in range(len(MACHINES))
                ]
                if chaos:
                    victim, shard_rows = machines[1], len(range(1, sizes.rows, len(MACHINES)))
                    third = shard_rows // 3
                    wait_until(lambda: _delivered(s3, 1) >= third, sizes.deadline, "a third of shard 1", POLL)
                    victim.kill()
                    out["killed_at"] = time.monotonic() - started
                    out["killed_wall"] = time.time()
                    _log(f"killed {victim.name} at {out['killed_at']:.0f} s ({_delivered(s3)} delivered)")
                    wait_until(
                        lambda: _delivered(s3) >= 2 * sizes.rows // 3, sizes.deadline, "two thirds", POLL
                    )
                    out["restart_at"] = time.monotonic() - started
                    out["server_down_s"] = server.restart()
                    down = out["server_down_s"]
                    _log(f"restarted the server at {out['restart_at']:.0f} s: down {down:.1f} s")

            with temporary_settings({PREFECT_API_URL: server.url}), get_client(sync_client=True) as client:
                quiet_since: list[float] = []

                def all_delivered() -> bool:
                    if _delivered(s3) >= sizes.rows:
                        return True
                    # every run final and resumed for a minute and rows missing: give up
                    if _settled(_runs(client)):
                        quiet_since.append(time.monotonic())
                        return time.monotonic() - quiet_since[0] > 60
                    quiet_since.clear()
                    return False

                def all_final() -> list[Any] | None:
                    runs = _runs(client)
                    return runs if _settled(runs) else None

                try:
                    wait_until(all_delivered, sizes.deadline, "every row delivered", 2 * POLL)
                    out["wall"] = time.monotonic() - started
                except AssertionError as exc:
                    out["error"] = str(exc)
                    out["wall"] = float("nan")
                if _delivered(s3) < sizes.rows:
                    out["wall"] = float("nan")
                try:
                    runs = wait_until(all_final, 240 if chaos else 60, "every flow run final", POLL)
                except AssertionError:
                    runs = _runs(client)
                out["left_running"] = sum(1 for r in runs if r.state and r.state.is_running())
                out["not_final"] = sum(1 for r in runs if not (r.state and r.state.is_final()))
                out["states"] = sorted(r.state.type.value for r in runs if r.state)
                out["crashed"] = sum(1 for r in runs if r.state and r.state.is_crashed())
                out["resumes"] = sum(1 for r in runs if "flow_run_id" in (r.parameters or {}))
                if "killed_wall" in out:
                    out.update(_recovery(runs, out["killed_wall"]))
                out["slots_held"] = _slots(client)
                out["shard_states"] = [client.read_flow_run(r.id).state.type.value for r in shards]
        finally:
            for machine in machines:
                machine.stop()
        st = httpx.get(f"{emu.url}/_emulator/stats").json()
        out["delivered"] = _delivered(s3)
        out["billed"] = st["generations_created"]
        out["enqueue_calls"] = st["enqueue_calls"]
        out["max_in_flight"] = st["max_in_flight"]
        out["faults"] = {k: v for k, v in (st.get("faults") or {}).items() if v}
        out["cancelled"] = st["statuses"]["cancelled"]
    return out


def main(quick: bool = False) -> list[dict[str, Any]]:
    """Run the fault-free and the chaos batch; return the table's rows."""
    sizes = Sizes(quick)
    keep = os.environ.get("SEEDANCE_BENCH_KEEP")  # a folder: keep the logs of every process there
    with tempfile.TemporaryDirectory(prefix="seedance-chaos-") as scratch:
        tmp = keep or scratch
        _log(f"logs in {tmp}")
        _log(f"fault-free run: {sizes.rows} rows x {sizes.latency:g} s, limit {sizes.limit}")
        calm = run_batch(sizes, chaos=False, folder=Path(tmp) / "calm")
        _log(f"fault-free: {json.dumps(calm, default=str)}")
        _log("chaos run")
        storm = run_batch(sizes, chaos=True, folder=Path(tmp) / "chaos")
        _log(f"chaos: {json.dumps(storm, default=str)}")
    n = sizes.rows
    ratio = storm["wall"] / calm["wall"]
    story = (
        f"killed a machine at {storm.get('killed_at', 0):.0f} s: its run marked Crashed "
        f"{storm.get('crashed_after', float('nan')):.0f} s later, resumed on another machine "
        f"{storm.get('resumed_after', float('nan')):.0f} s after the kill; restarted the server at "
        f"{storm.get('restart_at', 0):.0f} s (API down {storm.get('server_down_s', 0):.1f} s); "
        f"{len(storm['states'])} flow runs; faults {FAULTS}, injected: {storm.get('faults')}"
    )
    return [
        {
            "metric": "rows delivered / rows",
            "goal": f"{n} / {n}",
            "measured": f"{storm['delivered']} / {n}",
            "baseline": f"fault-free: {calm['delivered']} / {n}",
            "ok": storm["delivered"] == n,
        },
        {
            "metric": "billed generations / rows",
            "goal": f"{n} / {n}",
            "measured": f"{storm['billed']} / {n} ({storm['enqueue_calls']} enqueue calls)",
            "baseline": f"fault-free: {calm['billed']} / {n}",
            "ok": storm["billed"] == n,
        },
        {
            "metric": "flow runs left Running",
            "goal": "0",
            "measured": f"{storm['left_running']} (final states: {', '.join(storm['states'])})",
            "baseline": f"fault-free: {calm['left_running']}",
            "ok": storm["left_running"] == 0 and storm["not_final"] == 0,
        },
        {
            "metric": "slots held after the run",
            "goal": "0",
            "measured": str(storm["slots_held"]),
            "baseline": f"fault-free: {calm['slots_held']}",
            "ok": storm["slots_held"] == 0,
        },
        {
            "metric": "generations in flight at most (the limit held)",
            "goal": f"<= {sizes.limit}",
            "measured": str(storm["max_in_flight"]),
            "baseline": f"fault-free: {calm['max_in_flight']}",
            "ok": storm["max_in_flight"] <= sizes.limit and calm["max_in_flight"] <= sizes.limit,
        },
        {
            "metric": "wall vs fault-free run",
            "goal": f"<= {WALL_GOAL}x",
            "measured": (
                f"{ratio:.2f}x ({storm['wall']:.0f} s vs {calm['wall']:.0f} s; ideal {sizes.ideal:.0f} s)"
            ),
            "baseline": story,
            "ok": ratio <= WALL_GOAL,
        },
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 rows (a smoke test)")
    args = parser.parse_args()
    table = main(args.quick)
    print("| metric | goal | measured | baseline | ok |\n|---|---|---|---|---|")
    for row in table:
        print(f"| {row['metric']} | {row['goal']} | {row['measured']} | {row['baseline']} | {row['ok']} |")
