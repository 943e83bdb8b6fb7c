"""The ``batch_reference_to_video`` flow: many requests from a manifest, bounded at the service.

Steps: read and check every row (bad rows reported with line number, name and problems, then
skipped) -> skip rows an earlier run delivered to this target (the journal, checked against the
target) -> copy (or download again) rows an earlier run delivered elsewhere, never generating them
again (:mod:`seedance_prefect.delivery.redeliver`) -> refuse to start over the budget -> run the
rows on threads (:mod:`seedance_prefect.batch.runner`). Per row: ``prepare_references``
(when it has references) -> the task ``generate <name>`` (enqueue + wait, holding
``num_generations`` slots of the Prefect **global concurrency limit**, ``seedance-generations`` by
default, from right before the POST until the generations are terminal) -> one task
``deliver <name>`` per video (download -> verify -> deliver) after the slots are given back (see
:mod:`seedance_prefect.tasks`). Because the limit lives on the Prefect server, it holds across
threads, flow runs and workers.

Example:
    ```python
    from seedance_prefect.batch_flows import batch_reference_to_video

    summary = batch_reference_to_video("requests.jsonl", deliver_to="s3://bucket/videos/", concurrency=8)
    print(summary["totals"])
    ```
"""

# No `from __future__ import annotations` here: Prefect builds the flow's parameter model from
# these annotations, and string annotations do not resolve when a runner loads the flow by entrypoint.

import contextlib
import contextvars
import functools
import logging
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency as global_concurrency
from prefect.events import emit_event
from prefect.logging import get_run_logger
from prefect.runtime import flow_run as current_flow_run

from .batch.budget import RunTotals
from .batch.manifest import BatchPlan, BatchRow, plan_batch, read_manifest
from .batch.runner import HolderLock, Permits, run_rows, slots_taken
from .batch.todo import select_rows
from .credentials import OxenCredentials, resolve_credentials
from .delivery.folder import DeliveredVideo, work_dirs
from .delivery.redeliver import Redelivered, redeliver, succeeded_generation
from .delivery.targets import DeliveryTarget, resolve_target
from .errors import BatchFailed, SeedanceError
from .flows import _RUN_CREDENTIALS, cancel_remote_generations
from .generation.journal import Journal
from .lifecycle import emit_delivered
from .progress import ProgressReporter
from .settings import DEFAULT_SAFETY_POLL_INTERVAL, DEFAULT_TIMEOUT_SECONDS
from .tasks import RowGenerations, deliver_generation, generate_row, prepare_references

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_LIMIT_NAME",
    "BatchFailed",
    "batch_reference_to_video",
    "ensure_concurrency_limit",
    "free_slots",
    "reclaim_slots",
]

DEFAULT_LIMIT_NAME = "seedance-generations"
#: Limit created when none exists and the run does not name one.
DEFAULT_CONCURRENCY = 4
SUMMARY_COLUMNS = ("line", "name", "status", "generation", "video", "source", "seconds", "cost_usd", "error")
#: How to get past a row whose videos can be neither copied nor downloaded again.
NEW_HINT = (
    "pay for one with seedance generate --new (this row's request) or another --run-key (every row again)"
)
#: Rows copied (or downloaded again) at the same time, beside the generations.
REDELIVERY_THREADS = 4


def ensure_concurrency_limit(name: str = DEFAULT_LIMIT_NAME, limit: int | None = None) -> int:
    """Make sure the global concurrency limit ``name`` exists and is active; return its size.

    With ``limit`` given, the limit is created with that size or updated to it; without, an
    existing limit is used as it is (e.g. one made with ``prefect gcl create``) and a missing one
    is created with :data:`DEFAULT_CONCURRENCY` slots.

    Args:
        name: The limit's name.
        limit: Its size (slots = generations in flight), or None to keep the existing one.

    Returns:
        The limit's size.

    Example:
        ```python
        ensure_concurrency_limit("seedance-generations", 20)   # prefect gcl create ... --limit 20
        ```
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    if limit is not None and limit < 1:
        raise ValueError("the concurrency limit must be at least 1")
    with get_client(sync_client=True) as client:
        for _ in range(3):
            try:
                current = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                size = limit or DEFAULT_CONCURRENCY
                try:
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=size, active=True)
                    )
                except ObjectAlreadyExists:
                    continue  # created meanwhile by another run: read it again
                return size
            if (limit is not None and current.limit != limit) or not current.active:
                update = GlobalConcurrencyLimitUpdate(active=True)
                if limit is not None:
                    update.limit = limit
                client.update_global_concurrency_limit(name, update)
            return limit or current.limit
    raise SeedanceError(f"Could not create or read the global concurrency limit {name!r}")


def free_slots(name: str = DEFAULT_LIMIT_NAME) -> int:
    """Return how many slots of the global concurrency limit ``name`` are free right now."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        current = client.read_global_concurrency_limit_by_name(name)
    return max(0, current.limit - current.active_slots)


#: Seconds a lease on the limit lasts unless renewed: the server's minimum. Prefect renews a lease at
#: 75 % of it (every 45 s) while the process lives; a Prefect server's Repossessor (every 15 s)
#: revokes a lease that was not renewed, so a dead process's slots come back within about 75 s.
LEASE_SECONDS = 60.0
#: The lease storage that keeps leases on disk (under ``$PREFECT_HOME/concurrency_leases``), so that
#: they outlive the embedded server of the process that took them. The ``seedance`` CLI makes it the
#: default of the servers it starts (:mod:`seedance_prefect.cli.prefect_env`).
FILESYSTEM_LEASE_STORAGE = "prefect.server.concurrency.lease_storage.filesystem"
#: Folder (under ``$PREFECT_HOME``) of the lock files that tell whether a lease's holder is alive.
HOLDERS_FOLDER = "seedance-lease-holders"


class ReclaimedSlots(NamedTuple):
    """Slots of a lease that :func:`reclaim_slots` gave back."""

    holder: str
    """The holder: ``flow run '<name>'`` (or its id), or ``a lease without a holder``."""
    slots: int
    reason: str
    """``its process is gone`` or ``its lease expired``."""


def _local_lease_paths() -> tuple[Path, Path] | None:
    """The lease folder and the holders' lock folder, when this process's server keeps its leases
    on this machine's disk (the embedded server with the filesystem lease storage); else None."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or settings.server.concurrency.lease_storage != FILESYSTEM_LEASE_STORAGE:
        return None
    home = Path(settings.home).expanduser()
    return home / "concurrency_leases", home / HOLDERS_FOLDER


async def _read_leases(storage: Any, limit_id: Any) -> list[Any]:
    """Every lease of the limit ``limit_id`` in ``storage``, expired or not."""
    ids = [
        *await storage.read_active_lease_ids(limit=10_000),
        *await storage.read_expired_lease_ids(limit=10_000),
    ]
    leases = []
    for lease_id in dict.fromkeys(ids):
        lease = await storage.read_lease(lease_id)
        if lease is not None and limit_id in lease.resource_ids:
            leases.append(lease)
    return leases


def _holder_of(lease: Any) -> str | None:
    holder = lease.metadata.holder if lease.metadata else None
    return str(holder.id) if holder is not None and holder.type == "flow_run" else None


def _holder_label(client: Any, lease: Any, names: dict[str, str]) -> str:
    """``flow run '<name>'`` for a lease held by a flow run (its id when the run cannot be read)."""
    holder = lease.metadata.holder if lease.metadata else None
    if holder is None:
        return "a lease without a holder"
    if holder.type != "flow_run":
        return f"{holder.type.replace('_', ' ')} {holder.id}"
    run_id = str(holder.id)
    if run_id not in names:
        try:
            names[run_id] = f"flow run {client.read_flow_run(holder.id).name!r}"
        except Exception:
            names[run_id] = f"flow run {run_id}"
    return names[run_id]


def reclaim_slots(name: str = DEFAULT_LIMIT_NAME) -> list[ReclaimedSlots]:
    """Give back the slots of the limit ``name`` whose holder can no longer give them back.

    A lease is given back when its holder (a batch flow run) left a lock file in
    ``$PREFECT_HOME/seedance-lease-holders`` that no process holds any more (the process died,
    SIGKILL included), or when it expired and its holder is not known to be alive: what a Prefect
    server's Repossessor does, which the embedded server does not run. A lease whose holder is
    alive is never given back, expired or not. Reclaimers take turns (a lock file), so a lease is
    given back once.

    This works where the leases can be read from this machine: on the embedded server with the
    filesystem lease storage (:data:`FILESYSTEM_LEASE_STORAGE`, the ``seedance`` CLI's default).
    Elsewhere it does nothing and returns ``[]``: a Prefect server revokes expired leases itself.

    Args:
        name: The limit's name.

    Returns:
        What was given back, one item per lease.

    Example:
        ```python
        for given in reclaim_slots("seedance-generations"):
            print(f"{given.slots} slots of {given.holder} given back: {given.reason}")
        ```
    """
    paths = _local_lease_paths()
    if paths is None:
        return []
    leases_dir, holders_dir = paths
    from prefect.client.orchestration import get_client
    from prefect.server.concurrency.lease_storage.filesystem import ConcurrencyLeaseStorage
    from prefect.utilities.asyncutils import run_coro_as_sync

    storage = ConcurrencyLeaseStorage(storage_path=leases_dir)
    given: list[ReclaimedSlots] = []
    names: dict[str, str] = {}
    with get_client(sync_client=True) as client, HolderLock.reclaiming(holders_dir):
        limit_id = client.read_global_concurrency_limit_by_name(name).id
        leases = run_coro_as_sync(_read_leases(storage, limit_id)) or []
        now = datetime.now(UTC)
        status = {h: HolderLock.status(holders_dir, h) for h in {_holder_of(lease) for lease in leases} if h}
        for lease in leases:
            holder = _holder_of(lease)
            state = status.get(holder, "unknown") if holder else "unknown"
            if state == "gone":
                reason = "its process is gone"
            elif state == "unknown" and lease.expiration < now:
                reason = "its lease expired"
            else:
                continue
            client.release_concurrency_slots_with_lease(lease.id)
            slots = lease.metadata.slots if lease.metadata else 0
            given.append(ReclaimedSlots(_holder_label(client, lease, names), slots, reason))
        for holder in HolderLock.holders(holders_dir):  # lock files of dead holders, now without leases
            if status.get(holder, "gone") == "gone" and HolderLock.status(holders_dir, holder) == "gone":
                HolderLock.forget(holders_dir, holder)
    return given


def _slots(count: int) -> str:
    return f"{count} slot" if count == 1 else f"{count} slots"


def _slot_holders(name: str) -> str:
    """Who holds the slots of ``name``, for the line a batch logs while it waits."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
        taken = f"{limit.active_slots} of {limit.limit} taken"
        paths = _local_lease_paths()
        if paths is None:
            from prefect.settings import get_current_settings

            if get_current_settings().api.url:
                return f"{taken} by other runs (the server revokes a dead process's leases within ~75 s)"
            return (
                f"{taken} by other runs; this embedded server keeps its leases in memory, so the slots "
                f"of a process that died never come back (set PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE="
                f"{FILESYSTEM_LEASE_STORAGE}, as the seedance CLI does)"
            )
        from prefect.server.concurrency.lease_storage.filesystem import ConcurrencyLeaseStorage
        from prefect.utilities.asyncutils import run_coro_as_sync

        storage = ConcurrencyLeaseStorage(storage_path=paths[0])
        leases = run_coro_as_sync(_read_leases(storage, limit.id)) or []
        held: dict[str, int] = {}
        names: dict[str, str] = {}
        for lease in leases:
            label = _holder_label(client, lease, names)
            held[label] = held.get(label, 0) + (lease.metadata.slots if lease.metadata else 0)
    parts = [f"{label} ({_slots(slots)})" for label, slots in sorted(held.items())]
    leaked = limit.active_slots - sum(held.values())
    if leaked > 0:
        parts.append(
            f"{_slots(leaked)} with no lease on disk (if that lasts: taken by a process that died while "
            f"a server kept its leases in memory; once no run holds slots, free them with "
            f"prefect gcl update {name} --active-slots 0)"
        )
    return f"{taken}, by " + ", ".join(parts) if parts else taken


class _SlotsTakenFilter(logging.Filter):
    """Drops the ERROR Prefect's slot service logs for each lease request refused with 423 (slots taken).

    ``concurrency(..., max_retries=0)`` refuses at once when the slots are taken, which the pool
    expects (it waits and asks again); Prefect's ``ConcurrencySlotAcquisitionWithLeaseService``
    still logs "failed to process item" at ERROR for it. The pool asks only when the server says
    the slots are free, so this happens only when another process takes them in between; this
    filter drops exactly those records (the refused request's future holds a 423), nothing else.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) != 2 or args[0] != "ConcurrencySlotAcquisitionWithLeaseService":
            return True
        item = args[1]
        future = item[-1] if isinstance(item, tuple) and item else None
        if isinstance(future, Future) and future.done() and not future.cancelled():
            return not slots_taken(future.exception())
        return True


def _quiet_slots_taken() -> None:
    """Install :class:`_SlotsTakenFilter` on Prefect's concurrency service logger (once)."""
    service_logger = logging.getLogger("prefect._internal.concurrency")
    if not any(isinstance(f, _SlotsTakenFilter) for f in service_logger.filters):
        service_logger.addFilter(_SlotsTakenFilter())


class _LimitLeases:
    """One flow run's side of the global limit: leases held for it, the free slots, what to do while waiting.

    Each lease lasts :data:`LEASE_SECONDS` (renewed by Prefect) and names the flow run as its
    holder; while the run holds any, it holds its :class:`HolderLock`, so a run on the same machine
    can tell when this one died and give its slots back (:func:`reclaim_slots`).

    A lease belongs to the flow run, not to the row's task run that happened to ask for it: it is
    taken and given back in a copy of the context this object was made in (the flow run's).
    Prefect records each lease in the innermost run's ``ConcurrencyContext`` and releases it when
    that run ends; taken inside a task run, the pool's lease was released on the server as soon as
    that task run finished while the pool went on handing out its slots, so other flow runs took
    them too and more generations were in flight than the limit (10 of 6 across three runs).
    """

    def __init__(self, name: str, run_id: str | None) -> None:
        from prefect.client.schemas.objects import ConcurrencyLeaseHolder

        self.name = name
        self.context = contextvars.copy_context()  # the flow run's: leases outlive task runs
        self.holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(run_id)) if run_id else None
        paths = _local_lease_paths()
        self.lock = HolderLock(paths[1], run_id) if paths and run_id else None
        _quiet_slots_taken()

    @contextlib.contextmanager
    def lease(self, slots: int) -> Iterator[None]:
        """Hold ``slots`` slots (raises at once when they are taken)."""
        with contextlib.ExitStack() as stack:
            if self.lock is not None:
                stack.enter_context(self.lock)
            lease = global_concurrency(
                self.name,
                occupy=slots,
                strict=True,
                max_retries=0,
                lease_duration=LEASE_SECONDS,
                holder=self.holder,
            )
            context = self.context.copy()  # one context may not be entered by two threads at once
            context.run(lease.__enter__)
            stack.callback(context.run, lease.__exit__, None, None, None)
            yield

    def free(self) -> int:
        """Free slots on the server."""
        return free_slots(self.name)

    def waiting(self, need: int, waited: float) -> None:
        """Too few slots free: give back the slots of dead holders, or else log who holds them."""
        try:
            logger: Any = get_run_logger()
        except Exception:  # not in a flow run's context (run_rows called directly)
            logger = logging.getLogger(__name__)
        try:
            given = reclaim_slots(self.name)
            for item in given:
                logger.info(
                    "Gave back %s of %r held by %s: %s",
                    _slots(item.slots),
                    self.name,
                    item.holder,
                    item.reason,
                )
            if not given:
                since = f" after {waited:.0f} s" if waited >= 1 else ""
                logger.info(
                    "%s for %s of %r%s: %s",
                    "Still waiting" if since else "Waiting",
                    _slots(need),
                    self.name,
                    since,
                    _slot_holders(self.name),
                )
        except Exception as exc:  # a report must not fail the row that waits
            logger.warning(
                "Waiting for %s of %r; could not read who holds them: %s", _slots(need), self.name, exc
            )


def _row(line: int, name: str | None, status: str, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(SUMMARY_COLUMNS, "")
    row.update(line=line, name=name or "", status=status, seconds=0.0, cost_usd=0.0, generations=0)
    row.update(values)
    return row


@task(name="validate_manifest", cache_policy=NO_CACHE)
def validate_manifest(
    manifest: str | list[dict[str, Any]],
    run_key: str | None = None,
    shard: int = 0,
    shards: int = 1,
    allow_local_references: bool = False,
) -> BatchPlan:
    """Read the manifest (path, URL or a list of request dicts) and check every row of the shard."""
    if isinstance(manifest, str):
        rows, base_dir = read_manifest(manifest, allow_local_references=allow_local_references)
        selected = [r for i, r in enumerate(rows) if i % shards == shard]
        return plan_batch(selected, base_dir=base_dir, run_key=run_key)
    return plan_batch(
        [r for i, r in enumerate(manifest) if i % shards == shard],
        run_key=run_key,
    )


@dataclass(frozen=True)
class _RowOptions:
    """What every row of one batch run shares: where the journal is, how long to wait, where to deliver."""

    journal_dir: str | None
    timeout: float
    poll_interval: float
    output: str
    started: float
    state: str | None = None  # the journal's state store (wins over journal_dir)

    @functools.cached_property
    def journal(self) -> Journal:
        """The journal of the run (one store client for every row)."""
        return Journal.at(self.state, self.journal_dir)


def _generate(
    row: BatchRow, permits: Permits, credentials: OxenCredentials, options: _RowOptions
) -> RowGenerations:
    """Enqueue a row (or reattach to it) under its permits and wait until its generations are terminal."""
    # A request without references has nothing to prepare: skip the task run.
    prepared = (
        prepare_references(row.request, credentials=credentials, state=options.state)
        if row.request.reference_count
        else row.request
    )
    return generate_row(
        prepared,
        credentials,
        row.name,
        row.run_key,
        options.journal_dir,
        options.timeout,
        options.poll_interval,
        permits,
        state=options.state,
    )


def _finish(
    row: BatchRow,
    done: RowGenerations,
    credentials: OxenCredentials,
    target: DeliveryTarget,
    options: _RowOptions,
) -> dict[str, Any]:
    """Download, verify and deliver a row's succeeded generations; return the row's summary."""
    count = row.request.num_generations
    usd, seconds = row.cost.usd / max(1, count), row.cost.seconds / max(1, count)
    delivered: list[DeliveredVideo] = []
    failures = list(done.failures)
    for index, generation in done.finished:
        name = row.name if len(done.ids) == 1 else f"{row.name}-{index + 1}"
        try:
            delivered.append(
                deliver_generation(
                    generation,
                    credentials,
                    row.request,
                    name=name,
                    output=options.output,
                    target=target,
                    cost_usd=usd,
                    started=options.started,
                )
            )
        except SeedanceError as exc:
            failures.append(f"{generation.generation_id}: {exc}")
    # under the key the generations were enqueued under: the prepared request's fingerprint, which
    # differs from the row's when it has references (they are hosted or re-encoded first)
    options.journal.record_deliveries(done.fingerprint or row.fingerprint, delivered)
    emit_delivered(delivered, row.request.prompt)  # what a contact-sheet trigger starts from
    if failures:
        get_run_logger().error("Row %d (%s) failed: %s", row.line, row.name, "; ".join(failures))
    return _row(
        row.line,
        row.name,
        "failed" if failures else "delivered",
        generation=", ".join(done.ids),
        video=", ".join(d.video for d in delivered),
        generations=len(delivered),
        seconds=seconds * len(delivered),
        cost_usd=round(usd * len(delivered), 2),
        error="; ".join(failures),
    )


def _download_again(
    row: BatchRow,
    generation_id: str,
    name: str,
    credentials: OxenCredentials,
    target: DeliveryTarget,
    options: _RowOptions,
) -> DeliveredVideo:
    """GET a generation an earlier run delivered and, if the service still serves its result, run
    the usual ``deliver <name>`` step on it (download -> verify -> deliver)."""
    with credentials.get_client() as client:
        generation = succeeded_generation(client, generation_id)
    count = row.request.num_generations
    return deliver_generation(
        generation,
        credentials,
        row.request,
        name=name,
        output=options.output,
        target=target,
        cost_usd=row.cost.usd / max(1, count),
        started=options.started,
    )


def _redeliver_row(
    row: BatchRow,
    recorded: list[dict[str, Any]],
    credentials: OxenCredentials,
    target: DeliveryTarget,
    options: _RowOptions,
) -> dict[str, Any]:
    """Deliver a row an earlier run delivered elsewhere to ``target``, without a new generation.

    Each video is copied from its earlier delivery, else downloaded again from the service, else
    the row fails naming how to pay for a new generation
    (:func:`~seedance_prefect.delivery.redeliver.redeliver`). Never enqueues anything.
    """
    work, _ = work_dirs(options.output)
    done: list[Redelivered] = []
    failures: list[str] = []
    for index, delivery in enumerate(recorded):
        gid = str(delivery["generation_id"])
        name = row.name if len(recorded) == 1 else f"{row.name}-{index + 1}"
        try:
            done.append(
                redeliver(
                    delivery,
                    target,
                    name,
                    workdir=work,
                    download_again=lambda gid=gid, name=name: _download_again(  # type: ignore[misc]
                        row, gid, name, credentials, target, options
                    ),
                    new_hint=NEW_HINT,
                )
            )
        except SeedanceError as exc:
            failures.append(str(exc) if gid in str(exc) else f"{gid}: {exc}")
    options.journal.record_deliveries(row.fingerprint, [d.delivered for d in done])
    emit_delivered([d.delivered for d in done if d.how != "already there"], row.request.prompt)
    if failures:
        get_run_logger().error("Row %d (%s) failed: %s", row.line, row.name, "; ".join(failures))
        status = "failed"
    else:
        status = "skipped" if all(d.how == "already there" for d in done) else "copied"
    return _row(
        row.line,
        row.name,
        status,
        generation=", ".join(str(d["generation_id"]) for d in recorded),
        video=", ".join(d.delivered.video for d in done),
        source=", ".join(d.source for d in done if d.how != "already there"),
        error="; ".join(failures),
    )


def _redeliver_rows(
    rows: list[tuple[BatchRow, list[dict[str, Any]]]],
    credentials: OxenCredentials,
    target: DeliveryTarget,
    options: _RowOptions,
) -> tuple[ThreadPoolExecutor | None, list[tuple[BatchRow, "Future[dict[str, Any]]"]]]:
    """Start redelivering ``rows`` on a few threads (each in a copy of the flow run's context)."""
    if not rows:
        return None, []
    pool = ThreadPoolExecutor(min(REDELIVERY_THREADS, len(rows)), thread_name_prefix="seedance-copy")
    futures = []
    for row, done in rows:
        context = contextvars.copy_context()  # one per task: a context runs in one thread at a time
        future = pool.submit(context.run, _redeliver_row, row, done, credentials, target, options)
        futures.append((row, future))
    return pool, futures


class _RowProgress:
    """One progress artifact for the whole batch: the share of rows done (not one per generation)."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self._lock = threading.Lock()
        # at most one artifact update a second; the last one is waited for (briefly) at the end
        self.reporter = ProgressReporter(f"Seedance batch: {total} rows", join_timeout=5.0, min_interval=1.0)

    def row_done(self, summary: dict[str, Any]) -> None:
        with self._lock:
            self.done += 1
            self.reporter.update(100.0 * self.done / self.total)


def _failed(row: BatchRow, exc: BaseException) -> dict[str, Any]:
    get_run_logger().error("Row %d (%s) failed: %s", row.line, row.name, exc)
    return _row(row.line, row.name, "failed", error=str(exc) or type(exc).__name__)


def _artifact_key(manifest: Any) -> str:
    stem = Path(manifest.split("?", 1)[0]).stem if isinstance(manifest, str) else "inline"
    return ("seedance-batch-" + re.sub(r"[^a-z0-9-]+", "-", stem.lower())).strip("-")[:80]


@flow(
    name="seedance-batch-reference-to-video",
    on_cancellation=[cancel_remote_generations],
    on_crashed=[cancel_remote_generations],
    on_failure=[cancel_remote_generations],
)
def batch_reference_to_video(
    manifest: str | list[dict[str, Any]],
    output: str = "seedance-output",
    deliver_to: str | None = None,
    concurrency: int | None = None,
    credentials: OxenCredentials | str | None = None,
    run_key: str | None = None,
    budget_usd: float | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    poll_interval: float = DEFAULT_SAFETY_POLL_INTERVAL,
    journal_dir: str | None = None,
    limit_name: str = DEFAULT_LIMIT_NAME,
    shard: int = 0,
    shards: int = 1,
    state: str | None = None,
    allow_local_references: bool = False,
) -> dict[str, Any]:
    """Generate, verify and deliver every request of a manifest, at most N generations in flight.

    Args:
        manifest: A JSONL or CSV manifest (local path or fsspec URL such as
            ``s3://bucket/nightly.jsonl``), or a list of request dicts (``name`` optional).
        output: Local folder: the delivery folder when ``deliver_to`` is not given, and the
            place of work files and rejected videos.
        deliver_to: An fsspec URL (``s3://bucket/prefix/``) or a saved block
            (``s3-bucket/NAME``, ``remote-file-system/NAME``, ``local-file-system/NAME``).
        concurrency: Generations in flight at most, across every run and worker sharing
            ``limit_name``; sets the global concurrency limit. None: keep the existing limit (or
            create it with 4 slots).
        credentials: An ``OxenCredentials`` block, a saved block's name, or None for the
            environment (``OXEN_API_KEY``, ``OXEN_BASE_URL``).
        run_key: Batch-wide extra key: a different key generates every row again.
        budget_usd: Refuse to start when the estimated cost of the rows to run is over this.
        timeout_seconds: Deadline for each generation; past it the generation is cancelled.
        poll_interval: Seconds between fallback polls (completion events arrive sooner).
        journal_dir: Folder of the durable enqueue journal (default ``~/.seedance/journal``).
        limit_name: Name of the global concurrency limit.
        shard: Run only the rows whose 0-based position modulo ``shards`` is ``shard``.
        shards: Number of shards (split one manifest over several flow runs or workers).
        state: Where the journal lives, shared by every machine that names the same store
            (``"s3://bucket/prefix/"``, ``"s3-bucket/NAME"`` or a folder); wins over
            ``journal_dir``. None: ``$SEEDANCE_STATE``, else ``journal_dir``, else ``~/.seedance``.
        allow_local_references: Let a manifest read from a URL name files of the machine that runs
            it (absolute, ``~``, ``file://``). False: such rows are invalid, so whoever can write
            the manifest cannot make a worker send its files; paths relative to the manifest are
            fetched from its store either way. Local manifests always may.

    Returns:
        ``{"rows": [...], "totals": {...}}``: one summary row per manifest row (``line``,
        ``name``, ``status``, ``generation``, ``video``, ``source``, ``seconds``, ``cost_usd``,
        ``error``) and the run's totals. ``status`` is ``delivered`` (generated now),
        ``copied`` (delivered earlier to another target, copied or downloaded again now: no new
        generation; ``source`` says from where), ``skipped`` (already there: delivered earlier to
        this target), ``failed`` or ``invalid``.

    Raises:
        InvalidRequest: The manifest or the delivery target is unusable (nothing was sent).
        BudgetExceeded: The estimated cost is over ``budget_usd`` (nothing was sent).
        BatchFailed: Some rows were invalid or failed; every other row was still delivered.
    """
    started = time.time()
    logger = get_run_logger()
    if not 0 <= shard < shards:
        raise ValueError("shard must be in 0..shards-1")
    creds = resolve_credentials(credentials)
    run_id = current_flow_run.get_id()
    if run_id:
        _RUN_CREDENTIALS[run_id] = creds
    plan = validate_manifest(manifest, run_key, shard, shards, allow_local_references)
    target = resolve_target(deliver_to, output)
    target.check()
    limit = ensure_concurrency_limit(limit_name, concurrency)
    journal = Journal.at(state, journal_dir)
    summary: list[dict[str, Any]] = []
    for bad in plan.rejected:
        logger.warning("Skipping invalid row %s", bad)
        summary.append(_row(bad.line, bad.name, "invalid", error="; ".join(bad.problems)))
    todo = select_rows(plan.rows, journal, budget_usd=budget_usd, limit=limit, target=target)
    for row, problem in todo.over_limit:
        logger.warning("Skipping invalid row %d (%s): %s", row.line, row.name, problem)
        summary.append(_row(row.line, row.name, "invalid", error=problem))
    for row, done in todo.already_there:
        videos = ", ".join(str(d.get("video", "")) for d in done)
        generation = ", ".join(d["generation_id"] for d in done)
        summary.append(_row(row.line, row.name, "skipped", generation=generation, video=videos))
    to_run, cost = todo.to_run, todo.cost_usd
    logger.info(
        "Batch: %d rows to run (estimated $%.2f), %d to copy from an earlier delivery (free), "
        "%d already there, %d invalid; limit %r = %d",
        len(to_run),
        cost,
        len(todo.to_redeliver),
        len(todo.already_there),
        sum(1 for s in summary if s["status"] == "invalid"),
        limit_name,
        limit,
    )

    options = _RowOptions(journal_dir, timeout_seconds, poll_interval, output, started, state)
    # rows delivered elsewhere before: copied (or downloaded again) beside the generations, never enqueued
    copying, copies = _redeliver_rows(todo.to_redeliver, creds, target, options)
    if to_run:
        leases = _LimitLeases(limit_name, run_id)
        progress = _RowProgress(len(to_run))
        with progress.reporter:
            summary += run_rows(
                to_run,
                generate=lambda row, permits: _generate(row, permits, creds, options),
                finish=lambda row, done: _finish(row, done, creds, target, options),
                fail=_failed,
                slots_of=lambda row: row.request.num_generations,
                open_lease=leases.lease,
                server_free=leases.free,
                on_wait=leases.waiting,
                slots=limit,
                on_result=progress.row_done,
            )
    for row, future in copies:
        try:
            summary.append(future.result())
        except Exception as exc:  # a bug or a storage error outside redeliver's own handling
            summary.append(_failed(row, exc))
    if copying is not None:
        copying.shutdown()
    summary.sort(key=lambda r: r["line"])
    totals = RunTotals.from_rows(summary, time.time() - started)
    create_table_artifact(
        [{k: r[k] for k in SUMMARY_COLUMNS} for r in summary],
        key=_artifact_key(manifest),
        description=(
            f"Seedance batch: {totals.delivered} delivered, {totals.copied} copied, "
            f"{totals.skipped} already there, {totals.failed} failed, {totals.invalid} invalid; "
            f"{totals.generations} new videos, "
            f"{totals.seconds:g} s, estimated ${totals.cost_usd:.2f}"
        ),
    )
    emit_event(
        "seedance.batch.completed" if totals.ok else "seedance.batch.failed",
        resource={"prefect.resource.id": f"seedance.batch.{run_id or 'local'}"},
        payload=totals.as_dict(),
    )
    result = {"rows": summary, "totals": totals.as_dict()}
    if not totals.ok:
        raise BatchFailed(
            f"{totals.done} of {totals.rows} rows delivered; "
            f"{totals.failed} failed, {totals.invalid} invalid",
            result,
        )
    return result
