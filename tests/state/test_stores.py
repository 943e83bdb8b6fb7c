"""Both state stores against real backends (a temp folder; S3 on a serial moto server): the interface,
and races of many threads and processes on one key (exactly one winner, no lost update)."""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import pytest

from seedance_prefect.state import LocalStateStore, S3StateStore, StateConflict, StateStore

KEY = "journal/0123abcd.json"


def test_read_create_replace_delete(store: StateStore) -> None:
    assert store.read(KEY) is None
    v1 = store.create(KEY, b"one")
    found = store.read(KEY)
    assert found is not None and (found.data, found.version) == (b"one", v1)

    with pytest.raises(StateConflict):
        store.create(KEY, b"two")
    assert store.read(KEY).data == b"one"  # type: ignore[union-attr]

    v2 = store.replace(KEY, b"two", v1)
    assert v2 != v1 and store.read(KEY).version == v2  # type: ignore[union-attr]
    with pytest.raises(StateConflict):
        store.replace(KEY, b"three", v1)  # stale version: nothing written
    assert store.read(KEY).data == b"two"  # type: ignore[union-attr]

    assert store.write(KEY, b"three", v2) != v2
    store.delete(KEY)
    store.delete(KEY)  # a missing key is not an error
    assert store.read(KEY) is None
    with pytest.raises(StateConflict):
        store.replace(KEY, b"four", v2)  # deleted since it was read
    assert store.write(KEY, b"again", None) and store.read(KEY).data == b"again"  # type: ignore[union-attr]


def test_list_by_prefix_oldest_first(store: StateStore) -> None:
    for key in ("journal/runs/r1/fpB", "journal/runs/r1/fpA", "journal/runs/r10/fpC", "journal/x.json"):
        store.create(key, b"")
    assert sorted(store.list("journal/runs/r1/")) == ["journal/runs/r1/fpA", "journal/runs/r1/fpB"]
    assert set(store.list("journal/runs/r1")) == {
        "journal/runs/r1/fpA",
        "journal/runs/r1/fpB",
        "journal/runs/r10/fpC",
    }
    assert len(store.list()) == 4 and store.list("nothing/") == []


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a\\b"])
def test_keys_that_could_leave_the_store_are_refused(store: StateStore, key: str) -> None:
    with pytest.raises(ValueError, match="not a state key"):
        store.read(key)


def _race(count: int, act: Callable[[int], Any]) -> list[Any]:
    """Run ``act(i)`` in ``count`` threads released at once; return what each returned or raised."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait(30)
        try:
            results[i] = act(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _twin(store: StateStore) -> StateStore:
    """Another client of the same store (its own boto3 client, as on another machine)."""
    if isinstance(store, S3StateStore):
        return S3StateStore(store.bucket, store.prefix)
    assert isinstance(store, LocalStateStore)
    return LocalStateStore(store.root)


def test_racing_creates_have_exactly_one_winner(store: StateStore) -> None:
    twins = [_twin(store) for _ in range(12)]
    results = _race(12, lambda i: twins[i].create(KEY, f"writer {i}".encode()))

    winners = [i for i, r in enumerate(results) if isinstance(r, str)]
    assert len(winners) == 1, results
    assert all(isinstance(r, StateConflict) for i, r in enumerate(results) if i not in winners), results
    assert store.read(KEY).data == f"writer {winners[0]}".encode()  # type: ignore[union-attr]


def test_racing_replaces_from_one_version_have_exactly_one_winner(store: StateStore) -> None:
    version = store.create(KEY, b"start")
    twins = [_twin(store) for _ in range(12)]
    results = _race(12, lambda i: twins[i].replace(KEY, f"writer {i}".encode(), version))

    winners = [i for i, r in enumerate(results) if isinstance(r, str)]
    assert len(winners) == 1, results
    assert all(isinstance(r, StateConflict) for i, r in enumerate(results) if i not in winners), results
    found = store.read(KEY)
    assert found is not None and found.data == f"writer {winners[0]}".encode()
    assert found.version == results[winners[0]]


def _increment(store: StateStore, times: int) -> int:
    conflicts = 0
    for _ in range(times):
        while True:
            current = store.read(KEY)
            assert current is not None
            value = json.loads(current.data)["n"]
            try:
                store.replace(KEY, json.dumps({"n": value + 1}).encode(), current.version)
                break
            except StateConflict:
                conflicts += 1
    return conflicts


def test_read_modify_replace_loses_no_update(store: StateStore) -> None:
    store.create(KEY, b'{"n": 0}')
    twins = [_twin(store) for _ in range(6)]
    conflicts = _race(6, lambda i: _increment(twins[i], 5))

    assert all(isinstance(c, int) for c in conflicts), conflicts
    assert json.loads(store.read(KEY).data) == {"n": 30}  # type: ignore[union-attr]


def _create_in_process(kind: str, where: str, barrier: Any, results: Any, i: int) -> None:
    store: StateStore = LocalStateStore(where) if kind == "local" else S3StateStore.from_url(where)
    barrier.wait(30)
    try:
        store.create(KEY, f"process {i}".encode())
        results.put((i, "won"))
    except StateConflict:
        results.put((i, "conflict"))
    except Exception as exc:  # pragma: no cover - reported by the assertion below
        results.put((i, repr(exc)))


def test_racing_processes_have_exactly_one_winner(store: StateStore) -> None:
    if isinstance(store, S3StateStore):
        kind, where = "s3", store.url
    else:
        assert isinstance(store, LocalStateStore)
        kind, where = "local", str(store.root)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_create_in_process, args=(kind, where, barrier, results, i)) for i in range(4)
    ]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)

    assert sorted(outcomes.values()) == ["conflict", "conflict", "conflict", "won"], outcomes
    [winner] = [i for i, o in outcomes.items() if o == "won"]
    assert store.read(KEY).data == f"process {winner}".encode()  # type: ignore[union-attr]
