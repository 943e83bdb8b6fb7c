"""JSON answers: the two documented error envelopes and the optional unknown extra fields."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

TITLES: dict[str, str] = {
    "invalid_params": "Invalid parameters supplied, please check your request and try again.",
    "resource_not_found": "The requested resource could not be found",
    "unauthenticated": "You must be authenticated to access this resource",
    "unknown_error": "An unknown error occurred",
    "rate_limit_exceeded": "Rate limit exceeded",
    "forbidden": "You do not have access to this resource",
}
#: Subtrees never decorated with extra fields (a JSON Schema would read them as properties).
UNDECORATED_KEYS: frozenset[str] = frozenset({"request_schema", "x_emulator"})
EXTRA_FIELD: dict[str, Any] = {"x_emulator": {"note": "unknown field added by the emulator", "version": 1}}


def structured_error(kind: str, detail: str | None = None) -> dict[str, Any]:
    """Build the structured envelope ``{"error": {type, title[, detail]}, "status", "status_message"}``.

    Args:
        kind: Error type (``invalid_params``, ``unauthenticated``, ``resource_not_found``, ...).
        detail: Specifics; omitted from the body when None (as the documented 404 body does).

    Returns:
        The body.

    Example:
        >>> structured_error("invalid_params", "Invalid duration")["error"]["detail"]
        'Invalid duration'
        >>> "detail" in structured_error("resource_not_found")["error"]
        False
    """
    error: dict[str, Any] = {"type": kind, "title": TITLES.get(kind, kind)}
    if detail is not None:
        error["detail"] = detail
    return {"error": error, "status": "error", "status_message": kind}


def simple_error(message: str) -> dict[str, Any]:
    """Build the simple envelope ``{"error": {"message": ...}}``.

    Args:
        message: The message, e.g. ``Model not found: x``.

    Returns:
        The body.

    Example:
        >>> simple_error("Model not found: x")
        {'error': {'message': 'Model not found: x'}}
    """
    return {"error": {"message": message}}


def decorate(value: Any) -> Any:
    """Return a copy of ``value`` with ``x_emulator`` added to every JSON object (except schema subtrees).

    Args:
        value: A JSON-ready value.

    Returns:
        The decorated copy.

    Example:
        >>> sorted(decorate({"a": [{"b": 1}]})["a"][0])
        ['b', 'x_emulator']
    """
    if isinstance(value, dict):
        out = {k: (v if k in UNDECORATED_KEYS else decorate(v)) for k, v in value.items()}
        out.update(EXTRA_FIELD)
        return out
    if isinstance(value, list):
        return [decorate(v) for v in value]
    return value


def dumps(value: Any, *, extra_fields: bool = False, compact: bool = False) -> str:
    """Serialise ``value`` as JSON, optionally decorated.

    Args:
        value: A JSON-ready value.
        extra_fields: Add the unknown ``x_emulator`` fields.
        compact: Use the compact separators of the SSE ``data:`` lines.

    Returns:
        The JSON text.

    Example:
        >>> dumps({"a": 1}, compact=True)
        '{"a":1}'
    """
    if extra_fields:
        value = decorate(value)
    return json.dumps(value, separators=(",", ":") if compact else None)


def json_response(
    value: Any, status: int = 200, *, extra_fields: bool = False, headers: dict[str, str] | None = None
) -> Response:
    """Build a JSON ``Response``.

    Args:
        value: Body.
        status: HTTP status.
        extra_fields: Add the unknown ``x_emulator`` fields.
        headers: Extra headers.

    Returns:
        The response.

    Example:
        >>> json_response({"ok": True}, 201).status_code
        201
    """
    return Response(
        dumps(value, extra_fields=extra_fields), status, headers=headers, media_type="application/json"
    )
