"""Completion events of the Oxen events stream (``GET /api/events``, server-sent events).

The stream is user-scoped and may carry other event names; keep-alive comments (``: keep-alive``)
arrive every 15 s. Only ``media_generation_completed`` matters here: :func:`parse_event` turns one
into a :class:`~seedance_prefect.models.CompletionEvent` and returns None for everything else, so
a malformed event is logged and skipped rather than ending the stream.

:class:`EventStream` and :class:`AsyncEventStream` wrap a connection (made by the client's
``events()``) as a closable iterator and context manager.

Semantics to know (contract §3.6):

- **No replay.** Only connected subscribers get events: connect *before* enqueuing, or you may
  miss a completion. The sync ``client.events()`` connects before it returns; the async stream
  connects when awaited or entered (``stream = await client.events()`` /
  ``async with client.events() as stream``).
- **No automatic reconnect.** When the connection drops, iteration raises
  :class:`~seedance_prefect.errors.SeedanceConnectionError` (or ends, if the service closed the
  stream cleanly). Open a new stream, then poll ``get()`` once for each generation still pending:
  events sent while you were away are lost.
- Cancelled generations emit no event; only ``succeeded`` and ``failed`` do.

Example:
    >>> from httpx_sse import ServerSentEvent
    >>> events = [ServerSentEvent("deployment_updated", "{}"),
    ...           ServerSentEvent("media_generation_completed", '{"generation_id": "g1", "status": "failed",'
    ...                           ' "media_type": "video", "error": "Insufficient credits"}')]
    >>> [(e.generation_id, e.error) for e in iter_completion_events(events)]
    [('g1', 'Insufficient credits')]
"""

from __future__ import annotations

import json
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Generator,
    Iterable,
)
from contextlib import AsyncExitStack, ExitStack
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent
from pydantic import ValidationError

from ..errors import SeedanceConnectionError
from ..models import CompletionEvent

__all__ = [
    "COMPLETION_EVENT",
    "AsyncEventStream",
    "EventStream",
    "aiter_completion_events",
    "iter_completion_events",
    "parse_event",
]

logger = logging.getLogger("seedance_prefect.client.events")

#: The SSE event name of a finished generation.
COMPLETION_EVENT = "media_generation_completed"


def parse_event(sse: ServerSentEvent) -> CompletionEvent | None:
    """Parse one server-sent event into a :class:`CompletionEvent`, or None when it is not one.

    Other event names return None quietly; a completion event whose data is not a JSON object with
    a ``generation_id`` and a ``status`` is logged as a warning and returns None.

    Args:
        sse: An event as decoded by httpx-sse.

    Returns:
        The completion event, or None.

    Example:
        >>> parse_event(ServerSentEvent("media_generation_completed",
        ...     '{"generation_id": "g1", "status": "succeeded", "media_type": "video", "url": "https://x/v.mp4"}')).url
        'https://x/v.mp4'
        >>> parse_event(ServerSentEvent("media_generation_completed", "{not json")) is None
        True
        >>> parse_event(ServerSentEvent("message", "hello")) is None
        True
    """
    if sse.event != COMPLETION_EVENT:
        logger.debug("Ignoring server-sent event %r", sse.event)
        return None
    try:
        data = json.loads(sse.data)
    except ValueError:
        logger.warning("Skipping %s event with malformed data: %.200r", COMPLETION_EVENT, sse.data)
        return None
    if not isinstance(data, dict):
        logger.warning("Skipping %s event whose data is not an object: %.200r", COMPLETION_EVENT, sse.data)
        return None
    try:
        return CompletionEvent.model_validate({**data, "event": sse.event})
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        logger.warning(
            "Skipping %s event (%s: %s): %.200r",
            COMPLETION_EVENT,
            ".".join(map(str, first["loc"])),
            first["msg"],
            sse.data,
        )
        return None


def iter_completion_events(
    source: EventSource | Iterable[ServerSentEvent],
) -> Generator[CompletionEvent, None, None]:
    """Yield the completion events of an event source (or of any iterable of events).

    Args:
        source: An ``httpx_sse.EventSource`` or an iterable of ``ServerSentEvent``.

    Example:
        >>> list(iter_completion_events([ServerSentEvent("ping", "")]))
        []
    """
    events = source.iter_sse() if isinstance(source, EventSource) else source
    for sse in events:
        event = parse_event(sse)
        if event is not None:
            yield event


async def aiter_completion_events(
    source: EventSource | AsyncIterable[ServerSentEvent],
) -> AsyncGenerator[CompletionEvent, None]:
    """Async twin of :func:`iter_completion_events`.

    Example:
        >>> import asyncio
        >>> async def demo():
        ...     async def events():
        ...         yield ServerSentEvent(COMPLETION_EVENT, '{"generation_id": "g1", "status": "succeeded"}')
        ...     return [e.generation_id async for e in aiter_completion_events(events())]
        >>> asyncio.run(demo())
        ['g1']
    """
    events = source.aiter_sse() if isinstance(source, EventSource) else source
    async for sse in events:
        event = parse_event(sse)
        if event is not None:
            yield event


def _broken(exc: httpx.RequestError) -> SeedanceConnectionError:
    return SeedanceConnectionError(
        f"The events stream broke: {type(exc).__name__}: {exc or 'no details'}; reconnect, then poll "
        "pending generations once (events are not replayed)",
        method="GET",
    )


class EventStream:
    """An open subscription to completion events: an iterator and a context manager.

    Made (and already connected) by :meth:`SeedanceClient.events`. On its own it connects on
    :meth:`connect`, when entered or on the first ``next()``; it disconnects on :meth:`close` or on
    leaving the ``with`` block.

    Args:
        opener: Opens the connection, registers its clean-up on the given ``ExitStack`` and returns
            the raw events.

    Example:
        >>> stream = EventStream(lambda stack: [ServerSentEvent(COMPLETION_EVENT,
        ...                                     '{"generation_id": "g1", "status": "succeeded"}')])
        >>> with stream:
        ...     [event.status for event in stream]
        ['succeeded']
        >>> stream.closed
        True
    """

    def __init__(self, opener: Callable[[ExitStack], Iterable[ServerSentEvent]]) -> None:
        self._opener = opener
        self._stack: ExitStack | None = None
        self._events: Generator[CompletionEvent, None, None] | None = None
        self.closed = False

    def connect(self) -> EventStream:
        """Open the connection now (idempotent): do this before enqueuing."""
        if self.closed:
            raise RuntimeError("This event stream is closed; open a new one with client.events()")
        if self._events is None:
            stack = ExitStack()
            try:
                events = iter_completion_events(self._opener(stack))
            except BaseException:
                stack.close()
                raise
            stack.callback(events.close)
            self._stack, self._events = stack, events
        return self

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> CompletionEvent:
        events = self.connect()._events
        assert events is not None
        try:
            return next(events)
        except StopIteration:
            self.close()
            raise
        except httpx.RequestError as exc:
            self.close()
            raise _broken(exc) from exc

    def close(self) -> None:
        """Disconnect; further iteration raises ``RuntimeError``. Safe to call twice."""
        self.closed = True
        if self._stack is not None:
            stack, self._stack = self._stack, None
            stack.close()

    def __enter__(self) -> EventStream:
        return self.connect()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncEventStream:
    """Async twin of :class:`EventStream`: ``await`` it or ``async with`` to connect; ``async for``.

    Example:
        >>> import asyncio
        >>> async def opener(stack):
        ...     async def events():
        ...         yield ServerSentEvent(COMPLETION_EVENT, '{"generation_id": "g1", "status": "failed"}')
        ...     return events()
        >>> async def demo():
        ...     async with AsyncEventStream(opener) as stream:
        ...         return [event.status async for event in stream]
        >>> asyncio.run(demo())
        ['failed']
    """

    def __init__(self, opener: Callable[[AsyncExitStack], Awaitable[AsyncIterable[ServerSentEvent]]]) -> None:
        self._opener = opener
        self._stack: AsyncExitStack | None = None
        self._events: AsyncGenerator[CompletionEvent, None] | None = None
        self.closed = False

    async def connect(self) -> AsyncEventStream:
        """Open the connection now (idempotent): do this before enqueuing."""
        if self.closed:
            raise RuntimeError("This event stream is closed; open a new one with client.events()")
        if self._events is None:
            stack = AsyncExitStack()
            try:
                events = aiter_completion_events(await self._opener(stack))
            except BaseException:
                await stack.aclose()
                raise
            stack.push_async_callback(events.aclose)
            self._stack, self._events = stack, events
        return self

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> CompletionEvent:
        events = (await self.connect())._events
        assert events is not None
        try:
            return await anext(events)
        except StopAsyncIteration:
            await self.aclose()
            raise
        except httpx.RequestError as exc:
            await self.aclose()
            raise _broken(exc) from exc

    async def aclose(self) -> None:
        """Disconnect; further iteration raises ``RuntimeError``. Safe to call twice."""
        self.closed = True
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    def __await__(self) -> Generator[Any, None, AsyncEventStream]:
        return self.connect().__await__()

    async def __aenter__(self) -> AsyncEventStream:
        return await self.connect()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
