"""A fake Oxen API over real HTTP for the client tests (served by the ``oxen`` fixture of conftest.py).

The API is reached as ``http://127.0.0.1:<port>/api`` and result files as
``http://localhost:<port>/files/...``: the same server, but another origin for the client, so the
tests can check that the API key never reaches the result host. Every request is recorded with
the host and headers it arrived with.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.client.clientkit import KEY, MODEL, VIDEO


def wait_for(condition: Any, timeout: float = 5.0, what: str = "condition") -> None:
    """Wait until ``condition()`` is true (polling), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# --------------------------------------------------------------------------- the real HTTP fake


@dataclass
class Seen:
    """One request as it arrived at the fake."""

    host: str
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeOxen:
    """State and behaviour of the fake API (reset before each test)."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)
    generations: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: generation id -> the ``error_message`` it ends ``failed`` with (instead of succeeding).
    failures: dict[str, str] = field(default_factory=dict)
    subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[str | None]]] = field(
        default_factory=list
    )
    counter: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def file_url(self, name: str) -> str:
        return f"http://localhost:{self.port}/files/{name}?sig=s3cr3t-signature"

    def reset(self) -> None:
        self.seen.clear()
        self.polls.clear()
        self.generations.clear()
        self.failures.clear()

    def seen_at(self, host: str) -> list[Seen]:
        return [s for s in self.seen if s.host.split(":")[0] == host]

    def emit(self, event: str, data: Any) -> None:
        """Send one server-sent event to every connected subscriber (thread-safe)."""
        text = data if isinstance(data, str) else json.dumps(data)
        for loop, queue in list(self.subscribers):
            loop.call_soon_threadsafe(queue.put_nowait, f"event: {event}\ndata: {text}\n\n")

    # -- ASGI -------------------------------------------------------------------------------

    def recorder(self, app: ASGIApp) -> ASGIApp:
        async def record(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
                self.seen.append(Seen(headers.get("host", ""), scope["method"], scope["path"], headers))
            await app(scope, receive, send)

        return record

    def authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {KEY}"

    def app(self) -> ASGIApp:
        def unauthenticated() -> JSONResponse:
            return JSONResponse(
                {
                    "error": {"type": "unauthenticated", "title": "Unauthenticated"},
                    "status": "error",
                    "status_message": "unauthenticated",
                },
                status_code=401,
            )

        async def generate(request: Request) -> Response:
            if not self.authorised(request):
                return unauthenticated()
            body = await request.json()
            video = (
                {"b64_json": base64.b64encode(VIDEO).decode()}
                if body.get("response_format") == "b64_json"
                else {"url": self.file_url("sync.mp4")}
            )
            return JSONResponse({"created": int(time.time()), "model": body["model"], "videos": [video]})

        async def enqueue(request: Request) -> Response:
            if not self.authorised(request):
                return unauthenticated()
            body = await request.json()
            rows = []
            for _ in range(body.get("num_generations", 1)):
                gid = f"gen-{next(self.counter)}"
                self.generations[gid] = body
                rows.append({"generation_id": gid, "status": "processing"})
            return JSONResponse({"generations": rows})

        async def get_one(request: Request) -> Response:
            if not self.authorised(request):
                return unauthenticated()
            gid = request.path_params["gid"]
            if gid not in self.generations:
                return JSONResponse(
                    {
                        "error": {"type": "resource_not_found", "title": "Not found"},
                        "status": "error",
                        "status_message": "resource_not_found",
                    },
                    status_code=404,
                )
            count = self.polls[gid] = self.polls.get(gid, 0) + 1
            if count == 1:
                return JSONResponse(
                    {"error": {"message": "Rate limit exceeded"}},
                    status_code=429,
                    headers={"Retry-After": "1"},
                )
            done = count >= 3
            failure = self.failures.get(gid) if done else None
            return JSONResponse(
                {
                    "generation_id": gid,
                    "model_name": MODEL,
                    "prompt": self.generations[gid].get("prompt"),
                    "media_type": "video",
                    "status": ("failed" if failure else "succeeded") if done else "processing",
                    "result_url": self.file_url(f"{gid}.mp4") if done and not failure else None,
                    "error_message": failure,
                    "enqueued_at": 1775091431,
                    "started_at": 1775091432,
                    "completed_at": 1775091500 if done else None,
                    "duration": 5,
                    "cost": "2.00",
                    "workbench": {"lane": 3},
                }
            )

        async def events(request: Request) -> Response:
            if not self.authorised(request):
                return unauthenticated()
            queue: asyncio.Queue[str | None] = asyncio.Queue()
            entry = (asyncio.get_running_loop(), queue)
            self.subscribers.append(entry)

            async def stream() -> AsyncIterator[str]:
                try:
                    yield ": keep-alive\n\n"
                    while True:
                        try:
                            item = await asyncio.wait_for(queue.get(), 0.2)
                        except TimeoutError:
                            item = ": keep-alive\n\n"
                        if item is None:
                            return
                        yield item
                finally:
                    self.subscribers.remove(entry)

            return StreamingResponse(stream(), media_type="text/event-stream")

        async def files(request: Request) -> Response:
            name = request.path_params["name"]
            if name == "truncated.mp4":
                return Response(
                    VIDEO[:1000], headers={"content-length": str(len(VIDEO))}, media_type="video/mp4"
                )
            return Response(VIDEO, media_type="video/mp4")

        async def repo_file(request: Request) -> Response:
            # A result URL on the API host that redirects to the storage host.
            return RedirectResponse(self.file_url(request.path_params["name"]), status_code=302)

        routes = [
            Route("/api/ai/videos/generate", generate, methods=["POST"]),
            Route("/api/ai/queue", enqueue, methods=["POST"]),
            Route("/api/ai/queue/{gid}", get_one, methods=["GET"]),
            Route("/api/events", events, methods=["GET"]),
            Route("/api/repos/files/{name}", repo_file, methods=["GET"]),
            Route("/files/{name}", files, methods=["GET"]),
        ]
        return self.recorder(Starlette(routes=routes))
