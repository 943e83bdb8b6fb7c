"""The production stack on one machine, for the PostgreSQL test and the chaos and scale benchmarks.

- :func:`postgres_cluster`: a PostgreSQL cluster of its own in a temporary folder on a free port
  (``initdb``/``pg_ctl`` of PostgreSQL 15; as root it runs as ``nobody``, since initdb refuses root),
  with the ``prefect`` database and ``pg_trgm``; yields the SQLAlchemy URL Prefect takes.
- :class:`PrefectServer`: ``prefect server start`` on a database URL (or SQLite), which can be
  stopped and started again on the same port (a server restart).
- :class:`Machine`: a worker that behaves as a separate machine: its own ``HOME``, ``PREFECT_HOME``,
  state folder and working folder, in its own process group so that :meth:`Machine.kill` takes the
  worker *and* the flow runs it started, as a machine that dies would.
- :func:`prefect_cli`: the ``prefect`` command with an environment, failing with its output.

Nothing here starts on import; every helper stops what it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from seedance_prefect.settings import FILESYSTEM_LEASE_STORAGE
from tests.kit import wait_until

REPO = Path(__file__).resolve().parents[1]
#: ``prefect`` settings every process of the stack gets (no telemetry, no UI, a quiet server).
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``PREFECT_*`` setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def prefect_cli(env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 180) -> str:
    """Run ``prefect *args``; return its output, or raise with it when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"prefect {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def stack_env(env: dict[str, str], api_url: str, s3_endpoint: str, api_key: str) -> dict[str, str]:
    """``env`` plus what the stack's clients need: the emulator as the API, S3 on moto (the test
    credentials, no AWS profile) and the pipelines folder of this checkout."""
    from tests.state.statekit import AWS_ENV

    out = {
        **env,
        **AWS_ENV,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "OXEN_API_KEY": api_key,
        "OXEN_BASE_URL": api_url,
    }
    out["SEEDANCE_PIPELINES_DIR"] = str(REPO / "flows")
    out.pop("AWS_PROFILE", None)
    return out


# --- PostgreSQL ---------------------------------------------------------------------------------


def pg_bin(name: str) -> str | None:
    """A PostgreSQL program (``initdb``, ``pg_ctl``): on PATH, in /usr/local/bin or the newest Debian one."""
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


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A PostgreSQL cluster in a temporary folder on a free port; yields Prefect's database URL.

    Raises:
        FileNotFoundError: ``initdb`` or ``pg_ctl`` is not installed.
    """
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl) not found")
    root = Path(tempfile.mkdtemp(prefix="seedance-pg-"))  # not under a 0700 folder of root's
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
    data, port = root / "data", free_port()
    subprocess.run(
        _as_cluster_user(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
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


def count_rows(database_url: str, table: str) -> int:
    """How many rows a table of the Prefect database holds (e.g. ``flow_run``)."""
    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()

    return asyncio.run(count())


# --- the Prefect server -------------------------------------------------------------------------


class PrefectServer:
    """``prefect server start`` on ``database`` (None: SQLite in its home), restartable on one port.

    Example:
        ```python
        with postgres_cluster() as db, PrefectServer(db, folder) as server:
            server.restart()
        ```
    """

    def __init__(self, database: str | None, folder: Path, **settings: str) -> None:
        self.database = database
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.env = clean_env(PREFECT_HOME=str(folder / "server-home"), **QUIET)
        # leases on disk: a restart does not forget who holds a slot (one API server; several
        # servers share them through Redis: docs/deployment.md)
        self.env["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"] = FILESYSTEM_LEASE_STORAGE
        if database:
            self.env["PREFECT_API_DATABASE_CONNECTION_URL"] = database
        self.env.update(settings)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def client_env(self, **extra: str) -> dict[str, str]:
        """The environment of a client of this server (its own Prefect home under the folder)."""
        env = clean_env(
            PREFECT_API_URL=self.url,
            PREFECT_HOME=str(self.folder / "client-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_WORKER_QUERY_SECONDS="1",
        )
        env.update(extra)
        return env

    def healthy(self) -> bool:
        """Whether the API answers its health check."""
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, timeout: float = 180) -> float:
        """Start the server and wait until healthy; return the seconds it took."""
        self.starts += 1
        log = (self.folder / f"server-{self.starts}.log").open("wb")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                text = (self.folder / f"server-{self.starts}.log").read_text(errors="replace")
                raise RuntimeError(f"prefect server exited:\n{text[-3000:]}")
            return self.healthy()

        wait_until(up, timeout, "prefect server start", interval=0.2)
        return time.monotonic() - started

    def stop(self, grace: float = 20) -> None:
        """Stop the server as Ctrl-C does (kill it after ``grace`` s)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> float:
        """Stop and start again on the same port; return the seconds the API was down."""
        down = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - down

    def __enter__(self) -> PrefectServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren...), read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        todo += children
    return found


# --- workers as machines ------------------------------------------------------------------------


class Machine:
    """A process worker that behaves as a separate machine (own HOME, Prefect home, state and folder).

    Args:
        name: The worker's name (and its folder's).
        folder: Where its home folders go.
        env: The environment (a client env of the server plus the API's settings).
        pool: The work pool.
        limit: How many flow runs it runs at once.
    """

    def __init__(self, name: str, folder: Path, env: dict[str, str], pool: str, limit: int = 1) -> None:
        self.name = name
        self.root = folder / name
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        self.env = {
            **env,
            "HOME": str(self.root / "home"),
            "PREFECT_HOME": str(self.root / "prefect"),
            "SEEDANCE_STATE_DIR": str(self.root / "seedance"),
        }
        self.argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool]
        self.argv += ["--limit", str(limit), "--name", name]
        self.log = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Machine:
        """Start the worker in its own process group."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        """SIGKILL the worker and every process it started (flow runs run in sessions of their own):
        the machine dies."""
        if self.proc is None:
            return
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, grace: float = 20) -> None:
        """Stop the worker as Ctrl-C does, then kill what is left of its process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        self.kill()  # what the worker left: flow runs in sessions of their own


# --- a batch deployment split over workers --------------------------------------------------------


def run_overlapping_shards(
    url: str, emu: Any, parameters: dict[str, Any], limit: int, shards: int = 2
) -> tuple[dict[str, Any], list[Any]]:
    """Run the ``batch`` deployment once per shard, every run overlapping the others.

    The emulator holds every generation until all the runs are running and the limit is full, then
    lets them finish. Returns the emulator's stats at that moment and the runs once final.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.kit import stats

    with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("seedance-batch-reference-to-video/batch")
        emu.hold(True)  # nothing finishes until every flow run is running: they must overlap
        runs = [
            client.create_flow_run_from_deployment(
                deployment.id, parameters={**parameters, "shard": shard, "shards": shards}
            )
            for shard in range(shards)
        ]

        def all_running_limit_full() -> dict[str, Any] | None:
            states = [client.read_flow_run(r.id).state for r in runs]
            st = stats(emu)
            running = all(s is not None and s.is_running() for s in states)
            return st if running and st["in_flight"] == limit else None

        held = wait_until(all_running_limit_full, 170, "every flow run running, the limit full")
        emu.hold(False)

        def finished() -> list[Any] | None:
            states = [client.read_flow_run(r.id) for r in runs]
            return states if all(s.state and s.state.is_final() for s in states) else None

        return held, wait_until(finished, 170, "every flow run to finish")


def submitted_by(runs: list[Any], logs: list[str]) -> list[set[int]]:
    """For each flow run, the indexes of the worker logs that ran it (submitted, not aborted)."""
    return [
        {
            i
            for i, log in enumerate(logs)
            if f"submitting flow run '{r.id}'" in log
            and f"Aborted submission of flow run '{r.id}'" not in log
        }
        for r in runs
    ]
