"""In-memory state of one emulator: generations and their scheduler, files, SSE broker and counters.

Everything here runs on the server's event loop; other threads go through ``asyncio.run_coroutine_threadsafe``
(see ``server.RunningEmulator``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from seedance_prefect.emulator.config import MODEL_ID, EmulatorConfig
from seedance_prefect.emulator.envelopes import dumps
from seedance_prefect.emulator.faults import FaultInjector
from seedance_prefect.emulator.params import ParamError, VideoRequest, echo_params, parse_video_request
from seedance_prefect.emulator.probe import inspect_references
from seedance_prefect.emulator.render import RenderCache, RenderSpec, frame_size

logger = logging.getLogger("seedance_prefect.emulator")

ACTIVE: frozenset[str] = frozenset({"queued", "processing"})
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
STATUSES: tuple[str, ...] = ("queued", "processing", "succeeded", "failed", "cancelled")
EVENT_NAME = "media_generation_completed"
RESULTS_REPO = "results"
#: Price per second of output (the model's pricing), for the ``cost`` of history rows.
COST_PER_SECOND = 0.4


@dataclass
class StoredFile:
    """A file the emulator serves (an upload or a result).

    Attributes:
        data: The bytes.
        content_type: MIME type.
        sha256: Hex digest.
        signature: Required ``sig`` query value (results only).
    """

    data: bytes
    content_type: str
    sha256: str
    signature: str | None = None


@dataclass
class Generation:
    """One generation (queue row, or a sync request when ``kind == "sync"``)."""

    id: str
    kind: str
    model: str
    body: dict[str, Any]
    echo: dict[str, Any]
    namespace: str
    origin: str
    status: str = "queued"
    enqueued_at: float = field(default_factory=time.time)
    started_at: float | None = None
    completed_at: float | None = None
    result_url: str | None = None
    prepared_url: str | None = None
    error_message: str | None = None
    result_sha256: str | None = None
    result_size: int | None = None
    seconds: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    references: list[dict[str, Any]] = field(default_factory=list)
    polls: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def stats(self) -> dict[str, Any]:
        """Return the per-generation record of ``/_emulator/stats``.

        Returns:
            A JSON-ready dict.
        """
        return {
            "id": self.id,
            "kind": self.kind,
            "model": self.model,
            "status": self.status,
            "history": list(self.history),
            "params": self.body,
            "namespace": self.namespace,
            "result": (
                {"url": self.prepared_url, "sha256": self.result_sha256, "size": self.result_size}
                if self.result_sha256
                else None
            ),
            "error_message": self.error_message,
            "references": list(self.references),
            "polls": self.polls,
        }


class FifoSlots:
    """A first-come first-served counting semaphore (the ``max_running`` cap)."""

    def __init__(self, capacity: int) -> None:
        """Create the slots.

        Args:
            capacity: Concurrent holders allowed.
        """
        self.capacity = capacity
        self.used = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        """Wait for a slot (FIFO)."""
        if self.used < self.capacity and not self._waiters:
            self.used += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just before the cancel
            elif fut in self._waiters:
                self._waiters.remove(fut)
            raise

    def release(self) -> None:
        """Give a slot back (hands it to the oldest waiter, if any)."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.used -= 1


class EventBroker:
    """Fan-out of SSE events to the subscribers connected at that moment (no replay)."""

    def __init__(self) -> None:
        """Create a broker with no subscriber."""
        self.subscribers: set[asyncio.Queue[str]] = set()
        self.closing = asyncio.Event()
        self.events_sent = 0

    def subscribe(self) -> asyncio.Queue[str]:
        """Register a subscriber.

        Returns:
            The queue its wire-formatted events arrive on.
        """
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        """Forget a subscriber.

        Args:
            queue: The queue returned by ``subscribe``.
        """
        self.subscribers.discard(queue)

    def publish(self, event: str, data: str) -> None:
        """Send one event to every current subscriber.

        Args:
            event: Event name.
            data: One line of JSON.
        """
        message = f"event: {event}\ndata: {data}\n\n"
        for queue in list(self.subscribers):
            queue.put_nowait(message)
            self.events_sent += 1


class EmulatorState:
    """All mutable state of one emulator instance.

    Example:
        >>> state = EmulatorState(EmulatorConfig(latency=0.1))
        >>> state.snapshot()["generations_created"]
        0
    """

    def __init__(self, config: EmulatorConfig) -> None:
        """Create empty state.

        Args:
            config: The emulator settings.
        """
        self.config = config
        self.injector = FaultInjector(config.fault_spec(), seed=config.seed)
        self.cache = RenderCache()
        self._secret = secrets.token_bytes(16)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.broker = EventBroker()
        self.released = asyncio.Event()
        self.released.set()
        self._clear()

    def _clear(self) -> None:
        self.generations: dict[str, Generation] = {}
        self.sync_requests: dict[str, Generation] = {}
        self.uploads: dict[str, StoredFile] = {}
        self.results: dict[str, StoredFile] = {}
        self.commits: dict[str, str] = {}
        self.slots = FifoSlots(self.config.max_running)
        self.routes: Counter[str] = Counter()
        self.enqueue_calls = 0
        self.generate_calls = 0
        self.deletes = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.sync_in_flight = 0
        self.result_downloads = 0

    # ------------------------------------------------------------------ lifecycle

    def bind_loop(self) -> None:
        """Remember the running loop (called at application startup)."""
        self.loop = asyncio.get_running_loop()

    def begin_shutdown(self) -> None:
        """Stop SSE streams and pending generations so the server can exit promptly."""
        self.broker.closing.set()
        for gen in self.generations.values():
            if gen.task is not None and not gen.task.done():
                gen.task.cancel()

    async def aclose(self) -> None:
        """Cancel and await every background task."""
        self.begin_shutdown()
        tasks = [g.task for g in self.generations.values() if g.task is not None and not g.task.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self) -> None:
        """Forget everything (generations, files, counters, faults RNG); the render cache is kept."""
        for gen in self.generations.values():
            if gen.task is not None and not gen.task.done():
                gen.task.cancel()
        tasks = [g.task for g in self.generations.values() if g.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.injector.reset()
        self.broker.events_sent = 0
        self.hold(False)
        self._clear()

    def hold(self, on: bool) -> None:
        """Hold queued generations in ``processing`` (``on``) or let them finish (``off``).

        A held generation runs for its latency, then waits for the release before it finishes; a
        cancel still ends it. Tests use it to make two clients overlap, whatever their start-up time.

        Args:
            on: True to hold, False to release.

        Example:
            >>> state = EmulatorState(EmulatorConfig(latency=0.1))
            >>> state.hold(True); state.snapshot()["held"]
            True
        """
        if on:
            self.released.clear()
        else:
            self.released.set()

    # ------------------------------------------------------------------ helpers

    def _set_status(self, gen: Generation, status: str) -> None:
        now = time.time()
        gen.status = status
        gen.history.append({"status": status, "at": now})
        if status == "processing":
            gen.started_at = now
        elif status in TERMINAL:
            gen.completed_at = now

    def wire_status(self, gen: Generation) -> str:
        """Return the status as answered (``queued`` reads ``processing`` when ``first_status="processing"``).

        Args:
            gen: The generation.

        Returns:
            The wire status.
        """
        if gen.status == "queued" and self.config.first_status == "processing":
            return "processing"
        return gen.status

    def row(self, gen: Generation) -> dict[str, Any]:
        """Return the GenerationRow of ``gen`` (documented fields + echoed enqueue parameters).

        Args:
            gen: The generation.

        Returns:
            The row.
        """
        row = dict(gen.echo)
        row.update(
            generation_id=gen.id,
            model_name=gen.model,
            prompt=gen.body.get("prompt"),
            media_type="video",
            status=self.wire_status(gen),
            result_url=gen.result_url,
            error_message=gen.error_message,
            enqueued_at=int(gen.enqueued_at),
            started_at=None if gen.started_at is None else int(gen.started_at),
            completed_at=None if gen.completed_at is None else int(gen.completed_at),
        )
        return row

    def visible(self, gen: Generation) -> bool:
        """Tell whether the queue still shows ``gen`` (not when terminal under ``vanish_terminal``).

        Args:
            gen: The generation.

        Returns:
            False once ``gen`` is terminal and rows vanish (``GET``/``DELETE`` answer 404, lists skip it).

        Example:
            >>> state = EmulatorState(EmulatorConfig(vanish_terminal=True))
            >>> gen = Generation("g1", "queue", MODEL_ID, {}, {}, "emulator", "http://x", status="succeeded")
            >>> state.visible(gen), EmulatorState(EmulatorConfig()).visible(gen)
            (False, True)
        """
        return not (self.config.vanish_terminal and gen.status in TERMINAL)

    def queue_row(self, generation_id: str) -> Generation | None:
        """Return the generation the queue answers for ``generation_id``: None if unknown or vanished.

        Args:
            generation_id: The id.

        Returns:
            The generation, or None (answered 404).
        """
        gen = self.generations.get(generation_id)
        return gen if gen is not None and self.visible(gen) else None

    def history_row(self, gen: Generation) -> dict[str, Any]:
        """Return the row of ``GET /api/ai/generations/{id}``: the queue row plus cost, target and user.

        Args:
            gen: The generation (any status, also one vanished from the queue).

        Returns:
            The row (contract section 3.5: ``cost`` as a decimal string, ``target_namespace``,
            ``target_repo``, ``target_directory``, ``user_id``, ``username``, ``user_image``).

        Example:
            >>> state = EmulatorState(EmulatorConfig())
            >>> gen = Generation("g1", "queue", MODEL_ID, {"prompt": "p"}, {}, "emulator", "http://x")
            >>> row = state.history_row(gen)
            >>> row["cost"], row["username"], row["status"]
            ('0.00', 'emulator', 'queued')
        """
        row = self.row(gen)
        cost = COST_PER_SECOND * gen.seconds if gen.status == "succeeded" and gen.seconds else 0.0
        row.update(
            cost=f"{cost:.2f}",
            target_namespace=gen.namespace,
            target_repo=RESULTS_REPO,
            target_directory=f"main/{gen.id}",
            user_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"emulator-user:{self.config.namespace}")),
            username=self.config.namespace,
            user_image=None,
        )
        return row

    def _sign(self, path: str) -> str:
        return hmac.new(self._secret, path.encode(), hashlib.sha256).hexdigest()[:32]

    def _store_result(self, gen: Generation, data: bytes) -> None:
        path = self._result_key(gen)
        url_path = f"/api/repos/{quote(gen.namespace, safe='')}/{RESULTS_REPO}/files/main/{gen.id}/video.mp4"
        digest = hashlib.sha256(data).hexdigest()
        signature = self._sign(path)
        self.results[path] = StoredFile(data, "video/mp4", digest, signature)
        gen.prepared_url = f"{gen.origin}{url_path}?sig={signature}"
        gen.result_sha256, gen.result_size = digest, len(data)

    def _render_spec(self, req: VideoRequest) -> RenderSpec:
        width, height = frame_size(req.resolution, req.aspect_ratio)
        salt = hashlib.sha256("\x00".join(f"{f}={u}" for f, u in req.references).encode()).hexdigest()[:16]
        return RenderSpec(width, height, req.duration, req.generate_audio, req.prompt, req.seed, salt)

    def _parse(self, body: dict[str, Any]) -> VideoRequest:
        return parse_video_request(body, profile=self.config.profile, auto_duration=self.config.auto_duration)

    async def _produce(self, gen: Generation, req: VideoRequest) -> str | None:
        """Inspect references and render; return an error message or None."""
        reports, error = await inspect_references(req.references)
        gen.references = [r.to_dict() for r in reports]
        if error is not None:
            return error
        if gen.kind == "queue" and self.injector.roll("fail"):
            self.injector.record("fail")
            return self.injector.failure_message()
        spec = self._render_spec(req)
        data, _ = await asyncio.to_thread(self.cache.get, spec)
        self._store_result(gen, data)
        gen.seconds = spec.duration
        return None

    # ------------------------------------------------------------------ queue

    def enqueue(self, body: dict[str, Any], count: int, origin: str) -> list[Generation]:
        """Create ``count`` generations and start their background tasks.

        Args:
            body: Enqueue body (model already checked).
            count: ``num_generations``.
            origin: ``scheme://host:port`` used in result URLs.

        Returns:
            The new generations.
        """
        params = {k: v for k, v in body.items() if k not in ("model", "num_generations")}
        namespace = body.get("target_namespace")
        namespace = namespace if isinstance(namespace, str) and namespace.strip() else self.config.namespace
        echo = echo_params(body, profile=self.config.profile)
        created = []
        for _ in range(count):
            gen = Generation(str(uuid.uuid4()), "queue", MODEL_ID, params, echo, namespace, origin)
            self._set_status(gen, "queued")
            self.generations[gen.id] = gen
            gen.task = asyncio.get_running_loop().create_task(self._run(gen), name=f"generation-{gen.id}")
            created.append(gen)
        return created

    async def _run(self, gen: Generation) -> None:
        acquired = counted = False
        loop = asyncio.get_running_loop()
        try:
            if self.config.queue_delay > 0:
                await asyncio.sleep(self.config.queue_delay)
            await self.slots.acquire()
            acquired = True
            if gen.status != "queued":
                return
            self._set_status(gen, "processing")
            self.in_flight += 1
            counted = True
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            started = loop.time()
            try:
                error = await self._produce(gen, self._parse(gen.body))
            except ParamError as exc:
                error = str(exc)
            remaining = self.config.latency - (loop.time() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)
            await self.released.wait()  # a test holds finished work (see ``hold``)
            if gen.status == "processing":
                self._finish(gen, error)
        except asyncio.CancelledError:
            pass  # DELETE (status already set) or shutdown
        except Exception:
            logger.exception("generation %s crashed", gen.id)
            if gen.status == "processing":
                self._finish(gen, "Internal generation error")
        finally:
            if counted:
                self.in_flight -= 1
            if acquired:
                self.slots.release()

    def _finish(self, gen: Generation, error: str | None) -> None:
        payload: dict[str, Any] = {"generation_id": gen.id}
        if error is None:
            gen.result_url = gen.prepared_url
            self._set_status(gen, "succeeded")
            payload.update(status="succeeded", media_type="video", model=gen.model, url=gen.result_url)
        else:
            gen.error_message = error
            gen.result_url = None
            self._set_status(gen, "failed")
            payload.update(status="failed", media_type="video", error=error)
        self.broker.publish(EVENT_NAME, dumps(payload, extra_fields=self.config.extra_fields, compact=True))

    def list_rows(
        self,
        *,
        namespace: str | None = None,
        model: str | None = None,
        status: str | None = None,
        media_type: str | None = None,
    ) -> list[dict[str, Any]]:
        """Return rows for ``GET /api/ai/queue`` (oldest first).

        Args:
            namespace: Namespace filter (None = the caller's namespace).
            model: Model filter.
            status: Wire-status filter (None = active rows only).
            media_type: ``image`` or ``video``.

        Returns:
            Matching rows.
        """
        wanted_ns = namespace or self.config.namespace
        rows = []
        for gen in self.generations.values():
            if gen.namespace != wanted_ns or (model is not None and gen.model != model):
                continue
            if not self.visible(gen):
                continue
            if media_type is not None and media_type != "video":
                continue
            if status is None and gen.status not in ACTIVE:
                continue
            if status is not None and self.wire_status(gen) != status:
                continue
            rows.append(self.row(gen))
        return rows

    def cancel(self, generation_id: str) -> Generation | None:
        """Cancel a generation (no effect on terminal ones).

        Args:
            generation_id: The id.

        Returns:
            The generation, or None if unknown (or vanished, see ``vanish_terminal``).
        """
        gen = self.queue_row(generation_id)
        if gen is None:
            return None
        self.deletes += 1
        if gen.status in ACTIVE:
            self._set_status(gen, "cancelled")
            if gen.task is not None and not gen.task.done():
                gen.task.cancel()
        return gen

    # ------------------------------------------------------------------ sync

    async def generate_sync(
        self, body: dict[str, Any], origin: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Run a synchronous generation.

        Args:
            body: The request body (model already checked).
            origin: ``scheme://host:port`` for the result URL.

        Returns:
            ``(response_body, None)`` on success or ``(None, error_message)`` when a reference fails.

        Raises:
            ParamError: Invalid parameters (answered 400 by the route).
        """
        req = self._parse(body)
        params = {k: v for k, v in body.items() if k != "model"}
        namespace = req.target_namespace or self.config.namespace
        gen = Generation(f"sync-{uuid.uuid4()}", "sync", MODEL_ID, params, {}, namespace, origin)
        self._set_status(gen, "processing")
        self.sync_requests[gen.id] = gen
        self.sync_in_flight += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            error = await self._produce(gen, req)
            remaining = self.config.latency - (loop.time() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)
        finally:
            self.sync_in_flight -= 1
        if error is not None:
            gen.error_message = error
            self._set_status(gen, "failed")
            return None, error
        gen.result_url = gen.prepared_url
        self._set_status(gen, "succeeded")
        if req.response_format == "b64_json":
            stored = self.results[self._result_key(gen)]
            video: dict[str, Any] = {"b64_json": base64.b64encode(stored.data).decode("ascii")}
        else:
            video = {"url": gen.result_url}
        return {"created": int(time.time()), "model": gen.model, "videos": [video]}, None

    def _result_key(self, gen: Generation) -> str:
        return f"/api/repos/{gen.namespace}/{RESULTS_REPO}/files/main/{gen.id}/video.mp4"

    # ------------------------------------------------------------------ files

    def lookup_result(self, path: str, signature: str | None) -> tuple[StoredFile | None, int]:
        """Find a result file and check its signature.

        Args:
            path: The request path (decoded).
            signature: The ``sig`` query value.

        Returns:
            ``(file, 200)``, ``(None, 404)`` if unknown or ``(None, 403)`` if the signature is missing/wrong.
        """
        stored = self.results.get(path)
        if stored is None:
            return None, 404
        if signature is None or not hmac.compare_digest(signature, stored.signature or ""):
            return None, 403
        return stored, 200

    def put_upload(self, key: str, data: bytes, content_type: str, message: str | None) -> dict[str, Any]:
        """Store an uploaded file and return a commit object.

        Args:
            key: ``namespace/repo/branch/path``.
            data: The bytes.
            content_type: MIME type.
            message: Commit message.

        Returns:
            The commit (``id``, ``message``, ``author``, ``email``, ``parent_ids``, ``timestamp``).
        """
        digest = hashlib.sha256(data).hexdigest()
        self.uploads[key] = StoredFile(data, content_type, digest)
        branch_key = "/".join(key.split("/", 3)[:3])
        parent = self.commits.get(branch_key)
        commit_id = hashlib.sha256(f"{parent}:{key}:{digest}:{time.time_ns()}".encode()).hexdigest()[:32]
        self.commits[branch_key] = commit_id
        return {
            "id": commit_id,
            "message": message or f"Upload {key.split('/', 3)[-1]}",
            "author": "emulator",
            "email": "emulator@localhost",
            "parent_ids": [parent] if parent else [],
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    # ------------------------------------------------------------------ stats

    def snapshot(self) -> dict[str, Any]:
        """Return the ``/_emulator/stats`` document.

        Returns:
            A JSON-ready dict.
        """
        statuses = Counter(g.status for g in self.generations.values())
        every = {**self.generations, **self.sync_requests}
        return {
            "enqueue_calls": self.enqueue_calls,
            "generate_calls": self.generate_calls,
            "generations_created": len(self.generations),
            "sync_generations": len(self.sync_requests),
            "deletes": self.deletes,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "sync_in_flight": self.sync_in_flight,
            "max_running": self.config.max_running,
            "held": not self.released.is_set(),
            "statuses": {s: statuses.get(s, 0) for s in STATUSES},
            "requests_by_route": dict(sorted(self.routes.items())),
            "faults": dict(self.injector.counts),
            "faults_spec": self.injector.spec.to_string(),
            "events_sent": self.broker.events_sent,
            "sse_subscribers": len(self.broker.subscribers),
            "uploads": len(self.uploads),
            "result_downloads": self.result_downloads,
            "render": {
                "renders": self.cache.renders,
                "cache_hits": self.cache.hits,
                "seconds": round(self.cache.render_seconds, 3),
            },
            "generations": {gid: g.stats() for gid, g in every.items()},
        }
