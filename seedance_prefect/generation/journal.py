"""The durable enqueue journal: what was asked, when, who is posting it, and which generations it created.

A re-run, a task retry, a crashed process or a run that moved to another machine must never pay
twice. Right before each ``POST /ai/queue`` the journal records an attempt as ``posting``, claimed by
one owner with a lease (:class:`Claim`); after the answer it records the generation ids. On the next
run with the same request fingerprint:

- ids known and not failed: reattach to them;
- an attempt in ``posting`` whose lease is fresh: another run is posting it right now; wait for its
  ids (:func:`~seedance_prefect.generation.enqueue.enqueue_once`);
- an attempt stuck in ``posting`` whose lease expired (the process died, or the answer was lost):
  list the service's generations enqueued since that attempt and adopt those that match the prompt
  and parameters before enqueuing again.

Why not Prefect's task cache alone? A cached enqueue result is written only after the task
returns, so it cannot cover the window between the POST and its answer, and it would keep
returning the ids of a generation that failed.

Where it lives: a :class:`~seedance_prefect.state.StateStore`, one JSON object per fingerprint under
``journal/`` (``journal/<fingerprint>.json``, and ``journal/runs/<flow run>/<fingerprint>`` markers).
By default the store is the folder ``$SEEDANCE_STATE_DIR`` or ``~/.seedance``, so the files are where
they always were; ``$SEEDANCE_STATE`` (or a ``state`` parameter, ``--state``) names a store that
several machines share, e.g. ``s3://bucket/seedance/``. Writes that can race are conditional
(:meth:`Journal.write`, :meth:`Journal.update`: create or compare-and-swap on the version read), so
flow runs on any number of machines see one truth.

The JSON format is the one of earlier versions plus fields: ``claim`` at the top level (earlier
versions ignore it). Loading keeps fields it does not know and writes them back, so an older and a
newer version can share a journal.

Example:
    >>> import tempfile
    >>> journal = Journal(tempfile.mkdtemp())
    >>> entry = journal.load("abc") or JournalEntry(fingerprint="abc", body={"prompt": "x"})
    >>> attempt = entry.begin_attempt(); journal.save(entry)
    >>> attempt.record(["g1"]); journal.save(entry)
    >>> journal.load("abc").attempts[-1].generation_ids
    ['g1']
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from .._files import state_dir
from ..models import Generation
from ..state import LocalStateStore, StateConflict, StateStore, check_key, resolve_state

__all__ = [
    "LEASE_SKEW_SECONDS",
    "Attempt",
    "Claim",
    "Delivery",
    "Journal",
    "JournalEntry",
    "default_journal_dir",
    "row_matches",
]

#: Seconds of clock difference tolerated between us and the service when matching rows.
CLOCK_SKEW_SECONDS = 120.0
#: Seconds a lease is still taken as held after its ``lease_until`` (clock difference between machines).
LEASE_SKEW_SECONDS = 2.0
#: Tries of a read-change-write of one entry before a conflict is given up (each loss means progress).
UPDATE_TRIES = 50

#: Where journals live in a store.
PREFIX = "journal/"


def default_journal_dir() -> Path:
    """Return ``$SEEDANCE_STATE_DIR/journal`` or ``~/.seedance/journal`` (the folder of the default store).

    Example:
        >>> default_journal_dir().name
        'journal'
    """
    return state_dir("journal")


class Delivery(Protocol):
    """A delivered output, as the journal notes it (e.g. a ``DeliveredVideo``)."""

    @property
    def generation_id(self) -> str:
        """The generation the output came from."""

    @property
    def video(self) -> str:
        """Where the video was delivered."""

    @property
    def sha256(self) -> str:
        """The delivered video's checksum."""


def _split(cls: type, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Known fields of a dataclass and the rest (kept, and written back)."""
    names = {f.name for f in dataclasses.fields(cls) if f.name != "unknown"}
    known = {k: v for k, v in data.items() if k in names}
    return known, {k: v for k, v in data.items() if k not in names}


@dataclass
class Attempt:
    """One enqueue attempt of a request.

    Attributes:
        started_at: Unix time of the claim, right before the POST (after the concurrency slot was
            taken), until the POST's answer is recorded; a lost answer is looked for from it on.
        state: ``posting`` (no answer recorded yet), ``enqueued``, ``recovered`` (answer lost,
            generations found by listing) or ``refused`` (the service said no; nothing created).
        generation_ids: Ids the attempt created.
        detail: Why it was refused, or how it was recovered.
        unknown: Fields of a newer version, kept as they are.
    """

    started_at: float
    state: Literal["posting", "enqueued", "recovered", "refused"] = "posting"
    generation_ids: list[str] = field(default_factory=list)
    detail: str | None = None
    unknown: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def record(
        self, generation_ids: list[str], *, recovered: bool = False, detail: str | None = None
    ) -> None:
        """Record the generations this attempt created."""
        self.generation_ids = list(generation_ids)
        self.state = "recovered" if recovered else "enqueued"
        self.detail = detail

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attempt:
        """Rebuild an attempt from its JSON form (unknown fields are kept)."""
        known, unknown = _split(cls, data)
        return cls(**known, unknown=unknown)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (unknown fields included)."""
        return {
            **self.unknown,
            "started_at": self.started_at,
            "state": self.state,
            "generation_ids": list(self.generation_ids),
            "detail": self.detail,
        }


@dataclass
class Claim:
    """Who posts an entry's current attempt, and until when (the lease).

    The owner renews ``lease_until`` while its POST is in flight; another run that finds the lease
    held waits for the ids instead of posting, and takes over only once the lease has expired.

    Attributes:
        owner: ``host:pid:random`` of the claiming call.
        attempt: Index of the claimed attempt in ``attempts``.
        lease_until: Unix time (the owner's clock) until which the claim holds; 0 once released.
        unknown: Fields of a newer version, kept as they are.

    Example:
        >>> Claim("h:1:ab", 0, lease_until=100.0).held(now=101.0), Claim("h:1:ab", 0, 100.0).held(now=103.0)
        (True, False)
    """

    owner: str
    attempt: int
    lease_until: float
    unknown: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def held(self, now: float | None = None) -> bool:
        """Whether the lease holds at ``now`` (default: this clock), :data:`LEASE_SKEW_SECONDS` to spare."""
        return (time.time() if now is None else now) <= self.lease_until + LEASE_SKEW_SECONDS

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Claim:
        """Rebuild a claim from its JSON form."""
        known, unknown = _split(cls, data)
        return cls(**known, unknown=unknown)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {**self.unknown, "owner": self.owner, "attempt": self.attempt, "lease_until": self.lease_until}


@dataclass
class JournalEntry:
    """Everything known about one request fingerprint.

    Attributes:
        fingerprint: sha256 of the normalised request plus run key.
        body: The queue body, secrets never included (it holds none).
        attempts: Enqueue attempts, oldest first.
        deliveries: Delivered outputs by generation id.
        flow_runs: Ids of the flow runs that worked on this request.
        claim: The owner and lease of the attempt being posted (None: never claimed, e.g. an entry
            of an earlier version).
        unknown: Fields of a newer version, kept as they are.
    """

    fingerprint: str
    body: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)
    flow_runs: list[str] = field(default_factory=list)
    claim: Claim | None = None
    unknown: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def begin_attempt(self) -> Attempt:
        """Start and return a new ``posting`` attempt."""
        attempt = Attempt(started_at=time.time())
        self.attempts.append(attempt)
        return attempt

    @property
    def last_attempt(self) -> Attempt | None:
        """The newest attempt, if any."""
        return self.attempts[-1] if self.attempts else None

    @property
    def generation_ids(self) -> list[str]:
        """Every generation id any attempt created, oldest first."""
        return [gid for attempt in self.attempts for gid in attempt.generation_ids]

    def lease_holder(self, now: float | None = None) -> str | None:
        """The owner whose lease on the last attempt (still ``posting``) holds at ``now``, else None.

        Example:
            >>> entry = JournalEntry(fingerprint="f"); _ = entry.begin_attempt()
            >>> entry.claim = Claim("host:1:ab", 0, lease_until=time.time() + 10)
            >>> entry.lease_holder(), entry.lease_holder(now=time.time() + 60)
            ('host:1:ab', None)
        """
        last = self.last_attempt
        claim = self.claim
        if last is None or last.state != "posting" or claim is None:
            return None
        if claim.attempt != len(self.attempts) - 1 or not claim.held(now):
            return None
        return claim.owner

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JournalEntry:
        """Rebuild an entry from its JSON form (missing fields take their defaults; unknown ones are kept)."""
        known, unknown = _split(cls, data)
        claim = known.get("claim")
        return cls(
            fingerprint=known["fingerprint"],
            body=dict(known.get("body") or {}),
            attempts=[Attempt.from_dict(a) for a in known.get("attempts") or []],
            deliveries=dict(known.get("deliveries") or {}),
            flow_runs=list(known.get("flow_runs") or []),
            claim=Claim.from_dict(claim) if isinstance(claim, Mapping) else None,
            unknown=unknown,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (unknown fields included)."""
        return {
            **self.unknown,
            "fingerprint": self.fingerprint,
            "body": self.body,
            "attempts": [a.to_dict() for a in self.attempts],
            "deliveries": self.deliveries,
            "flow_runs": list(self.flow_runs),
            "claim": self.claim.to_dict() if self.claim else None,
        }


_PROCESS_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _encode(entry: JournalEntry) -> bytes:
    return json.dumps(entry.to_dict(), indent=1, sort_keys=True).encode()


class Journal:
    """Journal entries in a state store, one JSON object per request fingerprint.

    Args:
        directory: A folder holding the entries directly (as in earlier versions: ``<directory>/<fp>.json``).
        store: A :class:`~seedance_prefect.state.StateStore` or a ``state`` value
            (:func:`~seedance_prefect.state.resolve_state`); the entries go under ``journal/`` in it.
            Only one of ``directory`` and ``store``; neither: the default store
            (``$SEEDANCE_STATE``, else the folder ``$SEEDANCE_STATE_DIR`` or ``~/.seedance``).

    Attributes:
        store: Where the entries are.
        prefix: Their key prefix in the store (``journal/``, or ``""`` for a ``directory``).
        directory: The folder of the entries when the store is a folder, else None.

    Example:
        >>> import tempfile
        >>> from seedance_prefect.state import LocalStateStore
        >>> journal = Journal(tempfile.mkdtemp())
        >>> journal.load("0123abcd") is None
        True
        >>> folder = tempfile.mkdtemp()
        >>> Journal(store=LocalStateStore(folder)).directory == Path(folder) / "journal"
        True
    """

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, *, store: StateStore | str | None = None
    ) -> None:
        if directory is not None and store is not None:
            raise ValueError("give a journal a directory or a store, not both")
        if directory is not None and str(directory):
            self.store: StateStore = LocalStateStore(directory)
            self.prefix = ""
        else:
            self.store = resolve_state(store)
            self.prefix = PREFIX
        root = self.store.root if isinstance(self.store, LocalStateStore) else None
        self.directory: Path | None = root / self.prefix if root is not None else None

    @classmethod
    def at(
        cls, state: StateStore | str | None = None, journal_dir: str | os.PathLike[str] | None = None
    ) -> Journal:
        """The journal of a flow's or task's parameters: ``state`` wins, then ``journal_dir``, then default.

        Example:
            >>> import tempfile
            >>> folder = tempfile.mkdtemp()
            >>> Journal.at(folder, journal_dir="/elsewhere").directory == Path(folder) / "journal"
            True
            >>> Journal.at(None, journal_dir=folder).directory == Path(folder)
            True
        """
        if state is not None:
            return cls(store=state)
        return cls(journal_dir)

    def __repr__(self) -> str:
        return f"Journal({self.store.url!r}, prefix={self.prefix!r})"

    def key(self, fingerprint: str) -> str:
        """The store key of a fingerprint's entry."""
        if not fingerprint.isalnum():
            raise ValueError(f"not a fingerprint: {fingerprint!r}")
        return f"{self.prefix}{fingerprint}.json"

    def load_versioned(self, fingerprint: str) -> tuple[JournalEntry, str] | None:
        """Return a fingerprint's entry and its version (for :meth:`write`), or None."""
        found = self.store.read(self.key(fingerprint))
        if found is None:
            return None
        return JournalEntry.from_dict(json.loads(found.data)), found.version

    def load(self, fingerprint: str) -> JournalEntry | None:
        """Return the entry of a fingerprint, or None when there is none."""
        found = self.load_versioned(fingerprint)
        return found[0] if found else None

    def write(self, entry: JournalEntry, version: str | None) -> str:
        """Write an entry only if it is still at ``version`` (None: if there is none); return the new version.

        Raises:
            StateConflict: The entry changed (or was created) since it was read; nothing was written.
        """
        return self.store.write(self.key(entry.fingerprint), _encode(entry), version)

    def update(
        self, fingerprint: str, change: Callable[[JournalEntry | None], JournalEntry | None]
    ) -> JournalEntry | None:
        """Read an entry, change it and write it back only if nobody wrote in between; else start over.

        Args:
            fingerprint: The entry's fingerprint.
            change: Given the current entry (a fresh copy each time, or None), returns the entry to
                write, or None to write nothing. It may run several times: make it idempotent.

        Returns:
            The entry written, or the current one when ``change`` returned None.

        Raises:
            StateConflict: Other writers won :data:`UPDATE_TRIES` times in a row.

        Example:
            >>> import tempfile
            >>> journal = Journal(tempfile.mkdtemp())
            >>> def add_run(entry):
            ...     entry = entry or JournalEntry(fingerprint="abc")
            ...     entry.flow_runs.append("run-1")
            ...     return entry
            >>> journal.update("abc", add_run).flow_runs
            ['run-1']
        """
        for tries in range(UPDATE_TRIES):
            found = self.load_versioned(fingerprint)
            current, version = found if found else (None, None)
            changed = change(current)
            if changed is None:
                return current
            try:
                self.write(changed, version)
                return changed
            except StateConflict:
                time.sleep(random.uniform(0, 0.005 * min(tries + 1, 20)))
        raise StateConflict(f"{self.key(fingerprint)}: {UPDATE_TRIES} writes in a row lost to other writers")

    def save(self, entry: JournalEntry) -> None:
        """Write an entry whatever is there now (atomically: a reader sees the old or the new one whole).

        For tests and tools; the enqueue algorithm uses :meth:`write` and :meth:`update`, which
        never overwrite a concurrent change.
        """
        self.update(entry.fingerprint, lambda _current: entry)

    @contextlib.contextmanager
    def lock(self, fingerprint: str) -> Iterator[None]:
        """Hold an exclusive lock on a fingerprint: across processes when the store is a folder (fcntl),
        else within this process only.

        Not needed for correctness any more: every write that can race is conditional. Kept for
        callers that want to serialise their own read-change-write on one machine.
        """
        self.key(fingerprint)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self.directory / f".{fingerprint}.lock", "a") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return
        with _PROCESS_LOCKS_GUARD:
            lock = _PROCESS_LOCKS.setdefault((self.store.url, fingerprint), threading.Lock())
        with lock:
            yield

    def record_deliveries(self, fingerprint: str, deliveries: Iterable[Delivery]) -> JournalEntry | None:
        """Note delivered outputs in a fingerprint's entry, so that hooks and re-runs know they are done.

        Each delivery is stored by generation id as ``{"video": ..., "sha256": ...}``, with a
        conditional write (a concurrent change of the entry is read again, never overwritten).
        Nothing is written when there is no delivery or no entry.

        Args:
            fingerprint: The request's fingerprint.
            deliveries: The outputs delivered (anything with ``generation_id``, ``video`` and
                ``sha256``, e.g. :class:`~seedance_prefect.delivery.folder.DeliveredVideo`).

        Returns:
            The saved entry, or None when nothing was written.

        Example:
            >>> import tempfile
            >>> from types import SimpleNamespace
            >>> journal = Journal(tempfile.mkdtemp())
            >>> journal.save(JournalEntry(fingerprint="abc"))
            >>> done = SimpleNamespace(generation_id="g1", video="out/a.mp4", sha256="9f" * 32)
            >>> journal.record_deliveries("abc", [done]).deliveries["g1"]["video"]
            'out/a.mp4'
            >>> journal.record_deliveries("unknown", [done]) is None
            True
        """
        delivered = list(deliveries)
        if not delivered:
            return None

        def note(entry: JournalEntry | None) -> JournalEntry | None:
            if entry is None:
                return None
            for d in delivered:
                entry.deliveries[d.generation_id] = {"video": d.video, "sha256": d.sha256}
            return entry

        return self.update(fingerprint, note)

    def link_flow_run(self, flow_run_id: str, fingerprint: str) -> None:
        """Remember that a flow run works on a fingerprint (used by cancellation hooks).

        One empty marker per pair (``runs/<flow run>/<fingerprint>``), created once: no lock, no
        read, and the cost does not grow with the rows of a batch.
        """
        self.key(fingerprint)
        with contextlib.suppress(StateConflict):
            self.store.create(check_key(f"{self.prefix}runs/{flow_run_id}/{fingerprint}"), b"")

    def fingerprints_of_flow_run(self, flow_run_id: str) -> list[str]:
        """Return the fingerprints a flow run worked on, in the order they were linked."""
        legacy = self.store.read(check_key(f"{self.prefix}runs/{flow_run_id}.json"))  # earlier versions
        found: list[str] = json.loads(legacy.data) if legacy else []
        folder = f"{self.prefix}runs/{flow_run_id}/"
        found += [m for key in self.store.list(folder) if (m := key[len(folder) :]) not in found]
        return found


_AUTO = frozenset({"auto", "-1", "adaptive"})


def _same(a: Any, b: Any) -> bool:
    left, right = str(a).strip().lower(), str(b).strip().lower()
    return left == right or (left in _AUTO and right in _AUTO)


def row_matches(row: Generation, body: Mapping[str, Any], *, since: float) -> bool:
    """Tell whether a queue row is (very likely) a generation created by ``body``.

    The row must have the same prompt and model, have been enqueued no earlier than ``since``
    (minus a clock-skew margin), and every parameter it echoes that the body also holds (but the
    reference lists, journaled as checksums) must be equal (``"8"`` equals ``8``; ``"auto"``
    equals ``-1`` and ``"adaptive"``).

    Args:
        row: A row from ``GET /ai/queue``.
        body: The queue body that was posted.
        since: Unix time of the attempt whose answer was lost.

    Returns:
        True when the row matches.

    Example:
        >>> row = Generation.model_validate({"generation_id": "g", "prompt": "p", "duration": 8,
        ...     "model_name": "bytedance-seedance-2-0-reference-to-video", "enqueued_at": 100})
        >>> row_matches(row, {"prompt": "p", "duration": "8",
        ...     "model": "bytedance-seedance-2-0-reference-to-video"}, since=50)
        True
        >>> row_matches(row, {"prompt": "other"}, since=50)
        False
    """
    if row.prompt != body.get("prompt"):
        return False
    if row.model_name and body.get("model") and row.model_name != body.get("model"):
        return False
    if row.enqueued_at is not None and row.enqueued_at < since - CLOCK_SKEW_SECONDS:
        return False
    echoed = {**(row.extra_fields or {}), "duration": row.duration}
    for key, value in body.items():
        if key in ("model", "prompt", "num_generations") or key.startswith("input_"):
            continue  # references are journaled as checksums, so they are not compared
        if key not in echoed or echoed[key] is None:
            continue
        if not _same(echoed[key], value):
            return False
    return True
