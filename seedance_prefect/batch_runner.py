"""Run the rows of a batch on threads, every generation in flight covered by a global-limit slot.

Two pools of threads share the work:

- **generation threads** (one per slot of the limit): take a row, take ``num_generations``
  permits from the run's :class:`SlotPool`, run the row's generation phase (enqueue, wait until
  terminal) and give the permits back;
- **finisher threads**: download, verify and deliver, outside the slots, so a permit goes to the
  next generation as soon as the previous one is terminal.

The :class:`SlotPool` holds leases on the Prefect global concurrency limit (each lease is one
``prefect.concurrency.sync.concurrency(name, occupy=k, strict=True)`` context, renewed by Prefect
while held) and hands out permits only up to what its leases hold. Asking the server once per
generation costs a round trip through Prefect's one-at-a-time slot service each time (seconds
when the API is busy), so the pool asks for several slots at once (what its rows need, capped by
what the server has free), keeps them while its rows run, and gives each lease back as soon as no
row is left to start. Every generation in flight holds a permit, every permit is backed by a
leased slot, so the number of generations in flight never exceeds the limit, across threads,
flow runs and workers. A crashed process's slots come back when its leases expire (300 s).

Example:
    >>> import contextlib
    >>> pool = SlotPool(2, open_lease=lambda k: contextlib.nullcontext(), server_free=lambda: 2)
    >>> pool.acquire(1); pool.acquire(1); (pool.held, pool.free)
    (2, 0)
    >>> pool.release(2); pool.close(); pool.held
    0
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

__all__ = ["SlotPool", "SlotsUnavailable", "run_rows"]

R = TypeVar("R")
G = TypeVar("G")
_DONE = object()
#: Seconds between attempts to lease more slots while the server has none free.
RETRY_SECONDS = 0.5


class SlotsUnavailable(Exception):
    """``open_lease`` raises this (or lets Prefect's 423 error through) when slots are taken."""


def _is_locked(exc: BaseException) -> bool:
    """True for Prefect's "slots taken" answer (HTTP 423), as opposed to a real error."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SlotsUnavailable):
            return True
        response = getattr(seen, "response", None)
        if getattr(response, "status_code", None) == 423:
            return True
        seen = seen.__cause__
    return False


class SlotPool:
    """Permits backed by leases on a global concurrency limit, leased a few at a time.

    Args:
        limit: Size of the limit (the pool never leases more).
        open_lease: Returns a context manager that holds ``k`` slots while entered; entering
            it raises when the slots are not free right now (see :class:`SlotsUnavailable`).
        server_free: Returns how many slots the server has free (a hint; races are fine).
        demand: Returns how many more permits the run may still need (caps each lease).
    """

    def __init__(
        self,
        limit: int,
        open_lease: Callable[[int], AbstractContextManager[Any]],
        server_free: Callable[[], int],
        demand: Callable[[], int] | None = None,
    ) -> None:
        self.limit = limit
        self.open_lease = open_lease
        self.server_free = server_free
        self.demand = demand or (lambda: limit)
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
        want = min(want, max(need, self.server_free()))
        if want < need:
            return False
        self.lease_calls += 1
        cm = self.open_lease(want)
        try:
            cm.__enter__()
        except Exception as exc:
            if _is_locked(exc):
                return False
            raise
        with self._cond:
            self.leases.append((want, cm))
            self.held += want
            self.free += want
            self._cond.notify_all()
        return True

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


class _Pools(Generic[R, G]):
    def __init__(
        self,
        generate: Callable[[R], G],
        finish: Callable[[R, G], dict[str, Any]],
        fail: Callable[[R, BaseException], dict[str, Any]],
        slots_of: Callable[[R], int],
        pool: SlotPool,
    ) -> None:
        self.generate, self.finish, self.fail, self.slots_of, self.pool = (
            generate,
            finish,
            fail,
            slots_of,
            pool,
        )
        self.rows: queue.SimpleQueue[R] = queue.SimpleQueue()
        self.finishing: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.results: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.waiting_slots = 0
        self._lock = threading.Lock()

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
            try:
                self.pool.acquire(n)
            except Exception as exc:
                self.results.append(self.fail(row, exc))
                continue
            finally:
                with self._lock:
                    self.waiting_slots -= n
            try:
                self.finishing.put((row, self.generate(row)))
            except Exception as exc:
                self.results.append(self.fail(row, exc))
            finally:
                self.pool.release(n)

    def finisher(self) -> None:
        while True:
            item = self.finishing.get()
            if item is _DONE:
                return
            row, generated = item
            try:
                self.results.append(self.finish(row, generated))
            except Exception as exc:
                self.results.append(self.fail(row, exc))


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
    generate: Callable[[R], G],
    finish: Callable[[R, G], dict[str, Any]],
    fail: Callable[[R, BaseException], dict[str, Any]],
    slots_of: Callable[[R], int],
    open_lease: Callable[[int], AbstractContextManager[Any]],
    server_free: Callable[[], int],
    slots: int,
    finishers: int | None = None,
) -> list[dict[str, Any]]:
    """Run every row: ``generate`` while holding its permits, then ``finish`` on a finisher thread.

    Args:
        rows: The rows.
        generate: The generation phase of a row (runs while its permits are held).
        finish: The rest of a row, given the generation phase's result; returns its summary.
        fail: Summary of a row whose ``generate`` or ``finish`` raised.
        slots_of: Slots a row needs (its ``num_generations``).
        open_lease: Context manager factory holding ``k`` slots of the global limit.
        server_free: How many slots of the limit are free on the server.
        slots: Size of the limit.
        finishers: Finisher threads (default: a quarter of ``slots``, at least 2).

    Returns:
        One summary per row, in completion order.

    Example:
        >>> import contextlib
        >>> out = run_rows([1, 2, 3], generate=lambda r: r * 10, finish=lambda r, g: {"row": r, "g": g},
        ...                fail=lambda r, e: {"row": r, "error": str(e)}, slots_of=lambda r: 1,
        ...                open_lease=lambda k: contextlib.nullcontext(), server_free=lambda: 2, slots=2)
        >>> sorted((r["row"], r["g"]) for r in out)
        [(1, 10), (2, 20), (3, 30)]
    """
    pool = SlotPool(slots, open_lease, server_free)
    pools: _Pools[R, G] = _Pools(generate, finish, fail, slots_of, pool)
    pool.demand = pools.demand
    for row in rows:
        pools.rows.put(row)
        pools.waiting_slots += slots_of(row)
    count = finishers or max(2, slots // 4)
    generators = [_start(pools.generation_worker, f"seedance-gen-{i}") for i in range(min(len(rows), slots))]
    done = [_start(pools.finisher, f"seedance-finish-{i}") for i in range(min(len(rows), count))]
    try:
        _join(generators)
        for _ in done:
            pools.finishing.put(_DONE)
        _join(done)
    except BaseException:
        pools.stop.set()  # no new rows; generations in flight are cancelled by the flow's hooks
        raise
    finally:
        pool.close()
    return pools.results
