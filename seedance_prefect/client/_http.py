"""The transport-independent client pieces under their former single name (re-exports only).

The pieces live in small modules, each with one concern; import from them in new code:

- :mod:`._config`: :func:`resolve_api_key`, :func:`resolve_base_url`, :func:`user_agent_header`,
  :func:`ssl_context`, :func:`origin`, :func:`public_url`;
- :mod:`._auth`: :class:`OriginAuth`, which adds ``Authorization`` only to requests for the API's origin;
- :mod:`._calls`: :class:`Call` (one request to make), request bodies and answer parsing;
- :mod:`._errors`: error answers and transport failures mapped onto the ``ApiError`` tree;
- :mod:`._retry`: :class:`RetryPolicy` (whether and when to try a call again);
- :mod:`._wait`: :class:`WaitTracker`, the decisions of every wait for a generation;
- :mod:`._atomic`: :class:`AtomicFile` and :func:`iter_b64_chunks` for results written to disk.

Example:
    >>> from seedance_prefect.client._http import OriginAuth, WaitTracker
    >>> from seedance_prefect.client._wait import WaitTracker as Home
    >>> WaitTracker is Home, OriginAuth.__module__
    (True, 'seedance_prefect.client._auth')
"""

from __future__ import annotations

from ._atomic import (
    B64_SLICE,
    AtomicFile,
    b64_text,
    download_url,
    iter_b64_chunks,
    save_b64_file,
    target_path,
)
from ._auth import OriginAuth
from ._calls import (
    IDEMPOTENT_METHODS,
    Call,
    coerce_request,
    generation_rows,
    log_attempt,
    parse_model,
    read_json,
)
from ._config import (
    REDACTED,
    local_auth_error,
    origin,
    public_url,
    resolve_api_key,
    resolve_base_url,
    ssl_context,
    user_agent_header,
)
from ._errors import (
    connection_error,
    error_from_response,
    invalid_response,
    parse_error_body,
    parse_retry_after,
)
from ._retry import MAX_BACKOFF, MAX_RETRY_AFTER, RETRYABLE_TRANSPORT_ERRORS, RetryPolicy
from ._wait import WaitTracker

__all__ = [
    "B64_SLICE",
    "IDEMPOTENT_METHODS",
    "MAX_BACKOFF",
    "MAX_RETRY_AFTER",
    "REDACTED",
    "RETRYABLE_TRANSPORT_ERRORS",
    "AtomicFile",
    "Call",
    "OriginAuth",
    "RetryPolicy",
    "WaitTracker",
    "b64_text",
    "coerce_request",
    "connection_error",
    "download_url",
    "error_from_response",
    "generation_rows",
    "invalid_response",
    "iter_b64_chunks",
    "local_auth_error",
    "log_attempt",
    "origin",
    "parse_error_body",
    "parse_model",
    "parse_retry_after",
    "public_url",
    "read_json",
    "resolve_api_key",
    "resolve_base_url",
    "save_b64_file",
    "ssl_context",
    "target_path",
    "user_agent_header",
]
