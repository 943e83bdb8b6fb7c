"""Wait for generations: completion events (SSE) first, slow polling as the fallback.

One :class:`CompletionHub` per account and process keeps a single ``GET /events`` stream open,
remembers the last completion event of each generation (the last :data:`EVENT_MEMORY` ids) and
wakes the waiters whose generation completed. The service does not replay events, so open the
stream *before* enqueuing (:meth:`CompletionHub.ensure_connected`): an event that arrives before
its waiter subscribes is then remembered, not lost.

Each waiter polls its row: every ``poll_interval`` seconds (15-30 s is the documented advice for
video) while the stream is down, every ``2 x poll_interval`` while it is up (a safety net, keeping
a long wait under two requests a minute), and at once after an event or a reconnect (events
missed while disconnected are gone). The row from ``GET /ai/queue/{id}`` decides while it exists;
when it answers 404 (an older queue forgets terminal rows), the generation's completion event
decides, then the history lookup ``GET /ai/generations/{id}``.

What an answer means (404 grace, transient errors, the exception of a terminal status, the
deadline, the row-event-history order) is decided by the client's
:class:`~seedance_prefect.client._wait.WaitTracker`, the same one ``SeedanceClient.wait`` uses;
this module only decides *when* to poll and feeds the tracker the events.

Example:
    ```python
    from seedance_prefect.client import SeedanceClient
    from seedance_prefect.client.completion import CompletionHub, wait_for_completion

    hub = CompletionHub.for_account(base_url, api_key, lambda: SeedanceClient(api_key, base_url=base_url))
    hub.ensure_connected(5.0)  # before the POST: no completion can be missed
    with SeedanceClient(api_key, base_url=base_url) as client:
        [row] = client.enqueue(request)
        done = wait_for_completion(client, row.generation_id, timeout=900, poll_interval=30, hub=hub)
    ```
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..models import CompletionEvent, Generation
from ..settings import DEFAULT_SAFETY_POLL_INTERVAL, DEFAULT_TIMEOUT_SECONDS
from ._client import SeedanceClient

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "EVENT_MEMORY", "CompletionHub", "wait_for_completion"]

logger = logging.getLogger("seedance_prefect.client.completion")

#: After an event said "done" while the row still says otherwise, poll again this soon, this often.
EVENT_RECHECK_SECONDS = 0.5
EVENT_RECHECKS = 5
#: While the completion-event stream is connected, safety polls are this many times rarer.
STREAM_UP_POLL_FACTOR = 2
#: After a failed poll (a tolerated 404 or transient error), poll again at most this long after.
RETRY_POLL_SECONDS = 2.0
#: How long the flows wait for the event stream to connect before they enqueue (then they go on).
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Completion events a hub remembers: the last event of this many generation ids, oldest dropped.
EVENT_MEMORY = 10_000


@dataclass
class _Subscription:
    generation_id: str
    wake: threading.Event = field(default_factory=threading.Event)


class CompletionHub:
    """One shared completion-event stream per account: remembers events and wakes their waiters.

    The stream runs in a daemon thread, started by :meth:`ensure_connected` or the first
    :meth:`subscribe`; it reconnects with a growing delay (1 s up to 15 s) and, after each
    reconnect, wakes every waiter so that it polls once. The last completion event of each
    generation is kept (:meth:`last_event`, at most ``memory`` ids), so a waiter that subscribes
    after its generation's event still gets it.

    Args:
        client_factory: Returns a new client (a context manager) whose ``events()`` yields
            ``CompletionEvent`` objects.
        memory: How many generation ids' last events are kept (oldest forgotten first).

    Example:
        >>> class Events:  # stands in for a client: one event, then the stream ends
        ...     def __enter__(self): return self
        ...     def __exit__(self, *exc): pass
        ...     def events(self):
        ...         return iter([CompletionEvent(generation_id="g1", status="succeeded", url="https://x/v.mp4")])
        >>> hub = CompletionHub(Events)
        >>> hub.ensure_connected(5.0)
        True
        >>> for _ in range(500):  # the event arrives on the hub's thread
        ...     if hub.last_event("g1"):
        ...         break
        ...     time.sleep(0.01)
        >>> hub.last_event("g1").url, hub.last_event("g2")
        ('https://x/v.mp4', None)
    """

    _hubs: dict[str, CompletionHub] = {}  # noqa: RUF012 - process-wide registry
    _hubs_lock = threading.Lock()

    def __init__(self, client_factory: Callable[[], object], *, memory: int = EVENT_MEMORY) -> None:
        if memory < 1:
            raise ValueError("memory must be at least 1")
        self._client_factory = client_factory
        self._subs: dict[str, list[_Subscription]] = {}
        self._events: OrderedDict[str, CompletionEvent] = OrderedDict()
        self._memory = memory
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._warned = False
        self.connected = threading.Event()
        self.reconnects = 0

    @classmethod
    def for_account(cls, base_url: str, api_key: str, client_factory: Callable[[], object]) -> CompletionHub:
        """Return the process-wide hub of an account (the key is only hashed, never stored).

        The stream starts with :meth:`ensure_connected` or the first :meth:`subscribe`, not here.

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

    def _start(self) -> None:
        """Start the stream's thread unless it runs (call with ``_lock`` held)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="seedance-events", daemon=True)
            self._thread.start()

    def ensure_connected(self, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> bool:
        """Start the stream if needed and wait until it is connected, at most ``timeout`` seconds.

        Call it before enqueuing: the service does not replay events, and once connected every
        later completion reaches the hub. On a timeout the caller goes on (polling finds the
        result, later); that is logged once, and later calls do not wait again until the stream
        has connected (a service without an event stream costs one wait per process, not one per
        generation).

        Returns:
            True when the stream is connected.

        Example:
            >>> def broken():
            ...     raise ConnectionError("no network")
            >>> CompletionHub(broken).ensure_connected(0.05)
            False
        """
        with self._lock:
            self._start()
            gave_up = self._warned
        if self.connected.wait(0 if gave_up else timeout):
            return True
        with self._lock:
            warn, self._warned = not self._warned, True
        if warn:
            logger.warning(
                "The completion-event stream did not connect within %.1f s; going on with polling "
                "(a generation that ends before it connects is found by the next safety poll)",
                timeout,
            )
        return False

    def last_event(self, generation_id: str) -> CompletionEvent | None:
        """Return the last completion event received for ``generation_id`` (None: none remembered).

        Example:
            >>> CompletionHub(lambda: None).last_event("g1") is None
            True
        """
        with self._lock:
            return self._events.get(generation_id)

    def subscribe(self, generation_id: str) -> _Subscription:
        """Start listening for one generation; starts the stream if needed.

        When its event arrived already, the subscription is woken at once.
        """
        sub = _Subscription(generation_id)
        with self._lock:
            self._subs.setdefault(generation_id, []).append(sub)
            if generation_id in self._events:
                sub.wake.set()
            self._start()
        return sub

    def unsubscribe(self, sub: _Subscription) -> None:
        """Stop listening for a subscription."""
        with self._lock:
            subs = self._subs.get(sub.generation_id, [])
            if sub in subs:
                subs.remove(sub)
            if not subs:
                self._subs.pop(sub.generation_id, None)

    def _record(self, event: CompletionEvent) -> None:
        """Remember ``event`` as its generation's last, then wake the generation's waiters."""
        with self._lock:
            self._events[event.generation_id] = event
            self._events.move_to_end(event.generation_id)
            while len(self._events) > self._memory:
                self._events.popitem(last=False)
        self._wake(event.generation_id)

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
                    with self._lock:
                        self._warned = False
                    self.connected.set()
                    if self.reconnects:
                        self._wake(None)  # events may have been missed: everyone polls once
                    delay = 1.0
                    for event in stream:
                        self._record(event)
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
    scrubbed of the API key. When the row answers 404, the generation's completion event (kept by
    the hub, even if it came before this call) decides; without one, the history lookup
    (``client.history``) does.

    Args:
        client: A :class:`~seedance_prefect.client.SeedanceClient`.
        generation_id: The generation to wait for.
        timeout: Overall deadline in seconds (monotonic clock).
        poll_interval: Seconds between polls when no event arrives.
        hub: Completion-event hub; without one, this only polls.
        on_change: Called with the row at every status change (and once at the start).

    Returns:
        The succeeded row (with ``result_url``); built from the completion event or the history
        row when the queue no longer has it.

    Raises:
        GenerationFailed: The generation failed or ended in an unknown terminal status.
        GenerationCancelled: The generation was cancelled.
        GenerationTimeout: Not finished before the deadline (the caller decides whether to cancel),
            chained from the last tolerated poll error, if any.
        NotFoundError: Neither the row, an event nor the history has it (still unknown after the
            grace period, or gone after it was seen); the message says what each answered.
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
    tracker = client._wait_tracker(generation_id, timeout, poll_interval, on_change, events=hub is not None)
    sub = hub.subscribe(generation_id) if hub else None
    if hub:
        hub.ensure_connected(min(DEFAULT_CONNECT_TIMEOUT, timeout))  # subscribe before the first poll: no gap
    recheck = 0
    try:
        while True:
            outcome = _read(client.get, generation_id)
            if hub:  # after the poll: an event that came before its 404 is then in hand
                tracker.note_event(hub.last_event(generation_id))
            row = tracker.take(outcome)
            if row is None and tracker.history_due:  # row 404 and no event: ask the history
                row = tracker.take_history(_read(client.history, generation_id))
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


def _read(read: Callable[[str], Generation], generation_id: str) -> Generation | Exception:
    """One poll or lookup: its row, or the exception it raised (judged by the tracker)."""
    try:
        return read(generation_id)
    except Exception as exc:  # judged by the tracker: tolerated, or raised again
        return exc
