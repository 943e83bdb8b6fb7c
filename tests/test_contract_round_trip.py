"""The client against the emulator, tried as a new user would (env vars only), on the awkward profile:
429 + Retry-After on the first poll, "processing" first, unknown fields, results on another host name."""

from __future__ import annotations

import time

import av
import pytest

from seedance_prefect.client import SeedanceClient
from seedance_prefect.emulator import EmulatorConfig, run_emulator

KEY = "sk-roundtrip-0123456789"


@pytest.fixture(scope="module")
def awkward():
    config = EmulatorConfig(
        latency=2.5,
        faults="poll429=1",
        first_status="processing",
        extra_fields=True,
        result_host="localhost",
        api_key=KEY,
    )
    with run_emulator(config) as emu:
        yield emu


def test_enqueue_wait_download(awkward, monkeypatch, tmp_path):
    monkeypatch.setenv("OXEN_API_KEY", KEY)
    monkeypatch.setenv("OXEN_BASE_URL", awkward.base_url)
    seen: list[str] = []
    with SeedanceClient() as client:
        [queued] = client.enqueue({"prompt": "A red kite", "duration": "4", "resolution": "480p"})
        assert queued.status == "processing" and queued.extra_fields
        started = time.monotonic()
        row = client.wait(queued.generation_id, poll_interval=0.1, on_status=lambda g: seen.append(g.status))
        assert time.monotonic() - started >= 1.0  # the first poll's Retry-After: 1 was honoured
        assert row.result_url.startswith("http://localhost:")
        path = client.download(row, tmp_path / "kite.mp4")
    assert seen[-1] == "succeeded" and seen[0] == "processing"
    assert awkward.stats()["faults"]["poll429"] >= 1
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.height == 480


@pytest.mark.parametrize("response_format", ["url", "b64_json"])
def test_sync_round_trips(awkward, monkeypatch, tmp_path, response_format):
    monkeypatch.setenv("OXEN_API_KEY", KEY)
    monkeypatch.setenv("OXEN_BASE_URL", awkward.base_url)
    with SeedanceClient() as client:
        result = client.generate(
            {
                "prompt": "A blue kite",
                "duration": "4",
                "resolution": "480p",
                "response_format": response_format,
            }
        )
        item = result.videos[0]
        target = tmp_path / f"{response_format}.mp4"
        path = (
            client.save_b64(item, target) if response_format == "b64_json" else client.download(item, target)
        )
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.width == 854
