"""The production stack on one machine (issue 13): a PostgreSQL 15 cluster of its own, `prefect server
start` on it, a process work pool, the batch deployed from flows/prefect.yaml, and two workers that
behave as separate machines (each its own HOME, PREFECT_HOME, SEEDANCE_STATE_DIR and folder; the
journal shared through S3 on moto, the manifest and the videos in S3 too). One manifest split over two
flow runs shares the limit ``seedance-generations``: every row is delivered exactly once and the
emulator never has more generations in flight than the limit.

Needs ``initdb``/``pg_ctl`` (PostgreSQL 15, ``/usr/local/bin`` or ``/usr/lib/postgresql/*/bin``);
skipped without them. As root (CI) the cluster runs as ``nobody``: initdb refuses root.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seedance_prefect.emulator import EmulatorConfig, run_emulator
from tests.kit import API_KEY, stats
from tests.stackkit import (
    REPO,
    Machine,
    PrefectServer,
    count_rows,
    postgres_cluster,
    prefect_cli,
    run_overlapping_shards,
    stack_env,
    submitted_by,
)
from tests.state.statekit import fresh_bucket, serial_moto_server

LIMIT = 2
ROWS = 8
BUCKET = "seedance-stack"
pytestmark = pytest.mark.slow


@pytest.fixture
def pg_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], str]]:
    """`prefect server start` on a PostgreSQL cluster of its own; yields its API URL, a client env
    and the database URL."""
    with contextlib.ExitStack() as stack:
        try:
            database = stack.enter_context(postgres_cluster())
        except FileNotFoundError as exc:
            pytest.skip(str(exc))
        server = stack.enter_context(PrefectServer(database, tmp_path / "server"))
        yield server.url, server.client_env(), database


def test_batch_on_postgres_two_machines_share_the_limit(pg_server, tmp_path):
    url, env, database = pg_server
    rows = [
        {
            "name": f"pg-{i}",
            "prompt": f"Lighthouse in fog {i}",
            "duration": "4",
            "resolution": "480p",
            "aspect_ratio": "16:9",
        }
        for i in range(ROWS)
    ]
    config = EmulatorConfig(latency=1.0, max_running=10, keepalive=1.0)
    with run_emulator(config) as emu, serial_moto_server() as endpoint:
        s3: Any = fresh_bucket(endpoint, BUCKET)
        s3.put_object(
            Bucket=BUCKET, Key="manifests/batch.jsonl", Body="".join(json.dumps(r) + "\n" for r in rows)
        )
        env = stack_env(env, emu.base_url, endpoint, API_KEY)
        prefect_cli(env, "work-pool", "create", "--type", "process", "seedance-process")
        prefect_cli(env, "--no-prompt", "deploy", "--name", "batch", cwd=REPO / "flows")
        workers = [
            Machine(name, tmp_path, env, "seedance-process", limit=1).start()
            for name in ("machine-a", "machine-b")
        ]
        try:
            parameters = {
                "manifest": f"s3://{BUCKET}/manifests/batch.jsonl",
                "deliver_to": f"s3://{BUCKET}/videos/",
                "output": "seedance-output",  # each machine's own folder (its cwd)
                "state": f"s3://{BUCKET}/state/",
                "concurrency": LIMIT,
                "poll_interval": 5.0,
            }
            held, final = run_overlapping_shards(url, emu, parameters, LIMIT)
        finally:
            for machine in workers:
                machine.stop()
        assert [r.state.type.value for r in final] == ["COMPLETED", "COMPLETED"], [r.state for r in final]
        st = stats(emu)
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="videos/").get("Contents", [])
        videos = sorted(o["Key"].rsplit("/", 1)[-1] for o in listed if o["Key"].endswith(".mp4"))

    assert count_rows(database, "flow_run") == 2
    assert st["generations_created"] == ROWS and st["enqueue_calls"] == ROWS  # each row exactly once
    assert st["max_in_flight"] <= LIMIT  # held across both machines' flow runs
    assert videos == sorted(f"pg-{i}.mp4" for i in range(ROWS))
    owners = submitted_by(final, [machine.log.read_text() for machine in workers])
    assert owners in ([{0}, {1}], [{1}, {0}]), owners  # each machine ran one of the two flow runs
    assert held["statuses"]["succeeded"] == 0 and held["max_in_flight"] == LIMIT, held
