"""Cancel what flow runs leave running: the generations the journal knows and those of a POST in flight.

A flow run that is cancelled, crashes, fails or is interrupted may leave paid generations running.
The journal links each flow run to the requests it worked on (``Journal.link_flow_run``); from
those entries this module finds (:func:`left_by`):

- the generation ids the entries record and no delivery names (``known``);
- the attempts still marked ``posting`` that are the flow runs' own (``posting``): an interrupt,
  cancel or crash landing while the POST was in flight at the service, or between its answer and
  the journal write, leaves generations the journal does not name yet. They are found by listing
  the queue as a re-run does (:func:`~seedance_prefect.generation.enqueue.recover_posting`).

and :func:`cancel_leftovers` cancels them (DELETE), a few at a time, within an optional deadline.
The flows' cancellation hooks, the CLI's cancel-first interrupt and the cleanup flow of crashed
runs (``flows/cleanup.py``) all call these two functions.

**Whose ``posting`` attempt is it?** The claim of the attempt (``entry.claim``) names its owner,
``host:pid:random``. An attempt is recovered and cancelled only when:

- its lease is held by this very process (the POST is in flight here: the CLI's interrupt), or by
  a process of this host that no longer exists (killed), or the lease expired or was released
  (its owner died, was interrupted or lost the answer), **and**
- one of the flow runs asked about is recorded in the entry (``entry.flow_runs``, written with
  the claim): a flow run that was only waiting for another run's claim did not post it.

A ``posting`` attempt whose lease is held by another live process (another machine, or another
process of this one) is left alone and reported in ``left_alone``: that run is posting the
request right now and will record its generations.

No Prefect here: the callers are thin.

Example:
    >>> import tempfile
    >>> from seedance_prefect.client import SeedanceClient
    >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
    >>> from seedance_prefect.models import SeedanceRequest
    >>> from .enqueue import enqueue_once
    >>> journal = Journal(tempfile.mkdtemp())
    >>> with run_emulator(EmulatorConfig(latency=30)) as emu:
    ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
    ...         [gid] = enqueue_once(client, SeedanceRequest(prompt="A red kite", duration=4),
    ...                              journal=journal, flow_run_id="run-1")
    ...         report = cancel_leftovers(client, left_by(journal, ["run-1"]))
    ...         status = client.get(gid).status
    >>> report.cancelled == [gid], status
    (True, 'cancelled')
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..client import SeedanceClient
from ..errors import ApiError
from .enqueue import recover_posting
from .journal import Journal, JournalEntry
from .ratelimit import Log

__all__ = [
    "CANCEL_CONCURRENCY",
    "CancelReport",
    "Leftovers",
    "cancel_leftovers",
    "cancel_quietly",
    "left_by",
    "posting_is_ours",
]

_LOG = logging.getLogger(__name__)

#: DELETEs (and queue listings) sent at the same time.
CANCEL_CONCURRENCY = 8


@dataclass
class Leftovers:
    """What some flow runs may have left running, read from the journal (no network).

    Attributes:
        known: Generation ids the flow runs' entries record and no delivery names, oldest first.
        posting: Entries whose last attempt is still ``posting`` and is the flow runs' own: their
            generations are found by listing the queue.
        left_alone: Fingerprint -> why its ``posting`` attempt is not cancelled (another live run
            posts it).
    """

    known: list[str] = field(default_factory=list)
    posting: list[JournalEntry] = field(default_factory=list)
    left_alone: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        """Whether there is anything to cancel (what is left alone does not count).

        Example:
            >>> bool(Leftovers()), bool(Leftovers(known=["g1"]))
            (False, True)
        """
        return bool(self.known or self.posting)


@dataclass
class CancelReport:
    """What :func:`cancel_leftovers` did.

    Attributes:
        cancelled: Generations a DELETE was sent for and accepted.
        not_cancelled: Generation id (or ``posting:<fingerprint>`` when the queue could not be
            listed) -> why it was not cancelled.
        recovered: Generations of ``posting`` attempts found by listing the queue (also in
            ``cancelled`` or ``not_cancelled``).
        ended: Generations that had already ended (with ``check_active``): nothing to cancel.
        left_alone: As :attr:`Leftovers.left_alone`.
    """

    cancelled: list[str] = field(default_factory=list)
    not_cancelled: dict[str, str] = field(default_factory=dict)
    recovered: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    left_alone: dict[str, str] = field(default_factory=dict)


def _owner_process(owner: str) -> tuple[str, int] | None:
    """``(host, pid)`` of a claim owner ``host:pid:random``, or None when it is not of that form."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return True
    return True


def posting_is_ours(entry: JournalEntry, flow_run_ids: Iterable[str], now: float | None = None) -> str | None:
    """Tell whether an entry's ``posting`` attempt belongs to these flow runs; None when it does.

    Args:
        entry: A journal entry whose last attempt is ``posting``.
        flow_run_ids: The flow runs whose generations are being cancelled.
        now: Unix time to judge the lease at (default: now).

    Returns:
        None when the attempt is theirs (see the module docstring), else why not.

    Example:
        >>> from seedance_prefect.generation.journal import Claim
        >>> entry = JournalEntry(fingerprint="f", flow_runs=["run-1"]); _ = entry.begin_attempt()
        >>> entry.claim = Claim("other-host:42:ab", 0, lease_until=time.time() + 10)
        >>> posting_is_ours(entry, ["run-1"])
        'being posted by other-host:42:ab (another live process)'
        >>> posting_is_ours(entry, ["run-1"], now=time.time() + 60) is None  # the lease expired
        True
        >>> posting_is_ours(entry, ["run-2"], now=time.time() + 60)
        'posted by another flow run (run-1)'
    """
    holder = entry.lease_holder(now)
    if holder is not None:
        process = _owner_process(holder)
        if process is None or process[0] != socket.gethostname():
            return f"being posted by {holder} (another live process)"
        if process[1] != os.getpid() and _process_exists(process[1]):
            return f"being posted by {holder} (another live process)"
        # this process posts it (an interrupt), or the process that did is gone (killed)
    runs = set(flow_run_ids)
    if not runs & set(entry.flow_runs):
        return f"posted by another flow run ({', '.join(entry.flow_runs) or 'unknown'})"
    return None


def left_by(journal: Journal, flow_run_ids: Iterable[str], now: float | None = None) -> Leftovers:
    """Read what these flow runs may have left running from the journal (no network, no lock).

    Args:
        journal: The journal the flow runs wrote to.
        flow_run_ids: Ids of the flow runs (linked by ``Journal.link_flow_run``).
        now: Unix time to judge leases at (default: now).

    Returns:
        The :class:`Leftovers`: known undelivered generations, the flow runs' own ``posting``
        attempts, and ``posting`` attempts left alone.

    Example:
        >>> import tempfile
        >>> journal = Journal(tempfile.mkdtemp())
        >>> entry = JournalEntry(fingerprint="abc", flow_runs=["run-1"])
        >>> entry.begin_attempt().record(["g1", "g2"])
        >>> entry.deliveries["g1"] = {"video": "out/a.mp4", "sha256": "00"}
        >>> _ = entry.begin_attempt()  # posting: the answer never came
        >>> journal.save(entry); journal.link_flow_run("run-1", "abc")
        >>> left = left_by(journal, ["run-1", "run-2"])
        >>> left.known, [e.fingerprint for e in left.posting]
        (['g2'], ['abc'])
    """
    runs = list(dict.fromkeys(flow_run_ids))
    left = Leftovers()
    seen: set[str] = set()
    for run_id in runs:
        for fingerprint in journal.fingerprints_of_flow_run(run_id):
            if fingerprint in seen:
                continue
            seen.add(fingerprint)
            entry = journal.load(fingerprint)
            if entry is None:
                continue
            undelivered = [g for g in entry.generation_ids if g not in entry.deliveries]
            left.known += [g for g in undelivered if g not in left.known]
            last = entry.last_attempt
            if last is None or last.state != "posting":
                continue
            why = posting_is_ours(entry, runs, now)
            if why is None:
                left.posting.append(entry)
            else:
                left.left_alone[fingerprint] = why
    return left


def cancel_leftovers(
    client: SeedanceClient,
    leftovers: Leftovers,
    *,
    check_active: bool = True,
    deadline: float | None = None,
    concurrency: int = CANCEL_CONCURRENCY,
    log: Log | None = None,
) -> CancelReport:
    """Cancel the generations of :func:`left_by`, recovering those of ``posting`` attempts first.

    Best effort: an error is reported per generation, never raised. Cancelling a generation that
    already ended has no effect on the service.

    Args:
        client: The account's client (short timeouts and no retries suit an interrupt).
        leftovers: What :func:`left_by` found.
        check_active: Read each known generation first and cancel it only while it is active
            (False: DELETE at once, one call instead of two).
        deadline: ``time.monotonic()`` past which nothing more is sent (None: no deadline).
        concurrency: Calls in flight at most.
        log: Where each cancel is logged (default: this module's logger).

    Returns:
        A :class:`CancelReport`.

    Example:
        >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
        >>> from seedance_prefect.models import SeedanceRequest
        >>> from .enqueue import journal_body
        >>> request = SeedanceRequest(prompt="A crane lifts a red box", duration=4)
        >>> entry = JournalEntry(fingerprint="f", body=journal_body(request), flow_runs=["run-1"])
        >>> _ = entry.begin_attempt()  # claimed; the POST reached the service, its answer did not come
        >>> with run_emulator(EmulatorConfig(latency=30)) as emu:
        ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
        ...         [row] = client.enqueue(request)
        ...         report = cancel_leftovers(client, Leftovers(posting=[entry]))
        ...         status = client.get(row.generation_id).status
        >>> report.recovered == report.cancelled == [row.generation_id], status
        (True, 'cancelled')
    """
    logger = log or _LOG
    report = CancelReport(left_alone=dict(leftovers.left_alone))
    lock = threading.Lock()
    handled: set[str] = set(leftovers.known)

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() > deadline

    def cancel_one(gid: str, check: bool) -> None:
        if out_of_time():
            with lock:
                report.not_cancelled[gid] = "no time left"
            return
        try:
            if check:
                try:
                    active = client.get(gid).is_active
                except ApiError as exc:
                    if exc.status_code != 404:
                        raise
                    active = False  # the service no longer knows it: nothing runs
                if not active:
                    with lock:
                        report.ended.append(gid)
                    return
            client.cancel(gid)
        except Exception as exc:  # best effort; the caller's own error matters more
            with lock:
                report.not_cancelled[gid] = str(exc) or type(exc).__name__
            logger.warning("Could not cancel generation %s: %s", gid, exc)
            return
        with lock:
            report.cancelled.append(gid)
        logger.warning("Cancelled remote generation %s", gid)

    def recover_and_cancel(entry: JournalEntry) -> None:
        if out_of_time():
            with lock:
                report.not_cancelled[f"posting:{entry.fingerprint}"] = "no time left to list the queue"
            return
        try:
            found = recover_posting(client, entry)
        except Exception as exc:
            with lock:
                report.not_cancelled[f"posting:{entry.fingerprint}"] = str(exc) or type(exc).__name__
            logger.warning("Could not list the queue for %s: %s", entry.fingerprint[:12], exc)
            return
        with lock:
            fresh = [gid for gid in found if gid not in handled]
            handled.update(fresh)
            report.recovered += fresh
        if fresh:
            logger.warning("Found generation(s) %s of a POST whose answer was not recorded", ", ".join(fresh))
        for gid in fresh:
            cancel_one(gid, False)  # just listed: active (or ended, and a DELETE does nothing)

    jobs: list[Callable[[], None]] = [functools.partial(recover_and_cancel, e) for e in leftovers.posting]
    jobs += [functools.partial(cancel_one, gid, check_active) for gid in leftovers.known]
    if len(jobs) == 1:
        jobs[0]()
    elif jobs:
        with ThreadPoolExecutor(max(1, min(concurrency, len(jobs))), "seedance-cancel") as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()
    return report


def cancel_quietly(client: SeedanceClient, generation_id: str, log: Log | None = None) -> bool:
    """Cancel one generation on the service; whether the service said yes (a failure is logged).

    Best effort, for a run that is ending anyway (a deadline, an interrupt): nothing is raised.

    Example:
        >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
        >>> from seedance_prefect.models import SeedanceRequest
        >>> with run_emulator(EmulatorConfig(latency=30)) as emu:
        ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
        ...         [row] = client.enqueue(SeedanceRequest(prompt="A red kite", duration=4))
        ...         gid = row.generation_id
        ...         first, again = cancel_quietly(client, gid), cancel_quietly(client, "no-such-id")
        >>> first, again
        (True, False)
    """
    log = log or _LOG
    try:
        client.cancel(generation_id)
    except Exception as exc:  # best effort: the run is ending anyway
        log.warning("Could not cancel generation %s: %s", generation_id, exc)
        return False
    log.warning("Cancelled remote generation %s", generation_id)
    return True
