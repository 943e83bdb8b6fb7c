"""Completion events as data: the hub remembers them, and they decide when the row answers 404.

An older queue forgets a row once it is terminal (contract §3.3); the result then reaches only the
subscribers of the event stream, or the history lookup. Unit tests feed a hub scripted events
(REST mocked with respx); the last tests run the client against the emulator's vanishing rows.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import respx

from seedance_prefect.client import AsyncSeedanceClient, SeedanceClient, sha256_file
from seedance_prefect.client._wait import EVENT_GRACE_SECONDS
from seedance_prefect.client.completion import CompletionHub, wait_for_completion
from seedance_prefect.emulator import EmulatorConfig, RunningEmulator, run_emulator
from seedance_prefect.errors import GenerationFailed, NotFoundError
from seedance_prefect.models import CompletionEvent, Generation, SeedanceRequest
from tests.client.clientkit import BASE, GID, KEY, not_found, row, url
from tests.client.fakeoxenkit import wait_for

URL = "https://cdn.test/v.mp4?sig=abc"


class Feed:
    """Stands in for the hub's client: ``events()`` yields what the test pushes, until None."""

    def __init__(self) -> None:
        self.queue: queue.Queue[CompletionEvent | None] = queue.Queue()

    def __call__(self) -> Feed:
        return self

    def __enter__(self) -> Feed:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def events(self) -> Iterator[CompletionEvent]:
        while (event := self.queue.get()) is not None:
            yield event

    def push(self, generation_id: str, status: str, **fields: Any) -> None:
        self.queue.put(CompletionEvent(generation_id=generation_id, status=status, **fields))


@pytest.fixture
def feed() -> Iterator[Feed]:
    feed = Feed()
    yield feed
    feed.queue.put(None)


@pytest.fixture
def hub(feed: Feed) -> CompletionHub:
    hub = CompletionHub(feed)
    assert hub.ensure_connected(5.0)
    return hub


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as executor:
        yield executor


def ok(status: str, **extra: object) -> httpx.Response:
    return httpx.Response(200, json=row(status, **extra))


def waiting(pool: ThreadPoolExecutor, hub: CompletionHub, **kwargs: Any) -> Future[Generation]:
    """``wait_for_completion`` of GID on a thread (the test plays the service meanwhile)."""

    def run() -> Generation:
        with SeedanceClient(KEY, base_url=BASE, max_retries=0) as client:
            return wait_for_completion(client, GID, hub=hub, **kwargs)

    return pool.submit(run)


def test_succeeded_event_decides_when_the_row_vanished(
    api: respx.MockRouter, feed: Feed, hub: CompletionHub, pool: ThreadPoolExecutor
) -> None:
    polls = api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[ok("processing"), not_found()])
    lookups = api.get(url(f"/ai/generations/{GID}")).mock(return_value=not_found())
    started = time.monotonic()
    done = waiting(pool, hub, timeout=30, poll_interval=20)
    wait_for(lambda: polls.call_count == 1, what="the first poll")
    feed.push(GID, "succeeded", media_type="video", model="m", url=URL)
    result = done.result(10)
    assert (result.generation_id, result.status, result.result_url) == (GID, "succeeded", URL)
    assert result.model_name == "m"
    assert time.monotonic() - started < 5  # woken by the event, not by the safety poll
    assert polls.call_count == 2 and lookups.call_count == 0


def test_failed_event_decides_with_its_error_redacted(
    api: respx.MockRouter, feed: Feed, hub: CompletionHub, pool: ThreadPoolExecutor
) -> None:
    polls = api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[ok("processing"), not_found()])
    done = waiting(pool, hub, timeout=30, poll_interval=20)
    wait_for(lambda: polls.call_count == 1, what="the first poll")
    feed.push(GID, "failed", error=f"Insufficient credits ({KEY})")
    with pytest.raises(GenerationFailed) as info:
        done.result(10)
    assert (info.value.status, info.value.error_message) == ("failed", "Insufficient credits (***)")


def test_an_event_before_the_waiter_is_remembered(
    api: respx.MockRouter, feed: Feed, hub: CompletionHub
) -> None:
    feed.push(GID, "succeeded", url=URL)  # e.g. a generation that ended while the flow went on
    wait_for(lambda: hub.last_event(GID) is not None, what="the event to reach the hub")
    polls = api.get(url(f"/ai/queue/{GID}")).mock(return_value=not_found())
    lookups = api.get(url(f"/ai/generations/{GID}")).mock(return_value=not_found())
    with SeedanceClient(KEY, base_url=BASE, max_retries=0) as client:
        result = wait_for_completion(client, GID, hub=hub, timeout=30, poll_interval=20)
    assert result.result_url == URL
    assert (polls.call_count, lookups.call_count) == (1, 0)  # never seen, but the event decides at once


def test_the_row_decides_while_it_exists(api: respx.MockRouter, feed: Feed, hub: CompletionHub) -> None:
    feed.push(GID, "succeeded", url=URL)
    wait_for(lambda: hub.last_event(GID) is not None, what="the event to reach the hub")
    api.get(url(f"/ai/queue/{GID}")).mock(return_value=ok("succeeded", result_url="https://row.test/v.mp4"))
    with SeedanceClient(KEY, base_url=BASE, max_retries=0) as client:
        result = wait_for_completion(client, GID, hub=hub, timeout=30, poll_interval=20)
    assert result.result_url == "https://row.test/v.mp4" and result.prompt == "@Image1 waves"


def test_an_event_on_its_way_is_waited_for(
    api: respx.MockRouter, feed: Feed, hub: CompletionHub, pool: ThreadPoolExecutor
) -> None:
    polls = api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[ok("processing")] + [not_found()] * 50)
    lookups = api.get(url(f"/ai/generations/{GID}")).mock(return_value=not_found())
    done = waiting(pool, hub, timeout=30, poll_interval=0.05)
    wait_for(lambda: lookups.call_count >= 1, what="the history lookup")
    time.sleep(EVENT_GRACE_SECONDS / 4)  # the 404 came first; the event is a moment behind
    feed.push(GID, "succeeded", url=URL)
    assert done.result(10).result_url == URL
    assert polls.call_count >= 2


def test_neither_row_event_nor_history_names_all_three(
    api: respx.MockRouter, hub: CompletionHub, pool: ThreadPoolExecutor
) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[ok("processing")] + [not_found()] * 50)
    lookups = api.get(url(f"/ai/generations/{GID}")).mock(return_value=not_found())
    started = time.monotonic()
    done = waiting(pool, hub, timeout=30, poll_interval=0.05)
    with pytest.raises(NotFoundError) as info:
        done.result(15)
    assert EVENT_GRACE_SECONDS <= time.monotonic() - started < 10
    assert str(info.value).endswith(
        f"Generation {GID} is gone: the queue row answered 404 after it was seen processing; "
        "no completion event was received; the history lookup answered 404 resource_not_found"
    )
    assert lookups.call_count >= 2


def test_events_of_other_generations_do_not_decide(
    api: respx.MockRouter, feed: Feed, hub: CompletionHub, pool: ThreadPoolExecutor
) -> None:
    polls = api.get(url(f"/ai/queue/{GID}")).mock(side_effect=[ok("processing")] + [not_found()] * 50)
    api.get(url(f"/ai/generations/{GID}")).mock(return_value=not_found())
    feed.push("another-generation", "succeeded", url=URL)
    done = waiting(pool, hub, timeout=30, poll_interval=0.05)
    with pytest.raises(NotFoundError, match="no completion event was received"):
        done.result(15)
    assert polls.call_count >= 2


def test_memory_is_bounded_oldest_first(feed: Feed) -> None:
    hub = CompletionHub(feed, memory=3)
    assert hub.ensure_connected(5.0)
    for n in range(4):
        feed.push(f"g{n}", "succeeded", url=f"https://cdn.test/{n}.mp4")
    feed.push("g1", "failed", error="late")  # g1 is the newest again
    feed.push("g4", "succeeded")
    wait_for(lambda: hub.last_event("g4") is not None, what="the last event")
    kept = {gid: (e.status if (e := hub.last_event(gid)) else None) for gid in ("g0", "g1", "g2", "g3", "g4")}
    assert kept == {"g0": None, "g1": "failed", "g2": None, "g3": "succeeded", "g4": "succeeded"}
    with pytest.raises(ValueError, match="memory"):
        CompletionHub(feed, memory=0)


def test_a_subscription_after_its_event_is_woken_at_once(feed: Feed, hub: CompletionHub) -> None:
    feed.push(GID, "succeeded", url=URL)
    wait_for(lambda: hub.last_event(GID) is not None, what="the event to reach the hub")
    sub = hub.subscribe(GID)
    try:
        assert sub.wake.is_set()
        assert not hub.subscribe("other").wake.is_set()
    finally:
        hub.unsubscribe(sub)


def test_ensure_connected_gives_up_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    def unreachable() -> Any:
        raise ConnectionError("no route to host")

    hub = CompletionHub(unreachable)
    with caplog.at_level(logging.WARNING, logger="seedance_prefect.client.completion"):
        started = time.monotonic()
        assert hub.ensure_connected(0.2) is False
        assert hub.ensure_connected(5.0) is False  # no second wait while the stream is still down
        assert time.monotonic() - started < 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "going on with polling" in warnings[0]


# -- the history lookup ---------------------------------------------------------------------------------


def test_history_unwraps_the_documented_detail(client: SeedanceClient, api: respx.MockRouter) -> None:
    detail = {"generation": row("succeeded", result_url=URL, cost="1.60"), "status": "success"}
    route = api.get(url("/ai/generations/a%2Fb")).mock(return_value=httpx.Response(200, json=detail))
    api.get(url("/ai/generations/bare")).mock(
        return_value=httpx.Response(200, json=row("failed", gid="bare"))
    )
    found = client.history("a/b")
    assert (found.status, found.result_url, found.extra_fields["cost"]) == ("succeeded", URL, "1.60")
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"
    assert client.history("bare").status == "failed"  # a bare row is read too
    with pytest.raises(ValueError, match="generation_id"):
        client.history(" ")


async def test_async_history(aclient: AsyncSeedanceClient, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/generations/{GID}")).mock(
        side_effect=[httpx.Response(200, json={"generation": row("cancelled")}), not_found()]
    )
    assert (await aclient.history(GID)).status == "cancelled"
    with pytest.raises(NotFoundError):
        await aclient.history(GID)


# -- against the emulator's vanishing rows (real HTTP) --------------------------------------------------


@pytest.fixture(scope="module")
def vanishing() -> Iterator[RunningEmulator]:
    with run_emulator(EmulatorConfig(latency=0.3, keepalive=0.5, vanish_terminal=True)) as emu:
        yield emu


@pytest.fixture(scope="module")
def vanishing_no_history() -> Iterator[RunningEmulator]:
    with run_emulator(EmulatorConfig(latency=0.3, keepalive=0.5, vanish_terminal=True, history=False)) as emu:
        yield emu


REQUEST = SeedanceRequest(prompt="A lantern on a quiet pier", duration=4, resolution="480p")
HISTORY_ROUTE = "GET /api/ai/generations/{generation_id}"


def _hub_of(emu: RunningEmulator) -> tuple[CompletionHub, Callable[[], SeedanceClient]]:
    def factory() -> SeedanceClient:
        return SeedanceClient(KEY, base_url=emu.base_url)

    return CompletionHub.for_account(emu.base_url, KEY, factory), factory


def _held_until_polled(emu: RunningEmulator, client: SeedanceClient, hub: CompletionHub) -> Generation:
    """Enqueue while the emulator holds finished work; release once the waiter saw the row running."""
    emu.hold(True)
    try:
        [queued] = client.enqueue(REQUEST)
        with ThreadPoolExecutor(1) as executor:
            done = executor.submit(
                wait_for_completion, client, queued.generation_id, hub=hub, timeout=60, poll_interval=0.5
            )
            wait_for(lambda: emu.stats()["generations"][queued.generation_id]["polls"] >= 1, 10, "a poll")
            emu.hold(False)
            return done.result(30)
    finally:
        emu.hold(False)


def test_emulator_result_from_the_event(vanishing: RunningEmulator, tmp_path: Any) -> None:
    vanishing.reset()
    hub, factory = _hub_of(vanishing)
    assert hub.ensure_connected(5.0)
    with factory() as client:
        result = _held_until_polled(vanishing, client, hub)
        with pytest.raises(NotFoundError):  # the row is gone
            client.get(result.generation_id)
        path = client.download(result, tmp_path / "v.mp4")
    stats = vanishing.stats()
    assert stats["requests_by_route"].get(HISTORY_ROUTE, 0) == 0
    assert sha256_file(path).sha256 == stats["generations"][result.generation_id]["result"]["sha256"]


def test_emulator_lost_event_found_in_the_history(vanishing: RunningEmulator) -> None:
    vanishing.reset()
    vanishing.set_faults("cut_event=1")
    hub, factory = _hub_of(vanishing)
    try:
        assert hub.ensure_connected(5.0)
        with factory() as client:
            result = _held_until_polled(vanishing, client, hub)
    finally:
        vanishing.set_faults(None)
    stats = vanishing.stats()
    assert stats["faults"]["cut_event"] >= 1
    assert stats["requests_by_route"][HISTORY_ROUTE] >= 1
    assert result.status == "succeeded" and result.extra_fields["cost"] == "1.60"
    assert result.result_url == stats["generations"][result.generation_id]["result"]["url"]


def test_emulator_nothing_left_fails_naming_what_was_tried(vanishing_no_history: RunningEmulator) -> None:
    emu = vanishing_no_history
    emu.reset()
    emu.set_faults("cut_event=1")
    hub, factory = _hub_of(emu)
    try:
        assert hub.ensure_connected(5.0)
        started = time.monotonic()
        with factory() as client, pytest.raises(NotFoundError) as info:
            _held_until_polled(emu, client, hub)
        assert time.monotonic() - started < 30
    finally:
        emu.set_faults(None)
    message = str(info.value)
    assert "the queue row answered 404 after it was seen processing" in message
    assert "no completion event was received" in message
    assert message.endswith("the history lookup answered 404 resource_not_found")


def test_async_wait_uses_the_history(vanishing: RunningEmulator) -> None:
    vanishing.reset()

    async def run() -> Generation:
        async with AsyncSeedanceClient(KEY, base_url=vanishing.base_url) as client:
            [queued] = await client.enqueue(REQUEST)
            return await client.wait(queued.generation_id, poll_interval=1.0, timeout=30)

    result = asyncio.run(run())  # polls only: the first poll after the end gets 404, the history answers
    assert result.status == "succeeded"
    assert vanishing.stats()["requests_by_route"][HISTORY_ROUTE] >= 1
