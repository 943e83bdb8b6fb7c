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

import asyncio
import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from seedance_prefect.emulator import EmulatorConfig, run_emulator
from tests.batch.test_workers import REPO, _free_port, _prefect
from tests.flows.flowkit import API_KEY, stats, stop_process, wait_until
from tests.state.statekit import AWS_ENV, fresh_bucket, serial_moto_server

LIMIT = 2
ROWS = 8
BUCKET = "seedance-stack"
WORKER = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "seedance-process"]
pytestmark = pytest.mark.slow


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name) or shutil.which(name, path="/usr/local/bin")
    return found or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)


def _as_cluster_user(argv: list[str]) -> list[str]:
    """Run as ``nobody`` when we are root (initdb and postgres refuse to run as root)."""
    if os.geteuid() != 0:
        return argv
    # runuser lives in /usr/sbin, which a minimal PATH (env -i, some CI shells) leaves out
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin") or "runuser"
    return [runuser, "-u", "nobody", "--", *argv]


async def _create_database(port: int) -> None:
    import asyncpg

    admin = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
    try:
        await admin.execute("CREATE DATABASE prefect")
    finally:
        await admin.close()
    db = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="prefect")
    try:
        with contextlib.suppress(asyncpg.PostgresError):  # pg_trgm is in postgresql-contrib
            await db.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    finally:
        await db.close()


@pytest.fixture
def postgres() -> Iterator[str]:
    """A PostgreSQL cluster in a temporary folder on a free port; yields the Prefect database URL."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found")
    root = Path(tempfile.mkdtemp(prefix="seedance-pg-"))  # not under tmp_path: root's 0700 folders
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
    data, port = root / "data", _free_port()
    subprocess.run(
        _as_cluster_user(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    start = [
        pg_ctl,
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(root / "postgres.log"),
        "-w",
        "-t",
        "60",
        "start",
    ]
    subprocess.run(_as_cluster_user(start), check=True, capture_output=True, timeout=90)
    try:
        asyncio.run(_create_database(port))
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect"
    finally:
        subprocess.run(
            _as_cluster_user([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_server(postgres: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str], str]]:
    """`prefect server start` on the PostgreSQL database; yields its API URL, a client env and the
    database URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp_path / "server-home"),
        PREFECT_API_DATABASE_CONNECTION_URL=postgres,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
    )
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/api"

    def healthy() -> bool:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, 150, "prefect server start on PostgreSQL")
        client_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        client_env.update(
            PREFECT_API_URL=url,
            PREFECT_HOME=str(tmp_path / "client-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        )
        yield url, client_env, postgres
    finally:
        stop_process(proc, grace=20)


def _flow_runs_in(database_url: str) -> int:
    """How many flow runs the PostgreSQL database holds (the server really runs on it)."""
    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return int(await conn.fetchval("SELECT count(*) FROM flow_run"))
        finally:
            await conn.close()

    return asyncio.run(count())


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
        env.update(
            AWS_ENV,
            AWS_ENDPOINT_URL=endpoint,
            OXEN_API_KEY=API_KEY,
            OXEN_BASE_URL=emu.base_url,
            SEEDANCE_PIPELINES_DIR=str(REPO / "flows"),
        )
        env.pop("AWS_PROFILE", None)
        _prefect(env, "work-pool", "create", "--type", "process", "seedance-process")
        _prefect(env, "--no-prompt", "deploy", "--name", "batch", cwd=REPO / "flows")
        workers = []
        for name in ("machine-a", "machine-b"):
            machine = tmp_path / name
            (machine / "home").mkdir(parents=True)
            machine_env = {
                **env,
                "HOME": str(machine / "home"),
                "PREFECT_HOME": str(machine / "prefect"),
                "SEEDANCE_STATE_DIR": str(machine / "seedance"),
            }
            with (tmp_path / f"{name}.log").open("wb") as log:
                workers.append(
                    subprocess.Popen(
                        [*WORKER, "--limit", "1", "--name", name],
                        env=machine_env,
                        cwd=machine,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        try:
            from prefect.client.orchestration import get_client
            from prefect.settings import PREFECT_API_URL, temporary_settings

            with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
                deployment = client.read_deployment_by_name("seedance-batch-reference-to-video/batch")
                emu.hold(True)  # nothing finishes until both flow runs are running: they must overlap
                runs = [
                    client.create_flow_run_from_deployment(
                        deployment.id,
                        parameters={
                            "manifest": f"s3://{BUCKET}/manifests/batch.jsonl",
                            "deliver_to": f"s3://{BUCKET}/videos/",
                            "output": "seedance-output",  # each machine's own folder (its cwd)
                            "state": f"s3://{BUCKET}/state/",
                            "concurrency": LIMIT,
                            "poll_interval": 5.0,
                            "shard": shard,
                            "shards": 2,
                        },
                    )
                    for shard in (0, 1)
                ]

                def both_running_limit_full() -> dict[str, Any] | None:
                    states = [client.read_flow_run(r.id).state for r in runs]
                    st = stats(emu)
                    running = all(s is not None and s.is_running() for s in states)
                    return st if running and st["in_flight"] == LIMIT else None

                held = wait_until(both_running_limit_full, 170, "both flow runs running, the limit full")
                emu.hold(False)

                def finished() -> list[Any] | None:
                    states = [client.read_flow_run(r.id) for r in runs]
                    return states if all(s.state and s.state.is_final() for s in states) else None

                final = wait_until(finished, 170, "both flow runs to finish")
        finally:
            for proc in workers:
                stop_process(proc, grace=20)
        assert [r.state.type.value for r in final] == ["COMPLETED", "COMPLETED"], [r.state for r in final]
        st = stats(emu)
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="videos/").get("Contents", [])
        videos = sorted(o["Key"].rsplit("/", 1)[-1] for o in listed if o["Key"].endswith(".mp4"))

    assert _flow_runs_in(database) == 2
    assert st["generations_created"] == ROWS and st["enqueue_calls"] == ROWS  # each row exactly once
    assert st["max_in_flight"] <= LIMIT  # held across both machines' flow runs
    assert videos == sorted(f"pg-{i}.mp4" for i in range(ROWS))
    logs = [(tmp_path / f"{n}.log").read_text() for n in ("machine-a", "machine-b")]
    owners = [
        {
            i
            for i, log in enumerate(logs)
            if f"submitting flow run '{r.id}'" in log
            and f"Aborted submission of flow run '{r.id}'" not in log
        }
        for r in final
    ]
    assert owners in ([{0}, {1}], [{1}, {0}]), owners  # each machine ran one of the two flow runs
    assert held["statuses"]["succeeded"] == 0 and held["max_in_flight"] == LIMIT, held
