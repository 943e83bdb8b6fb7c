"""Issue #15: keep the result when the queue forgets it.

The flows against the emulator's older queue (``vanish_terminal``: a row answers 404 once the
generation ended; the result reaches only the completion-event stream, or the history lookup),
under the session's real Prefect server. Every test is bounded by the flow's own deadline.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from seedance_prefect.batch_flows import batch_reference_to_video
from seedance_prefect.emulator import EmulatorConfig, RunningEmulator, run_emulator
from seedance_prefect.errors import NotFoundError
from seedance_prefect.flows import reference_to_video
from tests.kit import API_KEY, set_faults, stats, wait_until

pytestmark = pytest.mark.usefixtures("prefect_server")

HISTORY_ROUTE = "GET /api/ai/generations/{generation_id}"
POLL_ROUTE = "GET /api/ai/queue/{generation_id}"
REQUEST: dict[str, Any] = {
    "prompt": "A paper boat drifts past a lighthouse",
    "resolution": "480p",
    "duration": "4",
    "aspect_ratio": "16:9",
    "seed": 11,
}


def _config(**settings: Any) -> EmulatorConfig:
    settings.setdefault("latency", 0.5)
    return EmulatorConfig(keepalive=1.0, max_running=8, vanish_terminal=True, **settings)


@pytest.fixture(scope="module")
def vanishing_session() -> Iterator[RunningEmulator]:
    with run_emulator(_config()) as emu:
        yield emu


@pytest.fixture(scope="module")
def no_history_session() -> Iterator[RunningEmulator]:
    with run_emulator(_config(history=False)) as emu:
        yield emu


def _use(emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> RunningEmulator:
    emu.reset()
    set_faults(emu, "")
    monkeypatch.setenv("OXEN_API_KEY", API_KEY)
    monkeypatch.setenv("OXEN_BASE_URL", emu.base_url)
    monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "state"))
    return emu


@pytest.fixture
def vanishing(vanishing_session: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    return _use(vanishing_session, monkeypatch, tmp_path)


@pytest.fixture
def no_history(no_history_session: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    return _use(no_history_session, monkeypatch, tmp_path)


def _run(out: Path, **kwargs: Any) -> list[dict[str, Any]]:
    kwargs.setdefault("poll_interval", 2.0)
    kwargs.setdefault("timeout_seconds", 60)
    return reference_to_video(dict(REQUEST), output=str(out), **kwargs)


def _release_once_seen_running(emu: RunningEmulator) -> threading.Thread:
    """With finished work held, release it once the flow has polled the running row: so the
    generation is one the flow saw running, whose row then answers 404."""

    def release() -> None:
        try:
            wait_until(
                lambda: any(g["polls"] >= 1 for g in stats(emu)["generations"].values()),
                60,
                "a poll of the row",
            )
        finally:
            emu.hold(False)

    emu.hold(True)
    thread = threading.Thread(target=release, name="release-hold", daemon=True)
    thread.start()
    return thread


def _only_generation(emu: RunningEmulator) -> dict[str, Any]:
    [generation] = stats(emu)["generations"].values()
    return generation


def test_result_delivered_from_the_completion_event(vanishing, out_dir):
    releaser = _release_once_seen_running(vanishing)
    [delivered] = _run(out_dir, name="from-event")
    releaser.join(5)

    generation = _only_generation(vanishing)
    assert delivered["generation_id"] == generation["id"]
    assert delivered["sha256"] == generation["result"]["sha256"]  # the download's checks passed
    assert Path(delivered["video"]).stat().st_size == generation["result"]["size"]
    routes = stats(vanishing)["requests_by_route"]
    assert routes.get(HISTORY_ROUTE, 0) == 0  # the event decided
    assert routes[POLL_ROUTE] >= 2  # seen running, then 404
    assert stats(vanishing)["events_sent"] >= 1


def test_event_lost_and_row_gone_the_history_delivers(vanishing, out_dir):
    set_faults(vanishing, "cut_event=1")  # the stream is cut in the middle of the completion event
    releaser = _release_once_seen_running(vanishing)
    [delivered] = _run(out_dir, name="from-history")
    releaser.join(5)

    generation = _only_generation(vanishing)
    assert delivered["sha256"] == generation["result"]["sha256"]
    current = stats(vanishing)
    assert current["faults"]["cut_event"] >= 1
    assert current["requests_by_route"][HISTORY_ROUTE] >= 1


def test_nothing_left_fails_naming_what_it_tried(no_history, out_dir):
    set_faults(no_history, "cut_event=1")
    releaser = _release_once_seen_running(no_history)
    started = time.monotonic()
    with pytest.raises(NotFoundError) as info:
        _run(out_dir, name="lost")
    releaser.join(5)

    assert time.monotonic() - started < 60  # no hang: it gives up well before the deadline
    message = str(info.value)
    assert "the queue row answered 404 after it was seen processing" in message
    assert "no completion event was received" in message
    assert message.endswith("the history lookup answered 404 resource_not_found")
    assert not list(out_dir.glob("*.mp4"))


def _prerender(emu: RunningEmulator) -> None:
    """Render REQUEST's video once, outside the flow (the emulator caches renders by parameters)."""
    body = {**REQUEST, "model": "bytedance-seedance-2-0-reference-to-video"}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    answer = httpx.post(f"{emu.base_url}/ai/videos/generate", json=body, headers=headers, timeout=30)
    answer.raise_for_status()


@pytest.mark.parametrize("answer_held", [False, True], ids=["plain", "ends-before-the-post-answers"])
def test_a_fast_generation_is_detected_from_its_event(monkeypatch, tmp_path, out_dir, answer_held):
    """Ends 0.5 s after the POST; the safety poll is 60-120 s away. A fresh emulator and account
    (so a fresh event stream) without a history lookup: only the completion event can deliver it
    in time. With the enqueue's answer held 1.5 s (``slow_enqueue``), the generation ends before
    the flow even knows its id: only a stream opened before the POST gets its event (no replay)."""
    with run_emulator(_config(history=False, slow_enqueue_seconds=1.5)) as emu:
        _prerender(emu)  # so the generation takes its 0.5 s latency, not the first render's time
        _use(emu, monkeypatch, tmp_path)
        # a key of its own: a fresh account, so no event stream of an earlier test is up already
        monkeypatch.setenv("OXEN_API_KEY", f"{API_KEY}-{uuid.uuid4().hex[:8]}")
        if answer_held:
            set_faults(emu, "slow_enqueue=1")
        started = time.monotonic()
        [delivered] = _run(out_dir, name="fast", poll_interval=60.0, timeout_seconds=180)
        took = time.monotonic() - started
        generation = _only_generation(emu)
        current = stats(emu)

    assert delivered["sha256"] == generation["result"]["sha256"]
    assert took < 30, f"the flow took {took:.1f} s: a safety poll, not the event"
    assert current["requests_by_route"].get(POLL_ROUTE, 0) <= 2 and generation["polls"] <= 2
    assert current["requests_by_route"].get(HISTORY_ROUTE, 0) == 0
    assert current["faults"]["slow_enqueue"] == int(answer_held)


def test_batch_rows_share_one_stream_and_get_their_results_from_events(vanishing, tmp_path):
    rows = [{**REQUEST, "name": f"row-{i}", "seed": 100 + i} for i in range(3)]
    summary = batch_reference_to_video(
        rows, output=str(tmp_path / "batch"), concurrency=3, poll_interval=60.0, timeout_seconds=120
    )
    assert [r["status"] for r in summary["rows"]] == ["delivered"] * 3
    current = stats(vanishing)
    assert current["requests_by_route"].get(HISTORY_ROUTE, 0) == 0
    assert current["sse_subscribers"] == 1  # one stream for the account, every row
    for generation in current["generations"].values():
        assert generation["status"] == "succeeded" and generation["polls"] <= 2
