"""Fixtures of the state tests: a folder store and an S3 store on a serial moto server (statekit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from seedance_prefect.state import LocalStateStore, S3StateStore, StateStore
from tests.state.statekit import AWS_ENV, fresh_bucket, serial_moto_server

BUCKET = "seedance-state-tests"


@pytest.fixture(scope="session")
def serial_moto() -> Iterator[str]:
    """One serial moto S3 server for the session (see statekit); yields its endpoint URL."""
    pytest.importorskip("moto")
    with serial_moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(serial_moto: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard AWS environment pointing at the serial moto server, with an empty bucket."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", serial_moto)
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    fresh_bucket(serial_moto, BUCKET)
    return serial_moto


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    """Each kind of store, empty: a temp folder, and a prefix of a bucket on moto."""
    if request.param == "local":
        return LocalStateStore(tmp_path / "state")
    request.getfixturevalue("aws_env")
    return S3StateStore(BUCKET, "team/state")
