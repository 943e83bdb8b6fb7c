"""The Prefect global concurrency limit that bounds the generations in flight, and its slots.

A batch row holds ``num_generations`` slots of the limit (``seedance-generations`` by default) from
right before its POST until its generations are terminal. Because the limit lives on the Prefect
server, it holds across threads, flow runs and workers. This module:

- creates the limit or brings it to a size (:func:`ensure_concurrency_limit`) and counts its free
  slots (:func:`free_slots`);
- leases slots for one flow run (:class:`LimitLeases`): each lease names the flow run as its
  holder, lasts :data:`LEASE_SECONDS` (Prefect renews it while the process lives) and is taken in
  the flow run's context, so it outlives the row's task run;
- gives back the slots of holders that died (:func:`reclaim_slots`) where the leases are on this
  machine's disk, and otherwise tells who holds them while a row waits.

The pool that hands the slots to rows, with no Prefect in it, is
:mod:`seedance_prefect.batch.runner`; the batch flow is :mod:`seedance_prefect.batch_flows`.

Example:
    ```python
    from seedance_prefect.slots import ensure_concurrency_limit, free_slots, reclaim_slots

    ensure_concurrency_limit("seedance-generations", 20)  # prefect gcl create ... --limit 20
    print(free_slots("seedance-generations"))
    for given in reclaim_slots("seedance-generations"):
        print(f"{given.slots} slots of {given.holder} given back: {given.reason}")
    ```
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

from prefect.concurrency.sync import concurrency as global_concurrency
from prefect.logging import get_run_logger

from .batch.runner import HolderLock, slots_taken
from .errors import SeedanceError
from .settings import FILESYSTEM_LEASE_STORAGE

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_LIMIT_NAME",
    "FILESYSTEM_LEASE_STORAGE",
    "HOLDERS_FOLDER",
    "LEASE_SECONDS",
    "LimitLeases",
    "ReclaimedSlots",
    "ensure_concurrency_limit",
    "free_slots",
    "reclaim_slots",
]

DEFAULT_LIMIT_NAME = "seedance-generations"
#: Limit created when none exists and the run does not name one.
DEFAULT_CONCURRENCY = 4


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


class LimitLeases:
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
