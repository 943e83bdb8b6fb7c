"""wait(): polling to a terminal state, failures, deadline, 404 grace and transient errors."""

from __future__ import annotations

import time

import httpx
import pytest
import respx

from seedance_prefect.client import SeedanceClient
from seedance_prefect.errors import (
    AuthenticationError,
    GenerationCancelled,
    GenerationFailed,
    GenerationTimeout,
    NotFoundError,
    SeedanceConnectionError,
)
from seedance_prefect.models import Generation
from tests.client.clientkit import GID, not_found, row, url

FAST = {"poll_interval": 0.01, "timeout": 5.0}


def ok(status: str, **extra: object) -> httpx.Response:
    return httpx.Response(200, json=row(status, **extra))


def test_processing_then_succeeded(client: SeedanceClient, api: respx.MockRouter) -> None:
    done = ok("succeeded", result_url="https://cdn.test/v.mp4", completed_at=1775091500)
    route = api.get(url(f"/ai/queue/{GID}")).mock(
        side_effect=[ok("queued"), ok("processing"), ok("processing"), done]
    )
    seen: list[str] = []
    result = client.wait(GID, on_status=lambda g: seen.append(g.status), **FAST)
    assert result.status == "succeeded" and result.result_url == "https://cdn.test/v.mp4"
    assert seen == ["queued", "processing", "succeeded"]  # changes only
    assert route.call_count == 4


def test_failed_raises_with_error_message(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(
        side_effect=[ok("processing"), ok("failed", error_message="Insufficient credits")]
    )
    with pytest.raises(GenerationFailed) as info:
        client.wait(GID, **FAST)
    err = info.value
    assert (err.generation_id, err.status, err.error_message) == (GID, "failed", "Insufficient credits")
    assert not isinstance(err, GenerationCancelled) and not err.transient


def test_cancelled(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(return_value=ok("cancelled"))
    with pytest.raises(GenerationCancelled):
        client.wait(GID, **FAST)


def test_unknown_terminal_status(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(return_value=ok("expired"))
    with pytest.raises(GenerationFailed) as info:
        client.wait(GID, **FAST)
    assert info.value.status == "expired"


def test_deadline(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(return_value=ok("processing"))
    started = time.monotonic()
    with pytest.raises(GenerationTimeout) as info:
        client.wait(GID, timeout=0.3, poll_interval=0.05)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 3.0
    assert isinstance(info.value, TimeoutError)
    assert info.value.last_status == "processing" and info.value.generation_id == GID


def test_404_grace_after_enqueue(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/generations/{GID}")).mock(return_value=not_found())
    api.get(url(f"/ai/queue/{GID}")).mock(
        side_effect=[not_found(), not_found(), ok("processing"), ok("succeeded")]
    )
    assert client.wait(GID, **FAST).status == "succeeded"


def test_404_after_grace_raises(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/generations/{GID}")).mock(return_value=not_found())
    route = api.get(url(f"/ai/queue/{GID}")).mock(return_value=not_found())
    with pytest.raises(NotFoundError):
        client.wait(GID, not_found_grace=0.1, **FAST)
    assert route.call_count >= 2


def test_404_once_seen_raises(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/generations/{GID}")).mock(return_value=not_found())
    api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[ok("processing"), not_found()])
    with pytest.raises(NotFoundError):
        client.wait(GID, **FAST)


def test_transient_errors_tolerated(api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(
        side_effect=[
            ok("processing"),
            httpx.Response(503),
            httpx.ConnectError("refused"),
            httpx.Response(502),
            ok("succeeded"),
        ]
    )
    with SeedanceClient("k", base_url="https://hub.test/api", max_retries=0) as client:
        assert client.wait(GID, **FAST).status == "succeeded"


def test_transient_until_deadline_times_out_chained(api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(side_effect=httpx.ConnectError("refused"))
    with (
        SeedanceClient("k", base_url="https://hub.test/api", max_retries=0) as client,
        pytest.raises(GenerationTimeout) as info,
    ):
        client.wait(GID, timeout=0.2, poll_interval=0.02)
    assert isinstance(info.value.__cause__, SeedanceConnectionError)


def test_permanent_error_raised_at_once(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url(f"/ai/queue/{GID}")).mock(return_value=httpx.Response(401))
    with pytest.raises(AuthenticationError):
        client.wait(GID, **FAST)
    assert route.call_count == 1


def test_on_status_receives_rows(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(return_value=ok("succeeded", result_url="https://cdn.test/v.mp4"))
    rows: list[Generation] = []
    client.wait(GID, on_status=rows.append, **FAST)
    assert [type(r) for r in rows] == [Generation] and rows[0].result_url == "https://cdn.test/v.mp4"
