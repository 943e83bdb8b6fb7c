"""The Starlette application: every documented route of the Oxen inference API the client uses.

Routes (all under ``/api``): ``POST /ai/videos/generate``, ``POST|GET /ai/queue``,
``GET|DELETE /ai/queue/{id}``, ``GET /ai/generations/{id}`` (history; ``EmulatorConfig.history``),
``GET /events`` (SSE), ``GET /ai/models[/{id}]``, ``GET /ai/models/search``,
repository upload/download (``PUT|GET /repos/{ns}/{repo}/file/{branch}/{path}``) and result files
(``GET /repos/{ns}/{repo}/files/{path}``).
Test helpers live under ``/_emulator`` (stats, reset, faults, health) and need no auth.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from seedance_prefect.emulator.catalog import find_model, model_object
from seedance_prefect.emulator.config import EmulatorConfig
from seedance_prefect.emulator.envelopes import json_response, simple_error, structured_error
from seedance_prefect.emulator.faults import parse_faults
from seedance_prefect.emulator.gateway import Gateway
from seedance_prefect.emulator.multipart import parse_multipart
from seedance_prefect.emulator.params import ParamError, parse_num_generations
from seedance_prefect.emulator.sse import EventStreamResponse
from seedance_prefect.emulator.state import STATUSES, EmulatorState

CHUNK = 64 * 1024


class EmulatorApp(Gateway):
    """The emulator's ASGI application (gateway + Starlette router).

    Attributes:
        config: The settings.
        state: The in-memory state (generations, files, counters).
        starlette: The inner Starlette app.

    Example:
        >>> app = create_app(EmulatorConfig(latency=0.1))
        >>> app.config.latency
        0.1
    """

    def __init__(self, config: EmulatorConfig) -> None:
        """Build the application.

        Args:
            config: The settings.
        """
        self.config = config
        state = EmulatorState(config)
        self.starlette = _build_starlette(state)
        super().__init__(self.starlette, self.starlette.router, state)


def create_app(config: EmulatorConfig | None = None) -> EmulatorApp:
    """Create the emulator ASGI app (serve it with uvicorn, or use ``run_emulator``).

    Args:
        config: Settings; defaults to ``EmulatorConfig()``.

    Returns:
        The ASGI application.

    Example:
        >>> app = create_app(EmulatorConfig(latency=0.5))
        >>> app.state.snapshot()["enqueue_calls"]
        0
        >>> import uvicorn
        >>> uvicorn.run(app, port=8765)  # doctest: +SKIP
    """
    return EmulatorApp(config or EmulatorConfig())


def _origin(request: Request, config: EmulatorConfig) -> str:
    """``scheme://host[:port]`` for result URLs (``result_host`` replaces the host, same port)."""
    url = request.url
    host = config.result_host or url.hostname or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{url.scheme}://{host}" + (f":{url.port}" if url.port else "")


def _build_starlette(state: EmulatorState) -> Starlette:
    config = state.config

    def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return json_response(body, status, extra_fields=config.extra_fields, headers=headers)

    def invalid(detail: str) -> Response:
        return reply(structured_error("invalid_params", detail), 400)

    def not_found() -> Response:
        return reply(structured_error("resource_not_found"), 404)

    async def read_object(request: Request) -> dict[str, Any] | Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return invalid("Request body must be valid JSON")
        if not isinstance(body, dict):
            return invalid("Request body must be a JSON object")
        return body

    def check_model(body: dict[str, Any]) -> Response | None:
        model = body.get("model")
        if model is None or model == "":
            return reply(simple_error("You must specify a model to call"), 400)
        if not isinstance(model, str) or find_model(model) is None:
            return reply(simple_error(f"Model not found: {model}"), 404)
        return None

    # ------------------------------------------------------------------ generation

    async def generate(request: Request) -> Response:
        state.generate_calls += 1
        body = await read_object(request)
        if isinstance(body, Response):
            return body
        problem = check_model(body)
        if problem is not None:
            return problem
        try:
            result, error = await state.generate_sync(body, _origin(request, config))
        except ParamError as exc:
            return invalid(str(exc))
        if error is not None:
            return invalid(error)
        return reply(result)

    async def enqueue(request: Request) -> Response:
        state.enqueue_calls += 1
        body = await read_object(request)
        if isinstance(body, Response):
            return body
        problem = check_model(body)
        if problem is not None:
            return problem
        try:
            count = parse_num_generations(body.get("num_generations"))
        except ParamError as exc:
            return invalid(str(exc))
        created = state.enqueue(body, count, _origin(request, config))
        return reply(
            {"generations": [{"generation_id": g.id, "status": state.wire_status(g)} for g in created]}
        )

    async def list_queue(request: Request) -> Response:
        query = request.query_params
        status, media_type = query.get("status"), query.get("media_type")
        if status is not None and status not in STATUSES:
            return invalid("Invalid status")
        if media_type is not None and media_type not in ("image", "video"):
            return invalid("Invalid media_type")
        rows = state.list_rows(
            namespace=query.get("namespace"), model=query.get("model"), status=status, media_type=media_type
        )
        return reply({"count": len(rows), "generations": rows})

    async def get_generation(request: Request) -> Response:
        gen = state.queue_row(request.path_params["generation_id"])  # None once vanished (vanish_terminal)
        return not_found() if gen is None else reply(state.row(gen))

    async def get_history(request: Request) -> Response:
        gen = state.generations.get(request.path_params["generation_id"]) if config.history else None
        if gen is None:
            return not_found()
        return reply(
            {"generation": state.history_row(gen), "status": "success", "status_message": "resource_found"}
        )

    async def delete_generation(request: Request) -> Response:
        gen = state.cancel(request.path_params["generation_id"])
        if gen is None:
            return not_found()
        return reply({"status": "success", "generation_id": gen.id})

    async def events(request: Request) -> EventStreamResponse:
        return EventStreamResponse(state.broker, config.keepalive)

    # ------------------------------------------------------------------ models

    async def list_models(request: Request) -> Response:
        models = [model_object(config.profile)]
        developer = request.query_params.get("developer_name")
        if developer:
            models = [m for m in models if m["developer"]["name"].lower() == developer.lower()]
        return reply({"object": "list", "data": models})

    async def search_models(request: Request) -> Response:
        needle = request.query_params.get("search", "").lower()
        models = [m for m in [model_object(config.profile)] if needle in json.dumps(m).lower()]
        return reply({"object": "list", "data": models})

    async def get_model(request: Request) -> Response:
        model_id = request.path_params["model_id"]
        model = find_model(model_id, config.profile)
        return reply(simple_error(f"Model not found: {model_id}"), 404) if model is None else reply(model)

    # ------------------------------------------------------------------ repository files

    def upload_key(request: Request) -> str:
        p = request.path_params
        return f"{p['namespace']}/{p['repo']}/{p['branch']}/{p['path']}"

    async def put_file(request: Request) -> Response:
        ctype = request.headers.get("content-type", "")
        try:
            fields = parse_multipart(ctype, await request.body())
        except ValueError as exc:
            return invalid(f"Expected multipart/form-data with a 'file' field ({exc})")
        files = [f for f in fields if f.name in ("file", "files[]", "files") and f.filename is not None]
        if not files:
            return invalid("Expected multipart/form-data with a 'file' field")
        message = next((f.text() for f in fields if f.name == "message"), None)
        key = upload_key(request)
        commit: dict[str, Any] = {}
        for part in files:
            target = key.rstrip("/") + "/" + part.filename if (key.endswith("/") or len(files) > 1) else key
            guessed = mimetypes.guess_type(target)[0]
            content_type = part.content_type or guessed or "application/octet-stream"
            if content_type == "application/octet-stream" and guessed:
                content_type = guessed
            commit = state.put_upload(target, part.data, content_type, message)
        return reply({"status": "success", "status_message": "resource_created", "commit": commit})

    async def get_file(request: Request) -> Response:
        stored = state.uploads.get(upload_key(request))
        if stored is None:
            return not_found()
        return Response(stored.data, media_type=stored.content_type, headers={"ETag": f'"{stored.sha256}"'})

    async def get_result(request: Request) -> Response:
        stored, status = state.lookup_result(request.url.path, request.query_params.get("sig"))
        if stored is None:
            if status == 403:
                return reply(structured_error("forbidden", "Missing or invalid signature"), 403)
            return not_found()
        state.result_downloads += 1
        size = len(stored.data)
        start, end, code = 0, size - 1, 200
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{stored.sha256}"'}
        wanted = request.headers.get("range")
        if wanted:
            parsed = _parse_range(wanted, size)
            if parsed is None:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
            start, end = parsed
            code = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        view = memoryview(stored.data)[start : end + 1]

        async def chunks() -> AsyncIterator[bytes]:
            for offset in range(0, len(view), CHUNK):
                yield bytes(view[offset : offset + CHUNK])

        return StreamingResponse(chunks(), code, headers=headers, media_type=stored.content_type)

    # ------------------------------------------------------------------ test helpers

    async def stats(request: Request) -> Response:
        return json_response(state.snapshot())

    async def reset(request: Request) -> Response:
        await state.reset()
        return json_response({"status": "success"})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = json.loads(await request.body() or b"{}")
                spec = parse_faults(body.get("spec") if isinstance(body, dict) else None)
            except (ValueError, AttributeError) as exc:
                return json_response(structured_error("invalid_params", str(exc)), 400)
            state.injector.set_spec(spec)
        spec = state.injector.spec
        return json_response(
            {"spec": spec.to_string(), "rates": dict(spec.rates), "counts": state.injector.counts}
        )

    async def hold(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            return json_response(structured_error("invalid_params", str(exc)), 400)
        on = body.get("hold") if isinstance(body, dict) else None
        if not isinstance(on, bool):
            return json_response(
                structured_error("invalid_params", 'Send {"hold": true} or {"hold": false}'), 400
            )
        state.hold(on)
        return json_response({"held": on})

    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            return reply(structured_error("invalid_params", "Method not allowed"), 405)
        return reply(structured_error("resource_not_found"), 404)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.bind_loop()
        yield
        await state.aclose()

    routes = [
        Route("/api/ai/videos/generate", generate, methods=["POST"]),
        Route("/api/ai/queue", enqueue, methods=["POST"]),
        Route("/api/ai/queue", list_queue, methods=["GET"]),
        Route("/api/ai/queue/{generation_id}", get_generation, methods=["GET"]),
        Route("/api/ai/queue/{generation_id}", delete_generation, methods=["DELETE"]),
        Route("/api/ai/generations/{generation_id}", get_history, methods=["GET"]),
        Route("/api/events", events, methods=["GET"]),
        Route("/api/ai/models", list_models, methods=["GET"]),
        Route("/api/ai/models/search", search_models, methods=["GET"]),
        Route("/api/ai/models/{model_id}", get_model, methods=["GET"]),
        Route("/api/repos/{namespace}/{repo}/file/{branch}/{path:path}", put_file, methods=["PUT"]),
        Route("/api/repos/{namespace}/{repo}/file/{branch}/{path:path}", get_file, methods=["GET"]),
        Route("/api/repos/{namespace}/{repo}/files/{path:path}", get_result, methods=["GET"]),
        Route("/_emulator/stats", stats, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/faults", faults, methods=["GET", "POST"]),
        Route("/_emulator/hold", hold, methods=["POST"]),
        Route("/_emulator/health", health, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range.

    Args:
        header: The Range header.
        size: Resource size.

    Returns:
        Inclusive ``(start, end)`` or None if unsatisfiable / unsupported.

    Example:
        >>> _parse_range("bytes=10-", 100), _parse_range("bytes=-10", 100), _parse_range("bytes=200-", 100)
        ((10, 99), (90, 99), None)
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            count = int(last)
            return (max(0, size - count), size - 1) if count > 0 and size else None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)
