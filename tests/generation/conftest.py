"""Fixtures of the Prefect-free generation tests: a real client of the session's emulator and a
private journal. Nothing here imports Prefect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from seedance_prefect.client import SeedanceClient
from seedance_prefect.generation import Journal
from tests.kit import API_KEY


@pytest.fixture
def client(emulator: object) -> Iterator[SeedanceClient]:
    """A blocking client of the (reset) session emulator, over real HTTP."""
    with SeedanceClient(api_key=API_KEY, base_url=emulator.base_url) as c:  # type: ignore[attr-defined]
        yield c


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    """An empty journal of this test."""
    return Journal(tmp_path / "journal")


@pytest.fixture(scope="session")
def serial_moto() -> Iterator[str]:
    """A serial moto S3 server for the session (see tests/state/statekit.py); yields its endpoint."""
    pytest.importorskip("moto")
    from tests.state.statekit import serial_moto_server

    with serial_moto_server() as endpoint:
        yield endpoint
