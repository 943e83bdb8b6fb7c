"""The outermost ASGI layer: route accounting, bearer auth and fault injection.

It sits outside Starlette so it can reach the server's connection: ``reset``/``drop_enqueue`` abort the TCP
connection (RST) without any HTTP answer, ``truncate`` cuts a download mid-body and ``cut_event`` an event
stream mid-event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seedance_prefect.emulator.envelopes import json_response, structured_error
from seedance_prefect.emulator.state import EVENT_NAME, EmulatorState

ENQUEUE_ROUTE = "POST /api/ai/queue"
POLL_ROUTE = "GET /api/ai/queue/{generation_id}"
RESULT_ROUTE = "GET /api/repos/{namespace}/{repo}/files/{path:path}"
UPLOAD_ROUTE = "PUT /api/repos/{namespace}/{repo}/file/{branch}/{path:path}"
EVENTS_ROUTE = "GET /api/events"
COMPLETION_CHUNK = f"event: {EVENT_NAME}\n".encode()


def route_key(router: Router, scope: Scope) -> tuple[str, dict[str, Any]]:
    """Return ``"METHOD /template"`` and path params of the route matching ``scope``.

    Args:
        router: The Starlette router.
        scope: The ASGI scope.

    Returns:
        ``(key, path_params)``; key is ``"METHOD <unmatched>"`` when no route matches.
    """
    method = scope.get("method", "GET")
    partial: tuple[str, dict[str, Any]] | None = None
    for route in router.routes:
        match, child = route.matches(scope)
        path = getattr(route, "path", "?")
        if match is Match.FULL:
            return f"{method} {path}", child.get("path_params", {})
        if match is Match.PARTIAL and partial is None:
            partial = (f"{method} {path}", child.get("path_params", {}))
    return partial or (f"{method} <unmatched>", {})


def needs_auth(method: str, path: str) -> bool:
    """Tell whether a request needs ``Authorization: Bearer``.

    Args:
        method: HTTP method.
        path: Request path.

    Returns:
        True for ``/api/ai/*``, ``/api/events`` and repository uploads (not for downloads).

    Example:
        >>> needs_auth("GET", "/api/ai/queue"), needs_auth("GET", "/api/repos/a/b/file/main/x.png")
        (True, False)
    """
    if path.startswith("/api/ai/") or path == "/api/events":
        return True
    return path.startswith("/api/repos/") and method not in ("GET", "HEAD")


def check_bearer(headers: dict[bytes, bytes], api_key: str | None) -> str | None:
    """Validate the bearer token; never include the token in the answer.

    Args:
        headers: Lower-cased request headers.
        api_key: Required key, or None for any non-empty token.

    Returns:
        None when accepted, else the ``detail`` of the 401 answer.

    Example:
        >>> check_bearer({b"authorization": b"Bearer abc"}, None) is None
        True
        >>> check_bearer({}, None)
        'Missing API key: send the header Authorization: Bearer <API key>'
    """
    raw = headers.get(b"authorization", b"").decode("latin-1").strip()
    if not raw:
        return "Missing API key: send the header Authorization: Bearer <API key>"
    scheme, _, token = raw.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer":
        return "Malformed Authorization header: expected the Bearer scheme"
    if not token:
        return "Missing API key: send the header Authorization: Bearer <API key>"
    if api_key is not None and not hmac.compare_digest(token.encode(), api_key.encode()):
        return "Invalid API key"
    return None


async def abort_connection(send: Send, *, reset: bool = True) -> bool:
    """Drop the client connection: a TCP reset (no HTTP answer), or a plain close after what was sent.

    Works with uvicorn's h11/httptools protocols (the ASGI ``send`` is a bound method of the request cycle,
    which holds the transport).

    Args:
        send: The server's original ASGI ``send``.
        reset: True = RST right away (``reset``, ``drop_enqueue``); False = flush then FIN (``truncate``, so
            the client gets the partial body before the end of the stream).

    Returns:
        True if the connection was dropped; False if the server does not expose its transport.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    # let connection_lost run so the server neither answers nor complains about an unfinished response
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.0
    while not getattr(cycle, "disconnected", True) and loop.time() < deadline:
        await asyncio.sleep(0.001)
    return True


class Gateway:
    """Raw ASGI middleware in front of the Starlette router."""

    def __init__(self, app: ASGIApp, router: Router, state: EmulatorState) -> None:
        """Wrap ``app``.

        Args:
            app: The Starlette application.
            router: Its router (for route templates).
            state: Emulator state (config, injector, counters).
        """
        self.app = app
        self.router = router
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        method, path = scope["method"], scope["path"]
        key, params = route_key(self.router, scope)
        state.routes[key] += 1
        extra = state.config.extra_fields

        async def answer(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> None:
            await json_response(body, status, extra_fields=extra, headers=headers)(scope, receive, send)

        if needs_auth(method, path):
            headers = {k.lower(): v for k, v in scope["headers"]}
            problem = check_bearer(headers, state.config.api_key)
            if problem is not None:
                await answer(
                    structured_error("unauthenticated", problem), 401, {"WWW-Authenticate": "Bearer"}
                )
                return

        injector = state.injector
        if path.startswith("/api/ai/"):
            kind = injector.api_fault()
            if kind == "5xx":
                injector.record(kind)
                detail = "The service is temporarily unavailable, please retry"
                await answer(structured_error("unknown_error", detail), injector.server_error_status())
                return
            if kind == "429":
                injector.record(kind)
                detail = "Too many requests, retry after 1 second"
                await answer(structured_error("rate_limit_exceeded", detail), 429, {"Retry-After": "1"})
                return
            if kind == "reset":
                injector.record(kind)
                if await abort_connection(send):
                    return
                raise ConnectionAbortedError("emulator fault: reset")

        if key == POLL_ROUTE:
            gen = state.generations.get(str(params.get("generation_id", "")))
            if gen is not None:
                gen.polls += 1
                if gen.polls == 1 and injector.roll("poll429"):
                    injector.record("poll429")
                    detail = "Too many requests, retry after 1 second"
                    await answer(structured_error("rate_limit_exceeded", detail), 429, {"Retry-After": "1"})
                    return

        if key == ENQUEUE_ROUTE and injector.roll("drop_enqueue"):
            await self.app(scope, receive, self._dropping_send(send))
            return
        if key == ENQUEUE_ROUTE and injector.roll("slow_enqueue"):
            await self.app(scope, receive, self._slow_send(send, state.config.slow_enqueue_seconds))
            return
        if key == RESULT_ROUTE and injector.roll("truncate"):
            await self.app(scope, receive, self._truncating_send(send))
            return
        if key == EVENTS_ROUTE:  # ``cut_event`` is rolled per event: it may be set after the stream opened
            await self.app(scope, receive, self._cutting_events_send(send))
            return
        await self.app(scope, receive, send)

    def _dropping_send(self, send: Send) -> Callable[[Message], Awaitable[None]]:
        """A ``send`` that turns a 200 answer into a connection reset (the work was already done)."""
        dropped = False
        injector = self.state.injector

        async def wrapped(message: Message) -> None:
            nonlocal dropped
            if dropped:
                return
            if message["type"] == "http.response.start" and message["status"] == 200:
                dropped = True
                injector.record("drop_enqueue")
                if not await abort_connection(send):
                    raise ConnectionAbortedError("emulator fault: drop_enqueue")
                return
            await send(message)

        return wrapped

    def _slow_send(self, send: Send, delay: float) -> Callable[[Message], Awaitable[None]]:
        """A ``send`` that holds a 200 answer for ``delay`` seconds (the work was already done)."""
        injector = self.state.injector

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                injector.record("slow_enqueue")
                await asyncio.sleep(delay)
            await send(message)

        return wrapped

    def _cutting_events_send(self, send: Send) -> Callable[[Message], Awaitable[None]]:
        """A ``send`` of an event stream that may cut a completion event in half and close the connection.

        Each completion event (one body message of the stream) rolls ``cut_event``; on a hit, its first half
        is sent and the connection is closed, so the subscriber gets neither that event nor any later one.
        """
        cut = False
        injector = self.state.injector

        async def wrapped(message: Message) -> None:
            nonlocal cut
            if cut:
                return
            body = message.get("body", b"")
            if (
                message["type"] == "http.response.body"
                and body.startswith(COMPLETION_CHUNK)
                and injector.roll("cut_event")
            ):
                cut = True
                injector.record("cut_event")
                await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
                if not await abort_connection(send, reset=False):
                    raise ConnectionAbortedError("emulator fault: cut_event")
                return
            await send(message)

        return wrapped

    def _truncating_send(self, send: Send) -> Callable[[Message], Awaitable[None]]:
        """A ``send`` that forwards half of the body (with the full Content-Length) and then resets."""
        limit: int | None = None
        sent = 0
        cut = False
        injector = self.state.injector

        async def wrapped(message: Message) -> None:
            nonlocal limit, sent, cut
            if cut:
                return
            if message["type"] == "http.response.start":
                if message["status"] in (200, 206):
                    for name, value in message.get("headers", []):
                        if name.lower() == b"content-length" and int(value) > 1:
                            limit = int(value) // 2
                await send(message)
                return
            body = message.get("body", b"")
            if limit is None or message["type"] != "http.response.body":
                await send(message)
                return
            if sent + len(body) < limit:
                sent += len(body)
                await send(message)
                return
            await send({"type": "http.response.body", "body": body[: limit - sent], "more_body": True})
            cut = True
            injector.record("truncate")
            if not await abort_connection(send, reset=False):
                raise ConnectionAbortedError("emulator fault: truncate")

        return wrapped
