"""Every wait decides alike: ``SeedanceClient.wait``, its async twin and ``wait_for_completion``.

The three differ only in how they sleep between polls; what an answer means (404 grace, transient
errors, the exception of a terminal status and its redacted ``error_message``, the deadline) is
the one ``WaitTracker`` of ``seedance_prefect.client._wait``. Each case runs through all three.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from seedance_prefect.client import AsyncSeedanceClient, SeedanceClient
from seedance_prefect.client._wait import WaitTracker
from seedance_prefect.client.completion import wait_for_completion
from seedance_prefect.errors import (
    AuthenticationError,
    GenerationCancelled,
    GenerationFailed,
    GenerationTimeout,
    NotFoundError,
    SeedanceConnectionError,
)
from seedance_prefect.models import Generation
from seedance_prefect.settings import DEFAULT_NOT_FOUND_GRACE_SECONDS
from tests.client.clientkit import BASE, GID, KEY, exception_text, not_found, row, url
from tests.client.fakeoxenkit import FakeOxen

Waiter = Callable[..., Generation]
FAST: dict[str, Any] = {"poll_interval": 0.01, "timeout": 5.0}


def via_client_wait(generation_id: str, *, on_status: Any = None, **kwargs: Any) -> Generation:
    with SeedanceClient(KEY, base_url=BASE, max_retries=0) as client:
        return client.wait(generation_id, on_status=on_status, **kwargs)


def via_async_wait(generation_id: str, *, on_status: Any = None, **kwargs: Any) -> Generation:
    async def run() -> Generation:
        async with AsyncSeedanceClient(KEY, base_url=BASE, max_retries=0) as client:
            return await client.wait(generation_id, on_status=on_status, **kwargs)

    return asyncio.run(run())


def via_completion(generation_id: str, *, on_status: Any = None, **kwargs: Any) -> Generation:
    with SeedanceClient(KEY, base_url=BASE, max_retries=0) as client:
        return wait_for_completion(client, generation_id, on_change=on_status, **kwargs)


@pytest.fixture(params=[via_client_wait, via_async_wait, via_completion], ids=lambda f: f.__name__[4:])
def waiter(request: pytest.FixtureRequest) -> Waiter:
    return request.param


def ok(status: str, **extra: object) -> httpx.Response:
    return httpx.Response(200, json=row(status, **extra))


def test_failed_error_message_is_redacted(waiter: Waiter, api: respx.MockRouter) -> None:
    message = f"Invalid API key {KEY} for this model"
    api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[ok("processing"), ok("failed", error_message=message)])
    with pytest.raises(GenerationFailed) as info:
        waiter(GID, **FAST)
    err = info.value
    assert type(err) is GenerationFailed
    assert (err.generation_id, err.status) == (GID, "failed")
    assert err.error_message == "Invalid API key *** for this model"
    assert str(err) == f"Generation {GID} failed: Invalid API key *** for this model"
    assert KEY not in exception_text(err)


def test_cancelled_message_is_redacted(waiter: Waiter, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(return_value=ok("cancelled", error_message=f"by {KEY}"))
    with pytest.raises(GenerationCancelled) as info:
        waiter(GID, **FAST)
    assert info.value.error_message == "by ***"


def test_unknown_terminal_status_fails(waiter: Waiter, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(return_value=ok("expired"))
    with pytest.raises(GenerationFailed) as info:
        waiter(GID, **FAST)
    assert type(info.value) is GenerationFailed and info.value.status == "expired"


def test_status_changes_reported_once_each(waiter: Waiter, api: respx.MockRouter) -> None:
    done = ok("succeeded", result_url="https://cdn.test/v.mp4")
    route = api.get(url(f"/ai/queue/{GID}")).mock(
        side_effect=[ok("queued"), ok("processing"), ok("processing"), done]
    )
    seen: list[str] = []
    result = waiter(GID, on_status=lambda g: seen.append(g.status), **FAST)
    assert result.result_url == "https://cdn.test/v.mp4"
    assert seen == ["queued", "processing", "succeeded"]
    assert route.call_count == 4


def history(api: respx.MockRouter, *answers: httpx.Response) -> respx.Route:
    """Mock the history lookup: these answers in turn, then 404 for ever."""
    answers_left = list(answers)
    return api.get(url(f"/ai/generations/{GID}")).mock(
        side_effect=lambda request: answers_left.pop(0) if answers_left else not_found()
    )


def in_history(status: str, **extra: object) -> httpx.Response:
    """The documented detail answer of ``GET /ai/generations/{id}``."""
    body = {"generation": row(status, cost="2.00", username="me", **extra), "status": "success"}
    return httpx.Response(200, json={**body, "status_message": "resource_found"})


def test_early_404_is_read_after_write_lag(waiter: Waiter, api: respx.MockRouter) -> None:
    route = api.get(url(f"/ai/queue/{GID}")).mock(
        side_effect=[not_found(), not_found(), ok("processing"), ok("succeeded")]
    )
    lookups = history(api)
    assert waiter(GID, **FAST).status == "succeeded"
    assert route.call_count == 4
    assert lookups.call_count == 2  # each 404 asked the history, which did not know it yet either


def test_404_after_the_row_was_seen_is_raised(waiter: Waiter, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[ok("processing"), not_found()])
    lookups = history(api)
    with pytest.raises(NotFoundError) as info:
        waiter(GID, **FAST)
    assert lookups.call_count == 1
    assert str(info.value) == (
        f"The service answered 404 resource_not_found: Generation {GID} is gone: the queue row answered 404 "
        "after it was seen processing; no completion event was received (none subscribed); the history "
        "lookup answered 404 resource_not_found"
    )
    assert isinstance(info.value.__cause__, NotFoundError)  # the history's own answer


def test_vanished_row_is_found_in_the_history(waiter: Waiter, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[ok("processing"), not_found()])
    lookups = history(api, in_history("succeeded", result_url="https://cdn.test/v.mp4"))
    seen: list[str] = []
    result = waiter(GID, on_status=lambda g: seen.append(g.status), **FAST)
    assert (result.status, result.result_url) == ("succeeded", "https://cdn.test/v.mp4")
    assert result.extra_fields["cost"] == "2.00"
    assert seen == ["processing", "succeeded"] and lookups.call_count == 1


def test_vanished_row_failed_in_the_history(waiter: Waiter, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[ok("processing"), not_found()])
    history(api, in_history("failed", error_message=f"Insufficient credits for {KEY}"))
    with pytest.raises(GenerationFailed) as info:
        waiter(GID, **FAST)
    assert info.value.error_message == "Insufficient credits for ***"


def test_history_still_active_polls_on(waiter: Waiter, api: respx.MockRouter) -> None:
    route = api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[not_found(), ok("succeeded")])
    history(api, in_history("processing"))
    assert waiter(GID, **FAST).status == "succeeded"
    assert route.call_count == 2


def test_history_transient_error_is_tolerated(waiter: Waiter, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[ok("processing"), not_found(), not_found()])
    lookups = history(api, httpx.Response(503), in_history("succeeded", result_url="https://cdn.test/v.mp4"))
    assert waiter(GID, **FAST).result_url == "https://cdn.test/v.mp4"
    assert lookups.call_count == 2


def test_history_refusal_is_named(waiter: Waiter, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[ok("queued"), not_found()])
    denied = {"error": {"type": "forbidden", "title": "Forbidden", "detail": "history is off"}}
    history(api, httpx.Response(403, json=denied))
    with pytest.raises(
        NotFoundError,
        match=r"after it was seen queued; .* history lookup answered 403 forbidden: history is off",
    ):
        waiter(GID, **FAST)


@pytest.mark.parametrize("poller", [via_client_wait, via_async_wait], ids=["client_wait", "async_wait"])
def test_unknown_past_the_grace_names_all_three(poller: Waiter, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(return_value=not_found())
    history(api)
    with pytest.raises(NotFoundError, match="answered 404 for 0 s and was never seen; no completion event"):
        poller(GID, not_found_grace=0.05, **FAST)


def test_transient_errors_tolerated(waiter: Waiter, api: respx.MockRouter) -> None:
    route = api.get(url(f"/ai/queue/{GID}")).mock(
        side_effect=[
            ok("processing"),
            httpx.Response(503),
            httpx.ConnectError("refused"),
            httpx.Response(429),
            ok("succeeded"),
        ]
    )
    assert waiter(GID, **FAST).status == "succeeded"
    assert route.call_count == 5


def test_transient_until_deadline_is_a_timeout_chained(waiter: Waiter, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(GenerationTimeout) as info:
        waiter(GID, timeout=0.2, poll_interval=0.02)
    assert info.value.generation_id == GID and info.value.last_status is None
    assert isinstance(info.value.__cause__, SeedanceConnectionError)


def test_deadline_keeps_last_status(waiter: Waiter, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(return_value=ok("processing"))
    with pytest.raises(GenerationTimeout) as info:
        waiter(GID, timeout=0.2, poll_interval=0.02)
    assert info.value.last_status == "processing" and info.value.waited >= 0.2
    assert info.value.__cause__ is None


def test_permanent_error_raised_at_once(waiter: Waiter, api: respx.MockRouter) -> None:
    route = api.get(url(f"/ai/queue/{GID}")).mock(return_value=httpx.Response(401))
    with pytest.raises(AuthenticationError):
        waiter(GID, **FAST)
    assert route.call_count == 1


def test_one_not_found_grace_default() -> None:
    defaults = {
        "SeedanceClient.wait": inspect.signature(SeedanceClient.wait).parameters["not_found_grace"].default,
        "AsyncSeedanceClient.wait": inspect.signature(AsyncSeedanceClient.wait)
        .parameters["not_found_grace"]
        .default,
        "WaitTracker": inspect.signature(WaitTracker).parameters["not_found_grace"].default,
    }
    assert all(value is DEFAULT_NOT_FOUND_GRACE_SECONDS for value in defaults.values()), defaults
    with SeedanceClient(KEY, base_url=BASE) as client:
        assert client._wait_tracker(GID, 1.0, 1.0).not_found_grace == DEFAULT_NOT_FOUND_GRACE_SECONDS


def test_wait_for_completion_uses_the_clients_tracker(
    api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(return_value=ok("succeeded"))
    made: list[WaitTracker] = []
    with SeedanceClient(KEY, base_url=BASE) as client:
        original = client._wait_tracker

        def spy(*args: Any, **kwargs: Any) -> WaitTracker:
            made.append(original(*args, **kwargs))
            return made[-1]

        monkeypatch.setattr(client, "_wait_tracker", spy)
        wait_for_completion(client, GID, timeout=7.0, poll_interval=0.5)
    [tracker] = made
    assert (tracker.generation_id, tracker.poll_interval, tracker.seen) == (GID, 0.5, True)
    assert tracker.last_status == "succeeded"


# --------------------------------------------------------------------------- over real HTTP


def test_failed_generation_redacted_alike_over_http(oxen: FakeOxen) -> None:
    """Against the uvicorn fake: the first poll answers 429, the third ends ``failed`` with the key."""
    with SeedanceClient(KEY, base_url=oxen.api_base) as client:
        first, second = client.enqueue({"prompt": "A boat", "num_generations": 2})
        for gid in (first.generation_id, second.generation_id):
            oxen.failures[gid] = f"Quota exceeded for key {KEY}"
        errors: list[GenerationFailed] = []
        for wait in (
            lambda: client.wait(first.generation_id, poll_interval=0.05, timeout=10),
            lambda: wait_for_completion(client, second.generation_id, poll_interval=0.05, timeout=10),
        ):
            with pytest.raises(GenerationFailed) as info:
                wait()
            errors.append(info.value)
    assert [e.error_message for e in errors] == ["Quota exceeded for key ***"] * 2
    assert [e.status for e in errors] == ["failed", "failed"]
    assert [type(e) for e in errors] == [GenerationFailed, GenerationFailed]
    for error in errors:
        assert KEY not in exception_text(error)
    assert oxen.polls == {first.generation_id: 3, second.generation_id: 3}
