"""Construction, configuration, headers and life cycle of the clients."""

from __future__ import annotations

import httpx
import pytest
import respx
from pydantic import SecretStr

from seedance_prefect.client import AsyncSeedanceClient, SeedanceClient
from seedance_prefect.errors import AuthenticationError
from tests.client.clientkit import BASE, KEY, row, url


@pytest.mark.parametrize("cls", [SeedanceClient, AsyncSeedanceClient])
def test_missing_key_fails_at_construction(cls: type) -> None:
    with pytest.raises(AuthenticationError) as info:
        cls(base_url=BASE)
    assert str(info.value) == "No API key: set OXEN_API_KEY or pass api_key=..."
    assert info.value.status_code == 401 and not info.value.transient


def test_blank_key_is_missing() -> None:
    with pytest.raises(AuthenticationError, match="No API key"):
        SeedanceClient("   ")


@pytest.mark.parametrize("bad", [f"{KEY} extra", f"{KEY}\u00e9", f"a\r\nX-Evil: {KEY}"])
def test_key_with_header_breaking_characters_is_refused_without_echo(bad: str) -> None:
    with pytest.raises(AuthenticationError, match="characters an HTTP header cannot carry") as info:
        SeedanceClient(bad)
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_env_fallbacks(monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter) -> None:
    monkeypatch.setenv("OXEN_API_KEY", KEY)
    monkeypatch.setenv("OXEN_BASE_URL", "https://emulator.test/api/")
    route = api.get("https://emulator.test/api/ai/queue/g1").mock(
        return_value=httpx.Response(200, json=row(gid="g1"))
    )
    with SeedanceClient() as client:
        assert client.base_url == "https://emulator.test/api"
        assert client.get("g1").generation_id == "g1"
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


def test_default_base_url() -> None:
    assert SeedanceClient(KEY).base_url == "https://hub.oxen.ai/api"


@pytest.mark.parametrize("given", [SecretStr(KEY), f"Bearer {KEY}", f"  {KEY}\n"])
def test_key_forms(given: object, api: respx.MockRouter) -> None:
    route = api.get(url("/ai/queue/g1")).mock(return_value=httpx.Response(200, json=row(gid="g1")))
    with SeedanceClient(given, base_url=BASE) as client:
        client.get("g1")
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


def test_bad_base_url() -> None:
    with pytest.raises(ValueError, match="base_url"):
        SeedanceClient(KEY, base_url="hub.oxen.ai/api")


def test_negative_retries_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        SeedanceClient(KEY, max_retries=-1)


def test_headers(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.post(url("/ai/queue")).mock(
        return_value=httpx.Response(200, json={"generations": [{"generation_id": "g1", "status": "queued"}]})
    )
    client.enqueue({"prompt": "A boat"})
    headers = route.calls.last.request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith("seedance-prefect/")
    assert f"httpx/{httpx.__version__}" in headers["User-Agent"]


def test_user_agent_extra(api: respx.MockRouter) -> None:
    route = api.get(url("/ai/queue/g1")).mock(return_value=httpx.Response(200, json=row(gid="g1")))
    with SeedanceClient(KEY, base_url=BASE, user_agent="my-app/1.2") as client:
        client.get("g1")
    assert route.calls.last.request.headers["User-Agent"].endswith(" my-app/1.2")


def test_repr_hides_key(client: SeedanceClient) -> None:
    assert repr(client) == f"SeedanceClient(base_url={BASE!r}, api_key='***')"
    assert KEY not in str(client)


def test_given_http_client_is_not_closed(api: respx.MockRouter) -> None:
    http = httpx.Client()
    with SeedanceClient(KEY, base_url=BASE, http_client=http):
        pass
    assert not http.is_closed
    http.close()


def test_own_http_client_is_closed() -> None:
    client = SeedanceClient(KEY, base_url=BASE)
    client.close()
    assert client._http.is_closed


async def test_async_context_manager_closes_own_client() -> None:
    async with AsyncSeedanceClient(KEY, base_url=BASE) as client:
        assert repr(client).startswith("AsyncSeedanceClient(")
    assert client._http.is_closed


def test_generation_id_is_quoted_and_checked(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/ai/queue/a%2Fb")).mock(return_value=httpx.Response(200, json=row(gid="a/b")))
    assert client.get("a/b").generation_id == "a/b"
    assert route.called
    with pytest.raises(ValueError, match="generation_id"):
        client.get("")
