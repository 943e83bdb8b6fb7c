"""The decisions of every wait for a generation, in one place (:class:`WaitTracker`).

``SeedanceClient.wait``, ``AsyncSeedanceClient.wait`` and
:func:`~seedance_prefect.client.completion.wait_for_completion` differ only in how they poll and
sleep (blocking, ``async``, or woken by completion events). What a poll's outcome means is decided
here, for all three:

- a row that is still active: poll again; ``succeeded``: done;
- ``cancelled`` -> :class:`~seedance_prefect.errors.GenerationCancelled`, ``failed`` or an unknown
  terminal status -> :class:`~seedance_prefect.errors.GenerationFailed`, with the service's
  ``error_message`` scrubbed of the API key;
- a transient error (429, 5xx, connection): poll again;
- a 404 for the row. The queue may lag behind the enqueue answer, and an older queue forgets rows
  once they are terminal (contract §3.3: "404 once terminal, results delivered only via SSE"), so
  three sources are asked in turn:

  1. the generation's completion event, when one was received (:meth:`WaitTracker.note_event`):
     ``succeeded`` with its ``url``, or ``failed`` with its ``error``, decides;
  2. else the history lookup (``GET /ai/generations/{id}``, :meth:`WaitTracker.take_history`): a
     terminal row there decides;
  3. else, before the row was ever seen and during the first ``not_found_grace`` seconds, it is
     read-after-write lag: poll again; with an event stream, the event may still be on its way for
     ``event_grace`` seconds; after that :class:`~seedance_prefect.errors.NotFoundError` names what
     was tried (row 404, no event, the history's answer);
- past the deadline: :class:`~seedance_prefect.errors.GenerationTimeout`, chained from the last
  tolerated error.

The tracker does no I/O: a loop polls, hands the outcome to :meth:`WaitTracker.take`, and when
:attr:`WaitTracker.history_due` is set, looks the generation up and hands that outcome to
:meth:`WaitTracker.take_history`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import (
    ApiError,
    GenerationCancelled,
    GenerationFailed,
    GenerationTimeout,
    NotFoundError,
    is_transient,
)
from ..models import CompletionEvent, Generation
from ..settings import DEFAULT_NOT_FOUND_GRACE_SECONDS

__all__ = ["EVENT_GRACE_SECONDS", "WaitTracker"]

logger = logging.getLogger("seedance_prefect.client")

#: Once a row and its history both answer 404, how long a wait fed by completion events still waits
#: for the event (it travels on another connection than the 404, and may be a moment behind).
EVENT_GRACE_SECONDS = 2.0
#: Completion-event statuses that decide a wait (the service sends no other).
_DECISIVE_EVENTS = frozenset({"succeeded", "failed"})


class WaitTracker:
    """The decisions of a wait: when to stop, what to raise, how long to sleep at most.

    A wait loop reads: poll (catching the exception, if any); hand the row or the exception to
    :meth:`take`, which returns the succeeded row, returns None to poll again, or raises; when
    :attr:`history_due` is then set, look the generation up in the history and hand that outcome
    to :meth:`take_history` (same returns); sleep :meth:`next_delay`. A loop fed by completion
    events calls :meth:`note_event` with the generation's event, if any, before :meth:`take`.

    Args:
        generation_id: The generation waited for (for messages and errors).
        timeout: Seconds to wait in all, from construction.
        poll_interval: Default seconds between polls (:meth:`next_delay`).
        on_status: Called with the row each time the status changes (first status included).
        not_found_grace: Seconds during which a 404 for a row never seen is read-after-write lag.
        clock: Monotonic clock (injectable for tests).
        redact: Scrubs the API key from the service's ``error_message``.
        events: Whether completion events are fed to :meth:`note_event` (then a row and history
            that both answer 404 wait ``event_grace`` seconds for the event before giving up).
        event_grace: See ``events``.

    Attributes:
        history_due: Set by :meth:`take` when the row answered 404 and no completion event decides:
            look the generation up in the history now.
        event: The generation's completion event, once one was noted.

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

        The row vanished after it was seen, and the completion event carries the result:

        >>> t = WaitTracker("g1", timeout=60, poll_interval=5, events=True)
        >>> t.take(Generation(generation_id="g1", status="processing"))
        >>> t.note_event(CompletionEvent(generation_id="g1", status="succeeded", url="https://x/v.mp4"))
        >>> t.take(NotFoundError(404, "resource_not_found")).result_url
        'https://x/v.mp4'
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
        events: bool = False,
        event_grace: float = EVENT_GRACE_SECONDS,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.generation_id = generation_id
        self.poll_interval = poll_interval
        self.on_status = on_status
        self.not_found_grace = not_found_grace
        self.events = events
        self.event_grace = event_grace
        self._clock = clock
        self._redact = redact
        self.started = clock()
        self.deadline = self.started + timeout
        self.last_status: str | None = None
        self.last_error: Exception | None = None
        self.seen = False
        self.event: CompletionEvent | None = None
        self.history_due = False
        self._row_missing: NotFoundError | None = None
        self._gone_since: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the wait started.

        Example:
            >>> WaitTracker("g1", timeout=1, poll_interval=1, clock=lambda: 7.0).elapsed
            0.0
        """
        return self._clock() - self.started

    def note_event(self, event: CompletionEvent | None) -> None:
        """Keep the generation's completion event, to decide by when its row answers 404.

        Events of other generations, None and statuses other than ``succeeded``/``failed`` are
        ignored.

        Example:
            >>> t = WaitTracker("g1", timeout=60, poll_interval=5)
            >>> t.note_event(CompletionEvent(generation_id="g2", status="succeeded")); t.event is None
            True
            >>> t.note_event(CompletionEvent(generation_id="g1", status="failed", error="No credits"))
            >>> t.event.error
            'No credits'
        """
        if (
            event is not None
            and event.generation_id == self.generation_id
            and event.status in _DECISIVE_EVENTS
        ):
            self.event = event

    def take(self, outcome: Generation | Exception) -> Generation | None:
        """Decide on the outcome of one poll: a row, or the exception the poll raised.

        Returns:
            The row when it succeeded; None when the wait goes on (an active row, a tolerated
            error, see :meth:`tolerate`, or a 404 to look up in the history: :attr:`history_due`).

        Raises:
            GenerationCancelled: The row is cancelled.
            GenerationFailed: The row failed or ended in an unknown terminal status, or the row
                answered 404 and the completion event says ``failed``.
            Exception: ``outcome`` itself, when it is an error that may not be tolerated.

        Example:
            >>> from seedance_prefect.errors import ServerError
            >>> t = WaitTracker("g1", timeout=60, poll_interval=5)
            >>> t.take(ServerError(503)) is None, type(t.last_error).__name__
            (True, 'ServerError')
            >>> t.take(NotFoundError(404)) is None, t.history_due
            (True, True)
        """
        self.history_due = False
        if isinstance(outcome, NotFoundError):
            self._row_missing = outcome
            if self.event is not None:
                return self.take_event()
            self.history_due = True  # neither row nor event: the history is the third source
            return None
        if isinstance(outcome, Exception):
            if self.tolerate(outcome):
                return None
            raise outcome
        return outcome if self.observe(outcome) else None

    def take_event(self) -> Generation | None:
        """Decide by the noted completion event (the row answered 404): its ``url`` or its ``error``.

        The row is built from the event (status, ``result_url``, ``error_message``, model); the
        download's own checks (size, checksum, decode) guard what it points to.

        Raises:
            GenerationFailed: The event says ``failed`` (its ``error``, redacted).
            ValueError: No event was noted.

        Example:
            >>> t = WaitTracker("g1", timeout=60, poll_interval=5)
            >>> t.note_event(CompletionEvent(generation_id="g1", status="failed", error="No credits"))
            >>> t.take_event()
            Traceback (most recent call last):
            ...
            seedance_prefect.errors.GenerationFailed: Generation g1 failed: No credits
        """
        if self.event is None:
            raise ValueError("no completion event was noted")
        logger.info(
            "Generation %s: the queue answers 404; its completion event (%s) decides",
            self.generation_id,
            self.event.status,
        )
        row = self.event.to_generation()
        return row if self.observe(row) else None

    def take_history(self, outcome: Generation | Exception) -> Generation | None:
        """Decide on the history lookup made because the row answered 404 (:attr:`history_due`).

        A terminal history row decides like a polled one; an active one means the generation
        exists (poll on); a transient error is tolerated. A 404 (or another refusal) is tolerated
        while the row's 404 is (never seen, within ``not_found_grace``) and, for a wait fed by
        completion events, ``event_grace`` seconds more; then the wait gives up.

        Returns:
            The succeeded row, or None when the wait goes on.

        Raises:
            GenerationFailed: The history row failed (or was cancelled: GenerationCancelled).
            NotFoundError: Neither row, event nor history: the message names the three answers.

        Example:
            >>> now = [0.0]
            >>> t = WaitTracker("g1", timeout=60, poll_interval=5, clock=lambda: now[0])
            >>> t.take(Generation(generation_id="g1", status="processing"))
            >>> t.take(NotFoundError(404, "resource_not_found"))
            >>> t.take_history(NotFoundError(404, "resource_not_found"))  # doctest: +NORMALIZE_WHITESPACE
            Traceback (most recent call last):
            ...
            seedance_prefect.errors.NotFoundError: The service answered 404 resource_not_found:
            Generation g1 is gone: the queue row answered 404 after it was seen processing; no completion
            event was received (none subscribed); the history lookup answered 404 resource_not_found
        """
        self.history_due = False
        if isinstance(outcome, Generation):
            if outcome.is_active:
                logger.info(
                    "Generation %s: not in the queue, %s in the history", self.generation_id, outcome.status
                )
            else:
                logger.info("Generation %s: the queue answers 404; the history decides", self.generation_id)
            return outcome if self.observe(outcome) else None
        if is_transient(outcome):
            logger.warning(
                "History lookup of generation %s failed, polling on: %s", self.generation_id, outcome
            )
            self.last_error = outcome
            return None
        missing = self._row_missing or NotFoundError(404, "resource_not_found")
        if self.tolerate(missing):  # never seen, early: read-after-write lag
            return None
        now = self._clock()
        if self._gone_since is None:
            self._gone_since = now
        if self.events and self.event is None and now - self._gone_since < self.event_grace:
            return None  # the completion event may still be on its way
        raise self._gone(missing, outcome) from outcome

    def _gone(self, missing: NotFoundError, history: Exception) -> NotFoundError:
        if self.seen:
            row = f"the queue row answered 404 after it was seen {self.last_status}"
        else:
            row = f"the queue row answered 404 for {self.elapsed:.0f} s and was never seen"
        event = "no completion event was received" + ("" if self.events else " (none subscribed)")
        if isinstance(history, ApiError):
            answer = " ".join(str(part) for part in (history.status_code, history.error_type) if part)
            if history.status_code != 404 and history.detail:
                answer += f": {history.detail}"
        else:
            answer = f"{type(history).__name__}: {history}"
        detail = (
            f"Generation {self.generation_id} is gone: {row}; {event}; the history lookup answered {answer}"
        )
        return NotFoundError(
            missing.status_code, missing.error_type or "resource_not_found", self._redact(detail)
        )

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
        """Tell whether a failed poll may be ignored (transient, or a 404 before the row was seen, early).

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
