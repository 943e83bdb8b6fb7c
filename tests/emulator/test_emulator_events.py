"""``GET /api/events``: SSE completion events for live subscribers, keep-alives, clean shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from seedance_prefect.emulator import RunningEmulator
from tests.emulator.emulatorkit import (
    API_KEY,
    assert_structured_error,
    make_client,
    request_body,
    wait_until,
)

AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def _read_until(lines: Any, stop: Callable[[list[str]], bool], timeout: float) -> list[str]:
    """Collect raw SSE lines until ``stop(lines)`` holds (deadline ``timeout``)."""
    seen: list[str] = []

    async def collect() -> list[str]:
        async for line in lines:
            seen.append(line)
            if stop(seen):
                return seen
        return seen

    return await asyncio.wait_for(collect(), timeout)


def _events(lines: list[str]) -> list[tuple[str, str]]:
    out, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            out.append((name or "", line[len("data: ") :]))
    return out


def test_events_for_generations_enqueued_while_subscribed(emu: RunningEmulator) -> None:
    async def scenario() -> tuple[list[str], dict[str, str]]:
        async with (
            httpx.AsyncClient(base_url=emu.base_url, headers=AUTH, trust_env=False, timeout=30) as ac,
            ac.stream("GET", "/events") as stream,
        ):
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            ids = {}
            for name, overrides in (("ok", {}), ("bad", {"duration": "3"}), ("cancel", {"prompt": "x"})):
                response = await ac.post("/ai/queue", json=request_body(**overrides))
                ids[name] = response.json()["generations"][0]["generation_id"]
            assert (await ac.delete(f"/ai/queue/{ids['cancel']}")).status_code == 200
            lines = stream.aiter_lines()
            seen = await _read_until(lines, lambda ls: len(_events(ls)) >= 2, timeout=20)
            # then wait for a keep-alive: no event may come for the cancelled generation meanwhile
            seen += await _read_until(lines, lambda ls: ls[-1] == ": keep-alive", timeout=10)
            return seen, ids

    lines, ids = asyncio.run(scenario())
    events = _events(lines)
    assert [name for name, _ in events] == ["media_generation_completed"] * 2
    assert all(": " not in data and ", " not in data for _, data in events)  # compact JSON on one line
    payloads = {p["generation_id"]: p for p in (json.loads(data) for _, data in events)}
    assert set(payloads) == {ids["ok"], ids["bad"]}
    ok, bad = payloads[ids["ok"]], payloads[ids["bad"]]
    assert set(ok) == {"generation_id", "status", "media_type", "model", "url"}
    assert (ok["status"], ok["media_type"], ok["model"]) == ("succeeded", "video", request_body()["model"])
    assert ok["url"].startswith("http://localhost:")
    assert bad == {
        "generation_id": ids["bad"],
        "status": "failed",
        "media_type": "video",
        "error": "Invalid duration",
    }
    # event blocks end with a blank line
    first = lines.index("event: media_generation_completed")
    assert lines[first + 1].startswith("data: ") and lines[first + 2] == ""
    assert emu.stats()["events_sent"] == 2


def test_no_replay_for_subscribers_arriving_later(emu: RunningEmulator, client: httpx.Client) -> None:
    gid = client.post("/ai/queue", json=request_body()).json()["generations"][0]["generation_id"]

    def finished() -> bool:
        return client.get(f"/ai/queue/{gid}").json()["status"] == "succeeded"

    wait_until(finished)

    async def scenario() -> list[str]:
        async with (
            httpx.AsyncClient(base_url=emu.base_url, headers=AUTH, trust_env=False, timeout=30) as ac,
            ac.stream("GET", "/events") as stream,
        ):
            return await _read_until(stream.aiter_lines(), lambda ls: ls[-1] == ": keep-alive", timeout=10)

    assert _events(asyncio.run(scenario())) == []


def test_events_need_auth(client: httpx.Client, emu: RunningEmulator) -> None:
    with httpx.Client(trust_env=False, timeout=10) as anon:
        assert_structured_error(anon.get(emu.base_url + "/events"), 401, "unauthenticated")


def test_shutdown_with_an_open_stream_is_prompt(start_emulator: Callable[..., RunningEmulator]) -> None:
    emu = start_emulator(api_key=None)
    with make_client(emu, token="t") as client, client.stream("GET", "/events") as stream:
        assert stream.status_code == 200
        assert emu.stats()["sse_subscribers"] == 1  # registered before the headers were sent
        started = time.monotonic()
        emu.stop(timeout=10)
        assert not emu.thread.is_alive()
        assert time.monotonic() - started < 5
        try:
            rest = list(stream.iter_lines())
        except httpx.HTTPError:
            rest = []
        assert _events(rest) == []
