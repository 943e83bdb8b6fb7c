"""Retries: idempotent calls only, bounded, backoff and Retry-After honoured."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
import respx

from seedance_prefect.client import SeedanceClient
from seedance_prefect.client._errors import parse_retry_after
from seedance_prefect.client._retry import MAX_BACKOFF, RetryPolicy
from seedance_prefect.errors import (
    NotFoundError,
    RateLimitedError,
    SeedanceConnectionError,
    ServerError,
    is_transient,
)
from tests.client.clientkit import BASE, KEY, row, url


def unavailable() -> httpx.Response:
    return httpx.Response(503, json={"error": {"message": "Service unavailable"}})


@pytest.mark.parametrize("retries", [0, 1, 2, 3])
def test_get_retried_up_to_max_retries_then_raises(api: respx.MockRouter, retries: int) -> None:
    route = api.get(url("/ai/queue/g1")).mock(return_value=unavailable())
    with (
        SeedanceClient(KEY, base_url=BASE, max_retries=retries, backoff_factor=0.001) as client,
        pytest.raises(ServerError),
    ):
        client.get("g1")
    assert route.call_count == retries + 1


def test_get_recovers(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/ai/queue/g1")).mock(
        side_effect=[unavailable(), httpx.ConnectError("refused"), httpx.Response(200, json=row(gid="g1"))]
    )
    assert client.get("g1").generation_id == "g1"
    assert route.call_count == 3


def test_delete_is_retried(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.delete(url("/ai/queue/g1")).mock(
        side_effect=[
            httpx.Response(500),
            httpx.Response(200, json={"status": "success", "generation_id": "g1"}),
        ]
    )
    assert client.cancel("g1").status == "success"
    assert route.call_count == 2


@pytest.mark.parametrize("path", ["/ai/queue", "/ai/videos/generate"])
def test_post_never_retried(client: SeedanceClient, api: respx.MockRouter, path: str) -> None:
    route = api.post(url(path)).mock(return_value=unavailable())
    call = client.enqueue if path == "/ai/queue" else client.generate
    with pytest.raises(ServerError):
        call({"prompt": "A boat"})
    assert route.call_count == 1


def test_post_not_retried_after_read_error(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.post(url("/ai/queue")).mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(SeedanceConnectionError) as info:
        client.enqueue({"prompt": "A boat"})
    assert route.call_count == 1
    assert "may have received the request" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


def test_post_connect_error_says_nothing_was_sent(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.post(url("/ai/queue")).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(SeedanceConnectionError) as info:
        client.enqueue({"prompt": "A boat"})
    assert "may have received" not in str(info.value)


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("closed"),
        httpx.ReadTimeout("slow"),
    ],
)
def test_transport_errors_retried_then_wrapped(api: respx.MockRouter, error: Exception) -> None:
    route = api.get(url("/ai/queue/g1")).mock(side_effect=error)
    with (
        SeedanceClient(KEY, base_url=BASE, max_retries=2, backoff_factor=0.001) as client,
        pytest.raises(SeedanceConnectionError) as info,
    ):
        client.get("g1")
    assert route.call_count == 3
    assert info.value.__cause__ is error
    assert is_transient(info.value)
    assert info.value.method == "GET" and info.value.url == url("/ai/queue/g1")
    assert type(error).__name__ in str(info.value)


def test_not_found_not_retried(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/ai/queue/g1")).mock(return_value=httpx.Response(404))
    with pytest.raises(NotFoundError):
        client.get("g1")
    assert route.call_count == 1


def test_sleep_is_at_least_retry_after(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/ai/queue/g1")).mock(
        side_effect=[
            httpx.Response(
                429, headers={"Retry-After": "1"}, json={"error": {"message": "Rate limit exceeded"}}
            ),
            httpx.Response(200, json=row(gid="g1")),
        ]
    )
    started = time.monotonic()
    client.get("g1")
    assert time.monotonic() - started >= 1.0
    assert route.call_count == 2


def test_retry_after_too_long_is_raised_at_once(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/ai/queue/g1")).mock(
        return_value=httpx.Response(429, headers={"Retry-After": "3600"})
    )
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        client.get("g1")
    assert time.monotonic() - started < 1.0
    assert route.call_count == 1 and info.value.retry_after == 3600.0


def test_retries_are_logged_without_secrets(
    client: SeedanceClient, api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    api.get(url("/ai/queue/g1")).mock(side_effect=[unavailable(), httpx.Response(200, json=row(gid="g1"))])
    with caplog.at_level(logging.DEBUG, logger="seedance_prefect"):
        client.get("g1")
    retries = [r for r in caplog.records if r.levelno == logging.INFO and "Retrying" in r.getMessage()]
    assert len(retries) == 1 and "GET https://hub.test/api/ai/queue/g1" in retries[0].getMessage()
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("-> 503" in m for m in debug) and any("-> 200" in m for m in debug)
    assert all(KEY not in r.getMessage() and "Bearer" not in r.getMessage() for r in caplog.records)


def test_parse_retry_after() -> None:
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("tomorrow") is None
    assert parse_retry_after("") is None and parse_retry_after(None) is None
    assert parse_retry_after("nan") is None


def test_backoff_grows_with_jitter_and_cap() -> None:
    policy = RetryPolicy(max_retries=10, backoff_factor=0.5)
    for attempt in range(8):
        nominal = min(MAX_BACKOFF, 0.5 * 2**attempt)
        assert 0.75 * nominal <= policy.backoff(attempt) <= nominal
