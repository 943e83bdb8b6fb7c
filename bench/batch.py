"""Benchmark: a batch of short generations through the real flow, bounded by a global limit.

200 generations of 2 s each (emulator latency), limit 20: the ideal wall time is
200 * 2 / 20 = 20 s; the goal is within 1.15x of it. The emulator runs in its own process, the
Prefect API server is started (and warmed up) before the clock starts, so the measured time is the
batch flow's: validation of every row, the flow run, every task run, enqueue, wait, download,
verification (full decode) and delivery of every video. The flow runs as ``seedance batch`` runs
it, inside :func:`seedance_prefect.cli.prefect_env.local_flow_settings` (no flow run heartbeats).

The full run measures five batches, each in a fresh process with its own server and emulator
(as ``seedance batch`` runs one), and reports the median with each figure: on 2 cores shared by the
flow, the Prefect server and the emulator, the wall time swings by a few seconds from run to run.
Run alone: ``python bench/batch.py [--quick]`` (``--quick``: one batch of 40 generations, same
limit).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/batch.py``
    sys.path.insert(0, str(ROOT))

from bench._kit import manifest, start_emulator  # noqa: E402
from tests.stackkit import free_port  # noqa: E402

LIMIT = 20
LATENCY = 2.0
GOAL_FACTOR = 1.15
REPEATS = 5  # the goal is a median of five batches


def run(rows: int, limit: int = LIMIT) -> dict[str, Any]:
    """Run one batch of ``rows`` generations with ``limit`` in flight; return the measurements."""
    with tempfile.TemporaryDirectory(prefix="seedance-bench-") as tmp:
        os.environ.setdefault("PREFECT_HOME", str(Path(tmp) / "prefect-home"))
        os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ["SEEDANCE_STATE_DIR"] = str(Path(tmp) / "state")
        os.environ["OXEN_API_KEY"] = "bench-key-for-the-local-emulator"
        port = free_port()
        emulator = start_emulator(
            port, "--latency", str(LATENCY), "--max-running", str(2 * limit), "--keepalive", "5"
        )
        os.environ["OXEN_BASE_URL"] = f"http://127.0.0.1:{port}/api"
        try:
            from prefect.testing.utilities import prefect_test_harness

            from seedance_prefect.batch_flows import batch_reference_to_video
            from seedance_prefect.cli.prefect_env import local_flow_settings
            from seedance_prefect.slots import ensure_concurrency_limit

            path = Path(tmp) / "batch.jsonl"
            path.write_text(manifest(rows, "clip-{i:03d}", "A paper boat on a pond", seed=7))
            with prefect_test_harness(server_startup_timeout=180):
                ensure_concurrency_limit("seedance-generations", limit)  # server warm, limit ready
                started = time.perf_counter()
                with local_flow_settings():  # as `seedance batch` runs it
                    result = batch_reference_to_video(
                        str(path), output=str(Path(tmp) / "out"), concurrency=limit, poll_interval=30.0
                    )
                wall = time.perf_counter() - started
            stats = httpx.get(f"http://127.0.0.1:{port}/_emulator/stats").json()
        finally:
            emulator.terminate()
            emulator.wait(10)
    ideal = rows * LATENCY / limit
    return {
        "rows": rows,
        "limit": limit,
        "wall": wall,
        "ideal": ideal,
        "delivered": result["totals"]["delivered"],
        "max_in_flight": stats["max_in_flight"],
        "generations_created": stats["generations_created"],
    }


def _run_in_new_process(rows: int) -> dict[str, Any]:
    """One batch in a fresh Python process (fresh Prefect server and emulator), as a user runs one."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--json", "--rows", str(rows)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(quick: bool = False) -> list[dict[str, str]]:
    """Run the benchmark; return rows of the results table (metric, goal, measured, baseline)."""
    rows, repeats = (40, 1) if quick else (200, REPEATS)
    runs = [_run_in_new_process(rows) for _ in range(repeats)]
    walls = sorted(r["wall"] for r in runs)
    m = {**runs[0], "wall": statistics.median(walls), "delivered": min(r["delivered"] for r in runs)}
    m["max_in_flight"] = max(r["max_in_flight"] for r in runs)
    goal = GOAL_FACTOR * m["ideal"]
    each = ", ".join(f"{w:.1f}" for w in walls)
    return [
        {
            "metric": f"batch of {rows} generations x {LATENCY:g} s, limit {LIMIT}: wall time",
            "goal": f"<= {goal:.1f} s ({GOAL_FACTOR}x ideal {m['ideal']:.0f} s)",
            "measured": f"{m['wall']:.1f} s ({m['wall'] / m['ideal']:.2f}x), median of {repeats} "
            f"({each} s); {m['delivered']} delivered",
            "baseline": f"{rows * LATENCY:.0f} s one at a time",
            "ok": m["wall"] <= goal,
        },
        {
            "metric": f"batch of {rows}: most generations in flight at the service",
            "goal": f"<= {LIMIT}",
            "measured": f"{m['max_in_flight']} ({m['generations_created']} created)",
            "baseline": "unbounded without the limit",
            "ok": m["max_in_flight"] <= LIMIT,
        },
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="run one batch, print its measurements")
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()
    if args.json:
        print(json.dumps(run(args.rows)))
        sys.exit(0)
    for row in main(args.quick):
        print(f"| {row['metric']} | {row['goal']} | {row['measured']} | {row['baseline']} |")
