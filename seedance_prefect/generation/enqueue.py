"""Enqueue a request once, however often and wherever it runs: the never-pay-twice algorithm, without Prefect.

:func:`enqueue_once` is what the ``enqueue_generation`` task runs, usable from any program that holds
a :class:`~seedance_prefect.client.SeedanceClient`. It reads the request's journal entry
(:mod:`~seedance_prefect.generation.journal`, in a state store that may be shared by several machines)
and decides, again after every write it loses:

1. the last attempt has ids and one of them is still active or has succeeded: reattach to them
   (:func:`reattach`), no POST;
2. the last attempt is ``posting`` and its lease is fresh: another run is posting it right now. Do
   not post: poll the entry (bounded, backing off to a few reads a second) until its ids appear
   (then 1.) or its lease expires (its owner died: then 3.);
3. the last attempt is ``posting`` with an expired lease (or none: an entry of an earlier version):
   its POST may have created generations whose answer never arrived. List the queue and adopt the
   rows that match prompt and parameters (:func:`recover_lost`), no POST; when none match, the
   attempt is marked ``refused`` in the same write as the next claim;
4. otherwise take the concurrency slot (if any), read the entry again, and *claim* a new attempt
   with a conditional write (create, or compare-and-swap on the version read). Only the run whose
   claim lands posts; a run whose write loses (:class:`~seedance_prefect.state.StateConflict`) reads
   again and decides again. The winner posts, waits out 429 answers
   (:func:`~seedance_prefect.generation.ratelimit.post_waiting_out_429`) and records the generation
   ids. A transient error (5xx, broken connection) may hide a paid generation, so the queue is listed
   before the error is passed on; a refusal (400, 401...) created nothing and marks the attempt
   ``refused``.

**The claim and its lease.** The claim (the entry's ``claim``: owner ``host:pid:random``, attempt,
``lease_until``) is written right before the POST, after the slot is taken. (Earlier versions wrote
the attempt before waiting for the slot; claiming after it costs one more read of the entry per
generation, about 25 ms on S3, and is what lets the claim be fresh when the POST leaves: correctness
first.) While the POST is in flight a background thread renews the lease every
:data:`RENEW_SECONDS` (to :data:`LEASE_SECONDS` ahead); it stops once the ids are recorded, and an
error or an interruption releases the lease. Each try of the POST first checks that the lease is
still ours and not about to expire; if not, nothing is posted and the entry is read again. A store
that reports a conflict for a write that did land (an S3 retry after a lost answer) is handled by
the owner id: the next read shows our own claim, and we post.

**Clocks.** ``lease_until`` is the owner's wall clock; other machines compare it with theirs, with
:data:`~seedance_prefect.generation.journal.LEASE_SKEW_SECONDS` to spare. Machines sharing a store
must keep their clocks within a second or two of each other (NTP does far better). A clock that is
ahead makes others wait longer; one that is far behind could let a run take over a live claim.

**The remaining window.** A process that is frozen (suspended VM, SIGSTOP, a stop-the-world pause)
for longer than the lease after its last check and before its POST leaves, while another run takes
over, lists the queue, finds nothing and posts, can still post a second time when it resumes. The
late answer is recorded (in its own attempt, with a warning), so both generations stay known to the
journal and to the cancellation hooks; nothing else is paid.

Example:
    >>> import tempfile
    >>> from seedance_prefect.client import SeedanceClient
    >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
    >>> from seedance_prefect.models import SeedanceRequest
    >>> journal = Journal(tempfile.mkdtemp())
    >>> request = SeedanceRequest(prompt="A paper boat on a pond", duration=4)
    >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
    ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
    ...         first = enqueue_once(client, request, journal=journal)
    ...         again = enqueue_once(client, request, journal=journal)  # reattaches
    ...     posts = emu.stats()["enqueue_calls"]
    >>> again == first, posts
    (True, 1)
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from .. import limits
from ..client import SeedanceClient
from ..errors import ApiError, RateLimitedError, SeedanceError
from ..models import Generation, SeedanceRequest
from ..state import StateConflict, StateError
from .journal import Claim, Journal, JournalEntry, row_matches
from .ratelimit import RATE_LIMIT_TRIES, Log, post_waiting_out_429

__all__ = [
    "LEASE_SECONDS",
    "RENEW_SECONDS",
    "WAIT_FOR_OWNER_SECONDS",
    "OnEnqueued",
    "Slot",
    "enqueue_once",
    "journal_body",
    "reattach",
    "recover_lost",
    "recover_posting",
]

_LOG = logging.getLogger(__name__)

_REFERENCE_FIELDS = ("input_images", "input_videos", "input_audios")

#: Seconds a claim's lease lasts from its last renewal.
LEASE_SECONDS = 10.0
#: Seconds between renewals of the lease while the POST is in flight.
RENEW_SECONDS = 3.0
#: Longest wait for another run's live claim; then a transient StateError (a retried task waits again).
WAIT_FOR_OWNER_SECONDS = 900.0
#: Share of the lease that must be left for a POST to leave (else the entry is read again first).
_POST_MARGIN = 0.2
#: Claims in a row that may expire before their POST leaves (a store slower than the lease) before giving up.
_LOST_CLAIMS = 3
#: Polls of an entry claimed by another run: first wait, growth, longest wait (seconds).
_POLL_FIRST, _POLL_GROWTH, _POLL_LONGEST = 0.05, 1.5, 0.25


#: ``on_enqueued(ids, recovered)`` of :func:`enqueue_once`: called once a POST's generations are known
#: (``recovered``: its answer was lost and they were found by listing the queue), never on a reattach.
OnEnqueued = Callable[[list[str], bool], None]


class Slot(Protocol):
    """A concurrency slot: anything with an idempotent ``acquire()`` (taken right before the POST)."""

    def acquire(self) -> None:
        """Take the slot (a second call while it is held does nothing)."""


def journal_body(request: SeedanceRequest) -> dict[str, Any]:
    """Return the queue body as journaled: ``data:`` URIs shortened to a checksum (the journal stays small).

    Args:
        request: The request to be posted.

    Returns:
        ``request.to_body("queue")`` with every inline reference replaced by
        ``data:...;sha256=<hex>``; URLs are kept as they are.

    Example:
        >>> uri, url = "data:image/png;base64,AAAA", "https://example.com/a.png"
        >>> body = journal_body(SeedanceRequest(prompt="p", input_images=[uri, url]))
        >>> body["input_images"] == [f"data:...;sha256={hashlib.sha256(uri.encode()).hexdigest()}", url]
        True
        >>> body["prompt"], body["num_generations"]
        ('p', 1)
    """
    body = request.to_body("queue")
    for name in _REFERENCE_FIELDS:
        if name in body:
            body[name] = [
                f"data:...;sha256={hashlib.sha256(u.encode()).hexdigest()}" if u.startswith("data:") else u
                for u in body[name]
            ]
    return body


def recover_lost(client: SeedanceClient, entry: JournalEntry, since: float, count: int) -> list[str]:
    """Find the generations created by a POST whose answer was lost, by listing the queue.

    Active rows are listed first; when fewer than ``count`` of them match, succeeded and failed
    rows are listed too. A row matches when :func:`~seedance_prefect.generation.journal.row_matches`
    says so for ``entry.body`` and ``since``; ids the entry already knows are never adopted twice.

    Args:
        client: The account's client.
        entry: The request's journal entry (its ``body`` is matched).
        since: Unix time of the attempt whose answer was lost.
        count: How many generations that POST asked for (``num_generations``).

    Returns:
        Up to ``count`` generation ids, oldest first; empty when nothing matches.

    Raises:
        SeedanceError: The queue could not be listed.

    Example:
        >>> import time
        >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
        >>> request = SeedanceRequest(prompt="A kite over a beach", duration=4)
        >>> entry = JournalEntry(fingerprint="f", body=journal_body(request))
        >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
        ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
        ...         since = time.time()
        ...         [row] = client.enqueue(request)  # as if its answer had been lost
        ...         found = recover_lost(client, entry, since, 1)
        >>> found == [row.generation_id]
        True
    """
    known = set(entry.generation_ids)
    rows: list[Generation] = list(client.list(model=limits.MODEL_ID))
    if len([r for r in rows if row_matches(r, entry.body, since=since)]) < count:
        for status in ("succeeded", "failed"):
            rows += client.list(model=limits.MODEL_ID, status=status)
    found: list[Generation] = []
    for row in rows:
        if row.generation_id in known or any(f.generation_id == row.generation_id for f in found):
            continue
        if row_matches(row, entry.body, since=since):
            found.append(row)
    found.sort(key=lambda r: r.enqueued_at or 0.0)
    return [r.generation_id for r in found[:count]]


def _requested_count(entry: JournalEntry) -> int:
    try:
        return max(1, int(entry.body.get("num_generations") or 1))
    except (TypeError, ValueError):
        return 1


def recover_posting(client: SeedanceClient, entry: JournalEntry) -> list[str]:
    """Return the generations of an attempt still marked ``posting``, found by listing the queue.

    What a re-run does before it posts again, for callers that must act on generations whose
    enqueue answer never arrived, e.g. a cancellation hook that cancels them. The entry is not
    changed and nothing is saved (the caller holds the lock, if it needs one).

    Args:
        client: The account's client.
        entry: The request's journal entry.

    Returns:
        The ids found for the last attempt when it is ``posting`` (up to ``num_generations`` of the
        journaled body); empty when the last attempt is not ``posting`` or nothing matches.

    Raises:
        SeedanceError: The queue could not be listed.

    Example:
        >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
        >>> request = SeedanceRequest(prompt="A crane lifts a red box", duration=4)
        >>> entry = JournalEntry(fingerprint="f", body=journal_body(request))
        >>> attempt = entry.begin_attempt()  # written before the POST; the process dies after it
        >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
        ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
        ...         [row] = client.enqueue(request)
        ...         found = recover_posting(client, entry)
        >>> found == [row.generation_id], attempt.state
        (True, 'posting')
    """
    last = entry.last_attempt
    if last is None or last.state != "posting":
        return []
    return recover_lost(client, entry, last.started_at, _requested_count(entry))


def reattach(
    client: SeedanceClient, entry: JournalEntry, count: int, log: Log | None = None
) -> list[str] | None:
    """Return the generation ids to continue with, or None when a new POST is needed.

    - The last attempt has ids and one of them is still active or succeeded: all its ids. A row
      the queue no longer has (404: a queue that forgets finished rows) is looked up in the
      history (``client.history``), so a generation that succeeded is not paid for again.
    - They all failed, were cancelled or are unknown to both the queue and the history: None.
    - The last attempt is still ``posting``: the generations found by :func:`recover_lost` are
      recorded in it (``recovered``); when there are none it is marked ``refused``, and None.

    The entry is changed in memory only; the caller saves it.

    Args:
        client: The account's client.
        entry: The request's journal entry.
        count: ``num_generations`` of the request.
        log: Where the decision is logged.

    Returns:
        Generation ids, or None.

    Raises:
        SeedanceError: A row could not be read or the queue could not be listed.

    Example:
        >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
        >>> request = SeedanceRequest(prompt="Rain on a tin roof", duration=4)
        >>> entry = JournalEntry(fingerprint="f", body=journal_body(request))
        >>> reattach(None, entry, 1) is None  # no attempt yet: nothing is asked of the service
        True
        >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
        ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
        ...         entry.begin_attempt().record([row.generation_id for row in client.enqueue(request)])
        ...         ids = reattach(client, entry, 1)
        >>> ids == entry.generation_ids
        True
    """
    logger = log or _LOG
    last = entry.last_attempt
    if last is None:
        return None
    if last.generation_ids:
        if _usable(client, last.generation_ids):
            logger.info("Reattached to generation(s) %s from an earlier run", ", ".join(last.generation_ids))
            return list(last.generation_ids)
        logger.info("The earlier generation(s) of this request failed; enqueuing a new one")
        return None
    if last.state == "posting":
        found = recover_lost(client, entry, last.started_at, count)
        if found:
            last.record(found, recovered=True, detail="answer lost; found by listing the queue")
            logger.warning("An earlier enqueue's answer was lost; adopted generation(s) %s", ", ".join(found))
            return found
        last.state, last.detail = "refused", "no generation found for a POST whose answer was lost"
    return None


def _owner_id() -> str:
    """``host:pid:random``: one per call of :func:`enqueue_once` (two calls of one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _state(client: SeedanceClient, generation_id: str) -> str | None:
    """The generation's state: its queue row's, else (404) its history row's; None when neither has it.

    A queue that forgets finished rows answers 404 for a generation that succeeded: the history
    (``GET /ai/generations/{id}``) still knows it, and a succeeded generation must not be paid again.
    """
    try:
        return client.get(generation_id).state
    except ApiError as exc:
        if exc.status_code != 404:
            raise
    try:
        return client.history(generation_id).state
    except ApiError as exc:
        if exc.status_code != 404:
            raise
    return None


def _usable(client: SeedanceClient, ids: list[str]) -> bool:
    """Whether one of these generations is still active or has succeeded (in the queue or the history)."""
    return any(_state(client, gid) in ("active", "succeeded") for gid in ids)


def _announce(on_enqueued: OnEnqueued | None, ids: list[str], recovered: bool, log: Log) -> None:
    """Call ``on_enqueued``; a failure is logged, never raised (the generations exist and are journaled)."""
    if on_enqueued is None:
        return
    try:
        on_enqueued(list(ids), recovered)
    except Exception as exc:
        log.warning("on_enqueued failed for generation(s) %s: %s", ", ".join(ids), exc)


class _LeaseLost(Exception):
    """The claim is no longer ours (or about to expire) and nothing was posted: read and decide again."""


class _LeaseKeeper:
    """Renews a claim's lease from a daemon thread while its POST is in flight."""

    def __init__(self, journal: Journal, fingerprint: str, claim: Claim, log: Log) -> None:
        self.journal, self.fingerprint, self.log = journal, fingerprint, log
        self.owner, self.index = claim.owner, claim.attempt
        self.lease_until = claim.lease_until
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"seedance-lease-{fingerprint[:12]}", daemon=True
        )

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop renewing (waits for a renewal in flight, at most one lease)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(LEASE_SECONDS)

    def holds(self) -> bool:
        """Whether a POST may leave now: the claim is ours and its lease has time left."""
        return not self.lost and time.time() < self.lease_until - _POST_MARGIN * LEASE_SECONDS

    def _renew(self, entry: JournalEntry | None) -> JournalEntry | None:
        claim = entry.claim if entry else None
        if (
            entry is None
            or claim is None
            or (claim.owner, claim.attempt) != (self.owner, self.index)
            or self.index >= len(entry.attempts)
            or entry.attempts[self.index].state != "posting"
        ):
            self.lost = True
            return None
        claim.lease_until = time.time() + LEASE_SECONDS
        return entry

    def _run(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            try:
                written = self.journal.update(self.fingerprint, self._renew)
            except Exception as exc:  # the store is unreachable: try again at the next tick
                self.log.warning("Could not renew the claim on %s: %s", self.fingerprint[:12], exc)
                continue
            if self.lost:
                self.log.warning("The claim on %s was taken over while posting", self.fingerprint[:12])
                return
            if written is not None and written.claim is not None:
                self.lease_until = written.claim.lease_until


def _close(
    journal: Journal,
    fingerprint: str,
    claim: Claim,
    log: Log,
    *,
    ids: list[str] | None = None,
    recovered: bool = False,
    refused: bool = False,
    detail: str | None = None,
) -> None:
    """Record how a claimed attempt ended and release its lease (a conditional read-change-write)."""

    def change(entry: JournalEntry | None) -> JournalEntry | None:
        if entry is None or claim.attempt >= len(entry.attempts):
            return None
        attempt = entry.attempts[claim.attempt]
        if ids is not None and attempt.generation_ids != ids:
            late = attempt.state != "posting"
            attempt.record(ids, recovered=recovered, detail=detail)
            if late:
                attempt.detail = "posted after its lease had expired; another run may have posted again"
                log.warning("Generation(s) %s were posted after this run's claim expired", ", ".join(ids))
        elif refused and attempt.state == "posting":
            attempt.state, attempt.detail = "refused", detail
        mine = entry.claim
        if mine is not None and (mine.owner, mine.attempt) == (claim.owner, claim.attempt):
            mine.lease_until = 0.0  # released: others decide at once, without waiting for it
        return entry

    try:
        journal.update(fingerprint, change)
    except SeedanceError as exc:  # the store is unreachable: a later run lists the queue before posting
        log.error("Could not record the enqueue of %s in the journal: %s", fingerprint[:12], exc)


def _post(
    client: SeedanceClient,
    request: SeedanceRequest,
    journal: Journal,
    entry: JournalEntry,
    claim: Claim,
    log: Log,
    rate_limit_tries: int,
) -> tuple[list[str], bool] | None:
    """POST a claimed attempt and record its answer: ``(ids, recovered)``, or None when the claim was
    lost before anything left (``recovered``: the answer was lost and the ids found by listing)."""
    fingerprint = entry.fingerprint
    with _LeaseKeeper(journal, fingerprint, claim, log) as keeper:

        def send() -> list[Generation]:
            if not keeper.holds():  # checked before every try: a 429 created nothing
                raise _LeaseLost
            return client.enqueue(request)

        try:
            rows = post_waiting_out_429(send, tries=rate_limit_tries, log=log, what="enqueuing")
        except _LeaseLost:  # nothing left (a 429 creates nothing): release, so the next read decides at once
            keeper.stop()
            _close(journal, fingerprint, claim, log)
            log.warning(
                "The claim on %s expired before the POST; reading the journal again", fingerprint[:12]
            )
            return None
        except RateLimitedError:  # 429 on every try: nothing was created
            keeper.stop()
            _close(journal, fingerprint, claim, log, refused=True, detail="rate limited on every try")
            raise
        except SeedanceError as exc:
            keeper.stop()
            if not exc.transient:  # the service said no: nothing was created
                _close(journal, fingerprint, claim, log, refused=True, detail=str(exc))
                raise
            # 5xx or a broken connection: the generation may exist. Look before posting again.
            try:
                latest = journal.load(fingerprint) or entry
                started = entry.attempts[claim.attempt].started_at
                found = recover_lost(client, latest, started, request.num_generations)
            except BaseException:
                _close(journal, fingerprint, claim, log)  # stays "posting", released
                raise
            if not found:  # stays "posting", released: the next call lists again before it posts
                _close(journal, fingerprint, claim, log)
                raise
            detail = f"answer lost ({type(exc).__name__})"
            _close(journal, fingerprint, claim, log, ids=found, recovered=True, detail=detail)
            log.warning("Enqueue answer lost (%s); adopted generation(s) %s", exc, ", ".join(found))
            return found, True
        except BaseException:  # interrupted (Ctrl-C, cancellation): release; the next run lists first
            keeper.stop()
            _close(journal, fingerprint, claim, log)
            raise
    ids = [row.generation_id for row in rows]
    _close(journal, fingerprint, claim, log, ids=ids)
    log.info("Enqueued generation(s) %s", ", ".join(ids))
    return ids, False


def _wait_for_owner(
    journal: Journal, entry: JournalEntry, version: str, holder: str, deadline: float, log: Log
) -> None:
    """Poll an entry claimed by another run until it changes or the lease expires (no busy loop)."""
    assert entry.claim is not None
    log.info("Another run (%s) is posting this request; waiting for its generation ids", holder)
    pause = _POLL_FIRST
    while entry.claim.held():
        if time.monotonic() > deadline:
            raise StateError(
                f"Another run ({holder}) still holds the claim on {entry.fingerprint[:12]} after "
                f"{WAIT_FOR_OWNER_SECONDS:g} s; not posting"
            )
        time.sleep(pause)
        pause = min(pause * _POLL_GROWTH, _POLL_LONGEST)
        found = journal.load_versioned(entry.fingerprint)
        if found is None or found[1] != version:
            return  # changed: ids recorded, renewed, refused... decide again
    # the lease expired without a change: its owner died or hangs; the caller recovers


def _count_lost(lost: int, journal: Journal, fingerprint: str) -> int:
    """Count a claim that expired before its POST could leave; give up after :data:`_LOST_CLAIMS`."""
    lost += 1
    if lost >= _LOST_CLAIMS:
        raise StateError(
            f"{lost} claims on {fingerprint[:12]} expired before their POST could leave: the store "
            f"{journal.store.url} answers slower than the {LEASE_SECONDS:g} s lease allows; nothing posted"
        )
    return lost


def _note_flow_run(entry: JournalEntry, flow_run_id: str | None) -> bool:
    if flow_run_id and flow_run_id not in entry.flow_runs:
        entry.flow_runs.append(flow_run_id)
        return True
    return False


def enqueue_once(
    client: SeedanceClient,
    request: SeedanceRequest,
    *,
    journal: Journal | None = None,
    run_key: str | None = None,
    flow_run_id: str | None = None,
    slot: Slot | None = None,
    log: Log | None = None,
    rate_limit_tries: int = RATE_LIMIT_TRIES,
    on_enqueued: OnEnqueued | None = None,
) -> list[str]:
    """Enqueue a request once, however often and on however many machines it is called: return its ids.

    Reattaches to known generations that did not fail, waits for another run that is posting the same
    request right now, recovers a POST whose answer was lost by listing the queue, and otherwise
    claims a new attempt with a conditional write right before posting (see the module docstring for
    the steps, the lease and what remains possible). Nothing is posted without winning the claim.

    Args:
        client: The account's client (never retries a POST by itself).
        request: A validated request whose references are reachable.
        journal: The durable journal (default: ``Journal()``, in the default state store:
            ``$SEEDANCE_STATE``, else ``$SEEDANCE_STATE_DIR`` or ``~/.seedance``).
        run_key: Extra key that makes otherwise equal requests distinct.
        flow_run_id: Who works on the request (e.g. a Prefect flow run id): recorded in the entry
            and linked in the journal, for cancellation hooks.
        slot: A concurrency slot, taken right before the attempt is claimed and posted (or before
            the ids are returned on a reattach), so the journal is read again after waiting for it.
            It is never released here.
        log: Where progress is logged (default: this module's logger).
        rate_limit_tries: Times a POST answered 429 is sent (nothing is created by a 429).
        on_enqueued: Called as ``on_enqueued(ids, recovered)`` when this call's POST created the
            generations (``recovered=False``), or when a POST whose answer was lost is recovered by
            listing the queue (``recovered=True``); not on a reattach or when another run's ids are
            taken over. Called once the ids are journaled; an exception it raises is logged, not raised.

    Returns:
        One generation id per ``num_generations``.

    Raises:
        RateLimitedError: Every try was answered 429 (the attempt is marked ``refused``).
        SeedanceError: The service refused the request (the attempt is marked ``refused``; not
            transient), or a transient error whose generations were not found by listing (the
            attempt stays ``posting``, released, so the next call lists again before it posts).
        StateError: The journal's store is unreachable, or another run's claim stayed alive for
            :data:`WAIT_FOR_OWNER_SECONDS` (transient: a retry reads the journal again).

    Example:
        >>> import tempfile
        >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
        >>> journal = Journal(tempfile.mkdtemp())
        >>> request = SeedanceRequest(prompt="Two boats race", duration=4, num_generations=2)
        >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
        ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
        ...         ids = enqueue_once(client, request, journal=journal, flow_run_id="run-1")
        >>> entry = journal.load(request.fingerprint())
        >>> len(ids), entry.attempts[-1].state, entry.flow_runs, entry.claim.lease_until
        (2, 'enqueued', ['run-1'], 0.0)

        ``on_enqueued`` tells a POST from a reattach:

        >>> told = []
        >>> def tell(ids, recovered):
        ...     told.append((ids, recovered))
        >>> request = SeedanceRequest(prompt="A heron takes off", duration=4)
        >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
        ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
        ...         ids = enqueue_once(client, request, journal=journal, on_enqueued=tell)
        ...         again = enqueue_once(client, request, journal=journal, on_enqueued=tell)
        >>> told == [(ids, False)], again == ids
        (True, True)
    """
    logger = log or _LOG
    journal = journal if journal is not None else Journal()
    fingerprint = request.fingerprint(run_key)
    count = request.num_generations
    owner = _owner_id()
    if flow_run_id:
        journal.link_flow_run(flow_run_id, fingerprint)
    slot_taken = slot is None
    deadline = time.monotonic() + WAIT_FOR_OWNER_SECONDS
    lost = 0
    while True:
        found = journal.load_versioned(fingerprint)
        if found is None:
            entry, version = JournalEntry(fingerprint=fingerprint, body=journal_body(request)), None
        else:
            entry, version = found
        noted = _note_flow_run(entry, flow_run_id)
        last = entry.last_attempt
        holder = entry.lease_holder()
        if holder == owner and entry.claim is not None:
            # our claim landed although the store answered "conflict" (an S3 retry after a lost answer)
            posted = _post(client, request, journal, entry, entry.claim, logger, rate_limit_tries)
            if posted is not None:
                _announce(on_enqueued, *posted, logger)
                return posted[0]
            lost = _count_lost(lost, journal, fingerprint)
            continue
        if holder is not None and version is not None:
            _wait_for_owner(journal, entry, version, holder, deadline, logger)
            continue
        if last is not None and last.generation_ids:
            if _usable(client, last.generation_ids):
                if noted and version is not None:
                    try:
                        journal.write(entry, version)
                    except StateConflict:
                        continue
                if slot is not None:
                    slot.acquire()
                logger.info(
                    "Reattached to generation(s) %s from an earlier run", ", ".join(last.generation_ids)
                )
                return list(last.generation_ids)
            logger.info("The earlier generation(s) of this request failed; enqueuing a new one")
        elif last is not None and last.state == "posting":  # lease expired, or an entry of an earlier version
            recovered = recover_lost(client, entry, last.started_at, count)
            if recovered:
                last.record(recovered, recovered=True, detail="answer lost; found by listing the queue")
                try:
                    journal.write(entry, version)
                except StateConflict:
                    continue  # someone else decided first: read again
                if slot is not None:
                    slot.acquire()
                logger.warning(
                    "An earlier enqueue's answer was lost; adopted generation(s) %s", ", ".join(recovered)
                )
                _announce(on_enqueued, recovered, True, logger)
                return recovered
            # written together with the next claim, in one conditional write
            last.state, last.detail = "refused", "no generation found for a POST whose answer was lost"
        if not slot_taken:
            assert slot is not None
            slot.acquire()
            slot_taken = True
            continue  # waiting for the slot may have taken long: read again before claiming
        attempt = entry.begin_attempt()
        claim = Claim(
            owner=owner, attempt=len(entry.attempts) - 1, lease_until=attempt.started_at + LEASE_SECONDS
        )
        entry.claim = claim
        try:
            journal.write(entry, version)
        except StateConflict:
            continue  # another run wrote first: read again and decide again
        posted = _post(client, request, journal, entry, claim, logger, rate_limit_tries)
        if posted is not None:
            _announce(on_enqueued, *posted, logger)
            return posted[0]
        lost = _count_lost(lost, journal, fingerprint)
