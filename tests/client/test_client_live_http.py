"""Round trips over real HTTP against the uvicorn fake (see conftest.py), sync and async.

The API lives on ``127.0.0.1`` and result files on ``localhost``: another origin for the client.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from seedance_prefect.client import AsyncSeedanceClient, SeedanceClient, sha256_file
from seedance_prefect.client.events import COMPLETION_EVENT
from seedance_prefect.errors import AuthenticationError, DownloadError
from tests.client.clientkit import KEY, VIDEO, part_files
from tests.client.fakeoxenkit import FakeOxen, wait_for


def assert_key_only_at_api(oxen: FakeOxen) -> None:
    api = oxen.seen_at("127.0.0.1")
    files = oxen.seen_at("localhost")
    assert api and files
    assert all(s.headers.get("authorization") == f"Bearer {KEY}" for s in api if s.path.startswith("/api/"))
    for seen in files:
        assert "authorization" not in seen.headers
        assert KEY not in " ".join(seen.headers.values())


def test_enqueue_wait_download(oxen: FakeOxen, tmp_path: Path) -> None:
    statuses: list[str] = []
    with SeedanceClient(KEY, base_url=oxen.api_base) as client:
        [row] = client.enqueue({"prompt": "@Image1 waves", "input_images": ["https://example.com/a.png"]})
        assert row.status == "processing"
        started = time.monotonic()
        done = client.wait(
            row.generation_id, poll_interval=0.05, timeout=10, on_status=lambda g: statuses.append(g.status)
        )
        waited = time.monotonic() - started
        path = client.download(done, tmp_path)
    assert waited >= 1.0  # the first poll answered 429 with Retry-After: 1
    assert statuses == ["processing", "succeeded"]
    assert done.duration == "5" and done.extra_fields["workbench"] == {"lane": 3}
    assert path == tmp_path / f"{row.generation_id}.mp4" and path.read_bytes() == VIDEO
    assert sha256_file(path).size == len(VIDEO) and part_files(tmp_path) == []
    assert_key_only_at_api(oxen)
    assert [s.path for s in oxen.seen_at("localhost")] == [f"/files/{row.generation_id}.mp4"]


async def test_async_enqueue_wait_download(oxen: FakeOxen, tmp_path: Path) -> None:
    async with AsyncSeedanceClient(KEY, base_url=oxen.api_base) as client:
        rows = await client.enqueue({"prompt": "A boat", "num_generations": 2})
        started = time.monotonic()
        done = await client.wait(rows[1].generation_id, poll_interval=0.05, timeout=10)
        assert time.monotonic() - started >= 1.0
        path = await client.download(done, tmp_path / "b.mp4")
    assert len(rows) == 2 and path.read_bytes() == VIDEO
    assert_key_only_at_api(oxen)


@pytest.mark.parametrize("response_format", ["url", "b64_json"])
def test_sync_generate_round_trip(oxen: FakeOxen, tmp_path: Path, response_format: str) -> None:
    with SeedanceClient(KEY, base_url=oxen.api_base) as client:
        result = client.generate({"prompt": "A boat", "response_format": response_format})
        if response_format == "url":
            path = client.download(result, tmp_path / "v.mp4")
            assert_key_only_at_api(oxen)
        else:
            path = client.save_b64(result, tmp_path / "v.mp4")
    assert path.read_bytes() == VIDEO


@pytest.mark.parametrize("response_format", ["url", "b64_json"])
async def test_async_generate_round_trip(oxen: FakeOxen, tmp_path: Path, response_format: str) -> None:
    async with AsyncSeedanceClient(KEY, base_url=oxen.api_base) as client:
        result = await client.generate({"prompt": "A boat", "response_format": response_format})
        video = result.videos[0]
        if response_format == "url":
            path = await client.download(video, tmp_path / "v.mp4")
        else:
            path = await client.save_b64(video, tmp_path / "v.mp4")
    assert path.read_bytes() == VIDEO


def test_redirect_to_result_host_drops_the_key(oxen: FakeOxen, tmp_path: Path) -> None:
    with SeedanceClient(KEY, base_url=oxen.api_base) as client:
        path = client.download(f"{oxen.api_base}/repos/files/r.mp4", tmp_path / "r.mp4")
    assert path.read_bytes() == VIDEO
    [first] = [s for s in oxen.seen if s.path == "/api/repos/files/r.mp4"]
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert_key_only_at_api(oxen)


def test_truncated_transfer_over_http(oxen: FakeOxen, tmp_path: Path) -> None:
    with (
        SeedanceClient(KEY, base_url=oxen.api_base, max_retries=1, backoff_factor=0.01) as client,
        pytest.raises(DownloadError) as info,
    ):
        client.download(oxen.file_url("truncated.mp4"), tmp_path / "t.mp4")
    assert info.value.transient
    assert len(oxen.seen_at("localhost")) == 2  # retried once
    assert list(tmp_path.iterdir()) == []
    assert "s3cr3t" not in str(info.value)


def test_wrong_key_is_401(oxen: FakeOxen) -> None:
    with (
        SeedanceClient("sk-some-other-key", base_url=oxen.api_base) as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.get("gen-1")
    assert info.value.error_type == "unauthenticated"


def test_events_over_http(oxen: FakeOxen) -> None:
    with SeedanceClient(KEY, base_url=oxen.api_base) as client, client.events(read_timeout=5) as stream:
        wait_for(lambda: oxen.subscribers, what="the subscription")
        oxen.emit("deployment_updated", {"x": 1})
        oxen.emit(COMPLETION_EVENT, "{malformed")
        oxen.emit(
            COMPLETION_EVENT,
            {
                "generation_id": "g1",
                "status": "succeeded",
                "media_type": "video",
                "model": "m",
                "url": oxen.file_url("g1.mp4"),
            },
        )
        oxen.emit(
            COMPLETION_EVENT, {"generation_id": "g2", "status": "failed", "error": "Insufficient credits"}
        )
        first, second = next(stream), next(stream)
    assert (first.generation_id, first.status) == ("g1", "succeeded")
    assert (second.generation_id, second.error) == ("g2", "Insufficient credits")
    wait_for(lambda: not oxen.subscribers, what="the server to see the disconnect")


def test_events_close_from_consumer_is_prompt(oxen: FakeOxen) -> None:
    with SeedanceClient(KEY, base_url=oxen.api_base) as client:
        stream = client.events()
        wait_for(lambda: oxen.subscribers, what="the subscription")
        emitter = threading.Timer(
            0.1, oxen.emit, (COMPLETION_EVENT, {"generation_id": "g", "status": "succeeded"})
        )
        emitter.start()
        assert next(stream).generation_id == "g"
        started = time.monotonic()
        stream.close()
        assert time.monotonic() - started < 1.0
    wait_for(lambda: not oxen.subscribers, what="the server to see the disconnect")


async def test_async_events_over_http(oxen: FakeOxen) -> None:
    async with AsyncSeedanceClient(KEY, base_url=oxen.api_base) as client, client.events() as stream:
        wait_for(lambda: oxen.subscribers, what="the subscription")
        oxen.emit("deployment_updated", {})
        oxen.emit(COMPLETION_EVENT, {"generation_id": "g3", "status": "succeeded", "url": "http://x/v.mp4"})
        event = await anext(stream)
    assert event.generation_id == "g3" and event.to_generation().result_url == "http://x/v.mp4"
    assert stream.closed
    wait_for(lambda: not oxen.subscribers, what="the server to see the disconnect")
