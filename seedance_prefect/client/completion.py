"""Wait for generations: completion events (SSE) first, slow polling as the fallback.

One :class:`CompletionHub` per account and process keeps a single ``GET /events`` stream open and
wakes the waiters whose generation completed. Each waiter also polls its row: every
``poll_interval`` seconds (15-30 s is the documented advice for video) while the stream is down,
every ``2 x poll_interval`` while it is up (a safety net, keeping a long wait under two requests a
minute), and at once after the stream reconnects, because the service does not replay events
missed while disconnected. The row from ``GET /ai/queue/{id}`` is always the authority: an event
only says "look now".

This module only decides *when* to poll. What a poll's answer means (404 grace, transient errors,
the exception of a terminal status, the deadline) is decided by the client's
:class:`~seedance_prefect.client._wait.WaitTracker`, the same one ``SeedanceClient.wait`` uses.

Example:
    ```python
    from seedance_prefect.client import SeedanceClient
    from seedance_prefect.client.completion import wait_for_completion

    with SeedanceClient() as client:
        row = wait_for_completion(client, "0b6f...", timeout=900, poll_interval=30)
    ```
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..models import Generation
from ..settings import DEFAULT_SAFETY_POLL_INTERVAL, DEFAULT_TIMEOUT_SECONDS
from ._client import SeedanceClient

__all__ = ["CompletionHub", "wait_for_completion"]

logger = logging.getLogger("seedance_prefect.client.completion")

#: After an event said "done" while the row still says otherwise, poll again this soon, this often.
EVENT_RECHECK_SECONDS = 0.5
EVENT_RECHECKS = 5
#: While the completion-event stream is connected, safety polls are this many times rarer.
STREAM_UP_POLL_FACTOR = 2
#: After a failed poll (a tolerated 404 or transient error), poll again at most this long after.
RETRY_POLL_SECONDS = 2.0


@dataclass
class _Subscription:
    generation_id: str
    wake: threading.Event = field(default_factory=threading.Event)


class CompletionHub:
    """One shared completion-event stream per account, delivering wake-ups to waiters.

    The stream runs in a daemon thread, reconnects with a growing delay (1 s up to 15 s) and, after
    each reconnect, wakes every waiter so that it polls once.

    Args:
        client_factory: Returns a new client whose ``events()`` yields ``CompletionEvent`` objects.

    Example:
        ```python
        hub = CompletionHub.for_account(base_url, api_key, lambda: SeedanceClient(api_key, base_url=base_url))
        row = wait_for_completion(client, generation_id, hub=hub)
        ```
    """

    _hubs: dict[str, CompletionHub] = {}  # noqa: RUF012 - process-wide registry
    _hubs_lock = threading.Lock()

    def __init__(self, client_factory: Callable[[], object]) -> None:
        self._client_factory = client_factory
        self._subs: dict[str, list[_Subscription]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.reconnects = 0

    @classmethod
    def for_account(cls, base_url: str, api_key: str, client_factory: Callable[[], object]) -> CompletionHub:
        """Return the process-wide hub of an account (the key is only hashed, never stored).

        The stream starts with the first :meth:`subscribe`, not here.

        Example:
            >>> hub = CompletionHub.for_account("https://hub.test/api", "k3y", lambda: None)
            >>> hub is CompletionHub.for_account("https://hub.test/api", "k3y", lambda: None)
            True
            >>> hub is CompletionHub.for_account("https://hub.test/api", "other", lambda: None)
            False
        """
        ident = hashlib.sha256(f"{base_url}\0{api_key}".encode()).hexdigest()
        with cls._hubs_lock:
            hub = cls._hubs.get(ident)
            if hub is None:
                hub = cls._hubs[ident] = cls(client_factory)
            return hub

    def subscribe(self, generation_id: str) -> _Subscription:
        """Start listening for one generation; starts the stream if needed."""
        sub = _Subscription(generation_id)
        with self._lock:
            self._subs.setdefault(generation_id, []).append(sub)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="seedance-events", daemon=True)
                self._thread.start()
        return sub

    def unsubscribe(self, sub: _Subscription) -> None:
        """Stop listening for a subscription."""
        with self._lock:
            subs = self._subs.get(sub.generation_id, [])
            if sub in subs:
                subs.remove(sub)
            if not subs:
                self._subs.pop(sub.generation_id, None)

    def _wake(self, generation_id: str | None) -> None:
        with self._lock:
            targets = (
                [s for subs in self._subs.values() for s in subs]
                if generation_id is None
                else list(self._subs.get(generation_id, []))
            )
        for sub in targets:
            sub.wake.set()

    def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                client = self._client_factory()
                with client:  # type: ignore[attr-defined]
                    stream = client.events()  # type: ignore[attr-defined]
                    self.connected.set()
                    if self.reconnects:
                        self._wake(None)  # events may have been missed: everyone polls once
                    delay = 1.0
                    for event in stream:
                        self._wake(event.generation_id)
            except Exception as exc:  # the stream is best effort; polling covers the gaps
                logger.debug(
                    "completion event stream broke (%s); reconnecting in %.0f s", type(exc).__name__, delay
                )
            self.connected.clear()
            self.reconnects += 1
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def wait_for_completion(
    client: SeedanceClient,
    generation_id: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    poll_interval: float = DEFAULT_SAFETY_POLL_INTERVAL,
    hub: CompletionHub | None = None,
    on_change: Callable[[Generation], None] | None = None,
) -> Generation:
    """Wait until a generation is terminal; return its row if it succeeded.

    Every answer of a poll is judged as by :meth:`SeedanceClient.wait
    <seedance_prefect.client.SeedanceClient.wait>`: a 404 is read-after-write lag during the first
    :data:`~seedance_prefect.settings.DEFAULT_NOT_FOUND_GRACE_SECONDS` (until the row is seen),
    transient errors are tolerated until the deadline, and a failed row's ``error_message`` is
    scrubbed of the API key.

    Args:
        client: A :class:`~seedance_prefect.client.SeedanceClient`.
        generation_id: The generation to wait for.
        timeout: Overall deadline in seconds (monotonic clock).
        poll_interval: Seconds between polls when no event arrives.
        hub: Completion-event hub; without one, this only polls.
        on_change: Called with the row at every status change (and once at the start).

    Returns:
        The succeeded row (with ``result_url``).

    Raises:
        GenerationFailed: The generation failed or ended in an unknown terminal status.
        GenerationCancelled: The generation was cancelled.
        GenerationTimeout: Not finished before the deadline (the caller decides whether to cancel),
            chained from the last tolerated poll error, if any.
        NotFoundError: Still unknown after the grace period, or gone after it was seen.
        SeedanceError: A permanent error of a poll (e.g. 401).

    Example:
        >>> import httpx
        >>> def queue(request: httpx.Request) -> httpx.Response:
        ...     return httpx.Response(200, json={"generation_id": "g1", "status": "succeeded"})
        >>> http = httpx.Client(transport=httpx.MockTransport(queue))
        >>> with SeedanceClient("k3y", base_url="https://hub.test/api", http_client=http) as client:
        ...     wait_for_completion(client, "g1", timeout=5, poll_interval=1).status
        'succeeded'
    """
    tracker = client._wait_tracker(generation_id, timeout, poll_interval, on_change)
    sub = hub.subscribe(generation_id) if hub else None
    if hub:
        hub.connected.wait(timeout=min(5.0, timeout))  # subscribe before the first poll: no gap
    recheck = 0
    try:
        while True:
            try:
                outcome: Generation | Exception = client.get(generation_id)
            except Exception as exc:  # judged by the tracker: tolerated, or raised again
                outcome = exc
            row = tracker.take(outcome)
            if row is not None:
                return row
            # with the event stream up, a safety poll every 2 x poll_interval; without it, every poll_interval
            interval = poll_interval * (STREAM_UP_POLL_FACTOR if hub and hub.connected.is_set() else 1)
            wait_for = EVENT_RECHECK_SECONDS if recheck else interval
            if isinstance(outcome, Exception):  # not visible yet, or a failed poll: look again soon
                wait_for = min(wait_for, RETRY_POLL_SECONDS)
            recheck = max(0, recheck - 1)
            delay = tracker.next_delay(wait_for)  # raises GenerationTimeout past the deadline
            if sub is None:
                time.sleep(delay)
                continue
            if sub.wake.wait(delay):
                # an event (or a reconnect) said "look now": poll at once, and a few more times
                # shortly after, in case the row lags behind the event
                recheck = EVENT_RECHECKS
            sub.wake.clear()
    finally:
        if hub and sub:
            hub.unsubscribe(sub)
