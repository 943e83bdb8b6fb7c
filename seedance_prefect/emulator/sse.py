"""``GET /api/events``: a Server-Sent Events stream of ``media_generation_completed`` events."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import Receive, Scope, Send

from seedance_prefect.emulator.state import EventBroker

KEEPALIVE = b": keep-alive\n\n"


class EventStreamResponse:
    """An ASGI response streaming the broker's events until the client leaves or the server stops.

    The subscriber is registered before the response headers are sent, so a client that has received the
    headers is guaranteed to see every later event. ``: keep-alive`` comments are sent every ``keepalive``
    seconds of silence.

    Example:
        >>> resp = EventStreamResponse(EventBroker(), keepalive=15.0)
        >>> resp.keepalive
        15.0
    """

    def __init__(self, broker: EventBroker, keepalive: float) -> None:
        """Create the response.

        Args:
            broker: Source of events.
            keepalive: Seconds between keep-alive comments.
        """
        self.broker = broker
        self.keepalive = keepalive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the stream (ASGI)."""
        queue = self.broker.subscribe()
        disconnected = asyncio.ensure_future(self._wait_disconnect(receive))
        closing = asyncio.ensure_future(self.broker.closing.wait())
        getter: asyncio.Future[str] | None = None
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, disconnected, closing},
                    timeout=self.keepalive,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if disconnected in done:
                    return
                if getter in done:
                    chunk = getter.result().encode()
                    getter = None
                elif closing in done:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                else:
                    chunk = KEEPALIVE
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:
            return  # client went away mid-write
        finally:
            self.broker.unsubscribe(queue)
            for fut in (getter, disconnected, closing):
                if fut is not None and not fut.done():
                    fut.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fut

    @staticmethod
    async def _wait_disconnect(receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
