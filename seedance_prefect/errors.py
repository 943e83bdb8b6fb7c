"""Every exception raised by seedance-prefect, and which of them are worth retrying.

Every exception derives from :class:`SeedanceError`. Local validation problems raise
:class:`InvalidRequest` before anything is sent (and so before anything is paid). Answers of the
service map to :class:`ApiError` and its subclasses; a generation that ended badly on the service
raises :class:`GenerationFailed`. :func:`is_transient` tells retry logic (the client's own and
Prefect's ``retry_condition_fn``) which failures are worth another try.

The tree (``transient`` ones marked *)::

    SeedanceError
    ├── InvalidRequest (also ValueError)    bad input, found before any paid call
    ├── ApiError                            an error answer of the service
    │   ├── AuthenticationError             401/403, or no API key
    │   ├── NotFoundError                   404
    │   ├── RateLimitedError *              429 (``retry_after``)
    │   └── ServerError *                   5xx
    ├── SeedanceConnectionError *           no answer (connect, read, reset)
    ├── GenerationFailed                    the generation ended as failed
    │   └── GenerationCancelled             ... or was cancelled
    ├── GenerationTimeout (also TimeoutError)  not done by the deadline (remote job cancelled)
    ├── DownloadError *                     the result could not be fetched whole
    ├── VerificationFailed                  the video does not match the request
    ├── HostingError                        a reference could not be hosted
    ├── DeliveryError *                     a delivery could not be completed or verified
    ├── BudgetExceeded                      a batch's estimated cost is over its budget
    ├── BatchFailed                         some rows of a batch were not delivered
    └── StateError *                        the shared state store could not be read or written
        └── StateConflict *                 a conditional write lost: read again, decide again

The API key never appears in any message or repr: messages are built from the service's answer
and the request's public fields only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import httpx

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BatchFailed",
    "BudgetExceeded",
    "DeliveryError",
    "DownloadError",
    "FieldProblem",
    "GenerationCancelled",
    "GenerationFailed",
    "GenerationTimeout",
    "HostingError",
    "InvalidRequest",
    "NotFoundError",
    "RateLimitedError",
    "SeedanceConnectionError",
    "SeedanceError",
    "ServerError",
    "StateConflict",
    "StateError",
    "VerificationFailed",
    "is_transient",
]


class SeedanceError(Exception):
    """Base class of every error raised by seedance-prefect.

    Example:
        >>> from seedance_prefect.errors import SeedanceError, NotFoundError
        >>> issubclass(NotFoundError, SeedanceError)
        True
    """

    #: Whether trying the same call again may succeed (see :func:`is_transient`).
    transient: bool = False


@dataclass(frozen=True)
class FieldProblem:
    """One problem found in a request, named by its field.

    Attributes:
        field: Where the problem is, e.g. ``"input_videos[0]"`` or ``"duration"``.
        message: What is wrong, in one sentence. Starts with the API's own message text when the
            service documents one (e.g. ``"Invalid duration"``), so users can search for it.
        limit: The rule that was broken, e.g. ``"2-15 s combined"``.
        found: What the request holds, e.g. ``"1.2 s"``.
        fix: What to do about it.
        severity: ``"error"`` refuses the request; ``"warning"`` is reported and sent anyway.
        fixable: True when the reference preprocessing can fix it locally (a planned fix).

    Example:
        >>> p = FieldProblem("duration", "Invalid duration", limit='"auto" or "4".."15"',
        ...                  found='"3"', fix='Use a supported duration value')
        >>> print(p)  # doctest: +NORMALIZE_WHITESPACE
        duration: Invalid duration (limit: "auto" or "4".."15"; found: "3").
        Fix: Use a supported duration value
    """

    field: str
    message: str
    limit: str | None = None
    found: str | None = None
    fix: str | None = None
    severity: Literal["error", "warning"] = "error"
    fixable: bool = False

    def __str__(self) -> str:
        details = "; ".join(
            part
            for part in (
                f"limit: {self.limit}" if self.limit else "",
                f"found: {self.found}" if self.found else "",
            )
            if part
        )
        text = f"{self.field}: {self.message}"
        if details:
            text += f" ({details})"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Return the problem as a JSON-ready dict."""
        return {
            "field": self.field,
            "message": self.message,
            "limit": self.limit,
            "found": self.found,
            "fix": self.fix,
            "severity": self.severity,
            "fixable": self.fixable,
        }


class InvalidRequest(SeedanceError, ValueError):
    """A request was refused locally, before any call to the service.

    Attributes:
        problems: Every error found in the request (all of them, not only the first).
        warnings: Problems that do not refuse the request (e.g. an attachment never referenced).

    Example:
        >>> err = InvalidRequest([FieldProblem("prompt", "Field required", fix="Provide a text prompt")])
        >>> print(err)
        1 problem in the request:
          - prompt: Field required. Fix: Provide a text prompt
    """

    def __init__(self, problems: list[FieldProblem], warnings: list[FieldProblem] | None = None) -> None:
        self.problems = list(problems)
        self.warnings = list(warnings or [])
        count = len(self.problems)
        lines = [f"{count} problem{'s' if count != 1 else ''} in the request:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))

    @property
    def fields(self) -> list[str]:
        """The fields named by the problems, in order."""
        return [p.field for p in self.problems]


class ApiError(SeedanceError):
    """The service answered with an error status.

    Attributes:
        status_code: The HTTP status.
        error_type: The envelope's ``error.type`` (e.g. ``"invalid_params"``) when given.
        detail: The most specific message of the answer (``error.detail``, ``error.message`` or
            ``error.title``), e.g. ``"Invalid duration"`` or ``"Model not found: x"``.
        retry_after: Seconds the service asked us to wait (``Retry-After``), if any.
        method: The HTTP method of the failed call.
        url: The URL of the failed call, without its query string.

    Example:
        >>> err = ApiError(400, "invalid_params", "Invalid duration", method="POST", url="https://hub.oxen.ai/api/ai/queue")
        >>> str(err)
        'POST https://hub.oxen.ai/api/ai/queue answered 400 invalid_params: Invalid duration'
    """

    def __init__(
        self,
        status_code: int,
        error_type: str | None = None,
        detail: str | None = None,
        *,
        retry_after: float | None = None,
        method: str | None = None,
        url: str | None = None,
        body: Any = None,
    ) -> None:
        self.status_code = status_code
        self.error_type = error_type
        self.detail = detail
        self.retry_after = retry_after
        self.method = method
        self.url = url
        self.body = body
        where = f"{method} {url} answered " if method and url else "The service answered "
        text = f"{where}{status_code}"
        if error_type:
            text += f" {error_type}"
        if detail:
            text += f": {detail}"
        super().__init__(text)

    @property
    def transient(self) -> bool:  # type: ignore[override]
        """True for 429 and 5xx answers."""
        return self.status_code == 429 or self.status_code >= 500


class AuthenticationError(ApiError):
    """401: the API key is missing or not accepted. Set ``OXEN_API_KEY`` or an ``OxenCredentials`` block.

    Example:
        >>> AuthenticationError(401, "unauthenticated").transient
        False
    """


class NotFoundError(ApiError):
    """404: unknown generation id, model or path.

    Example:
        >>> str(NotFoundError(404, "resource_not_found"))
        'The service answered 404 resource_not_found'
    """


class RateLimitedError(ApiError):
    """429: too many requests; ``retry_after`` holds the seconds the service asked for.

    Example:
        >>> RateLimitedError(429, retry_after=2.0).retry_after
        2.0
    """


class ServerError(ApiError):
    """5xx: the service failed; worth retrying.

    Example:
        >>> ServerError(503, "unknown_error").transient
        True
    """


class SeedanceConnectionError(SeedanceError):
    """The service could not be reached or the connection broke before an answer (transient).

    Attributes:
        method: The HTTP method of the call.
        url: The URL of the call, without its query string.

    Example:
        >>> SeedanceConnectionError("connection refused").transient
        True
    """

    transient = True

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        self.method = method
        self.url = url
        super().__init__(message)


class GenerationFailed(SeedanceError):
    """A generation ended ``failed`` (or in an unknown terminal status) on the service.

    Attributes:
        generation_id: The generation's id.
        status: The terminal status, e.g. ``"failed"`` or ``"expired"``.
        error_message: The service's ``error_message`` (e.g. ``"Insufficient credits"``).

    Example:
        >>> str(GenerationFailed("0b6f", "failed", "Insufficient credits"))
        'Generation 0b6f failed: Insufficient credits'
    """

    def __init__(self, generation_id: str, status: str, error_message: str | None = None) -> None:
        self.generation_id = generation_id
        self.status = status
        self.error_message = error_message
        text = f"Generation {generation_id} {status}"
        if error_message:
            text += f": {error_message}"
        super().__init__(text)


class GenerationCancelled(GenerationFailed):
    """A generation was cancelled (by us, a user or the service).

    Example:
        >>> str(GenerationCancelled("g1", "cancelled"))
        'Generation g1 cancelled'
    """


class GenerationTimeout(SeedanceError, TimeoutError):
    """Waiting for a generation took longer than the deadline. The generation may still be running.

    Example:
        >>> str(GenerationTimeout("g1", 900.4, "processing"))
        'Generation g1 not finished after 900 s (last status: processing)'
    """

    def __init__(self, generation_id: str, waited: float, last_status: str | None = None) -> None:
        self.generation_id = generation_id
        self.waited = waited
        self.last_status = last_status
        super().__init__(
            f"Generation {generation_id} not finished after {waited:.0f} s (last status: {last_status})"
        )


class DownloadError(SeedanceError):
    """A result download was incomplete, too large or otherwise unusable; nothing was kept.

    Attributes:
        transient: True for a truncated or broken transfer (worth another try), False for a file
            over the size cap.

    Example:
        >>> DownloadError("truncated: 10 of 20 bytes").transient
        True
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        self.transient = transient
        super().__init__(message)


class VerificationFailed(SeedanceError):
    """A downloaded video does not match the request (codec, size, duration or audio).

    Attributes:
        problems: One sentence per failed check.
        kept_at: Where the rejected file was kept aside, if it was.

    Example:
        >>> str(VerificationFailed(["codec: expected H.264, found vp9"]))
        'Video verification failed: codec: expected H.264, found vp9'
    """

    def __init__(self, problems: list[str], kept_at: str | None = None) -> None:
        self.problems = list(problems)
        self.kept_at = kept_at
        text = "Video verification failed: " + "; ".join(self.problems)
        if kept_at:
            text += f" (file kept aside at {kept_at})"
        super().__init__(text)


class HostingError(SeedanceError):
    """A reference could not be hosted (upload refused, bucket unreachable, misconfiguration)."""


class DeliveryError(SeedanceError):
    """A delivery could not be completed or verified (nothing wrong is left behind).

    Example:
        >>> str(DeliveryError("size mismatch"))
        'size mismatch'
    """

    transient = True


class BudgetExceeded(SeedanceError):
    """The estimated cost of a batch is over its budget; nothing was enqueued.

    Attributes:
        cost_usd: The estimated cost.
        budget_usd: The budget.
    """

    def __init__(self, cost_usd: float, budget_usd: float) -> None:
        self.cost_usd = cost_usd
        self.budget_usd = budget_usd
        super().__init__(
            f"Estimated cost ${cost_usd:.2f} is over the budget of ${budget_usd:.2f}: nothing was enqueued"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.cost_usd, self.budget_usd))


class BatchFailed(SeedanceError):
    """Some rows of a batch were not delivered; ``summary`` has every row and the totals."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        self.summary = summary
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.summary))


class StateError(SeedanceError):
    """The state store could not be read or written (unreachable, refused, misconfigured).

    Transient: trying again may succeed (a retried task re-reads the store before it acts).
    """

    transient = True


class StateConflict(StateError):
    """A conditional write lost: the key already exists (create) or changed since it was read (replace).

    Nothing was written by the call that raised it (but see the module docstring of
    :mod:`seedance_prefect.state` about S3 retries). Re-read the key and decide again.

    Example:
        >>> issubclass(StateConflict, StateError), StateConflict("k").transient
        (True, True)
    """


def is_transient(exc: BaseException) -> bool:
    """Tell whether trying the same call again may succeed.

    Transient: 429, 5xx, connection and read errors, timeouts of a single request, truncated
    downloads. Everything else (400, 401, 404, failed generations, invalid input) is permanent.

    Args:
        exc: Any exception.

    Returns:
        True when a retry may help.

    Example:
        >>> is_transient(RateLimitedError(429, retry_after=1.0))
        True
        >>> is_transient(InvalidRequest([]))
        False
    """
    if isinstance(exc, SeedanceError):
        return bool(exc.transient)
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return code == 429 or code >= 500
    return isinstance(exc, (httpx.TransportError, ConnectionError))
