"""One request described without sending it (:class:`Call`), request bodies and answer parsing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ..errors import FieldProblem, InvalidRequest
from ..models import Endpoint, SeedanceRequest
from ._config import public_url
from ._errors import invalid_response, one_line

__all__ = [
    "IDEMPOTENT_METHODS",
    "Call",
    "coerce_request",
    "generation_rows",
    "log_attempt",
    "parse_model",
    "read_json",
]

logger = logging.getLogger("seedance_prefect.client")
M = TypeVar("M", bound=BaseModel)

#: Methods the client may send again after a transient failure. POST never: a lost answer may
#: hide a paid generation.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})


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

    Example:
        >>> call = Call("GET", "https://hub.oxen.ai/api/ai/queue", httpx.Timeout(5), params={"status": None})
        >>> call.idempotent, Call("POST", call.url, call.timeout).idempotent
        (True, False)
        >>> with httpx.Client() as http:
        ...     request = call.build(http, "seedance-prefect/test")
        >>> str(request.url), request.headers["Accept"]
        ('https://hub.oxen.ai/api/ai/queue', 'application/json')
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
    """Return the JSON body of a successful answer, or raise ``ApiError("invalid_response")``.

    Raises:
        ApiError: The body is not JSON (``error_type`` ``"invalid_response"``; a snippet of the body,
            passed through ``redact``, in the message).

    Example:
        >>> req = httpx.Request("GET", "https://hub.oxen.ai/api/ai/queue/g1")
        >>> read_json(httpx.Response(200, json={"status": "queued"}, request=req))
        {'status': 'queued'}
        >>> read_json(httpx.Response(200, text="<h1>Welcome</h1>", request=req))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        seedance_prefect.errors.ApiError: GET ... answered 200 invalid_response: expected JSON, got: Welcome
    """
    try:
        return response.json()
    except ValueError:
        pass  # raised below, outside the handler, so the decoder error (holding the body) is not chained
    snippet = one_line(response.text[:1000]) or "an empty body"
    raise invalid_response(response, redact(f"expected JSON, got: {snippet[:200]}"))


def parse_model(model: type[M], data: Any, response: httpx.Response) -> M:
    """Validate ``data`` as ``model``, mapping a shape mismatch to ``ApiError("invalid_response")``.

    Raises:
        ApiError: ``data`` does not fit ``model`` (the first problem is named, the data is not quoted).

    Example:
        >>> from seedance_prefect.models import Generation
        >>> req = httpx.Request("GET", "https://hub.oxen.ai/api/ai/queue/g1")
        >>> answer = httpx.Response(200, request=req)
        >>> parse_model(Generation, {"generation_id": "g1", "status": "queued"}, answer).status
        'queued'
        >>> parse_model(Generation, {"status": "queued"}, answer).status  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        seedance_prefect.errors.ApiError: ... unexpected Generation shape at generation_id: Field required
    """
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


def log_attempt(call: Call, outcome: httpx.Response | Exception, started: float) -> None:
    """Log one attempt at debug level: method, URL without query, status or error, elapsed time.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> handler = logging.StreamHandler(out)
        >>> logger.addHandler(handler)
        >>> logger.setLevel(logging.DEBUG)
        >>> call = Call("GET", "https://cdn.example.com/v.mp4?sig=secret", httpx.Timeout(5))
        >>> log_attempt(call, httpx.ConnectError("refused"), time.monotonic())
        >>> logger.removeHandler(handler)
        >>> logger.setLevel(logging.NOTSET)
        >>> out.getvalue()  # doctest: +ELLIPSIS
        'GET https://cdn.example.com/v.mp4 -> ConnectError in 0.0... s\\n'
    """
    if logger.isEnabledFor(logging.DEBUG):
        result = outcome.status_code if isinstance(outcome, httpx.Response) else type(outcome).__name__
        logger.debug(
            "%s %s -> %s in %.3f s", call.method, public_url(call.url), result, time.monotonic() - started
        )
