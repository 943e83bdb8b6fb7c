"""Run the rows of a batch on threads, every generation in flight covered by a global-limit slot.

Two pools of threads share the work:

- **generation threads** (a few more than the slots of the limit): take a row and run its
  generation phase (enqueue, wait until terminal), which takes the row's ``num_generations``
  :class:`Permits` right before it enqueues and gives them back as soon as its generations are
  terminal. The extra threads start their next row (its task run, its journal) while every permit
  is taken, so a permit given back goes to a row that is ready to post at once;
- **finisher threads**: download, verify and deliver, outside the slots.

The :class:`SlotPool` holds leases on the Prefect global concurrency limit (each lease is one
``prefect.concurrency.sync.concurrency(name, occupy=k, strict=True)`` context, renewed by Prefect
while held) and hands out permits only up to what its leases hold. Asking the server once per
generation costs a round trip through Prefect's one-at-a-time slot service each time (seconds
when the API is busy), so the pool asks for several slots at once (what its rows need, capped by
what the server has free), keeps them while its rows run, and gives each lease back as soon as no
row is left to start. Every generation in flight holds a permit, every permit is backed by a
leased slot, so the number of generations in flight never exceeds the limit, across threads,
flow runs and workers.

A process that dies (even by SIGKILL) cannot give its leases back, so they are made to come back
without it (the Prefect side is in :mod:`seedance_prefect.batch_flows`):

- the leases last 60 s (the server's minimum) and Prefect renews them every 45 s while the
  process lives, so a Prefect server's Repossessor revokes a dead process's leases within about
  75 s;
- while it holds leases, a flow run holds a :class:`HolderLock` (a file lock the kernel drops when
  the process dies): another run on the same machine that finds the lock free knows the holder is
  gone and gives its leases back at once, which the embedded server (no Repossessor) needs;
- the pool only asks the server for slots when the server says they are free (no refused request,
  hence no ERROR from Prefect's slot service, per poll), and while it waits it calls ``on_wait``
  every :data:`WAIT_REPORT_SECONDS` (the batch flow gives dead holders' slots back there and logs
  one line saying who holds the slots).

Example:
    >>> import contextlib
    >>> pool = SlotPool(2, open_lease=lambda k: contextlib.nullcontext(), server_free=lambda: 2)
    >>> pool.acquire(1); pool.acquire(1); (pool.held, pool.free)
    (2, 0)
    >>> pool.release(2); pool.close(); pool.held
    0
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

__all__ = ["HolderLock", "Permits", "SlotPool", "SlotsUnavailable", "run_rows", "slots_taken"]

R = TypeVar("R")
G = TypeVar("G")
_DONE = object()
#: Seconds between attempts to lease more slots while the server has none free.
RETRY_SECONDS = 0.5
#: Seconds between two calls of ``on_wait`` while the pool waits for the server's slots.
WAIT_REPORT_SECONDS = 15.0


class SlotsUnavailable(Exception):
    """``open_lease`` raises this (or lets Prefect's 423 error through) when slots are taken."""


def slots_taken(exc: BaseException | None) -> bool:
    """True for Prefect's "slots taken" answer (HTTP 423, or :class:`SlotsUnavailable`), as opposed
    to a real error; the exception's causes are searched too.

    Example:
        >>> slots_taken(RuntimeError("a real error"))
        False
        >>> error = RuntimeError("wrapped")
        >>> error.__cause__ = SlotsUnavailable()
        >>> slots_taken(error)
        True
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SlotsUnavailable):
            return True
        response = getattr(seen, "response", None)
        if getattr(response, "status_code", None) == 423:
            return True
        seen = seen.__cause__
    return False


class HolderLock:
    """A lock file a process holds while it may hold slots for ``holder``, so others can tell it is gone.

    The file is ``<folder>/<holder>.lock`` with an exclusive ``flock`` on it. The kernel drops the
    locks of a process that ends, SIGKILL included, so a process that can take the lock of a
    holder (:meth:`gone`) knows that nobody is left to renew or give back that holder's leases.
    A holder without a lock file is unknown (another program's, or one that finished): not gone.
    Entering is reentrant and counted (one lock file per holder, whatever the number of leases).

    Args:
        folder: Folder of the lock files, shared by every process that uses the same server.
        holder: The holder's id (the batch flow run's id).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> lock = HolderLock(folder, "run-1")
        >>> with lock:
        ...     HolderLock.gone(folder, "run-1")
        False
        >>> HolderLock.status(folder, "run-1")  # it finished: no lock file
        'unknown'
        >>> (folder / "run-2.lock").touch()  # the lock file of a holder that died
        >>> HolderLock.status(folder, "run-2"), HolderLock.holders(folder)
        ('gone', ['run-2'])
        >>> with HolderLock.reclaiming(folder):  # one reclaimer at a time
        ...     HolderLock.forget(folder, "run-2")  # its leases were given back
        >>> HolderLock.status(folder, "run-2")
        'unknown'
    """

    def __init__(self, folder: Path, holder: str) -> None:
        self.folder, self.holder = Path(folder), holder
        self.path = self.folder / f"{holder}.lock"
        self._fd: int | None = None
        self._count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> HolderLock:
        with self._lock:
            if self._count == 0:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._count += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        with self._lock:
            self._count -= 1
            if self._count or self._fd is None:
                return
            fd, self._fd = self._fd, None
            # unlinked before the lock is dropped: a prober opening it afterwards finds no file
            self.path.unlink(missing_ok=True)
            os.close(fd)

    @staticmethod
    def status(folder: Path, holder: str) -> Literal["alive", "gone", "unknown"]:
        """``alive`` (a process holds the lock), ``gone`` (the lock file is there and nobody holds
        it: the process died) or ``unknown`` (no lock file)."""
        try:
            fd = os.open(Path(folder) / f"{holder}.lock", os.O_RDWR)
        except FileNotFoundError:
            return "unknown"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return "alive"
            raise
        finally:
            os.close(fd)  # closing drops the probe's lock at once
        return "gone"

    @staticmethod
    def gone(folder: Path, holder: str) -> bool:
        """True when ``holder`` has a lock file in ``folder`` and no live process holds it."""
        return HolderLock.status(folder, holder) == "gone"

    @staticmethod
    def holders(folder: Path) -> list[str]:
        """The holders that have a lock file in ``folder`` (alive or gone)."""
        return sorted(path.stem for path in Path(folder).glob("*.lock") if not path.name.startswith("."))

    @staticmethod
    @contextlib.contextmanager
    def reclaiming(folder: Path) -> Iterator[None]:
        """Hold the folder's reclaim lock (blocking): one process at a time gives gone holders' slots
        back, so a lease is never given back twice."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd = os.open(Path(folder) / ".reclaim.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @staticmethod
    def forget(folder: Path, holder: str) -> None:
        """Remove the lock file of a holder that is :meth:`gone` (after its leases were given back)."""
        (Path(folder) / f"{holder}.lock").unlink(missing_ok=True)


class SlotPool:
    """Permits backed by leases on a global concurrency limit, leased a few at a time.

    Args:
        limit: Size of the limit (the pool never leases more).
        open_lease: Returns a context manager that holds ``k`` slots while entered; entering
            it raises when the slots are not free right now (see :class:`SlotsUnavailable`).
        server_free: Returns how many slots the server has free (a hint; races are fine). The pool
            asks for a lease only when enough are free, so a lease request is refused only when
            another process takes the slots in between.
        demand: Returns how many more permits the run may still need (caps each lease).
        on_wait: Called as ``on_wait(slots, waited_seconds)`` when the pool finds too few slots
            free on the server, then every :data:`WAIT_REPORT_SECONDS` while that lasts (from the
            thread that leases; it must not raise). The pool tries again right after it.

    Example:
        >>> import contextlib
        >>> free, waits = [0, 0, 2], []
        >>> pool = SlotPool(2, open_lease=lambda k: contextlib.nullcontext(),
        ...                 server_free=lambda: free.pop(0), on_wait=lambda n, s: waits.append(n))
        >>> pool.acquire(2); pool.held, waits
        (2, [2])
    """

    def __init__(
        self,
        limit: int,
        open_lease: Callable[[int], AbstractContextManager[Any]],
        server_free: Callable[[], int],
        demand: Callable[[], int] | None = None,
        on_wait: Callable[[int, float], None] | None = None,
    ) -> None:
        self.limit = limit
        self.open_lease = open_lease
        self.server_free = server_free
        self.demand = demand or (lambda: limit)
        self.on_wait = on_wait
        self.waiting_since: float | None = None
        self._next_report = 0.0
        self.held = 0
        self.free = 0
        self.leases: list[tuple[int, AbstractContextManager[Any]]] = []
        self.lease_calls = 0
        self.draining = False
        self._cond = threading.Condition()
        self._growing = False

    def _grow(self, need: int) -> bool:
        """Lease more slots (called without the lock, by one thread at a time)."""
        want = min(self.limit - self.held, max(need, self.demand()))
        if want < need:
            return False
        free = self.server_free()
        if free < need:
            self._waiting(need)
            return False
        self.waiting_since = None
        want = min(want, free)
        self.lease_calls += 1
        cm = self.open_lease(want)
        try:
            cm.__enter__()
        except Exception as exc:
            if slots_taken(exc):
                return False
            raise
        with self._cond:
            self.leases.append((want, cm))
            self.held += want
            self.free += want
            self._cond.notify_all()
        return True

    def _waiting(self, need: int) -> None:
        """The server has fewer than ``need`` slots free: call ``on_wait`` now and then."""
        now = time.monotonic()
        if self.waiting_since is None:
            self.waiting_since, self._next_report = now, now
        if self.on_wait is not None and now >= self._next_report:
            self.on_wait(need, now - self.waiting_since)
            self._next_report = time.monotonic() + WAIT_REPORT_SECONDS

    def acquire(self, n: int) -> None:
        """Take ``n`` permits, leasing more slots when needed (blocks until they are there)."""
        if n > self.limit:
            raise ValueError(f"{n} slots asked of a limit of {self.limit}")
        while True:
            with self._cond:
                if self.free >= n:
                    self.free -= n
                    return
                if self._growing or self.held + n - self.free > self.limit:
                    self._cond.wait(RETRY_SECONDS)
                    continue
                self._growing = True
            try:
                grown = self._grow(n - self.free)
            finally:
                with self._cond:
                    self._growing = False
                    self._cond.notify_all()
            if not grown:
                time.sleep(RETRY_SECONDS)

    def warm(self) -> None:
        """Lease what the rows need now, while their first task runs start (errors are left to
        :meth:`acquire`, which tries again and reports them)."""
        with self._cond:
            if self._growing or self.held:
                return
            self._growing = True
        try:
            self._grow(1)
        except Exception:
            pass
        finally:
            with self._cond:
                self._growing = False
                self._cond.notify_all()

    def release(self, n: int) -> None:
        """Give ``n`` permits back; once draining, idle leases go back to the server."""
        with self._cond:
            self.free += n
            self._cond.notify_all()
        if self.draining:
            self._shrink()

    def drain(self) -> None:
        """No row is left to start: give back every lease that is (or becomes) idle."""
        self.draining = True
        self._shrink()

    def _shrink(self) -> None:
        while True:
            with self._cond:
                index = next((i for i, (k, _) in enumerate(self.leases) if k <= self.free), None)
                if index is None:
                    return
                k, cm = self.leases.pop(index)
                self.free -= k
                self.held -= k
            cm.__exit__(None, None, None)

    def close(self) -> None:
        """Give every lease back."""
        with self._cond:
            leases, self.leases = self.leases, []
            self.held = self.free = 0
        for _, cm in leases:
            cm.__exit__(None, None, None)


class Permits:
    """The permits of one row: taken once with :meth:`acquire`, given back once with :meth:`release`.

    Both are idempotent, so a retried generation phase keeps the permits it took on its first try
    (its generations may still be in flight while Prefect waits to retry), and the runner gives
    them back after the phase in any case.

    Example:
        >>> import contextlib
        >>> pool = SlotPool(2, open_lease=lambda k: contextlib.nullcontext(), server_free=lambda: 2)
        >>> permits = Permits(pool, 2)
        >>> permits.acquire(); permits.acquire(); pool.free
        0
        >>> permits.release(); permits.release(); pool.free
        2
    """

    def __init__(self, pool: SlotPool, count: int, on_acquired: Callable[[], None] | None = None) -> None:
        self.pool, self.count, self.on_acquired = pool, count, on_acquired
        self.held = False
        self.taken = False
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Take the permits (blocks until the pool has them); nothing when already held."""
        with self._lock:
            if self.held:
                return
            self.pool.acquire(self.count)
            self.held = self.taken = True
        if self.on_acquired is not None:
            self.on_acquired()

    def release(self) -> None:
        """Give the permits back; nothing when not held."""
        with self._lock:
            if not self.held:
                return
            self.held = False
        self.pool.release(self.count)


class _Pools(Generic[R, G]):
    def __init__(
        self,
        generate: Callable[[R, Permits], G],
        finish: Callable[[R, G], dict[str, Any]],
        fail: Callable[[R, BaseException], dict[str, Any]],
        slots_of: Callable[[R], int],
        pool: SlotPool,
        on_result: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.generate, self.finish, self.fail, self.slots_of, self.pool = (
            generate,
            finish,
            fail,
            slots_of,
            pool,
        )
        self.on_result = on_result
        self.rows: queue.SimpleQueue[R] = queue.SimpleQueue()
        self.finishing: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.results: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.waiting_slots = 0
        self._lock = threading.Lock()

    def done(self, summary: dict[str, Any]) -> None:
        self.results.append(summary)
        if self.on_result is not None:
            self.on_result(summary)

    def demand(self) -> int:
        with self._lock:
            return self.waiting_slots

    def generation_worker(self) -> None:
        while not self.stop.is_set():
            try:
                row = self.rows.get_nowait()
            except queue.Empty:
                self.pool.drain()
                return
            n = self.slots_of(row)
            permits = Permits(self.pool, n, on_acquired=lambda n=n: self._acquired(n))
            try:
                generated = self.generate(row, permits)
                if not permits.taken:  # a generation phase must run under its permits
                    raise RuntimeError("the generation phase did not take its permits")
                self.finishing.put((row, generated))
            except Exception as exc:
                self.done(self.fail(row, exc))
            finally:
                permits.release()
                if not permits.taken:
                    self._acquired(n)  # no longer waiting for them either

    def _acquired(self, n: int) -> None:
        with self._lock:
            self.waiting_slots -= n

    def finisher(self) -> None:
        while (item := self.finishing.get()) is not _DONE:
            self.finish_one(item)

    def finish_one(self, item: Any) -> None:
        row, generated = item
        try:
            self.done(self.finish(row, generated))
        except Exception as exc:
            self.done(self.fail(row, exc))


def _start(target: Callable[[], None], name: str) -> threading.Thread:
    ctx = contextvars.copy_context()  # the caller's (flow run) context, one copy per thread
    thread = threading.Thread(target=ctx.run, args=(target,), daemon=True, name=name)
    thread.start()
    return thread


def _join(threads: Sequence[threading.Thread]) -> None:
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)  # short joins: Ctrl-C reaches the main thread at once


def run_rows(
    rows: Sequence[R],
    *,
    generate: Callable[[R, Permits], G],
    finish: Callable[[R, G], dict[str, Any]],
    fail: Callable[[R, BaseException], dict[str, Any]],
    slots_of: Callable[[R], int],
    open_lease: Callable[[int], AbstractContextManager[Any]],
    server_free: Callable[[], int],
    slots: int,
    finishers: int | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_wait: Callable[[int, float], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every row: ``generate`` under its permits, then ``finish`` on a finisher thread.

    Args:
        rows: The rows.
        generate: The generation phase of a row, given the row's :class:`Permits`: it must call
            ``permits.acquire()`` before it enqueues and may call ``permits.release()`` as soon
            as its generations are terminal (the runner releases them afterwards in any case).
        finish: The rest of a row, given the generation phase's result; returns its summary.
        fail: Summary of a row whose ``generate`` or ``finish`` raised.
        slots_of: Slots a row needs (its ``num_generations``).
        open_lease: Context manager factory holding ``k`` slots of the global limit.
        server_free: How many slots of the limit are free on the server.
        slots: Size of the limit.
        finishers: Finisher threads (default: a quarter of ``slots``, at least 2).
        on_result: Called with each row's summary as soon as the row is done (any thread).
        on_wait: Called while the server has too few slots free (see :class:`SlotPool`).

    Returns:
        One summary per row, in completion order.

    Example:
        >>> import contextlib
        >>> out = run_rows([1, 2, 3], generate=lambda r, permits: permits.acquire() or r * 10,
        ...                finish=lambda r, g: {"row": r, "g": g},
        ...                fail=lambda r, e: {"row": r, "error": str(e)}, slots_of=lambda r: 1,
        ...                open_lease=lambda k: contextlib.nullcontext(), server_free=lambda: 2, slots=2)
        >>> sorted((r["row"], r["g"]) for r in out)
        [(1, 10), (2, 20), (3, 30)]
    """
    pool = SlotPool(slots, open_lease, server_free, on_wait=on_wait)
    pools: _Pools[R, G] = _Pools(generate, finish, fail, slots_of, pool, on_result)
    pool.demand = pools.demand
    for row in rows:
        pools.rows.put(row)
        pools.waiting_slots += slots_of(row)
    count = finishers or max(2, slots // 4)
    warming = _start(pool.warm, "seedance-lease")  # the first lease, while the first rows start
    threads = slots + max(1, slots // 4)  # the extra ones wait at the permits, ready to post
    generators = [
        _start(pools.generation_worker, f"seedance-gen-{i}") for i in range(min(len(rows), threads))
    ]
    done = [_start(pools.finisher, f"seedance-finish-{i}") for i in range(min(len(rows), count))]
    try:
        _join([warming, *generators])
        for _ in done:
            pools.finishing.put(_DONE)
        _join(done)
    except BaseException:
        pools.stop.set()  # no new rows; generations in flight are cancelled by the flow's hooks
        raise
    finally:
        pool.close()
    return pools.results
