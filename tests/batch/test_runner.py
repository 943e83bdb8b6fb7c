"""The batch runner's permits, without a Prefect server (the flow tests cover the real limit)."""

from __future__ import annotations

import contextlib
import threading

from seedance_prefect.batch.runner import Permits, run_rows


def _run(rows: list[int], generate, slots: int = 3) -> list[dict]:
    return run_rows(
        rows,
        generate=generate,
        finish=lambda row, generated: {"row": row, "status": "delivered"},
        fail=lambda row, exc: {"row": row, "status": "failed", "error": str(exc)},
        slots_of=lambda row: 1,
        open_lease=lambda k: contextlib.nullcontext(),
        server_free=lambda: slots,
        slots=slots,
    )


def test_a_generation_phase_that_skips_its_permits_fails_its_row():
    results = _run([1, 2], generate=lambda row, permits: row)
    assert {r["status"] for r in results} == {"failed"}
    assert all("did not take its permits" in r["error"] for r in results)


def test_never_more_permits_in_use_than_slots_with_extra_threads():
    in_use, most, lock = 0, 0, threading.Lock()
    release_all = threading.Event()

    def generate(row: int, permits: Permits) -> int:
        nonlocal in_use, most
        permits.acquire()
        with lock:
            in_use += 1
            most = max(most, in_use)
            if most == 3:
                release_all.set()
        release_all.wait(5)  # hold until every slot was taken once
        with lock:
            in_use -= 1
        permits.release()
        return row

    results = _run(list(range(12)), generate, slots=3)
    assert len(results) == 12 and {r["status"] for r in results} == {"delivered"}
    assert most == 3  # every slot used, never more (4 threads run with 3 slots)


def test_permits_are_idempotent_and_given_back_after_a_failed_phase():
    in_use: list[int] = []

    def generate(row: int, permits: Permits) -> int:
        permits.acquire()
        permits.acquire()  # a retried phase takes them again: still one permit
        in_use.append(permits.pool.held - permits.pool.free)
        if row == 1:
            raise RuntimeError("transient trouble, retries exhausted")
        return row

    # one slot: row 2 can only run if the failed row 1 gave its permit back
    results = _run([1, 2], generate, slots=1)
    assert sorted((r["row"], r["status"]) for r in results) == [(1, "failed"), (2, "delivered")]
    assert in_use == [1, 1]
