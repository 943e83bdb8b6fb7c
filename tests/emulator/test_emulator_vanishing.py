"""The older queue (``vanish_terminal``): rows answer 404 once terminal; the history lookup; cut events."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from seedance_prefect.emulator import RunningEmulator
from seedance_prefect.emulator.cli import build_parser, config_from_args
from tests.emulator.emulatorkit import (
    API_KEY,
    TERMINAL,
    assert_row,
    assert_structured_error,
    make_client,
    request_body,
    wait_until,
)

Start = Callable[..., RunningEmulator]


def _enqueue(client: httpx.Client, **overrides: Any) -> str:
    response = client.post("/ai/queue", json=request_body(**overrides))
    assert response.status_code == 200, response.text
    return response.json()["generations"][0]["generation_id"]


def _history(client: httpx.Client, gid: str) -> httpx.Response:
    return client.get(f"/ai/generations/{gid}")


def _terminal_in_history(client: httpx.Client, gid: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        row = _history(client, gid).json()["generation"]
        return row if row["status"] in TERMINAL else None

    return wait_until(done)


def test_rows_vanish_once_terminal(start_emulator: Start) -> None:
    emu = start_emulator(vanish_terminal=True, api_key=API_KEY)
    with make_client(emu) as client:
        gid = _enqueue(client)
        assert client.get(f"/ai/queue/{gid}").status_code == 200  # visible while active
        assert [r["generation_id"] for r in client.get("/ai/queue").json()["generations"]] == [gid]
        row = _terminal_in_history(client, gid)
        assert row["status"] == "succeeded"
        assert_structured_error(client.get(f"/ai/queue/{gid}"), 404, "resource_not_found")
        assert_structured_error(client.delete(f"/ai/queue/{gid}"), 404, "resource_not_found")
        for status in (None, "succeeded"):
            listed = client.get("/ai/queue", params={"status": status} if status else None).json()
            assert listed == {"count": 0, "generations": []}
        assert emu.stats()["generations"][gid]["status"] == "succeeded"  # stats still know it


def test_failed_and_cancelled_rows_vanish_too(start_emulator: Start) -> None:
    emu = start_emulator(vanish_terminal=True, api_key=API_KEY, latency=1.0)
    with make_client(emu) as client:
        bad = _enqueue(client, duration="3")
        cancelled = _enqueue(client)
        assert client.delete(f"/ai/queue/{cancelled}").status_code == 200
        assert client.get(f"/ai/queue/{cancelled}").status_code == 404
        assert _history(client, cancelled).json()["generation"]["status"] == "cancelled"
        row = _terminal_in_history(client, bad)
        assert (row["status"], row["error_message"]) == ("failed", "Invalid duration")
        assert client.get(f"/ai/queue/{bad}").status_code == 404


def test_history_answers_the_documented_detail(emu: RunningEmulator, client: httpx.Client) -> None:
    gid = _enqueue(client)
    response = _history(client, gid)
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["status_message"]) == ("success", "resource_found")
    row = _terminal_in_history(client, gid)
    assert_row(row)
    assert row["generation_id"] == gid and row["status"] == "succeeded"
    assert row["result_url"] == client.get(f"/ai/queue/{gid}").json()["result_url"]  # rows persist here
    assert row["cost"] == "1.60"  # 4 s at $0.40
    assert row["target_namespace"] == row["username"] == "emulator"
    assert {"target_repo", "target_directory", "user_id", "user_image"} <= set(row)
    assert_structured_error(_history(client, "no-such-id"), 404, "resource_not_found")


def test_history_can_be_switched_off(start_emulator: Start) -> None:
    emu = start_emulator(vanish_terminal=True, history=False, api_key=API_KEY)
    with make_client(emu) as client:
        gid = _enqueue(client)
        assert_structured_error(_history(client, gid), 404, "resource_not_found")
        assert_structured_error(
            client.get("/ai/generations/x", headers={"Authorization": ""}), 401, "unauthenticated"
        )


def test_cli_flags() -> None:
    config = config_from_args(build_parser().parse_args(["--vanish-terminal", "--no-history"]))
    assert (config.vanish_terminal, config.history) == (True, False)
    config = config_from_args(build_parser().parse_args([]))
    assert (config.vanish_terminal, config.history) == (False, True)


def _listen(emu: RunningEmulator, received: list[bytes], connected: threading.Event) -> Exception | None:
    """Read an event stream to its end; return how it ended (None: closed cleanly)."""
    try:
        with (
            make_client(emu) as client,
            client.stream("GET", "/events", timeout=httpx.Timeout(30.0)) as stream,
        ):
            connected.set()
            for chunk in stream.iter_raw():
                received.append(chunk)
    except httpx.HTTPError as exc:
        return exc
    return None


@pytest.mark.parametrize("vanish", [False, True])
def test_cut_event_fault_cuts_the_stream_mid_event(start_emulator: Start, vanish: bool) -> None:
    emu = start_emulator(vanish_terminal=vanish, api_key=API_KEY, keepalive=0.2, faults="cut_event=1")
    received: list[bytes] = []
    connected = threading.Event()
    ended: list[Exception | None] = []
    reader = threading.Thread(target=lambda: ended.append(_listen(emu, received, connected)), daemon=True)
    reader.start()
    assert connected.wait(10)
    wait_until(lambda: emu.stats()["sse_subscribers"] == 1)
    with make_client(emu) as client:
        gid = _enqueue(client)
        _terminal_in_history(client, gid)
    reader.join(10)
    assert not reader.is_alive(), "the stream was not closed"
    text = b"".join(received).decode()
    assert "event: media_generation_completed" in text
    assert "\n\n" not in text.split("event: media_generation_completed", 1)[1]  # never a whole event
    assert emu.stats()["faults"]["cut_event"] == 1
    assert ended and ended[0] is not None  # a broken transfer, not a clean end of the stream


def test_events_are_whole_without_the_fault(start_emulator: Start) -> None:
    emu = start_emulator(vanish_terminal=True, api_key=API_KEY, keepalive=0.2)
    received: list[bytes] = []
    connected = threading.Event()
    threading.Thread(target=_listen, args=(emu, received, connected), daemon=True).start()
    assert connected.wait(10)
    wait_until(lambda: emu.stats()["sse_subscribers"] == 1)
    with make_client(emu) as client:
        gid = _enqueue(client)
        wait_until(lambda: b"\n\n" in b"".join(received).partition(b"media_generation_completed")[2])
    event = b"".join(received).decode().split("event: media_generation_completed\n", 1)[1]
    data = json.loads(event.split("\n", 1)[0].removeprefix("data: "))
    assert (data["generation_id"], data["status"]) == (gid, "succeeded")
    assert data["url"] and emu.stats()["faults"]["cut_event"] == 0
