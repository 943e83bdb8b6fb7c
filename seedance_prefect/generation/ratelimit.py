"""The one rate-limit loop of the paid POSTs: a 429 answer is waited out and the POST sent again.

A 429 means the service refused the call before doing anything, so posting again cannot pay twice.
The client never retries a POST by itself (a lost answer may hide a paid generation); this loop
retries exactly the one answer that is known to have created nothing. Both the queue
(:func:`~seedance_prefect.generation.enqueue.enqueue_once`) and the synchronous endpoint
(:func:`~seedance_prefect.generation.download.generate_and_save`) post through it.

Example:
    >>> from seedance_prefect.errors import RateLimitedError
    >>> answers = [RateLimitedError(429, retry_after=0.01), "created"]
    >>> def post():
    ...     answer = answers.pop(0)
    ...     if isinstance(answer, Exception):
    ...         raise answer
    ...     return answer
    >>> post_waiting_out_429(post)
    'created'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

from ..errors import RateLimitedError

__all__ = ["MAX_RATE_LIMIT_WAIT", "RATE_LIMIT_TRIES", "Log", "post_waiting_out_429"]

#: A standard logger or an adapter of one (Prefect's run logger is a ``LoggerAdapter``).
Log: TypeAlias = logging.Logger | logging.LoggerAdapter[Any]

#: Times a 429 answer to a POST is waited out before giving up (nothing was created by a 429).
RATE_LIMIT_TRIES = 5
#: Longest wait, in seconds, after one 429, whatever ``Retry-After`` asks for.
MAX_RATE_LIMIT_WAIT = 60.0

T = TypeVar("T")

_LOG = logging.getLogger(__name__)


def post_waiting_out_429(
    post: Callable[[], T],
    *,
    tries: int = RATE_LIMIT_TRIES,
    log: Log | None = None,
    what: str = "posting",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``post`` until it is not answered 429; wait ``Retry-After`` (1 s if absent) between tries.

    Only :class:`~seedance_prefect.errors.RateLimitedError` is caught; any other error (a lost
    answer, a refusal) goes to the caller at once, since it may mean something was created.

    Args:
        post: The POST to make (no arguments); its answer is returned.
        tries: How many times ``post`` is called at most.
        log: Where the waits are logged (info level).
        what: What is being posted, for the log line (``"Rate limited; waiting 1.0 s before <what>"``).
        sleep: The wait (``time.sleep``); capped at :data:`MAX_RATE_LIMIT_WAIT` seconds per 429.

    Returns:
        What ``post`` returned.

    Raises:
        RateLimitedError: Every try was answered 429 (chained to the last answer).

    Example:
        >>> from seedance_prefect.errors import RateLimitedError
        >>> waits = []
        >>> def always_429():
        ...     raise RateLimitedError(429, retry_after=2.0)
        >>> try:
        ...     post_waiting_out_429(always_429, tries=3, sleep=waits.append)
        ... except RateLimitedError as exc:
        ...     print(exc.status_code, exc.detail)
        429 Still rate limited after 3 tries
        >>> waits  # no wait after the last try
        [2.0, 2.0]
    """
    logger = log or _LOG
    tries = max(1, tries)
    for attempt in range(1, tries + 1):
        try:
            return post()
        except RateLimitedError as exc:  # nothing was created: wait it out and post again
            if attempt == tries:
                raise RateLimitedError(
                    429, "rate_limited", f"Still rate limited after {tries} tries"
                ) from exc
            wait = exc.retry_after or 1.0
            logger.info("Rate limited; waiting %.1f s before %s", wait, what)
            sleep(min(wait, MAX_RATE_LIMIT_WAIT))
    raise AssertionError("unreachable")  # pragma: no cover
