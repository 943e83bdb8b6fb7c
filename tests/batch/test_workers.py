"""Scale-out: `prefect server start`, a process work pool, two workers, the batch deployed from
flows/prefect.yaml, one manifest split over two flow runs (one per worker), and the global limit
holding across both at the service."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from seedance_prefect.emulator import EmulatorConfig, run_emulator
from tests.kit import API_KEY, stats, stop_process
from tests.stackkit import REPO, PrefectServer, prefect_cli, run_overlapping_shards, submitted_by

LIMIT = 2
ROWS = 8


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`prefect server start` on a fresh SQLite database; yields its API URL and a client env."""
    with PrefectServer(None, tmp_path / "server") as prefect_server:
        yield prefect_server.url, prefect_server.client_env()


@pytest.mark.slow
def test_two_workers_share_one_limit(server, tmp_path):
    url, env = server
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text(
        "".join(
            json.dumps(
                {
                    "name": f"w-{i}",
                    "prompt": f"Harbour at dusk {i}",
                    "duration": "4",
                    "resolution": "480p",
                    "aspect_ratio": "16:9",
                }
            )
            + "\n"
            for i in range(ROWS)
        )
    )
    with run_emulator(EmulatorConfig(latency=1.5, max_running=10, keepalive=1.0)) as emu:
        env.update(
            OXEN_API_KEY=API_KEY,
            OXEN_BASE_URL=emu.base_url,
            SEEDANCE_STATE_DIR=str(tmp_path / "state"),
            SEEDANCE_PIPELINES_DIR=str(REPO / "flows"),
        )
        prefect_cli(env, "work-pool", "create", "--type", "process", "seedance-process")
        prefect_cli(env, "--no-prompt", "deploy", "--name", "batch", cwd=REPO / "flows")
        workers = []
        for name in ("worker-a", "worker-b"):
            log = (tmp_path / f"{name}.log").open("wb")
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "prefect",
                        "worker",
                        "start",
                        "--pool",
                        "seedance-process",
                        "--limit",
                        "1",
                        "--name",
                        name,
                    ],
                    env=env,
                    cwd=tmp_path,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        try:
            parameters = {
                "manifest": str(manifest),
                "output": str(tmp_path / "out"),
                "concurrency": LIMIT,
                "poll_interval": 5.0,
            }
            held, final = run_overlapping_shards(url, emu, parameters, LIMIT)
        finally:
            for proc in workers:
                stop_process(proc, grace=20)
        assert [r.state.type.value for r in final] == ["COMPLETED", "COMPLETED"], [r.state for r in final]
        st = stats(emu)

    assert st["generations_created"] == ROWS
    assert st["max_in_flight"] <= LIMIT  # held across both workers' flow runs
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == sorted(
        f"w-{i}.mp4" for i in range(ROWS)
    )
    logs = [(tmp_path / f"{n}.log").read_text() for n in ("worker-a", "worker-b")]
    owners = submitted_by(final, logs)
    assert owners in ([{0}, {1}], [{1}, {0}]), owners  # each worker ran one of the two flow runs
    # Both flow runs were running at once with every slot taken, and no generation had finished.
    assert held["statuses"]["succeeded"] == 0 and held["max_in_flight"] == LIMIT, held
