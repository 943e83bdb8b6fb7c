"""Fixtures of the client tests: environment hygiene, respx router, clients and a real HTTP fake.

The fake (``oxen`` fixture, see ``fakeoxenkit.py``) is a small Starlette app served by uvicorn
on 127.0.0.1 in a thread; result files are served under the host name ``localhost``.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator

import pytest
import respx
import uvicorn

from seedance_prefect.client import AsyncSeedanceClient, SeedanceClient
from tests.client.clientkit import BASE, KEY
from tests.client.fakeoxenkit import FakeOxen, wait_for


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OXEN_API_KEY", raising=False)
    monkeypatch.delenv("OXEN_BASE_URL", raising=False)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """A respx router mocking every httpx transport (absolute URLs, nothing real gets out)."""
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def client() -> Iterator[SeedanceClient]:
    """A sync client on the mocked API with fast backoff."""
    with SeedanceClient(KEY, base_url=BASE, backoff_factor=0.01) as c:
        yield c


@pytest.fixture
async def aclient() -> AsyncIterator[AsyncSeedanceClient]:
    """An async client on the mocked API with fast backoff."""
    async with AsyncSeedanceClient(KEY, base_url=BASE, backoff_factor=0.01) as c:
        yield c


@pytest.fixture(scope="session")
def _oxen_server() -> Iterator[FakeOxen]:
    fake = FakeOxen()
    config = uvicorn.Config(
        fake.app(),
        host="127.0.0.1",
        port=0,
        log_level="critical",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-oxen", daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10.0, "the fake Oxen server to start")
    fake.port = server.servers[0].sockets[0].getsockname()[1]
    yield fake
    for loop, queue in list(fake.subscribers):
        loop.call_soon_threadsafe(queue.put_nowait, None)
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def oxen(_oxen_server: FakeOxen) -> FakeOxen:
    """The real HTTP fake, reset."""
    _oxen_server.reset()
    return _oxen_server
