"""Fixtures: a shared emulator (reset before each test) and a factory for emulators with other settings."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from seedance_prefect.emulator import EmulatorConfig, RunningEmulator, run_emulator
from tests.emulator.emulatorkit import API_KEY, make_client


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[RunningEmulator]:
    """One emulator for most tests: fast latency, an API key, results served from "localhost"."""
    config = EmulatorConfig(latency=0.2, api_key=API_KEY, result_host="localhost", keepalive=0.5)
    with run_emulator(config) as emu:
        yield emu


@pytest.fixture
def emu(shared_emulator: RunningEmulator) -> Iterator[RunningEmulator]:
    """The shared emulator, reset to an empty state without faults."""
    shared_emulator.set_faults(None)
    shared_emulator.reset()
    yield shared_emulator
    shared_emulator.set_faults(None)


@pytest.fixture
def client(emu: RunningEmulator) -> Iterator[httpx.Client]:
    """Authenticated client for the shared emulator."""
    with make_client(emu) as c:
        yield c


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., RunningEmulator]]:
    """Factory: ``start_emulator(latency=..., ...)`` runs an extra emulator until the test ends."""
    with contextlib.ExitStack() as stack:

        def start(**settings: Any) -> RunningEmulator:
            settings.setdefault("latency", 0.2)
            return stack.enter_context(run_emulator(EmulatorConfig(**settings)))

        yield start
