"""The durable enqueue journal: what was asked, when, and which generations it created.

A re-run, a task retry or a crashed process must never pay twice. Before each ``POST /ai/queue``
the journal records an attempt as ``posting``; after the answer it records the generation ids.
On the next run with the same request fingerprint:

- ids known and not failed: reattach to them;
- an attempt stuck in ``posting`` (the process died, or the answer was lost): list the service's
  generations enqueued since that attempt and adopt those that match the prompt and parameters
  before enqueuing again.

Why not Prefect's task cache alone? A cached enqueue result is written only after the task
returns, so it cannot cover the window between the POST and its answer, and it would keep
returning the ids of a generation that failed. The journal is a folder of small JSON files
(``$SEEDANCE_STATE_DIR`` or ``~/.seedance/journal``), written atomically and locked per
fingerprint, so several flow runs on one machine see one truth. Put it on a shared disk for
workers on several machines.

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
import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from .._files import state_dir, write_json_atomic
from ..models import Generation

__all__ = ["Attempt", "Delivery", "Journal", "JournalEntry", "default_journal_dir", "row_matches"]

#: Seconds of clock difference tolerated between us and the service when matching rows.
CLOCK_SKEW_SECONDS = 120.0


def default_journal_dir() -> Path:
    """Return ``$SEEDANCE_STATE_DIR`` or ``~/.seedance/journal``.

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


@dataclass
class Attempt:
    """One enqueue attempt of a request.

    Attributes:
        started_at: Unix time at or before the POST (before waiting for a concurrency slot, until
            the POST's answer is recorded); a lost answer is looked for from it on.
        state: ``posting`` (no answer recorded yet), ``enqueued``, ``recovered`` (answer lost,
            generations found by listing) or ``refused`` (the service said no; nothing created).
        generation_ids: Ids the attempt created.
        detail: Why it was refused, or how it was recovered.
    """

    started_at: float
    state: Literal["posting", "enqueued", "recovered", "refused"] = "posting"
    generation_ids: list[str] = field(default_factory=list)
    detail: str | None = None

    def record(
        self, generation_ids: list[str], *, recovered: bool = False, detail: str | None = None
    ) -> None:
        """Record the generations this attempt created."""
        self.generation_ids = list(generation_ids)
        self.state = "recovered" if recovered else "enqueued"
        self.detail = detail


@dataclass
class JournalEntry:
    """Everything known about one request fingerprint.

    Attributes:
        fingerprint: sha256 of the normalised request plus run key.
        body: The queue body, secrets never included (it holds none).
        attempts: Enqueue attempts, oldest first.
        deliveries: Delivered outputs by generation id.
        flow_runs: Ids of the flow runs that worked on this request.
    """

    fingerprint: str
    body: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)
    flow_runs: list[str] = field(default_factory=list)

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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JournalEntry:
        """Rebuild an entry from its JSON form."""
        attempts = [Attempt(**a) for a in data.get("attempts", [])]
        return cls(
            fingerprint=data["fingerprint"],
            body=dict(data.get("body", {})),
            attempts=attempts,
            deliveries=dict(data.get("deliveries", {})),
            flow_runs=list(data.get("flow_runs", [])),
        )


class Journal:
    """A folder of journal entries, one JSON file per request fingerprint.

    Args:
        directory: Where the entries live; defaults to :func:`default_journal_dir`.

    Example:
        >>> import tempfile
        >>> journal = Journal(tempfile.mkdtemp())
        >>> journal.load("0123abcd") is None
        True
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory else default_journal_dir()

    def _path(self, fingerprint: str) -> Path:
        if not fingerprint.isalnum():
            raise ValueError(f"not a fingerprint: {fingerprint!r}")
        return self.directory / f"{fingerprint}.json"

    def load(self, fingerprint: str) -> JournalEntry | None:
        """Return the entry of a fingerprint, or None when there is none."""
        path = self._path(fingerprint)
        try:
            return JournalEntry.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            return None

    def save(self, entry: JournalEntry) -> None:
        """Write an entry atomically (temp file, fsync, rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self._path(entry.fingerprint), asdict(entry), indent=1, sort_keys=True)

    @contextlib.contextmanager
    def lock(self, fingerprint: str) -> Iterator[None]:
        """Hold an exclusive lock on a fingerprint (across processes on this machine)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_path = self.directory / f".{fingerprint}.lock"
        with open(lock_path, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def record_deliveries(self, fingerprint: str, deliveries: Iterable[Delivery]) -> JournalEntry | None:
        """Note delivered outputs in a fingerprint's entry, so that hooks and re-runs know they are done.

        Each delivery is stored by generation id as ``{"video": ..., "sha256": ...}``, under the
        fingerprint's lock. Nothing is written when there is no delivery or no entry.

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
        with self.lock(fingerprint):
            entry = self.load(fingerprint)
            if entry is None:
                return None
            for d in delivered:
                entry.deliveries[d.generation_id] = {"video": d.video, "sha256": d.sha256}
            self.save(entry)
            return entry

    def link_flow_run(self, flow_run_id: str, fingerprint: str) -> None:
        """Remember that a flow run works on a fingerprint (used by cancellation hooks).

        One empty marker file per pair (``runs/<flow run>/<fingerprint>``): no lock, and the cost
        does not grow with the rows of a batch.
        """
        folder = self.directory / "runs" / flow_run_id
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            (folder / fingerprint).open("x").close()

    def fingerprints_of_flow_run(self, flow_run_id: str) -> list[str]:
        """Return the fingerprints a flow run worked on, in the order they were linked."""
        runs = self.directory / "runs"
        legacy = runs / f"{flow_run_id}.json"  # the format of earlier versions
        found: list[str] = json.loads(legacy.read_text()) if legacy.exists() else []
        folder = runs / flow_run_id
        if folder.is_dir():
            markers = sorted(folder.iterdir(), key=lambda m: (m.stat().st_mtime_ns, m.name))
            found += [m.name for m in markers if m.name not in found]
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
