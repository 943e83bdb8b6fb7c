"""The decisions of every wait for a generation, in one place (:class:`WaitTracker`).

``SeedanceClient.wait``, ``AsyncSeedanceClient.wait`` and
:func:`~seedance_prefect.client.completion.wait_for_completion` differ only in how they poll and
sleep (blocking, ``async``, or woken by completion events). What a poll's outcome means is decided
here, for all three:

- a row that is still active: poll again; ``succeeded``: done;
- ``cancelled`` -> :class:`~seedance_prefect.errors.GenerationCancelled`, ``failed`` or an unknown
  terminal status -> :class:`~seedance_prefect.errors.GenerationFailed`, with the service's
  ``error_message`` scrubbed of the API key;
- a 404 before the row was ever seen, during the first ``not_found_grace`` seconds: read-after-write
  lag, poll again; a transient error (429, 5xx, connection): poll again; anything else is raised;
- past the deadline: :class:`~seedance_prefect.errors.GenerationTimeout`, chained from the last
  tolerated error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import (
    GenerationCancelled,
    GenerationFailed,
    GenerationTimeout,
    NotFoundError,
    is_transient,
)
from ..models import Generation
from ..settings import DEFAULT_NOT_FOUND_GRACE_SECONDS

__all__ = ["WaitTracker"]

logger = logging.getLogger("seedance_prefect.client")


class WaitTracker:
    """The decisions of a wait: when to stop, what to raise, how long to sleep at most.

    A wait loop reads: poll (catching the exception, if any); hand the row or the exception to
    :meth:`take`, which returns the succeeded row, returns None to poll again, or raises; sleep
    :meth:`next_delay`.

    Args:
        generation_id: The generation waited for (for messages and errors).
        timeout: Seconds to wait in all, from construction.
        poll_interval: Default seconds between polls (:meth:`next_delay`).
        on_status: Called with the row each time the status changes (first status included).
        not_found_grace: Seconds during which a 404 for a row never seen is read-after-write lag.
        clock: Monotonic clock (injectable for tests).
        redact: Scrubs the API key from the service's ``error_message``.

    Example:
        >>> t = WaitTracker("g1", timeout=60, poll_interval=5)
        >>> t.take(Generation(generation_id="g1", status="processing")) is None, t.next_delay() <= 5
        (True, True)
        >>> t.take(Generation(generation_id="g1", status="succeeded")).status
        'succeeded'
        >>> t.take(Generation(generation_id="g1", status="failed", error_message="bad key s3cr3t"))
        Traceback (most recent call last):
        ...
        seedance_prefect.errors.GenerationFailed: Generation g1 failed: bad key s3cr3t
    """

    def __init__(
        self,
        generation_id: str,
        *,
        timeout: float,
        poll_interval: float,
        on_status: Callable[[Generation], Any] | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE_SECONDS,
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
        self.last_error: Exception | None = None
        self.seen = False

    @property
    def elapsed(self) -> float:
        """Seconds since the wait started.

        Example:
            >>> WaitTracker("g1", timeout=1, poll_interval=1, clock=lambda: 7.0).elapsed
            0.0
        """
        return self._clock() - self.started

    def take(self, outcome: Generation | Exception) -> Generation | None:
        """Decide on the outcome of one poll: a row, or the exception the poll raised.

        Returns:
            The row when it succeeded; None when the wait goes on (an active row, or a tolerated
            error, see :meth:`tolerate`).

        Raises:
            GenerationCancelled: The row is cancelled.
            GenerationFailed: The row failed or ended in an unknown terminal status.
            Exception: ``outcome`` itself, when it is an error that may not be tolerated.

        Example:
            >>> from seedance_prefect.errors import ServerError
            >>> t = WaitTracker("g1", timeout=60, poll_interval=5)
            >>> t.take(ServerError(503)) is None, type(t.last_error).__name__
            (True, 'ServerError')
        """
        if isinstance(outcome, Exception):
            if self.tolerate(outcome):
                return None
            raise outcome
        return outcome if self.observe(outcome) else None

    def observe(self, row: Generation) -> bool:
        """Take a polled row: True when it succeeded, False while active.

        Raises:
            GenerationCancelled: The row is cancelled.
            GenerationFailed: The row failed or ended in an unknown terminal status (e.g. "expired").
                Its ``error_message`` is the service's, with the API key replaced by ``***``.

        Example:
            >>> t = WaitTracker("g1", timeout=60, poll_interval=5, redact=lambda s: s.replace("k3y", "***"))
            >>> t.observe(Generation(generation_id="g1", status="queued"))
            False
            >>> t.observe(Generation(generation_id="g1", status="failed", error_message="bad k3y"))
            Traceback (most recent call last):
            ...
            seedance_prefect.errors.GenerationFailed: Generation g1 failed: bad ***
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

    def tolerate(self, error: Exception) -> bool:
        """Tell whether a failed poll may be ignored (transient, or a 404 early in the wait).

        Example:
            >>> from seedance_prefect.errors import AuthenticationError, NotFoundError
            >>> now = [0.0]
            >>> t = WaitTracker("g1", timeout=600, poll_interval=5, not_found_grace=30, clock=lambda: now[0])
            >>> t.tolerate(NotFoundError(404)), t.tolerate(AuthenticationError(401))
            (True, False)
            >>> now[0] = 31.0
            >>> t.tolerate(NotFoundError(404))
            False
        """
        early_404 = isinstance(error, NotFoundError) and not self.seen and self.elapsed < self.not_found_grace
        if early_404 or is_transient(error):
            logger.warning("Polling generation %s failed, polling on: %s", self.generation_id, error)
            self.last_error = error
            return True
        return False

    def next_delay(self, interval: float | None = None) -> float:
        """Seconds to sleep before the next poll: ``interval`` (default ``poll_interval``), to the deadline.

        Raises:
            GenerationTimeout: The deadline has passed (chained from the last tolerated error).

        Example:
            >>> now = [0.0]
            >>> t = WaitTracker("g1", timeout=10, poll_interval=4, clock=lambda: now[0])
            >>> t.next_delay(), t.next_delay(0.5)
            (4, 0.5)
            >>> now[0] = 8.0
            >>> t.next_delay()
            2.0
            >>> now[0] = 10.0
            >>> t.next_delay()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            seedance_prefect.errors.GenerationTimeout: Generation g1 not finished after 10 s ...
        """
        remaining = self.deadline - self._clock()
        if remaining <= 0:
            raise GenerationTimeout(self.generation_id, self.elapsed, self.last_status) from self.last_error
        return min(self.poll_interval if interval is None else interval, remaining)
