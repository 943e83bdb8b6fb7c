"""``enqueue_once`` without Prefect, over real HTTP against the emulator: a request is paid once.

Each test counts the POSTs the emulator received (``enqueue_calls``) and the generations it
created, so a second POST where a reattach or a recovery was due fails the test.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seedance_prefect.client import SeedanceClient
from seedance_prefect.emulator import EmulatorConfig, run_emulator
from seedance_prefect.errors import AuthenticationError, RateLimitedError
from seedance_prefect.generation import (
    Journal,
    JournalEntry,
    enqueue_once,
    journal_body,
    reattach,
    recover_lost,
    recover_posting,
)
from seedance_prefect.models import SeedanceRequest
from tests.kit import API_KEY, set_faults, stats, wait_until


def _request(prompt: str = "A paper boat drifts on a pond", **params: object) -> SeedanceRequest:
    return SeedanceRequest(prompt=prompt, duration="4", resolution="480p", **params)  # type: ignore[arg-type]


def _states(journal: Journal, request: SeedanceRequest) -> list[str]:
    entry = journal.load(request.fingerprint())
    assert entry is not None
    return [a.state for a in entry.attempts]


def test_posts_once_then_reattaches_without_a_second_post(emulator, client, journal):
    request = _request()

    ids = enqueue_once(client, request, journal=journal, flow_run_id="run-a")

    assert len(ids) == 1 and stats(emulator)["enqueue_calls"] == 1
    entry = journal.load(request.fingerprint())
    assert entry is not None and entry.generation_ids == ids and _states(journal, request) == ["enqueued"]
    assert entry.body == journal_body(request) and entry.flow_runs == ["run-a"]
    assert journal.fingerprints_of_flow_run("run-a") == [request.fingerprint()]

    again = enqueue_once(client, request, journal=journal, flow_run_id="run-b")

    assert again == ids and stats(emulator)["enqueue_calls"] == 1
    assert stats(emulator)["generations_created"] == 1
    assert _states(journal, request) == ["enqueued"]
    assert journal.load(request.fingerprint()).flow_runs == ["run-a", "run-b"]  # type: ignore[union-attr]


def test_run_key_makes_an_equal_request_distinct(emulator, client, journal):
    request = _request()
    first = enqueue_once(client, request, journal=journal)
    retake = enqueue_once(client, request, journal=journal, run_key="retake-2")
    assert retake != first and stats(emulator)["enqueue_calls"] == 2


def test_lost_enqueue_answer_is_recovered_by_listing_not_by_posting_again(emulator, client, journal):
    request = _request("Two kites over a beach", num_generations=2)
    set_faults(emulator, "drop_enqueue=1")  # the POST creates the generations, then the connection is cut

    ids = enqueue_once(client, request, journal=journal)

    snapshot = stats(emulator)
    assert snapshot["enqueue_calls"] == 1 and snapshot["faults"]["drop_enqueue"] == 1
    assert sorted(ids) == sorted(snapshot["generations"]) and len(ids) == 2
    last = journal.load(request.fingerprint()).last_attempt  # type: ignore[union-attr]
    assert last is not None and last.state == "recovered" and last.generation_ids == ids
    assert last.detail is not None and "answer lost" in last.detail

    set_faults(emulator, "")
    assert enqueue_once(client, request, journal=journal) == ids  # reattaches to the recovered ones
    assert stats(emulator)["enqueue_calls"] == 1


def test_a_crash_after_the_post_is_recovered_by_the_next_call(emulator, client, journal):
    request = _request("A crane lifts a red container")
    entry = JournalEntry(fingerprint=request.fingerprint(), body=journal_body(request))
    entry.begin_attempt()
    journal.save(entry)  # written before the POST; the process dies before the answer is written
    [row] = client.enqueue(request)

    assert recover_posting(client, journal.load(request.fingerprint())) == [row.generation_id]  # type: ignore[arg-type]
    assert _states(journal, request) == ["posting"]  # recover_posting only looks

    ids = enqueue_once(client, request, journal=journal)

    assert ids == [row.generation_id] and stats(emulator)["enqueue_calls"] == 1
    last = journal.load(request.fingerprint()).last_attempt  # type: ignore[union-attr]
    assert last is not None and last.state == "recovered" and last.generation_ids == ids
    assert recover_posting(client, journal.load(request.fingerprint())) == []  # type: ignore[arg-type]


def test_a_posting_attempt_whose_post_never_arrived_is_refused_then_posted(emulator, client, journal):
    request = _request("A lantern in the fog")
    entry = JournalEntry(fingerprint=request.fingerprint(), body=journal_body(request))
    entry.begin_attempt()
    journal.save(entry)  # the process died before its POST left

    assert recover_posting(client, entry) == []
    ids = enqueue_once(client, request, journal=journal)

    assert len(ids) == 1 and stats(emulator)["enqueue_calls"] == 1
    assert _states(journal, request) == ["refused", "enqueued"]


def test_recover_lost_ignores_other_prompts_older_rows_and_known_ids(emulator, client):
    request = _request("A fox crosses a snowy field")
    [older] = client.enqueue(request)
    enqueued_at = client.get(older.generation_id).enqueued_at
    assert enqueued_at is not None
    since = enqueued_at + 1000.0  # an attempt well after the row (past the clock-skew margin)
    entry = JournalEntry(fingerprint=request.fingerprint(), body=journal_body(request))
    assert recover_lost(client, entry, since, 1) == []  # enqueued long before the attempt

    client.enqueue(_request("Something else entirely"))
    entry.begin_attempt().record([older.generation_id])
    assert recover_lost(client, entry, 0.0, 1) == []  # the only match is already known


def test_a_failed_generation_leads_to_a_new_post(emulator, client, journal):
    request = _request("A glass falls off a table")
    set_faults(emulator, "fail=1")
    [failed] = enqueue_once(client, request, journal=journal)
    wait_until(lambda: client.get(failed).state == "failed", 30, "the generation to fail")
    set_faults(emulator, "")

    ids = enqueue_once(client, request, journal=journal)

    assert ids != [failed] and len(ids) == 1 and stats(emulator)["enqueue_calls"] == 2
    assert _states(journal, request) == ["enqueued", "enqueued"]
    entry = journal.load(request.fingerprint())
    assert entry is not None and entry.generation_ids == [failed, *ids]


def test_reattach_keeps_a_succeeded_generation(emulator, client):
    request = _request("Rain on a tin roof")
    entry = JournalEntry(fingerprint=request.fingerprint(), body=journal_body(request))
    entry.begin_attempt().record([row.generation_id for row in client.enqueue(request)])
    [gid] = entry.generation_ids
    wait_until(lambda: client.get(gid).state == "succeeded", 30, "the generation to succeed")

    assert reattach(client, entry, 1) == [gid]
    assert stats(emulator)["enqueue_calls"] == 1


def test_reattach_to_a_generation_the_service_does_not_know_posts_again(emulator, client, journal):
    request = _request("An owl blinks")
    entry = JournalEntry(fingerprint=request.fingerprint(), body=journal_body(request))
    entry.begin_attempt().record(["no-such-generation"])
    journal.save(entry)

    assert reattach(client, entry, 1) is None  # a 404 is not usable
    ids = enqueue_once(client, request, journal=journal)
    assert ids != ["no-such-generation"] and stats(emulator)["enqueue_calls"] == 1


def test_the_attempt_is_claimed_after_the_slot_right_before_the_post(emulator, client, journal):
    request = _request("Harbour at dusk")
    seen: list[tuple[list[str] | None, int]] = []
    acquired: list[float] = []

    class Slot:
        def acquire(self) -> None:
            entry = journal.load(request.fingerprint())
            seen.append(
                ([a.state for a in entry.attempts] if entry else None, stats(emulator)["enqueue_calls"])
            )
            acquired.append(time.time())

    ids = enqueue_once(client, request, journal=journal, slot=Slot())
    again = enqueue_once(client, request, journal=journal, slot=Slot())

    # nothing is claimed while the slot is waited for (the claim's lease must be fresh at the POST)
    assert again == ids and seen == [(None, 0), (["enqueued"], 1)]
    entry = journal.load(request.fingerprint())
    assert entry is not None and entry.attempts[0].started_at >= acquired[0]
    assert entry.claim is not None and entry.claim.lease_until == 0.0  # released once the ids are recorded


@pytest.fixture(scope="module")
def locked_emulator() -> Iterator[object]:
    """An emulator that accepts one API key only (so a wrong key is refused with 401)."""
    with run_emulator(EmulatorConfig(latency=0.2, api_key=API_KEY)) as emu:
        yield emu


def test_a_refusal_marks_the_attempt_refused_and_a_later_call_posts(locked_emulator, journal):
    emu = locked_emulator
    emu.reset()
    request = _request("A door opens slowly")
    wrong = SeedanceClient(api_key="sk-not-the-right-key", base_url=emu.base_url)
    with wrong, pytest.raises(AuthenticationError):
        enqueue_once(wrong, request, journal=journal)

    assert _states(journal, request) == ["refused"]
    detail = journal.load(request.fingerprint()).attempts[0].detail  # type: ignore[union-attr]
    assert detail is not None and "401" in detail
    snapshot = stats(emu)
    assert snapshot["requests_by_route"].get("POST /api/ai/queue") == 1  # it was sent, and refused
    assert snapshot["generations_created"] == 0

    with SeedanceClient(api_key=API_KEY, base_url=emu.base_url) as right:
        ids = enqueue_once(right, request, journal=journal)
    assert len(ids) == 1 and _states(journal, request) == ["refused", "enqueued"]


def test_rate_limited_on_every_try_refuses_the_attempt(emulator, client, journal, caplog):
    request = _request("A metronome ticks")
    set_faults(emulator, "429=1")
    with caplog.at_level(logging.INFO), pytest.raises(RateLimitedError, match="after 2 tries"):
        enqueue_once(client, request, journal=journal, rate_limit_tries=2)

    snapshot = stats(emulator)
    assert snapshot["faults"]["429"] == 2 and snapshot["generations_created"] == 0
    last = journal.load(request.fingerprint()).last_attempt  # type: ignore[union-attr]
    assert last is not None and (last.state, last.detail) == ("refused", "rate limited on every try")
    assert [r.getMessage() for r in caplog.records if "Rate limited" in r.getMessage()] == [
        "Rate limited; waiting 1.0 s before enqueuing"
    ]


def test_the_journal_entry_is_shared_by_two_journals_on_one_folder(emulator, client, tmp_path: Path):
    request = _request("A bell rings twice")
    ids = enqueue_once(client, request, journal=Journal(tmp_path / "j"))
    assert enqueue_once(client, request, journal=Journal(tmp_path / "j")) == ids
    assert stats(emulator)["enqueue_calls"] == 1
