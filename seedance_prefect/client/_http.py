"""Transport-independent pieces shared by the sync and async clients.

Nothing here sends a request: the two client twins in :mod:`seedance_prefect.client` own the
I/O and call into this module for everything else, so they stay thin and cannot drift apart:

- configuration: :func:`resolve_api_key`, :func:`resolve_base_url`, :func:`user_agent_header`;
- :class:`OriginAuth`, which adds ``Authorization`` only to requests for the API's own origin;
- :class:`Call` (one request to make) and :class:`RetryPolicy` (whether and when to try again,
  and which exception an answer maps to, via :func:`error_from_response`);
- :class:`WaitTracker`, the decisions of ``wait()``;
- :class:`AtomicFile` and :func:`iter_b64_chunks` for results written to disk.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import json
import logging
import math
import os
import random
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from .._version import __version__
from ..errors import (
    ApiError,
    AuthenticationError,
    DownloadError,
    FieldProblem,
    GenerationCancelled,
    GenerationFailed,
    GenerationTimeout,
    InvalidRequest,
    NotFoundError,
    RateLimitedError,
    SeedanceConnectionError,
    SeedanceError,
    ServerError,
    is_transient,
)
from ..limits import DEFAULT_BASE_URL
from ..models import Endpoint, Generation, SeedanceRequest
from ..settings import get_settings

logger = logging.getLogger("seedance_prefect.client")
M = TypeVar("M", bound=BaseModel)

REDACTED = "***"
#: Methods the client may send again after a transient failure. POST never: a lost answer may
#: hide a paid generation.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})
#: A ``Retry-After`` longer than this is not slept through: the error is raised with ``retry_after``.
MAX_RETRY_AFTER = 60.0
MAX_BACKOFF = 8.0
#: Transport failures worth another try for an idempotent call.
RETRYABLE_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


# --------------------------------------------------------------------------- configuration


_SSL_LOCK = threading.Lock()


@functools.cache
def _build_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def ssl_context() -> ssl.SSLContext:
    """Return one verifying SSL context shared by every client of the process.

    Building one (loading the CA bundle) costs 0.1-0.2 s of CPU on a small machine; a flow makes
    several clients, so they share this one instead of each building its own. The first call is
    serialised: twenty batch threads starting at once build it once, not twenty times.

    Example:
        >>> ssl_context() is ssl_context()
        True
    """
    with _SSL_LOCK:
        return _build_ssl_context()


def local_auth_error(message: str) -> AuthenticationError:
    """Build an :class:`AuthenticationError` for a key problem found before any request.

    Its message is ``message`` alone (no "the service answered"), since nothing was sent.
    """
    error = AuthenticationError(401, "unauthenticated", message)
    error.args = (message,)
    return error


def resolve_api_key(api_key: Any) -> str:
    """Return the API key to use: ``api_key``, else ``OXEN_API_KEY``; refuse missing or unusable keys.

    Accepts a plain string or anything with ``get_secret_value()`` (pydantic ``SecretStr``). A pasted
    ``"Bearer "`` prefix is dropped.

    Raises:
        AuthenticationError: No key, or a key holding characters an HTTP header cannot carry. The
            message never repeats the key.

    Example:
        >>> resolve_api_key("  Bearer abc123 ")
        'abc123'
        >>> resolve_api_key("two words")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        seedance_prefect.errors.AuthenticationError: The API key holds characters an HTTP header...
    """
    if api_key is not None and hasattr(api_key, "get_secret_value"):
        api_key = api_key.get_secret_value()
    key = str(api_key if api_key is not None else get_settings().api_key or "").strip()
    if key[:7].lower() == "bearer ":
        key = key[7:].strip()
    if not key:
        raise local_auth_error("No API key: set OXEN_API_KEY or pass api_key=...")
    if not all(33 <= ord(char) <= 126 for char in key):
        raise local_auth_error(
            "The API key holds characters an HTTP header cannot carry (spaces, control or non-ASCII "
            "characters); check OXEN_API_KEY or api_key="
        )
    return key


def resolve_base_url(base_url: str | None) -> str:
    """Return the API base URL: ``base_url``, else ``OXEN_BASE_URL``, else the public hub; no trailing slash.

    Example:
        >>> resolve_base_url("http://127.0.0.1:8000/api/")
        'http://127.0.0.1:8000/api'
    """
    url = (base_url or get_settings().base_url).strip().rstrip("/")
    parsed = httpx.URL(url)
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.host:
        raise ValueError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL!r}, got {url!r}")
    return url


def user_agent_header(extra: str | None = None) -> str:
    """Return the ``User-Agent`` value, e.g. ``seedance-prefect/0.1.0 httpx/0.28.1 my-app/2``."""
    value = f"seedance-prefect/{__version__} httpx/{httpx.__version__}"
    return f"{value} {extra.strip()}" if extra and extra.strip() else value


def origin(url: httpx.URL | str) -> tuple[str, str, int | None]:
    """Return ``(scheme, host, port)`` of a URL with the default port filled in.

    Example:
        >>> origin("https://HUB.oxen.ai/api") == origin("https://hub.oxen.ai:443/x")
        True
    """
    url = httpx.URL(url)
    return url.scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(url.scheme)


def public_url(url: httpx.URL | str) -> str:
    """Return a URL without user info, query or fragment, for messages and logs.

    Result URLs are signed: their query string is a credential of its own.

    Example:
        >>> public_url("https://u:p@files.example.com/v.mp4?sig=secret#t")
        'https://files.example.com/v.mp4'
    """
    url = httpx.URL(url)
    path = url.raw_path.split(b"?", 1)[0].decode("ascii", "replace")
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}{path}"


class OriginAuth(httpx.Auth):
    """Bearer authentication that only ever reaches the API's own origin.

    The header is built per request, after checking the request's scheme, host and port against
    the base URL; requests anywhere else (result files on a storage host) go without it, even if a
    caller-supplied ``httpx.Client`` carries one in its default headers. httpx itself drops the
    header when a redirect leaves the origin.

    Example:
        >>> auth = OriginAuth("k3y", "https://hub.oxen.ai/api")
        >>> req = next(auth.auth_flow(httpx.Request("GET", "https://hub.oxen.ai/api/ai/queue")))
        >>> req.headers["Authorization"] == "Bearer k3y"
        True
        >>> "Authorization" in next(auth.auth_flow(httpx.Request("GET", "https://cdn.example.com/v.mp4"))).headers
        False
        >>> auth
        OriginAuth(origin='https://hub.oxen.ai', api_key='***')
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(self, api_key: str, base_url: str) -> None:
        self.__api_key = api_key
        self._origin = origin(base_url)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the bearer header to requests for the API origin; strip it from all others."""
        if origin(request.url) == self._origin:
            request.headers["Authorization"] = f"Bearer {self.__api_key}"
        else:
            request.headers.pop("Authorization", None)
        yield request

    def is_api_origin(self, url: httpx.URL | str) -> bool:
        """True when ``url`` is on the API's own origin (and so gets the key)."""
        return origin(url) == self._origin

    def redact(self, text: str) -> str:
        """Replace every occurrence of the key in ``text`` (e.g. an echoed error message).

        Keys shorter than 8 characters (test keys) are left alone: replacing them would garble text.
        """
        key = self.__api_key
        return text.replace(key, REDACTED) if len(key) >= 8 else text

    def __repr__(self) -> str:
        scheme, host, port = self._origin
        default = _DEFAULT_PORTS.get(scheme)
        where = f"{scheme}://{host}" + ("" if port == default else f":{port}")
        return f"OriginAuth(origin={where!r}, api_key={REDACTED!r})"


# --------------------------------------------------------------------------- requests and bodies


@dataclass(frozen=True)
class Call:
    """One request to make, described without sending it.

    Attributes:
        method: HTTP method.
        url: Absolute URL.
        params: Query parameters (``None`` values are dropped).
        json: JSON body, if any.
        timeout: Per-request timeout.
        accept: ``Accept`` header value.
        stream: Keep a successful response open for the caller (server-sent events).
        download: Stream a successful body to an :class:`AtomicFile` (result downloads).
    """

    method: str
    url: str
    timeout: httpx.Timeout
    params: Mapping[str, Any] | None = None
    json: Any = None
    accept: str = "application/json"
    stream: bool = False
    download: bool = False

    @property
    def idempotent(self) -> bool:
        """Whether the call may be sent again after a transient failure."""
        return self.method.upper() in IDEMPOTENT_METHODS

    def build(self, client: httpx.Client | httpx.AsyncClient, agent: str) -> httpx.Request:
        """Build the ``httpx.Request`` on ``client`` (its base headers and cookies apply)."""
        params = {k: v for k, v in (self.params or {}).items() if v is not None} or None
        return client.build_request(
            self.method,
            self.url,
            params=params,
            json=self.json,
            headers={"User-Agent": agent, "Accept": self.accept},
            timeout=self.timeout,
        )


def coerce_request(request: SeedanceRequest | Mapping[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    """Validate ``request`` (a model or a mapping) and return its body for ``endpoint``.

    Raises:
        InvalidRequest: The mapping is not a valid request, or it asks the synchronous endpoint for
            more than one generation.

    Example:
        >>> coerce_request({"prompt": "hi", "duration": 5}, "sync")["duration"]
        '5'
        >>> coerce_request({"prompt": "hi", "duration": 3}, "queue")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        seedance_prefect.errors.InvalidRequest: 1 problem in the request:
          - duration: Invalid duration: 3; ...
    """
    try:
        model = request if isinstance(request, SeedanceRequest) else SeedanceRequest.model_validate(request)
        return model.to_body(endpoint)
    except ValidationError as exc:
        raise InvalidRequest(
            [
                FieldProblem(".".join(str(part) for part in err["loc"]) or "request", err["msg"])
                for err in exc.errors(include_url=False, include_input=False)
            ]
        ) from None
    except ValueError as exc:
        raise InvalidRequest([FieldProblem("num_generations", str(exc))]) from None


def read_json(response: httpx.Response, redact: Callable[[str], str] = str) -> Any:
    """Return the JSON body of a successful answer, or raise ``ApiError("invalid_response")``."""
    try:
        return response.json()
    except ValueError:
        pass  # raised below, outside the handler, so the decoder error (holding the body) is not chained
    snippet = _plain(response.text[:1000]) or "an empty body"
    raise invalid_response(response, redact(f"expected JSON, got: {snippet[:200]}"))


def parse_model(model: type[M], data: Any, response: httpx.Response) -> M:
    """Validate ``data`` as ``model``, mapping a shape mismatch to ``ApiError("invalid_response")``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or model.__name__
        detail = f"unexpected {model.__name__} shape at {where}: {first['msg']}"
        raise invalid_response(response, detail) from None


def generation_rows(data: Any) -> list[Any] | None:
    """Return the rows of an enqueue or list answer (``{"generations": [...]}``, a list or one row).

    None when the answer has none of these shapes.

    Example:
        >>> generation_rows({"count": 1, "generations": [{"generation_id": "g1"}]})
        [{'generation_id': 'g1'}]
    """
    if isinstance(data, Mapping) and isinstance(data.get("generations"), list):
        return list(data["generations"])
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping) and "generation_id" in data:
        return [data]
    return None


def invalid_response(response: httpx.Response, detail: str) -> ApiError:
    """An :class:`ApiError` for a 2xx answer that is not what the contract describes."""
    return ApiError(
        response.status_code,
        "invalid_response",
        detail,
        method=response.request.method,
        url=public_url(response.request.url),
    )


# --------------------------------------------------------------------------- errors


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header: delay seconds or an HTTP-date; None when absent or unreadable.

    Example:
        >>> parse_retry_after("2")
        2.0
        >>> parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now=1445412480.0)
        5.0
        >>> parse_retry_after("soon") is None
        True
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _fastapi_detail(detail: Any) -> str | None:
    if isinstance(detail, list) and detail and all(isinstance(item, Mapping) for item in detail):
        parts = []
        for item in detail:
            loc = ".".join(str(part) for part in item.get("loc", ()))
            msg = str(item.get("msg", ""))
            parts.append(f"{loc}: {msg}" if loc else msg)
        return "; ".join(parts)
    return _text(detail)


def _plain(text: str) -> str | None:
    """A non-JSON body as one short line (HTML tags dropped)."""
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())[:500] or None


def parse_error_body(body: Any, fallback: str) -> tuple[str | None, str | None]:
    """Return ``(error_type, detail)`` from any documented error envelope.

    Reads the structured envelope ``{"error": {"type", "title", "detail"}, "status_message"}``, the
    simple ``{"error": {"message"}}``, a FastAPI ``{"detail": ...}``, a bare ``{"message"}`` and
    falls back to ``fallback`` (the text of a non-JSON body). ``detail`` is the most specific text:
    ``error.detail``, then ``error.message``, then ``error.title``.

    Example:
        >>> parse_error_body({"error": {"type": "resource_not_found", "title": "Not found"},
        ...                   "status": "error", "status_message": "resource_not_found"}, "")
        ('resource_not_found', 'Not found')
        >>> parse_error_body({"error": {"message": "Model not found: x"}}, "")
        (None, 'Model not found: x')
        >>> parse_error_body({"detail": [{"loc": ["body", "prompt"], "msg": "Field required"}]}, "")
        (None, 'body.prompt: Field required')
        >>> parse_error_body(None, "<html><h1>502 Bad Gateway</h1></html>")
        (None, '502 Bad Gateway')
    """
    if body is None:
        return None, _plain(fallback)
    if not isinstance(body, Mapping):
        return None, _text(body)
    error = body.get("error")
    status_message = body.get("status_message")
    error_type = status_message if isinstance(status_message, str) and status_message != "error" else None
    if isinstance(error, Mapping):
        error_type = _text(error.get("type")) or error_type
        detail = next((_text(error.get(k)) for k in ("detail", "message", "title") if error.get(k)), None)
        return error_type, detail
    if isinstance(error, str) and error:
        return error_type, error
    if "detail" in body:
        return error_type, _fastapi_detail(body["detail"])
    return error_type, _text(body.get("message")) or _plain(fallback)


def error_from_response(response: httpx.Response, redact: Callable[[str], str] = lambda s: s) -> ApiError:
    """Map an error answer (body already read) onto the :class:`ApiError` tree.

    401 -> :class:`AuthenticationError`, 404 -> :class:`NotFoundError`, 429 ->
    :class:`RateLimitedError`, 5xx -> :class:`ServerError`, anything else -> :class:`ApiError`.
    ``redact`` scrubs the API key from the service's text, should it ever echo it.

    Example:
        >>> req = httpx.Request("GET", "https://hub.oxen.ai/api/ai/queue/x?sig=1")
        >>> err = error_from_response(httpx.Response(429, headers={"Retry-After": "3"},
        ...                            json={"error": {"message": "Rate limit exceeded"}}, request=req))
        >>> type(err).__name__, err.retry_after, str(err)
        ('RateLimitedError', 3.0, 'GET https://hub.oxen.ai/api/ai/queue/x answered 429: Rate limit exceeded')
    """
    code = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error_type, detail = parse_error_body(body, response.text if body is None else "")
    if not detail and not error_type:
        detail = response.reason_phrase or None
    cls: type[ApiError] = {401: AuthenticationError, 404: NotFoundError, 429: RateLimitedError}.get(
        code, ServerError if code >= 500 else ApiError
    )
    return cls(
        code,
        redact(error_type) if error_type else None,
        redact(detail) if detail else None,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        method=response.request.method,
        url=public_url(response.request.url),
        body=_redact_tree(body, redact),
    )


def _redact_tree(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: _redact_tree(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_tree(item, redact) for item in value]
    return value


def connection_error(call: Call, exc: Exception, redact: Callable[[str], str]) -> SeedanceConnectionError:
    """A :class:`SeedanceConnectionError` for a transport failure (to be raised ``from exc``).

    For a POST that may have reached the service (anything but a failure to connect), the message
    says so: the generation may exist and be billed.
    """
    where = public_url(call.url)
    reason = redact(str(exc)) or "no details"
    text = f"{call.method} {where} failed: {type(exc).__name__}: {reason}"
    if not call.idempotent and not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        text += " (the service may have received the request: check the queue before sending it again)"
    return SeedanceConnectionError(text, method=call.method, url=where)


def log_attempt(call: Call, outcome: httpx.Response | Exception, started: float) -> None:
    """Log one attempt at debug level: method, URL without query, status or error, elapsed time."""
    if logger.isEnabledFor(logging.DEBUG):
        result = outcome.status_code if isinstance(outcome, httpx.Response) else type(outcome).__name__
        logger.debug(
            "%s %s -> %s in %.3f s", call.method, public_url(call.url), result, time.monotonic() - started
        )


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """When to send an idempotent call again, and what a final failure raises.

    Delays grow as ``backoff_factor * 2**attempt`` (capped at :data:`MAX_BACKOFF`), minus up to 25 %
    jitter, and are never shorter than the answer's ``Retry-After``. A ``Retry-After`` above
    :data:`MAX_RETRY_AFTER` is not slept through: the error is raised at once with ``retry_after``
    set, for the caller to schedule.

    Example:
        >>> policy = RetryPolicy(max_retries=2, backoff_factor=0.5)
        >>> 0.375 <= policy.backoff(0) <= 0.5, policy.backoff(10) <= 8.0
        (True, True)
    """

    max_retries: int = 2
    backoff_factor: float = 0.5
    redact: Callable[[str], str] = lambda text: text

    def backoff(self, attempt: int) -> float:
        """The pause before retry number ``attempt + 1``, without ``Retry-After``."""
        return min(MAX_BACKOFF, self.backoff_factor * 2**attempt) * (1 - 0.25 * random.random())

    def judge(self, call: Call, attempt: int, outcome: httpx.Response | Exception) -> float | None:
        """Decide on the outcome of attempt number ``attempt`` (0-based) of ``call``.

        Returns:
            None when ``outcome`` is a successful response, else the seconds to sleep before trying
            again.

        Raises:
            SeedanceError: The mapped error, when the outcome is final (permanent, retries used up,
                not idempotent, or a ``Retry-After`` too long to wait).
        """
        if isinstance(outcome, httpx.Response):
            if outcome.is_success:
                return None
            error: SeedanceError = error_from_response(outcome, self.redact)
            cause: Exception | None = None
        elif isinstance(outcome, SeedanceError):
            error, cause = outcome, outcome.__cause__ if isinstance(outcome.__cause__, Exception) else None
        elif isinstance(outcome, httpx.RequestError):
            error, cause = connection_error(call, outcome, self.redact), outcome
            error.transient = isinstance(outcome, RETRYABLE_TRANSPORT_ERRORS)
        else:
            raise outcome
        retry_after = getattr(error, "retry_after", None)
        if (
            not call.idempotent
            or attempt >= self.max_retries
            or not is_transient(error)
            or (retry_after is not None and retry_after > MAX_RETRY_AFTER)
        ):
            if cause is not None and error.__cause__ is None:
                raise error from cause
            raise error
        delay = max(self.backoff(attempt), retry_after or 0.0)
        logger.info(
            "Retrying %s %s in %.2f s (retry %d of %d) after: %s",
            call.method,
            public_url(call.url),
            delay,
            attempt + 1,
            self.max_retries,
            error,
        )
        return delay


# --------------------------------------------------------------------------- wait()


class WaitTracker:
    """The decisions of ``wait()``: when to stop, what to raise, when to poll next.

    The twins' loops read: poll; feed the row to :meth:`observe` (True = succeeded) or the error
    to :meth:`tolerate`; sleep :meth:`next_delay`.

    Example:
        >>> t = WaitTracker("g1", timeout=60, poll_interval=5)
        >>> t.observe(Generation(generation_id="g1", status="processing")), t.next_delay() <= 5
        (False, True)
        >>> t.observe(Generation(generation_id="g1", status="succeeded"))
        True
    """

    def __init__(
        self,
        generation_id: str,
        *,
        timeout: float,
        poll_interval: float,
        on_status: Callable[[Generation], Any] | None = None,
        not_found_grace: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        redact: Callable[[str], str] = str,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.generation_id = generation_id
        self.poll_interval = poll_interval
        self.on_status = on_status
        self.not_found_grace = not_found_grace
        self._clock = clock
        self._redact = redact
        self.started = clock()
        self.deadline = self.started + timeout
        self.last_status: str | None = None
        self.last_error: SeedanceError | None = None
        self.seen = False

    @property
    def elapsed(self) -> float:
        """Seconds since the wait started."""
        return self._clock() - self.started

    def observe(self, row: Generation) -> bool:
        """Take a polled row: True when it succeeded, False while active.

        Raises:
            GenerationCancelled: The row is cancelled.
            GenerationFailed: The row failed or ended in an unknown terminal status (e.g. "expired").
        """
        self.seen = True
        self.last_error = None
        if row.status != self.last_status:
            logger.info("Generation %s is %s after %.1f s", self.generation_id, row.status, self.elapsed)
            self.last_status = row.status
            if self.on_status is not None:
                self.on_status(row)
        state = row.state
        if state == "active":
            return False
        if state == "succeeded":
            return True
        error_cls = GenerationCancelled if state == "cancelled" else GenerationFailed
        message = self._redact(row.error_message) if row.error_message else None
        raise error_cls(self.generation_id, row.status, message)

    def tolerate(self, error: SeedanceError) -> bool:
        """Tell whether a failed poll may be ignored (transient, or a 404 early in the wait)."""
        early_404 = isinstance(error, NotFoundError) and not self.seen and self.elapsed < self.not_found_grace
        if early_404 or is_transient(error):
            logger.warning("Polling generation %s failed, polling on: %s", self.generation_id, error)
            self.last_error = error
            return True
        return False

    def next_delay(self) -> float:
        """Seconds to sleep before the next poll.

        Raises:
            GenerationTimeout: The deadline has passed (chained from the last tolerated error).
        """
        remaining = self.deadline - self._clock()
        if remaining <= 0:
            raise GenerationTimeout(self.generation_id, self.elapsed, self.last_status) from self.last_error
        return min(self.poll_interval, remaining)


# --------------------------------------------------------------------------- files


def download_url(source: Any, base_url: str) -> str:
    """Return the URL to download from a ``Generation``, ``VideoItem``, ``CompletionEvent`` or string.

    Relative URLs are resolved against the API origin.

    Raises:
        DownloadError: There is no URL (e.g. a generation that has not succeeded), permanent.
    """
    if isinstance(source, (str, httpx.URL)):
        url = str(source)
    else:
        videos = getattr(source, "videos", None)
        item = videos[0] if videos else source
        url = getattr(item, "result_url", None) or getattr(item, "url", None) or ""
        if not url:
            what = type(source).__name__
            ident = getattr(source, "generation_id", None)
            status = getattr(source, "status", None)
            detail = f" {ident} (status {status})" if ident else ""
            raise DownloadError(f"{what}{detail} has no result URL to download", transient=False)
    resolved = httpx.URL(base_url).join(url)
    if resolved.scheme not in _DEFAULT_PORTS:
        raise DownloadError(f"Cannot download from a {resolved.scheme!r} URL", transient=False)
    return str(resolved)


def target_path(path: str | os.PathLike[str], source: Any, url: str | None = None) -> Path:
    """Return the file to write: ``path``, or a name inside it when ``path`` is a directory.

    ``path`` is a directory when it exists as one or is a string ending with a slash (``"renders/"``,
    created if missing). The name is then ``<generation_id>.mp4`` for a generation, else the URL's
    last path segment, else ``video.mp4``.

    Example:
        >>> target_path("renders/", None, "https://cdn.example.com/a/b.mp4?sig=1").as_posix()
        'renders/b.mp4'
    """
    target = Path(path)
    as_dir = isinstance(path, str) and path.endswith(("/", os.sep))
    if not (as_dir or target.is_dir()):
        return target
    ident = getattr(source, "generation_id", None)
    name = f"{ident}.mp4" if ident else Path(httpx.URL(url).path).name if url else ""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "video.mp4"
    return target / name


class AtomicFile:
    """A file written under a temporary name and renamed into place only when complete.

    The temporary file ``<name>.part-<random>`` lives beside the destination (same filesystem, so
    ``os.replace`` is atomic). On success the data is fsynced, then renamed; on any failure the
    temporary file is removed and nothing is left behind. An httpx error while writing (a broken or
    undecodable transfer) is raised as a transient :class:`DownloadError`. Parent folders are created.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with AtomicFile(folder / "v.mp4", max_bytes=10) as out:
        ...     out.write(b"abc")
        >>> (folder / "v.mp4").read_bytes(), sorted(p.name for p in folder.iterdir())
        (b'abc', ['v.mp4'])
    """

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int | None, label: str = "") -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.label = label or str(self.path)
        self.size = 0
        self.temp_path = self.path.with_name(f"{self.path.name}.part-{secrets.token_hex(6)}")
        self._file: Any = None

    def __enter__(self) -> AtomicFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.temp_path, "xb")  # closed in __exit__
        return self

    def check_size(self, size: int, what: str = "Result") -> None:
        """Refuse ``size`` bytes when over the cap (permanent :class:`DownloadError`)."""
        if self.max_bytes is not None and size > self.max_bytes:
            raise DownloadError(
                f"{what} {self.label} is over the size cap: {size} > {self.max_bytes} bytes "
                "(raise download_max_bytes / max_bytes to accept it)",
                transient=False,
            )

    def write(self, data: bytes) -> None:
        """Append ``data``, enforcing the size cap."""
        self.check_size(self.size + len(data))
        self._file.write(data)
        self.size += len(data)

    def expect(self, response: httpx.Response) -> int | None:
        """Check a response's ``Content-Length`` against the cap before reading; return it."""
        try:
            expected = int(response.headers["Content-Length"])
        except (KeyError, ValueError):
            return None
        self.check_size(expected)
        return expected

    def check_complete(self, response: httpx.Response, expected: int | None) -> None:
        """Compare the bytes received with ``Content-Length`` (transient error when short)."""
        received = response.num_bytes_downloaded
        if expected is not None and received != expected:
            raise DownloadError(
                f"Download of {self.label} was truncated: received {received} of {expected} bytes",
                transient=True,
            )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        try:
            if exc is None:
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            if exc is None:
                os.replace(self.temp_path, self.path)
                _fsync_dir(self.path.parent)
                logger.debug("Wrote %s (%d bytes)", self.path, self.size)
        finally:
            if self.temp_path.exists():
                self.temp_path.unlink()
        if isinstance(exc, httpx.RequestError):
            raise DownloadError(
                f"Download of {self.label} broke after {self.size} bytes: {type(exc).__name__}: {exc}",
                transient=True,
            ) from exc
        return False


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


#: Base64 is decoded in slices of this many characters (a multiple of 4: 4 MiB of text, 3 MiB of video).
B64_SLICE = 4 * 1024 * 1024


def b64_text(source: Any) -> str:
    """Return the base64 text of a ``VideoItem`` (``b64_json``), a ``VideoResult`` (first video) or a str."""
    if isinstance(source, str):
        return source
    videos = getattr(source, "videos", None)
    if videos:
        source = videos[0]
    text = getattr(source, "b64_json", None)
    if not text:
        raise DownloadError(f"{type(source).__name__} has no b64_json data to save", transient=False)
    return str(text)


def iter_b64_chunks(text: str, slice_chars: int = B64_SLICE) -> Iterator[bytes]:
    """Decode base64 ``text`` slice by slice, never holding a second full copy of the data.

    A ``data:...;base64,`` prefix is skipped; whitespace (line-wrapped base64) and missing padding
    are accepted.

    Raises:
        DownloadError: The text is not base64 (permanent).

    Example:
        >>> b"".join(iter_b64_chunks("data:video/mp4;base64,aGVsbG8gd29y\\nbGQ", slice_chars=4))
        b'hello world'
    """
    if slice_chars <= 0 or slice_chars % 4:
        raise ValueError("slice_chars must be a positive multiple of 4")
    start = text.index(",", 0, 200) + 1 if text.startswith("data:") and "," in text[:200] else 0
    if re.search(r"\s", text):
        text, start = re.sub(r"\s+", "", text[start:]), 0
    end = len(text)
    for offset in range(start, end, slice_chars):
        piece = text[offset : min(offset + slice_chars, end)]
        if offset + slice_chars >= end and len(piece) % 4:
            piece += "=" * (-len(piece) % 4)
        try:
            yield base64.b64decode(piece, validate=True)
        except ValueError as exc:
            message = f"Invalid base64 video data near character {offset}: {exc}"
            raise DownloadError(message, transient=False) from None


def save_b64_file(text: str, path: Path, max_bytes: int | None) -> Path:
    """Decode base64 ``text`` into ``path`` atomically (the body of ``save_b64`` in both twins)."""
    with AtomicFile(path, max_bytes=max_bytes, label="base64 video") as out:
        for chunk in iter_b64_chunks(text):
            out.write(chunk)
    return path
