"""Fixtures for flow tests: one real Prefect server per session, a fresh emulator per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from seedance_prefect.emulator import EmulatorConfig, run_emulator

from .flowkit import API_KEY, set_faults


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real Prefect API server on a temporary SQLite database; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


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
    os.makedirs(path)
    return path
