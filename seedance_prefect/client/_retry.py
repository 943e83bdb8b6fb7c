"""Whether and when to send an idempotent call again (:class:`RetryPolicy`)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ..errors import SeedanceError, is_transient
from ._calls import Call
from ._config import public_url
from ._errors import connection_error, error_from_response

__all__ = ["MAX_BACKOFF", "MAX_RETRY_AFTER", "RETRYABLE_TRANSPORT_ERRORS", "RetryPolicy"]

logger = logging.getLogger("seedance_prefect.client")

#: A ``Retry-After`` longer than this is not slept through: the error is raised with ``retry_after``.
MAX_RETRY_AFTER = 60.0
#: Longest pause between two tries of a call, ``Retry-After`` aside.
MAX_BACKOFF = 8.0
#: Transport failures worth another try for an idempotent call.
RETRYABLE_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


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
