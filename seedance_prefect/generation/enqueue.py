"""Enqueue a request once, however often it is run: the never-pay-twice algorithm, without Prefect.

:func:`enqueue_once` is what the ``enqueue_generation`` task runs, usable from any program that holds
a :class:`~seedance_prefect.client.SeedanceClient`. Under the journal's lock on the request's
fingerprint it:

1. reattaches to the generations of the last attempt when one of them is still active or has
   succeeded (:func:`reattach`), with no POST;
2. recovers an attempt still marked ``posting`` (the process died, or the answer was lost) by
   listing the queue and adopting the rows that match prompt and parameters (:func:`recover_lost`),
   with no POST;
3. otherwise writes a new ``posting`` attempt, takes the concurrency slot (if any), posts, waits
   out 429 answers (:func:`~seedance_prefect.generation.ratelimit.post_waiting_out_429`) and
   records the generation ids. A transient error (5xx, broken connection) may hide a paid
   generation, so the queue is listed before the error is passed on; a refusal (400, 401...)
   created nothing and marks the attempt ``refused``.

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
import time
from typing import Any, Protocol

from .. import limits
from ..client import SeedanceClient
from ..errors import ApiError, RateLimitedError, SeedanceError
from ..models import Generation, SeedanceRequest
from .journal import Journal, JournalEntry, row_matches
from .ratelimit import RATE_LIMIT_TRIES, Log, post_waiting_out_429

__all__ = ["Slot", "enqueue_once", "journal_body", "reattach", "recover_lost", "recover_posting"]

_LOG = logging.getLogger(__name__)

_REFERENCE_FIELDS = ("input_images", "input_videos", "input_audios")


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

    - The last attempt has ids and one of them is still active or succeeded: all its ids.
    - They all failed, were cancelled or are unknown to the service (404): None.
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
        usable = []
        for gid in last.generation_ids:
            try:
                row = client.get(gid)
            except ApiError as exc:
                if exc.status_code == 404:
                    continue
                raise
            if row.state in ("active", "succeeded"):
                usable.append(gid)
        if usable:
            logger.info("Reattached to generation(s) %s from an earlier run", ", ".join(usable))
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
) -> list[str]:
    """Enqueue a request once, however often it is called: return its generation ids.

    The journal is written before and after the POST, under its lock on the request's
    fingerprint. A call reattaches to known generations that did not fail, and a POST whose
    answer was lost is recovered by listing the queue and matching prompt and parameters, before
    anything is posted again (see the module docstring for the steps).

    Args:
        client: The account's client (never retries a POST by itself).
        request: A validated request whose references are reachable.
        journal: The durable journal (default: a :class:`~seedance_prefect.generation.journal.Journal`
            in ``default_journal_dir()``).
        run_key: Extra key that makes otherwise equal requests distinct.
        flow_run_id: Who works on the request (e.g. a Prefect flow run id): recorded in the entry
            and linked in the journal, for cancellation hooks.
        slot: A concurrency slot, taken after the journal is read and written and right before the
            generation is posted or reattached to, so the journal's work is not done while holding
            it. It is never released here.
        log: Where progress is logged (default: this module's logger).
        rate_limit_tries: Times a POST answered 429 is sent (nothing is created by a 429).

    Returns:
        One generation id per ``num_generations``.

    Raises:
        RateLimitedError: Every try was answered 429 (the attempt is marked ``refused``).
        SeedanceError: The service refused the request (the attempt is marked ``refused``; not
            transient), or a transient error whose generations were not found by listing (the
            attempt stays ``posting``, so the next call lists again before it posts).

    Example:
        >>> import tempfile
        >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
        >>> journal = Journal(tempfile.mkdtemp())
        >>> request = SeedanceRequest(prompt="Two boats race", duration=4, num_generations=2)
        >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
        ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
        ...         ids = enqueue_once(client, request, journal=journal, flow_run_id="run-1")
        >>> entry = journal.load(request.fingerprint())
        >>> len(ids), entry.attempts[-1].state, entry.flow_runs
        (2, 'enqueued', ['run-1'])
    """
    logger = log or _LOG
    journal = journal if journal is not None else Journal()
    fingerprint = request.fingerprint(run_key)
    with journal.lock(fingerprint):
        entry = journal.load(fingerprint) or JournalEntry(fingerprint=fingerprint, body=journal_body(request))
        if flow_run_id:
            if flow_run_id not in entry.flow_runs:
                entry.flow_runs.append(flow_run_id)
            journal.link_flow_run(flow_run_id, fingerprint)
        ids = reattach(client, entry, request.num_generations, logger)
        if ids:
            journal.save(entry)
            if slot is not None:
                slot.acquire()
            return ids
        # The attempt is on disk before the slot is waited for, so the POST follows the slot at
        # once; a crash from here on is recovered by listing the queue from the saved (earlier) time.
        attempt = entry.begin_attempt()
        journal.save(entry)
        if slot is not None:
            slot.acquire()
            attempt.started_at = time.time()
        try:
            rows = post_waiting_out_429(
                lambda: client.enqueue(request), tries=rate_limit_tries, log=logger, what="enqueuing"
            )
        except RateLimitedError:  # 429 on every try: nothing was created
            attempt.state, attempt.detail = "refused", "rate limited on every try"
            journal.save(entry)
            raise
        except SeedanceError as exc:
            if not exc.transient:  # the service said no: nothing was created
                attempt.state, attempt.detail = "refused", str(exc)
                journal.save(entry)
                raise
            # 5xx or a broken connection: the generation may exist. Look before posting again.
            found = recover_lost(client, entry, attempt.started_at, request.num_generations)
            journal.save(entry)  # without a find it stays "posting": the next call lists again first
            if not found:
                raise
            attempt.record(found, recovered=True, detail=f"answer lost ({type(exc).__name__})")
            journal.save(entry)
            logger.warning("Enqueue answer lost (%s); adopted generation(s) %s", exc, ", ".join(found))
            return found
        attempt.record([row.generation_id for row in rows])
        journal.save(entry)
        logger.info("Enqueued generation(s) %s", ", ".join(attempt.generation_ids))
        return attempt.generation_ids
