"""Error answers and transport failures mapped onto the :class:`~seedance_prefect.errors.ApiError` tree."""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import (
    ApiError,
    AuthenticationError,
    NotFoundError,
    RateLimitedError,
    SeedanceConnectionError,
    ServerError,
)
from ._config import public_url

if TYPE_CHECKING:
    from ._calls import Call

__all__ = [
    "connection_error",
    "error_from_response",
    "invalid_response",
    "one_line",
    "parse_error_body",
    "parse_retry_after",
]


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


def one_line(text: str) -> str | None:
    """Return a non-JSON body as one short line (HTML tags dropped, 500 characters at most); None if empty.

    Example:
        >>> one_line("<html>\\n<h1>502 Bad   Gateway</h1>\\n</html>"), one_line("  ")
        ('502 Bad Gateway', None)
    """
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
        return None, one_line(fallback)
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
    return error_type, _text(body.get("message")) or one_line(fallback)


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

    Example:
        >>> from seedance_prefect.client._calls import Call
        >>> call = Call("POST", "https://hub.oxen.ai/api/ai/queue", httpx.Timeout(5))
        >>> error = connection_error(call, httpx.ReadTimeout("timed out"), str)
        >>> "may have received the request" in str(error), error.transient
        (True, True)
    """
    where = public_url(call.url)
    reason = redact(str(exc)) or "no details"
    text = f"{call.method} {where} failed: {type(exc).__name__}: {reason}"
    if not call.idempotent and not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        text += " (the service may have received the request: check the queue before sending it again)"
    return SeedanceConnectionError(text, method=call.method, url=where)


def invalid_response(response: httpx.Response, detail: str) -> ApiError:
    """Return an :class:`ApiError` for a 2xx answer that is not what the contract describes.

    Example:
        >>> req = httpx.Request("GET", "https://hub.oxen.ai/api/ai/queue/g1?sig=1")
        >>> error = invalid_response(httpx.Response(200, request=req), "expected a row")
        >>> error.error_type, error.url
        ('invalid_response', 'https://hub.oxen.ai/api/ai/queue/g1')
    """
    return ApiError(
        response.status_code,
        "invalid_response",
        detail,
        method=response.request.method,
        url=public_url(response.request.url),
    )
