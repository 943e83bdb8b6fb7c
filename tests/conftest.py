"""Test-wide settings and fixtures.

Settings are made before anything imports Prefect, so every test (and every subprocess a test
starts) uses a throw-away Prefect home instead of the user's ``~/.prefect``. Fixtures shared by
every folder: ``prefect_server`` (one real Prefect API server for the whole session, ~35 s to start
on these machines, with a secret scan when it stops), ``emulator`` (the session's emulator, reset,
with ``OXEN_*`` pointing at it) and ``out_dir``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_ROOT = tempfile.mkdtemp(prefix="seedance-tests-")
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
os.environ.setdefault("PREFECT_HOME", os.path.join(_ROOT, "prefect-home"))
os.environ.setdefault("SEEDANCE_STATE_DIR", os.path.join(_ROOT, "state"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
for _key in ("OXEN_API_KEY", "OXEN_BASE_URL"):
    os.environ.pop(_key, None)


from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from seedance_prefect.emulator import EmulatorConfig, run_emulator  # noqa: E402
from tests.kit import API_KEY, SECRETS, set_faults  # noqa: E402


def _files_holding(roots: list[Path], secret: bytes) -> list[Path]:
    found = []
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                with open(path, "rb") as handle:
                    tail = b""
                    while chunk := handle.read(1 << 20):
                        if secret in tail + chunk:
                            found.append(path)
                            break
                        tail = chunk[-len(secret) :]
    return found


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect API server on a temporary SQLite database; yields its API URL.

    When the session ends, the Prefect database (runs, logs, artifacts, parameters), the Prefect
    home (results) and every test's files are scanned: no API key used by the tests may be there.
    """
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())
        db = Path(str(PREFECT_API_DATABASE_CONNECTION_URL.value()).split("///", 1)[-1])
        home, basetemp = Path(os.environ["PREFECT_HOME"]), tmp_path_factory.getbasetemp()
        roots = [*db.parent.glob(db.name + "*"), home, basetemp]
        assert any(p.exists() for p in roots[:-2]), f"Prefect database not found at {db}"
        leaks = {s: _files_holding([r for r in roots if r.exists()], s.encode()) for s in SECRETS}
        assert not any(leaks.values()), f"API key found in files: {leaks}"


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[object]:
    """One emulator for the session (reset per test by ``emulator``)."""
    with run_emulator(EmulatorConfig(latency=0.3, max_running=8, keepalive=1.0)) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_session: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> object:
    """The session emulator, reset, with OXEN_* and a private journal pointing at it."""
    emulator_session.reset()  # type: ignore[attr-defined]
    set_faults(emulator_session, "")
    monkeypatch.setenv("OXEN_API_KEY", API_KEY)
    monkeypatch.setenv("OXEN_BASE_URL", emulator_session.base_url)  # type: ignore[attr-defined]
    monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "state"))
    return emulator_session


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty output folder."""
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One S3 API (moto in server mode) on 127.0.0.1 for the session (storage and reference
    hosting tests); yields its endpoint URL."""
    pytest.importorskip("moto")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
