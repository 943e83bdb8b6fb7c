"""Fault injection: every kind observed by a client and counted in stats; seeded; runtime changes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from seedance_prefect.emulator import RunningEmulator, parse_faults
from seedance_prefect.emulator.faults import FAIL_MESSAGES
from tests.emulator.emulatorkit import (
    MODEL,
    assert_structured_error,
    make_client,
    request_body,
    wait_terminal,
    wait_until,
)

#: What httpx raises when the server aborts the connection without an answer.
CONNECTION_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def test_spec_parsing() -> None:
    spec = parse_faults("5xx=0.2, 429=0.1,reset=0.05,drop_enqueue=0.05,fail=0.05,truncate=0.05,poll429")
    assert spec.rate("poll429") == 1.0 and spec.rate("5xx") == 0.2
    assert parse_faults(spec.to_string()) == spec
    assert parse_faults(None).to_string() == parse_faults("").to_string() == ""
    for bad in ("boom=1", "5xx=2", "429=x"):
        with pytest.raises(ValueError):
            parse_faults(bad)


def test_5xx(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.set_faults("5xx=1")
    response = client.get(f"/ai/models/{MODEL}")
    assert response.status_code in (500, 503)
    assert_structured_error(response, response.status_code, "unknown_error")
    response = client.post("/ai/queue", json=request_body())
    assert response.status_code in (500, 503)
    with httpx.Client(trust_env=False) as anon:  # /_emulator/* is never faulted
        stats = anon.get(emu.url + "/_emulator/stats").json()
    assert stats["faults"]["5xx"] == 2 and stats["generations_created"] == 0


def test_429_with_retry_after(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.set_faults("429=1")
    response = client.get("/ai/queue")
    assert_structured_error(response, 429, "rate_limit_exceeded")
    assert response.headers["retry-after"] == "1"
    assert emu.stats()["faults"]["429"] == 1


def test_reset_drops_the_connection_without_an_answer(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.set_faults("reset=1")
    with pytest.raises(CONNECTION_ERRORS):
        client.get("/ai/queue")
    with pytest.raises(CONNECTION_ERRORS):
        client.post("/ai/queue", json=request_body())
    emu.set_faults(None)
    assert client.get("/ai/queue").status_code == 200  # the client recovers on a new connection
    stats = emu.stats()
    assert stats["faults"]["reset"] == 2 and stats["generations_created"] == 0


def test_drop_enqueue_creates_generations_but_loses_the_answer(
    emu: RunningEmulator, client: httpx.Client
) -> None:
    emu.set_faults("drop_enqueue=1")
    with pytest.raises(CONNECTION_ERRORS):
        client.post("/ai/queue", json=request_body(num_generations=2))
    emu.set_faults(None)
    stats = emu.stats()
    assert stats["faults"]["drop_enqueue"] == 1 and stats["generations_created"] == 2
    for gid in stats["generations"]:
        assert wait_terminal(client, gid)["status"] == "succeeded"
    assert client.get("/ai/queue", params={"status": "succeeded"}).json()["count"] == 2


def test_fail_ends_generations_failed(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.set_faults("fail=1")
    ids = [
        g["generation_id"]
        for g in client.post("/ai/queue", json=request_body(num_generations=2)).json()["generations"]
    ]
    for gid in ids:
        row = wait_terminal(client, gid)
        assert row["status"] == "failed" and row["error_message"] in FAIL_MESSAGES
        assert row["result_url"] is None
    assert emu.stats()["faults"]["fail"] == 2


def test_truncate_cuts_the_download_then_range_resume_works(
    emu: RunningEmulator, client: httpx.Client
) -> None:
    url = client.post("/ai/videos/generate", json=request_body()).json()["videos"][0]["url"]
    with httpx.Client(trust_env=False, timeout=30) as anon:
        full = anon.get(url).content
        emu.set_faults("truncate=1")
        received = bytearray()
        with pytest.raises(httpx.RemoteProtocolError), anon.stream("GET", url) as response:
            assert int(response.headers["content-length"]) == len(full)
            for chunk in response.iter_raw():
                received += chunk
        assert 0 < len(received) < len(full) and full.startswith(bytes(received))
        emu.set_faults(None)
        rest = anon.get(url, headers={"Range": f"bytes={len(received)}-"})
        assert rest.status_code == 206
        assert rest.headers["content-range"] == f"bytes {len(received)}-{len(full) - 1}/{len(full)}"
        assert bytes(received) + rest.content == full
    assert emu.stats()["faults"]["truncate"] == 1


def test_poll429_hits_only_the_first_poll_of_each_generation(
    emu: RunningEmulator, client: httpx.Client
) -> None:
    emu.set_faults("poll429=1")
    ids = [
        g["generation_id"]
        for g in client.post("/ai/queue", json=request_body(num_generations=2)).json()["generations"]
    ]
    for gid in ids:
        first = client.get(f"/ai/queue/{gid}")
        assert_structured_error(first, 429, "rate_limit_exceeded")
        assert first.headers["retry-after"] == "1"
        assert client.get(f"/ai/queue/{gid}").status_code == 200
    assert client.get("/ai/queue").status_code == 200  # the list is not a poll of one generation
    assert emu.stats()["faults"]["poll429"] == 2


def test_probabilistic_faults_are_reproducible_with_the_seed(
    emu: RunningEmulator, client: httpx.Client
) -> None:
    def run() -> list[int]:
        emu.reset()
        emu.set_faults("5xx=0.3,429=0.3")
        return [client.get("/ai/models").status_code for _ in range(30)]

    first, second = run(), run()
    assert first == second
    assert {200, 429} <= set(first) and set(first) & {500, 503}
    counts = emu.stats()["faults"]
    assert counts["429"] == first.count(429) and counts["5xx"] == sum(s >= 500 for s in first)


def test_faults_endpoint_changes_faults_at_runtime(emu: RunningEmulator, client: httpx.Client) -> None:
    with httpx.Client(base_url=emu.url, trust_env=False) as admin:
        answer = admin.post("/_emulator/faults", json={"spec": "429=1"})
        assert answer.status_code == 200 and answer.json()["spec"] == "429=1"
        assert client.get("/ai/models").status_code == 429
        assert admin.get("/_emulator/stats").status_code == 200
        assert admin.post("/_emulator/faults", json={"spec": "bogus=1"}).status_code == 400
        assert admin.post("/_emulator/faults", json={"spec": ""}).json()["spec"] == ""
        assert client.get("/ai/models").status_code == 200
        assert admin.post("/_emulator/reset").json() == {"status": "success"}
        assert admin.get("/_emulator/stats").json()["faults"]["429"] == 0


def test_faults_from_config_and_counts_in_stats(start_emulator: Callable[..., RunningEmulator]) -> None:
    emu = start_emulator(faults="poll429=1,fail=1", api_key=None)
    with make_client(emu, token="t") as client:
        gid = client.post("/ai/queue", json=request_body()).json()["generations"][0]["generation_id"]
        assert client.get(f"/ai/queue/{gid}").status_code == 429
        assert wait_terminal(client, gid)["status"] == "failed"
    wait_until(lambda: emu.stats()["faults"]["fail"] == 1)
    assert emu.stats()["faults"]["poll429"] == 1
