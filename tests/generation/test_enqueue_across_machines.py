"""``enqueue_once`` from several "machines" sharing one state store (a folder, or S3 on moto), over
real HTTP against the emulator: the claim, its lease, waiting for a live owner, taking over from a
dead one. Each test counts the POSTs the emulator received.

A "machine" here is a :class:`Journal` with its own store client (its own boto3 client for S3) and
its own thread; nothing is shared but the store and the service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from seedance_prefect.client import SeedanceClient
from seedance_prefect.generation import Journal, JournalEntry, enqueue, enqueue_once, journal_body
from seedance_prefect.generation.journal import Claim
from seedance_prefect.models import SeedanceRequest
from seedance_prefect.state import LocalStateStore, S3StateStore, StateConflict, StateStore
from tests.kit import API_KEY, set_faults, stats
from tests.state.statekit import AWS_ENV, fresh_bucket

BUCKET = "seedance-enqueue-tests"


def _request(prompt: str, **params: object) -> SeedanceRequest:
    return SeedanceRequest(prompt=prompt, duration="4", resolution="480p", **params)  # type: ignore[arg-type]


@pytest.fixture(params=["folder", "s3"])
def machines(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], Journal]:
    """Makes the journal of one more machine: a new client of one shared store."""
    if request.param == "folder":
        return lambda: Journal(store=LocalStateStore(tmp_path / "shared"))
    endpoint = request.getfixturevalue("serial_moto")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    fresh_bucket(endpoint, BUCKET)
    return lambda: Journal(store=S3StateStore(BUCKET, "seedance"))


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> float:
    """A lease of 1 s renewed every 0.2 s (instead of 10 s / 3 s), so that expiry is quick to reach."""
    monkeypatch.setattr(enqueue, "LEASE_SECONDS", 1.0)
    monkeypatch.setattr(enqueue, "RENEW_SECONDS", 0.2)
    return 1.0


def _in_threads(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once, one thread each; return what each returned or raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait(30)
        try:
            results[i] = calls[i]()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def _machine_call(
    emulator: Any, journal: Journal, request: SeedanceRequest, run: str
) -> Callable[[], list[str]]:
    def call() -> list[str]:
        with SeedanceClient(api_key=API_KEY, base_url=emulator.base_url) as client:
            return enqueue_once(client, request, journal=journal, flow_run_id=run)

    return call


def test_one_request_on_six_machines_at_once_is_posted_once(emulator, machines):
    request = _request("Six lighthouses, one beam")
    calls = [_machine_call(emulator, machines(), request, f"run-{i}") for i in range(6)]

    results = _in_threads(calls)

    assert all(isinstance(r, list) for r in results), results
    assert len({tuple(r) for r in results}) == 1 and len(results[0]) == 1
    assert stats(emulator)["enqueue_calls"] == 1 and stats(emulator)["generations_created"] == 1
    entry = machines().load(request.fingerprint())
    assert entry is not None and [a.state for a in entry.attempts] == ["enqueued"]
    assert sorted(entry.flow_runs) == [f"run-{i}" for i in range(6)]  # every machine's write kept
    assert machines().fingerprints_of_flow_run("run-3") == [request.fingerprint()]


def test_a_live_owner_whose_post_outlasts_its_lease_is_waited_for(emulator, machines, short_lease):
    request = _request("A slow answer from the queue")
    set_faults(emulator, "slow_enqueue=1")  # the answer is held 3 s: three leases, renewed meanwhile
    owner = _machine_call(emulator, machines(), request, "run-a")
    other = machines()
    started: list[float] = []

    def second() -> list[str]:
        entry = _wait_for(lambda: other.load(request.fingerprint()))  # the owner has claimed
        started.append(time.monotonic())
        assert entry.lease_holder() is not None
        return _machine_call(emulator, other, request, "run-b")()

    first, late = _in_threads([owner, second])

    assert isinstance(first, list) and late == first, (first, late)
    snapshot = stats(emulator)
    assert snapshot["enqueue_calls"] == 1 and snapshot["faults"]["slow_enqueue"] == 1
    entry = other.load(request.fingerprint())
    assert entry is not None and [a.state for a in entry.attempts] == ["enqueued"]


def _dead_claim(journal: Journal, request: SeedanceRequest, lease_left: float) -> Claim:
    """The entry a machine leaves when it dies right after claiming (and maybe posting)."""
    entry = JournalEntry(fingerprint=request.fingerprint(), body=journal_body(request))
    attempt = entry.begin_attempt()
    entry.claim = Claim("dead-host:4242:0badf00d", 0, lease_until=attempt.started_at + lease_left)
    journal.write(entry, None)
    return entry.claim


def test_a_dead_owner_whose_post_arrived_is_recovered_after_its_lease(emulator, client, machines):
    request = _request("The owner died after its POST")
    claim = _dead_claim(machines(), request, lease_left=1.0)
    [row] = client.enqueue(request)  # its POST reached the service; then it was killed

    ids = enqueue_once(client, request, journal=machines())

    assert time.time() > claim.lease_until  # it waited for the lease to expire, and did not post
    assert ids == [row.generation_id] and stats(emulator)["enqueue_calls"] == 1
    last = machines().load(request.fingerprint()).last_attempt  # type: ignore[union-attr]
    assert last is not None and last.state == "recovered" and last.generation_ids == ids


def test_a_dead_owner_whose_post_never_left_is_refused_then_posted(emulator, client, machines):
    request = _request("The owner died before its POST")
    _dead_claim(machines(), request, lease_left=0.5)

    ids = enqueue_once(client, request, journal=machines())

    assert len(ids) == 1 and stats(emulator)["enqueue_calls"] == 1
    entry = machines().load(request.fingerprint())
    assert entry is not None and [a.state for a in entry.attempts] == ["refused", "enqueued"]
    assert (
        entry.claim is not None
        and entry.claim.attempt == 1
        and entry.claim.owner != "dead-host:4242:0badf00d"
    )


def test_an_owner_whose_lease_lapses_during_its_post_still_records_its_ids(emulator, machines, monkeypatch):
    """No renewal before the held answer (renewals every 10 s, a 1 s lease): the claim lapses while the
    POST is in flight, as for a frozen owner; nobody took over, so its late answer is simply recorded."""
    monkeypatch.setattr(enqueue, "LEASE_SECONDS", 1.0)
    monkeypatch.setattr(enqueue, "RENEW_SECONDS", 10.0)
    request = _request("An owner that does not renew in time")
    set_faults(emulator, "slow_enqueue=1")

    first = _machine_call(emulator, machines(), request, "run-a")()

    set_faults(emulator, "")
    entry = machines().load(request.fingerprint())
    assert entry is not None and entry.last_attempt is not None
    assert (entry.last_attempt.state, entry.last_attempt.generation_ids) == ("enqueued", first)
    again = _machine_call(emulator, machines(), request, "run-b")()
    assert again == first and stats(emulator)["enqueue_calls"] == 1


class _AnswerLostStore(StateStore):
    """A real store whose first conditional write lands but is answered "conflict" (an S3 retry)."""

    def __init__(self, inner: StateStore) -> None:
        self.inner, self.url, self.lied = inner, inner.url, False

    def read(self, key: str):  # type: ignore[no-untyped-def]
        return self.inner.read(key)

    def create(self, key: str, data: bytes) -> str:
        version = self.inner.create(key, data)
        if not self.lied and key.endswith(".json"):
            self.lied = True
            raise StateConflict(f"{key} exists already (412 to a retried PUT)")
        return version

    def replace(self, key: str, data: bytes, version: str) -> str:
        return self.inner.replace(key, data, version)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str = "") -> list[str]:
        return self.inner.list(prefix)


def test_a_claim_that_landed_but_was_answered_conflict_is_recognised_as_ours(emulator, client, tmp_path):
    request = _request("A claim answered twice")
    store = _AnswerLostStore(LocalStateStore(tmp_path))

    ids = enqueue_once(client, request, journal=Journal(store=store))

    assert store.lied and len(ids) == 1 and stats(emulator)["enqueue_calls"] == 1
    entry = Journal(store=store).load(request.fingerprint())
    assert entry is not None and [a.state for a in entry.attempts] == ["enqueued"]


def _wait_for(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")
