"""HTTP clients of the Oxen.ai inference API for Seedance 2.0 reference-to-video.

:class:`SeedanceClient` (blocking) and :class:`AsyncSeedanceClient` (``async``) are twins with the
same method names; both are thin layers over the shared, transport-independent logic of the
package's private modules: ``_config`` and ``_auth`` (key, base URL, auth scoped to the API
origin), ``_calls`` and ``_errors`` (requests, answers, error mapping), ``_retry`` (retries),
``_wait`` (the decisions of a wait) and ``_atomic`` (files written atomically).

Guarantees:

- The API key goes only to the API's own origin (scheme, host and port of ``base_url``); result
  files on another host are fetched without it. The key never appears in a repr, message or log.
- Idempotent calls (GET, DELETE, downloads, the events connection) are retried on 429, 5xx and
  connection errors, ``max_retries`` times, with exponential backoff and jitter, never sooner than
  ``Retry-After``. POSTs (``generate``, ``enqueue``) are never retried: a lost answer may hide a
  paid generation.
- Downloads are written under a temporary name, checked against ``Content-Length`` and the size
  cap, fsynced, then renamed into place; a failed download leaves nothing behind.

Example:
    ```python
    from seedance_prefect.client import SeedanceClient

    with SeedanceClient() as client:  # OXEN_API_KEY from the environment
        [generation] = client.enqueue({"prompt": "@Image1 waves", "input_images": ["https://example.com/a.png"]})
        done = client.wait(generation.generation_id, poll_interval=15)
        path = client.download(done, "out/")
    ```
"""

from __future__ import annotations

import builtins
import itertools
import json
import os
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, NamedTuple, TypeVar
from urllib.parse import quote

import anyio
import anyio.to_thread
import httpx
from httpx_sse import EventSource, ServerSentEvent
from pydantic import SecretStr

from .._files import file_sha256
from ..errors import DownloadError, SeedanceError
from ..limits import MODEL_ID
from ..models import CancelResult, CompletionEvent, Generation, SeedanceRequest, VideoItem, VideoResult
from ..settings import DEFAULT_NOT_FOUND_GRACE_SECONDS, DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT_SECONDS
from ._atomic import AtomicFile, b64_text, download_url, save_b64_file, target_path
from ._auth import OriginAuth
from ._calls import Call, coerce_request, generation_rows, log_attempt, parse_model, read_json
from ._config import public_url, resolve_api_key, resolve_base_url, ssl_context, user_agent_header
from ._errors import invalid_response
from ._retry import RetryPolicy
from ._wait import WaitTracker
from .events import AsyncEventStream, EventStream
from .inline_video import InlineVideoFile

__all__ = [
    "DEFAULT_DOWNLOAD_MAX_BYTES",
    "AsyncSeedanceClient",
    "FileDigest",
    "SeedanceClient",
    "sha256_file",
]

#: Default cap on a downloaded or decoded result: 2 GiB.
DEFAULT_DOWNLOAD_MAX_BYTES = 2 * 1024**3

RequestLike = SeedanceRequest | Mapping[str, Any]
DownloadSource = Generation | VideoItem | VideoResult | CompletionEvent | str
B64Source = VideoItem | VideoResult | str
StatusCallback = Callable[[Generation], Any]


class FileDigest(NamedTuple):
    """SHA-256 (hex) and size in bytes of a file."""

    sha256: str
    size: int


def sha256_file(path: str | os.PathLike[str]) -> FileDigest:
    """Return the SHA-256 and size of a file, reading it in chunks.

    ``download()`` and ``save_b64()`` return the final path; call this on it when you need a
    checksum (e.g. for a delivery manifest). Reading back a freshly written file is served from the
    page cache and costs far less than the transfer.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(delete=False) as f:
        ...     _ = f.write(b"abc")
        >>> sha256_file(f.name)
        FileDigest(sha256='ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', size=3)
    """
    return FileDigest(*file_sha256(path))


H = TypeVar("H", httpx.Client, httpx.AsyncClient)


class _BaseClient(Generic[H]):
    """Configuration, request building and answer parsing shared by the two twins (no I/O).

    The constructor is documented on :class:`SeedanceClient`.
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 2,
        http_client: H | None = None,
        download_max_bytes: int | None = DEFAULT_DOWNLOAD_MAX_BYTES,
        user_agent: str | None = None,
        generate_timeout: float = 900.0,
        backoff_factor: float = 0.5,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self._base_url = resolve_base_url(base_url)
        self._auth = OriginAuth(resolve_api_key(api_key), self._base_url)
        self._timeout = httpx.Timeout(timeout)
        self._generate_timeout = _with_read(self._timeout, generate_timeout)
        self._policy = RetryPolicy(max_retries, backoff_factor, self._auth.redact)
        self._user_agent = user_agent_header(user_agent)
        self.download_max_bytes = download_max_bytes
        self._owns_http = http_client is None
        self._http: H = http_client if http_client is not None else self._new_http()

    def _new_http(self) -> H:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """The API base URL, e.g. ``https://hub.oxen.ai/api``."""
        return self._base_url

    @property
    def max_retries(self) -> int:
        """How many times an idempotent call is retried after a transient failure."""
        return self._policy.max_retries

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base_url!r}, api_key='***')"

    # -- calls -------------------------------------------------------------------------------

    def _url(self, *parts: str) -> str:
        return "/".join((self._base_url, *parts))

    def _generation_url(self, generation_id: str, collection: str = "queue") -> str:
        if not isinstance(generation_id, str) or not generation_id.strip():
            raise ValueError(f"generation_id must be a non-empty string, got {generation_id!r}")
        return self._url("ai", collection, quote(generation_id.strip(), safe=""))

    def _generate_call(self, request: RequestLike) -> Call:
        body = coerce_request(request, "sync")
        return Call("POST", self._url("ai", "videos", "generate"), self._generate_timeout, json=body)

    def _enqueue_call(self, request: RequestLike) -> Call:
        return Call("POST", self._url("ai", "queue"), self._timeout, json=coerce_request(request, "queue"))

    def _get_call(self, generation_id: str) -> Call:
        return Call("GET", self._generation_url(generation_id), self._timeout)

    def _history_call(self, generation_id: str) -> Call:
        return Call("GET", self._generation_url(generation_id, "generations"), self._timeout)

    def _list_call(self, namespace: str | None, model: str | None, status: str | None) -> Call:
        params = {"namespace": namespace, "model": model, "status": status}
        return Call("GET", self._url("ai", "queue"), self._timeout, params=params)

    def _cancel_call(self, generation_id: str) -> Call:
        return Call("DELETE", self._generation_url(generation_id), self._timeout)

    def _model_call(self, model_id: str) -> Call:
        return Call("GET", self._url("ai", "models", quote(model_id, safe="")), self._timeout)

    def _events_call(self, read_timeout: float | None) -> Call:
        timeout = self._timeout if read_timeout is None else _with_read(self._timeout, read_timeout)
        return Call("GET", self._url("events"), timeout, accept="text/event-stream", stream=True)

    def _download_call(self, url: str) -> Call:
        return Call("GET", url, self._timeout, accept="*/*", download=True)

    def _new_file(self, path: Path, max_bytes: int | None, url: str) -> Callable[[], AtomicFile]:
        cap = self.download_max_bytes if max_bytes is None else max_bytes
        return lambda: AtomicFile(path, max_bytes=cap, label=public_url(url))

    def _b64_job(
        self, source: B64Source, path: str | os.PathLike[str], max_bytes: int | None
    ) -> tuple[str, Path, int | None]:
        cap = self.download_max_bytes if max_bytes is None else max_bytes
        return b64_text(source), target_path(path, source), cap

    def _wait_tracker(
        self,
        generation_id: str,
        timeout: float,
        poll_interval: float,
        on_status: StatusCallback | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE_SECONDS,
        *,
        events: bool = False,
    ) -> WaitTracker:
        """The decisions of a wait for ``generation_id``, redacting this client's key.

        Used by both twins' ``wait`` and by :func:`~seedance_prefect.client.completion.wait_for_completion`
        (``events=True``: completion events are fed to the tracker).
        """
        return WaitTracker(
            generation_id,
            timeout=timeout,
            poll_interval=poll_interval,
            on_status=on_status,
            not_found_grace=not_found_grace,
            redact=self._auth.redact,
            events=events,
        )

    # -- answers -----------------------------------------------------------------------------

    def _json(self, response: httpx.Response) -> Any:
        return read_json(response, self._auth.redact)

    def _video_result(self, response: httpx.Response) -> VideoResult:
        return parse_model(VideoResult, self._json(response), response)

    def _inline_file(self, save_to: str | os.PathLike[str], max_bytes: int | None) -> InlineVideoFile:
        cap = self.download_max_bytes if max_bytes is None else max_bytes
        return InlineVideoFile(target_path(save_to, None), max_bytes=cap, label="the synchronous answer")

    def _saved_result(self, response: httpx.Response, out: InlineVideoFile) -> VideoResult:
        try:
            data = json.loads(bytes(out.envelope))
        except ValueError:
            raise invalid_response(response, "expected JSON from the synchronous endpoint") from None
        result = parse_model(VideoResult, data, response)
        if out.found and result.videos:
            result.videos[0].saved_to = str(out.path)
        return result

    def _generation(self, response: httpx.Response) -> Generation:
        return parse_model(Generation, self._json(response), response)

    def _history_row(self, response: httpx.Response) -> Generation:
        data = self._json(response)  # {"generation": {row}, "status": "success", ...}; a bare row is read too
        row = data.get("generation") if isinstance(data, Mapping) and "generation" in data else data
        return parse_model(Generation, row, response)

    def _generations(self, response: httpx.Response, *, required: bool = False) -> list[Generation]:
        rows = generation_rows(self._json(response))
        if rows is None or (required and not rows):
            raise invalid_response(response, 'expected {"generations": [...]} with at least one row')
        return [parse_model(Generation, row, response) for row in rows]

    def _cancel_result(self, response: httpx.Response) -> CancelResult:
        return parse_model(CancelResult, self._json(response) if response.content else {}, response)

    def _model_info(self, response: httpx.Response) -> dict[str, Any]:
        data = self._json(response)
        if not isinstance(data, dict):
            raise invalid_response(response, "expected a model object")
        return data

    @staticmethod
    def _event_source(response: httpx.Response) -> EventSource:
        content_type = response.headers.get("Content-Type", "").partition(";")[0].strip()
        if content_type != "text/event-stream":
            raise invalid_response(response, f"expected text/event-stream, got {content_type or 'no type'!r}")
        return EventSource(response)


def _with_read(timeout: httpx.Timeout, read: float | None) -> httpx.Timeout:
    return httpx.Timeout(connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool)


class SeedanceClient(_BaseClient[httpx.Client]):
    """Blocking client of the Oxen.ai Seedance 2.0 reference-to-video API.

    Args:
        api_key: The Oxen API key (a string or a pydantic ``SecretStr``); defaults to the
            ``OXEN_API_KEY`` environment variable. A missing or malformed key raises
            :class:`~seedance_prefect.errors.AuthenticationError` here, at construction, before any
            request (so a misconfigured flow fails before it pays for anything).
        base_url: API root; defaults to ``OXEN_BASE_URL``, then ``https://hub.oxen.ai/api``.
        timeout: Per-request timeout in seconds (or an ``httpx.Timeout``), for every call but
            ``generate``.
        max_retries: Retries of an idempotent call after a transient failure (default 2).
        http_client: An ``httpx.Client`` to use (proxies, certificates, transports). It is not
            closed by :meth:`close`; the client's own timeouts and auth are set per request.
        download_max_bytes: Cap on a downloaded or decoded result (default 2 GiB; None = no cap).
        user_agent: Text appended to the ``User-Agent`` (e.g. ``"my-app/1.2"``).
        generate_timeout: Read timeout of :meth:`generate`, which blocks while the video renders
            (default 900 s).
        backoff_factor: First retry delay in seconds; doubles per retry, capped at 8 s.

    Example:
        ```python
        from seedance_prefect.client import SeedanceClient

        with SeedanceClient(api_key="...") as client:
            result = client.generate({"prompt": "A paper boat on a pond", "duration": 5})
            client.download(result.videos[0], "boat.mp4")
        ```
    """

    def _new_http(self) -> httpx.Client:
        return httpx.Client(timeout=self._timeout, verify=ssl_context())

    # -- transport ---------------------------------------------------------------------------

    def _send(self, call: Call, new_file: Callable[[], AtomicFile] | None = None) -> httpx.Response:
        for attempt in itertools.count():
            outcome = self._attempt(call, new_file)
            delay = self._policy.judge(call, attempt, outcome)
            if delay is None:
                assert isinstance(outcome, httpx.Response)
                return outcome
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, call: Call, new_file: Callable[[], AtomicFile] | None) -> httpx.Response | Exception:
        started = time.monotonic()
        try:
            response = self._http.send(
                call.build(self._http, self._user_agent),
                stream=True,
                auth=self._auth,
                follow_redirects=call.download,
            )
        except httpx.RequestError as exc:
            log_attempt(call, exc, started)
            return exc
        keep_open = call.stream and response.is_success
        try:
            if new_file is not None and response.is_success:
                with new_file() as out:
                    expected = out.expect(response)
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                    out.check_complete(response, expected)
            elif not keep_open:
                response.read()
        except (httpx.RequestError, DownloadError) as exc:
            return exc
        finally:
            if not keep_open:
                response.close()
            log_attempt(call, response, started)
        return response

    # -- API ---------------------------------------------------------------------------------

    def generate(
        self,
        request: RequestLike,
        *,
        save_to: str | os.PathLike[str] | None = None,
        max_bytes: int | None = None,
    ) -> VideoResult:
        """Generate a video synchronously (``POST /ai/videos/generate``); blocks for minutes.

        Never retried by the client. Use :meth:`enqueue` + :meth:`wait` for long renders.

        Args:
            request: A :class:`~seedance_prefect.models.SeedanceRequest` or a mapping validated
                into one (``num_generations`` must be 1).
            save_to: With ``response_format="b64_json"``: decode the inline video straight to this
                file while the answer arrives (atomic, never the whole answer in memory); the
                result's ``videos[0].b64_json`` is then empty and ``videos[0].saved_to`` names the
                file. A ``url`` answer is returned as usual (nothing is written).
            max_bytes: Size cap of the saved video (default ``download_max_bytes``).

        Returns:
            The answer: ``videos[0].url`` or ``videos[0].b64_json`` (``response_format``).

        Raises:
            InvalidRequest: The request is invalid (nothing was sent).
            ApiError: The service refused it (see :mod:`seedance_prefect.errors`).

        Example:
            ```python
            result = client.generate({"prompt": "@Image1 waves", "input_images": [url], "duration": 5})
            print(result.videos[0].url)
            ```
        """
        if save_to is None:
            return self._video_result(self._send(self._generate_call(request)))
        out = self._inline_file(save_to, max_bytes)
        return self._saved_result(self._send(self._generate_call(request), lambda: out), out)

    def enqueue(self, request: RequestLike) -> builtins.list[Generation]:
        """Queue 1-4 generations (``POST /ai/queue``); returns one row per generation, ``queued``.

        Never retried by the client: a lost answer may hide paid generations.

        Example:
            ```python
            rows = client.enqueue(SeedanceRequest(prompt="A boat", num_generations=2))
            ids = [row.generation_id for row in rows]
            ```
        """
        return self._generations(self._send(self._enqueue_call(request)), required=True)

    def get(self, generation_id: str) -> Generation:
        """Return one queue row (``GET /ai/queue/{id}``), terminal rows included.

        Raises:
            NotFoundError: Unknown id.

        Example:
            ```python
            row = client.get("0b6f...")
            print(row.status, row.result_url)
            ```
        """
        return self._generation(self._send(self._get_call(generation_id)))

    def history(self, generation_id: str) -> Generation:
        """Look a generation up in the history (``GET /ai/generations/{id}``), the full row with ``cost``.

        The history keeps a generation after the queue forgot it (an older queue answered 404 once a
        row was terminal); ``wait()`` asks it before giving up on a row that answers 404. The answer
        ``{"generation": {...}, "status": "success"}`` is unwrapped; extra fields (``cost``,
        ``username``...) are in ``extra_fields``.

        Raises:
            NotFoundError: Unknown id (or a service without the history route).

        Example:
            ```python
            row = client.history("0b6f...")
            print(row.status, row.result_url, row.extra_fields.get("cost"))
            ```
        """
        return self._history_row(self._send(self._history_call(generation_id)))

    def list(
        self, namespace: str | None = None, model: str | None = None, status: str | None = None
    ) -> builtins.list[Generation]:
        """List queue rows (``GET /ai/queue``); without ``status`` the service lists active ones only.

        Example:
            ```python
            active = client.list(model=MODEL_ID)
            failed = client.list(status="failed")
            ```
        """
        return self._generations(self._send(self._list_call(namespace, model, status)))

    def cancel(self, generation_id: str) -> CancelResult:
        """Cancel a queued or processing generation (``DELETE /ai/queue/{id}``).

        Cancelling a finished generation has no effect on the service.

        Example:
            ```python
            client.cancel("0b6f...").status  # 'success'
            ```
        """
        return self._cancel_result(self._send(self._cancel_call(generation_id)))

    def model_info(self, model_id: str = MODEL_ID) -> dict[str, Any]:
        """Return a model object (``GET /ai/models/{id}``): pricing, capabilities, request schema.

        Example:
            ```python
            info = client.model_info()
            print(info.get("pricing"))
            ```
        """
        return self._model_info(self._send(self._model_call(model_id)))

    def wait(
        self,
        generation_id: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        on_status: StatusCallback | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE_SECONDS,
    ) -> Generation:
        """Poll a generation until it is terminal; return the succeeded row.

        Transient failures of a poll (429, 5xx, connection errors, after the call's own retries)
        are logged and polling goes on until the deadline; a 404 is tolerated during the first
        ``not_found_grace`` seconds (the queue may lag behind the enqueue answer). A row that
        answers 404 is looked up in the history (:meth:`history`) before anything is decided: an
        older queue forgets rows once they are terminal.

        Args:
            generation_id: The id from :meth:`enqueue`.
            timeout: Seconds to wait in all (monotonic clock).
            poll_interval: Seconds between polls (contract advice for video: 10-30).
            on_status: Called with the row each time the status changes (first status included).
            not_found_grace: Seconds during which a 404 is taken for read-after-write lag.

        Returns:
            The ``succeeded`` row (with ``result_url``).

        Raises:
            GenerationFailed: The generation failed (``error_message``) or ended in an unknown
                terminal status such as ``expired``.
            GenerationCancelled: It was cancelled.
            GenerationTimeout: Still not finished at the deadline (it may still be running).
            NotFoundError: Still unknown after the grace period, or gone after it was seen, and
                not in the history either (the message says what was tried).

        Example:
            ```python
            row = client.wait(ids[0], timeout=1200, on_status=lambda g: print(g.status))
            ```
        """
        tracker = self._wait_tracker(generation_id, timeout, poll_interval, on_status, not_found_grace)
        while True:
            row = tracker.take(self._poll(self.get, generation_id))
            if row is None and tracker.history_due:  # the row answered 404: ask the history
                row = tracker.take_history(self._poll(self.history, generation_id))
            if row is not None:
                return row
            time.sleep(tracker.next_delay())

    @staticmethod
    def _poll(read: Callable[[str], Generation], generation_id: str) -> Generation | SeedanceError:
        try:
            return read(generation_id)
        except SeedanceError as exc:
            return exc

    def events(self, *, read_timeout: float | None = None) -> EventStream:
        """Subscribe to completion events (``GET /events``, server-sent events).

        Connects before returning (so call it *before* enqueuing: there is no replay) and returns
        an :class:`~seedance_prefect.client.events.EventStream` that yields
        :class:`~seedance_prefect.models.CompletionEvent` objects (other events and keep-alives
        are skipped). Close it with ``close()`` or a ``with`` block. It does not reconnect: when
        it breaks (:class:`~seedance_prefect.errors.SeedanceConnectionError`), open a new one and
        poll :meth:`get` once for each pending generation.

        Args:
            read_timeout: Longest silence before the connection counts as broken; defaults to the
                client's read timeout (60 s, four keep-alive intervals).

        Example:
            ```python
            with client.events() as stream:
                [row] = client.enqueue(request)
                for event in stream:
                    if event.generation_id == row.generation_id:
                        break
            ```
        """
        call = self._events_call(read_timeout)

        def opener(stack: ExitStack) -> Iterable[ServerSentEvent]:
            response = self._send(call)
            stack.callback(response.close)
            return self._event_source(response).iter_sse()

        return EventStream(opener).connect()

    def download(
        self, source: DownloadSource, path: str | os.PathLike[str], *, max_bytes: int | None = None
    ) -> Path:
        """Download a result to ``path`` atomically; return the final path.

        The file is streamed to ``<name>.part-<random>`` beside the destination, checked against
        ``Content-Length`` and the size cap, fsynced and renamed. Any failure removes the partial
        file. The API key is sent only if the URL is on the API's own origin. Redirects are
        followed (the key is dropped when one leaves the origin).

        Args:
            source: A succeeded :class:`Generation` (its ``result_url``), a :class:`VideoItem`, a
                :class:`VideoResult` (first video), a :class:`CompletionEvent` or a URL.
            path: The destination file, or a directory (an existing one, or a string ending with
                ``/``): the file is then named ``<generation_id>.mp4``, or after the URL.
            max_bytes: Size cap for this download (default: ``download_max_bytes``).

        Raises:
            DownloadError: No URL, truncated (transient, after retries) or over the cap (permanent).

        Example:
            ```python
            path = client.download(client.wait(gid), "renders/")
            print(path, sha256_file(path).sha256)
            ```
        """
        url = download_url(source, self._base_url)
        dest = target_path(path, source, url)
        self._send(self._download_call(url), self._new_file(dest, max_bytes, url))
        return dest

    def save_b64(
        self, source: B64Source, path: str | os.PathLike[str], *, max_bytes: int | None = None
    ) -> Path:
        """Decode a ``b64_json`` video to ``path`` atomically (in 4 MiB slices); return the path.

        Example:
            ```python
            result = client.generate({"prompt": "A boat", "response_format": "b64_json"})
            client.save_b64(result.videos[0], "boat.mp4")
            ```
        """
        return save_b64_file(*self._b64_job(source, path, max_bytes))

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the underlying ``httpx.Client`` (unless it was passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> SeedanceClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncSeedanceClient(_BaseClient[httpx.AsyncClient]):
    """Async twin of :class:`SeedanceClient`: same arguments and method names, awaitable.

    ``http_client`` is an ``httpx.AsyncClient``; :meth:`events` returns an
    :class:`~seedance_prefect.client.events.AsyncEventStream` (``async with`` / ``async for``);
    :meth:`save_b64` decodes in a worker thread.

    Example:
        ```python
        async with AsyncSeedanceClient() as client:
            [row] = await client.enqueue({"prompt": "A boat"})
            done = await client.wait(row.generation_id)
            await client.download(done, "boat.mp4")
        ```
    """

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self._timeout, verify=ssl_context())

    # -- transport ---------------------------------------------------------------------------

    async def _send(self, call: Call, new_file: Callable[[], AtomicFile] | None = None) -> httpx.Response:
        for attempt in itertools.count():
            outcome = await self._attempt(call, new_file)
            delay = self._policy.judge(call, attempt, outcome)
            if delay is None:
                assert isinstance(outcome, httpx.Response)
                return outcome
            await anyio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, call: Call, new_file: Callable[[], AtomicFile] | None
    ) -> httpx.Response | Exception:
        started = time.monotonic()
        try:
            response = await self._http.send(
                call.build(self._http, self._user_agent),
                stream=True,
                auth=self._auth,
                follow_redirects=call.download,
            )
        except httpx.RequestError as exc:
            log_attempt(call, exc, started)
            return exc
        keep_open = call.stream and response.is_success
        try:
            if new_file is not None and response.is_success:
                with new_file() as out:
                    expected = out.expect(response)
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
                    out.check_complete(response, expected)
            elif not keep_open:
                await response.aread()
        except (httpx.RequestError, DownloadError) as exc:
            return exc
        finally:
            if not keep_open:
                await response.aclose()
            log_attempt(call, response, started)
        return response

    # -- API ---------------------------------------------------------------------------------

    async def generate(
        self,
        request: RequestLike,
        *,
        save_to: str | os.PathLike[str] | None = None,
        max_bytes: int | None = None,
    ) -> VideoResult:
        """Async :meth:`SeedanceClient.generate`.

        Example:
            ```python
            result = await client.generate({"prompt": "A boat", "duration": 5})
            ```
        """
        if save_to is None:
            return self._video_result(await self._send(self._generate_call(request)))
        out = self._inline_file(save_to, max_bytes)
        return self._saved_result(await self._send(self._generate_call(request), lambda: out), out)

    async def enqueue(self, request: RequestLike) -> builtins.list[Generation]:
        """Async :meth:`SeedanceClient.enqueue`.

        Example:
            ```python
            rows = await client.enqueue({"prompt": "A boat", "num_generations": 2})
            ```
        """
        return self._generations(await self._send(self._enqueue_call(request)), required=True)

    async def get(self, generation_id: str) -> Generation:
        """Async :meth:`SeedanceClient.get`.

        Example:
            ```python
            row = await client.get(gid)
            ```
        """
        return self._generation(await self._send(self._get_call(generation_id)))

    async def history(self, generation_id: str) -> Generation:
        """Async :meth:`SeedanceClient.history`.

        Example:
            ```python
            row = await client.history(gid)
            ```
        """
        return self._history_row(await self._send(self._history_call(generation_id)))

    async def list(
        self, namespace: str | None = None, model: str | None = None, status: str | None = None
    ) -> builtins.list[Generation]:
        """Async :meth:`SeedanceClient.list`.

        Example:
            ```python
            rows = await client.list(status="processing")
            ```
        """
        return self._generations(await self._send(self._list_call(namespace, model, status)))

    async def cancel(self, generation_id: str) -> CancelResult:
        """Async :meth:`SeedanceClient.cancel`.

        Example:
            ```python
            await client.cancel(gid)
            ```
        """
        return self._cancel_result(await self._send(self._cancel_call(generation_id)))

    async def model_info(self, model_id: str = MODEL_ID) -> dict[str, Any]:
        """Async :meth:`SeedanceClient.model_info`.

        Example:
            ```python
            info = await client.model_info()
            ```
        """
        return self._model_info(await self._send(self._model_call(model_id)))

    async def wait(
        self,
        generation_id: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        on_status: StatusCallback | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE_SECONDS,
    ) -> Generation:
        """Async :meth:`SeedanceClient.wait` (``on_status`` is a plain callable).

        Example:
            ```python
            row = await client.wait(gid, timeout=1200)
            ```
        """
        tracker = self._wait_tracker(generation_id, timeout, poll_interval, on_status, not_found_grace)
        while True:
            row = tracker.take(await self._poll(self.get, generation_id))
            if row is None and tracker.history_due:  # the row answered 404: ask the history
                row = tracker.take_history(await self._poll(self.history, generation_id))
            if row is not None:
                return row
            await anyio.sleep(tracker.next_delay())

    @staticmethod
    async def _poll(
        read: Callable[[str], Awaitable[Generation]], generation_id: str
    ) -> Generation | SeedanceError:
        try:
            return await read(generation_id)
        except SeedanceError as exc:
            return exc

    def events(self, *, read_timeout: float | None = None) -> AsyncEventStream:
        """Async :meth:`SeedanceClient.events`; ``await`` the stream or enter it to connect.

        Unlike the sync twin it returns unconnected (no I/O outside ``await``): connect it, with
        ``stream = await client.events()`` or ``async with client.events() as stream``, before
        enqueuing.

        Example:
            ```python
            async with client.events() as stream:
                rows = await client.enqueue(request)
                async for event in stream:
                    print(event.generation_id, event.status)
            ```
        """
        call = self._events_call(read_timeout)

        async def opener(stack: AsyncExitStack) -> AsyncIterable[ServerSentEvent]:
            response = await self._send(call)
            stack.push_async_callback(response.aclose)
            return self._event_source(response).aiter_sse()

        return AsyncEventStream(opener)

    async def download(
        self, source: DownloadSource, path: str | os.PathLike[str], *, max_bytes: int | None = None
    ) -> Path:
        """Async :meth:`SeedanceClient.download`.

        Example:
            ```python
            path = await client.download(row, "renders/")
            ```
        """
        url = download_url(source, self._base_url)
        dest = target_path(path, source, url)
        await self._send(self._download_call(url), self._new_file(dest, max_bytes, url))
        return dest

    async def save_b64(
        self, source: B64Source, path: str | os.PathLike[str], *, max_bytes: int | None = None
    ) -> Path:
        """Async :meth:`SeedanceClient.save_b64` (decodes in a worker thread).

        Example:
            ```python
            await client.save_b64(result.videos[0], "boat.mp4")
            ```
        """
        return await anyio.to_thread.run_sync(save_b64_file, *self._b64_job(source, path, max_bytes))

    # -- life cycle --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the underlying ``httpx.AsyncClient`` (unless it was passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncSeedanceClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
