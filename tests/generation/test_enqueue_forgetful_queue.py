"""``enqueue_once`` on a queue that forgets finished rows, and what it tells its ``on_enqueued`` callback.

The emulator's older queue (``vanish_terminal=True``, docs/emulator.md) answers 404 for a generation
once it is terminal; only the history lookup (``GET /ai/generations/{id}``) still knows it. A re-run
after a generation succeeded but was not delivered must reattach to it, not pay for a new one; a
generation that failed is enqueued again. Over real HTTP, without Prefect.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from seedance_prefect.client import SeedanceClient
from seedance_prefect.emulator import EmulatorConfig, RunningEmulator, run_emulator
from seedance_prefect.errors import NotFoundError
from seedance_prefect.generation import Journal, JournalEntry, enqueue_once, journal_body, reattach
from seedance_prefect.models import SeedanceRequest
from tests.kit import API_KEY, set_faults, stats, wait_until


def _request(prompt: str, **params: object) -> SeedanceRequest:
    return SeedanceRequest(prompt=prompt, duration="4", resolution="480p", **params)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def forgetful_session() -> Iterator[RunningEmulator]:
    with run_emulator(EmulatorConfig(latency=0.2, keepalive=1.0, vanish_terminal=True)) as emu:
        yield emu


@pytest.fixture(scope="module")
def forgetful_no_history_session() -> Iterator[RunningEmulator]:
    with run_emulator(EmulatorConfig(latency=0.2, keepalive=1.0, vanish_terminal=True, history=False)) as emu:
        yield emu


def _client(emu: RunningEmulator) -> SeedanceClient:
    emu.reset()
    set_faults(emu, "")
    return SeedanceClient(api_key=API_KEY, base_url=emu.base_url)


@pytest.fixture
def forgetful(forgetful_session: RunningEmulator) -> Iterator[tuple[RunningEmulator, SeedanceClient]]:
    with _client(forgetful_session) as client:
        yield forgetful_session, client


@pytest.fixture
def forgetful_no_history(
    forgetful_no_history_session: RunningEmulator,
) -> Iterator[tuple[RunningEmulator, SeedanceClient]]:
    with _client(forgetful_no_history_session) as client:
        yield forgetful_no_history_session, client


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal")


def _ended(emu: RunningEmulator, gid: str) -> str:
    return wait_until(
        lambda: (status := emu.stats()["generations"][gid]["status"]) in ("succeeded", "failed") and status,
        30,
        f"generation {gid} to end",
    )


def test_a_rerun_after_a_vanished_success_reattaches_instead_of_paying_again(forgetful, journal):
    emu, client = forgetful
    request = _request("A paper boat passes a lighthouse")
    told: list[tuple[list[str], bool]] = []

    [gid] = enqueue_once(client, request, journal=journal, on_enqueued=lambda i, r: told.append((i, r)))
    assert _ended(emu, gid) == "succeeded"
    with pytest.raises(NotFoundError):
        client.get(gid)  # the queue forgot it; the history still has it
    assert client.history(gid).status == "succeeded"

    again = enqueue_once(client, request, journal=journal, on_enqueued=lambda i, r: told.append((i, r)))

    assert again == [gid]
    assert stats(emu)["enqueue_calls"] == 1 and stats(emu)["generations_created"] == 1
    assert told == [([gid], False)]  # the POST is told, the reattach is not
    entry = journal.load(request.fingerprint())
    assert entry is not None and [a.state for a in entry.attempts] == ["enqueued"]


def test_reattach_asks_the_history_before_giving_up_on_a_vanished_row(forgetful):
    emu, client = forgetful
    request = _request("Rain on a tin roof")
    entry = JournalEntry(fingerprint=request.fingerprint(), body=journal_body(request))
    entry.begin_attempt().record([row.generation_id for row in client.enqueue(request)])
    [gid] = entry.generation_ids
    assert _ended(emu, gid) == "succeeded"

    assert reattach(client, entry, 1) == [gid]
    assert stats(emu)["enqueue_calls"] == 1


def test_a_vanished_failure_is_enqueued_again(forgetful, journal):
    emu, client = forgetful
    request = _request("A glass falls off a table")
    set_faults(emu, "fail=1")
    [failed] = enqueue_once(client, request, journal=journal)
    assert _ended(emu, failed) == "failed"
    set_faults(emu, "")
    assert client.history(failed).status == "failed"

    told: list[tuple[list[str], bool]] = []
    ids = enqueue_once(client, request, journal=journal, on_enqueued=lambda i, r: told.append((i, r)))

    assert ids != [failed] and stats(emu)["enqueue_calls"] == 2
    assert told == [(ids, False)]


def test_without_a_history_a_vanished_row_is_unknown_and_enqueued_again(forgetful_no_history, journal):
    # a service that forgets finished rows and has no history route: nothing tells a success from a
    # row it never had, so the request is posted again (what the journal cannot know, it cannot keep)
    emu, client = forgetful_no_history
    request = _request("An owl blinks")
    [gid] = enqueue_once(client, request, journal=journal)
    assert _ended(emu, gid) == "succeeded"

    again = enqueue_once(client, request, journal=journal)

    assert again != [gid] and stats(emu)["enqueue_calls"] == 2


def test_a_recovered_lost_answer_is_told_as_recovered(forgetful, journal):
    emu, client = forgetful
    request = _request("Two kites over a beach", num_generations=2)
    set_faults(emu, "drop_enqueue=1")  # the POST creates the generations, then the connection is cut
    told: list[tuple[list[str], bool]] = []

    ids = enqueue_once(client, request, journal=journal, on_enqueued=lambda i, r: told.append((i, r)))

    assert len(ids) == 2 and stats(emu)["enqueue_calls"] == 1
    assert told == [(ids, True)]


def test_a_failing_callback_is_logged_not_raised(forgetful, journal, caplog):
    emu, client = forgetful
    request = _request("A heron takes off")

    def broken(ids: list[str], recovered: bool) -> None:
        raise RuntimeError("listener down")

    with caplog.at_level("WARNING", logger="seedance_prefect.generation.enqueue"):
        ids = enqueue_once(client, request, journal=journal, on_enqueued=broken)

    assert len(ids) == 1 and stats(emu)["enqueue_calls"] == 1
    assert "listener down" in caplog.text
    assert journal.load(request.fingerprint()).generation_ids == ids  # type: ignore[union-attr]
