"""AsyncSeedanceClient: the key behaviours of the sync tests, awaited (respx)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx

from seedance_prefect.client import AsyncSeedanceClient
from seedance_prefect.client.events import COMPLETION_EVENT
from seedance_prefect.errors import (
    DownloadError,
    GenerationFailed,
    GenerationTimeout,
    NotFoundError,
    SeedanceConnectionError,
    ServerError,
)
from tests.client.clientkit import (
    BASE,
    GID,
    KEY,
    MODEL,
    VIDEO,
    VIDEO_B64,
    not_found,
    part_files,
    row,
    url,
)

RESULT = "https://cdn.test/v.mp4?sig=1"


async def test_generate_url_and_b64(aclient: AsyncSeedanceClient, api: respx.MockRouter) -> None:
    route = api.post(url("/ai/videos/generate")).mock(
        side_effect=[
            httpx.Response(200, json={"created": 1, "model": MODEL, "videos": [{"url": RESULT}]}),
            httpx.Response(200, json={"created": 1, "model": MODEL, "videos": [{"b64_json": VIDEO_B64}]}),
        ]
    )
    assert (await aclient.generate({"prompt": "A boat"})).videos[0].url == RESULT
    result = await aclient.generate({"prompt": "A boat", "response_format": "b64_json"})
    assert json.loads(route.calls.last.request.content)["response_format"] == "b64_json"
    assert route.calls.last.request.extensions["timeout"]["read"] == 900.0
    assert result.videos[0].b64_json == VIDEO_B64


async def test_enqueue_get_list_cancel_model(aclient: AsyncSeedanceClient, api: respx.MockRouter) -> None:
    api.post(url("/ai/queue")).mock(
        return_value=httpx.Response(
            200,
            json={
                "generations": [
                    {"generation_id": "a", "status": "processing"},
                    {"generation_id": "b", "status": "queued"},
                ],
            },
        )
    )
    api.get(url("/ai/queue/a")).mock(return_value=httpx.Response(200, json=row(gid="a", duration=5, extra=1)))
    listed = api.get(url("/ai/queue")).mock(
        return_value=httpx.Response(200, json={"count": 1, "generations": [row()]})
    )
    api.delete(url("/ai/queue/a")).mock(
        return_value=httpx.Response(200, json={"status": "success", "generation_id": "a"})
    )
    api.get(url(f"/ai/models/{MODEL}")).mock(return_value=httpx.Response(200, json={"id": MODEL}))

    rows = await aclient.enqueue({"prompt": "A boat", "num_generations": 2})
    assert [(g.generation_id, g.status) for g in rows] == [("a", "processing"), ("b", "queued")]
    got = await aclient.get("a")
    assert got.duration == "5" and got.extra_fields == {"extra": 1}
    assert [g.generation_id for g in await aclient.list(status="processing")] == [GID]
    assert dict(listed.calls.last.request.url.params) == {"status": "processing"}
    assert (await aclient.cancel("a")).status == "success"
    assert (await aclient.model_info())["id"] == MODEL
    assert api.routes[0].calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


async def test_errors_and_retries(aclient: AsyncSeedanceClient, api: respx.MockRouter) -> None:
    api.get(url("/ai/queue/nope")).mock(return_value=not_found())
    with pytest.raises(NotFoundError) as info:
        await aclient.get("nope")
    assert info.value.error_type == "resource_not_found"

    flaky = api.get(url("/ai/queue/g1")).mock(
        side_effect=[httpx.Response(500), httpx.ReadError("reset"), httpx.Response(200, json=row(gid="g1"))]
    )
    assert (await aclient.get("g1")).generation_id == "g1"
    assert flaky.call_count == 3

    down = api.get(url("/ai/queue/g2")).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(SeedanceConnectionError):
        await aclient.get("g2")
    assert down.call_count == 3

    post = api.post(url("/ai/queue")).mock(return_value=httpx.Response(503))
    with pytest.raises(ServerError):
        await aclient.enqueue({"prompt": "A boat"})
    assert post.call_count == 1


async def test_retry_after_is_honoured(aclient: AsyncSeedanceClient, api: respx.MockRouter) -> None:
    api.get(url("/ai/queue/g1")).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "1"}),
            httpx.Response(200, json=row(gid="g1")),
        ]
    )
    started = time.monotonic()
    await aclient.get("g1")
    assert time.monotonic() - started >= 1.0


async def test_wait(aclient: AsyncSeedanceClient, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/generations/{GID}")).mock(return_value=not_found())
    api.get(url(f"/ai/queue/{GID}")).mock(
        side_effect=[
            not_found(),
            httpx.Response(200, json=row("processing")),
            httpx.Response(503),
            httpx.Response(200, json=row("succeeded", result_url=RESULT)),
        ]
    )
    seen: list[str] = []
    done = await aclient.wait(GID, poll_interval=0.01, timeout=5, on_status=lambda g: seen.append(g.status))
    assert done.result_url == RESULT and seen == ["processing", "succeeded"]


async def test_wait_failed_and_timeout(aclient: AsyncSeedanceClient, api: respx.MockRouter) -> None:
    api.get(url("/ai/queue/f")).mock(
        return_value=httpx.Response(200, json=row("failed", gid="f", error_message="Boom"))
    )
    with pytest.raises(GenerationFailed, match="Boom"):
        await aclient.wait("f", poll_interval=0.01)
    api.get(url("/ai/queue/p")).mock(return_value=httpx.Response(200, json=row("processing", gid="p")))
    with pytest.raises(GenerationTimeout):
        await aclient.wait("p", timeout=0.1, poll_interval=0.02)


class _Events(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b": keep-alive\n\nevent: other\ndata: {}\n\n"
        yield f"event: {COMPLETION_EVENT}\ndata: {{broken\n\n".encode()
        data = '{"generation_id": "g1", "status": "succeeded"}'
        yield f"event: {COMPLETION_EVENT}\ndata: {data}\n\n".encode()
        raise httpx.ReadError("reset")


async def test_events(aclient: AsyncSeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/events")).mock(
        return_value=httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=_Events())
    )
    stream = aclient.events(read_timeout=30)
    assert not route.called
    received = []
    with pytest.raises(SeedanceConnectionError):
        async with stream:
            assert route.called
            async for event in stream:
                received.append(event.generation_id)
    assert received == ["g1"] and stream.closed
    assert route.calls.last.request.extensions["timeout"]["read"] == 30


async def test_awaiting_events_connects(aclient: AsyncSeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/events")).mock(
        return_value=httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=_Events())
    )
    stream = await aclient.events()
    assert route.call_count == 1 and not stream.closed
    assert (await anext(stream)).generation_id == "g1"
    await stream.aclose()
    assert stream.closed


async def test_download_and_truncation(
    aclient: AsyncSeedanceClient, api: respx.MockRouter, tmp_path: Path
) -> None:
    route = api.get(RESULT).mock(
        side_effect=[
            httpx.Response(200, content=VIDEO[:100], headers={"Content-Length": str(len(VIDEO))}),
            httpx.Response(200, content=VIDEO),
        ]
    )
    path = await aclient.download(RESULT, tmp_path / "v.mp4")
    assert path.read_bytes() == VIDEO and route.call_count == 2
    assert "Authorization" not in route.calls.last.request.headers

    api.get("https://cdn.test/short.mp4").mock(
        return_value=httpx.Response(200, content=b"abc", headers={"Content-Length": "10"})
    )
    with pytest.raises(DownloadError, match="truncated") as info:
        await aclient.download("https://cdn.test/short.mp4", tmp_path / "s.mp4")
    assert info.value.transient and part_files(tmp_path) == []


async def test_download_cap(api: respx.MockRouter, tmp_path: Path) -> None:
    api.get(RESULT).mock(return_value=httpx.Response(200, content=VIDEO))
    async with AsyncSeedanceClient(KEY, base_url=BASE, download_max_bytes=100) as client:
        with pytest.raises(DownloadError, match="size cap") as info:
            await client.download(RESULT, tmp_path / "v.mp4")
    assert not info.value.transient and list(tmp_path.iterdir()) == []


async def test_save_b64(aclient: AsyncSeedanceClient, tmp_path: Path) -> None:
    path = await aclient.save_b64(VIDEO_B64, tmp_path / "v.mp4")
    assert path.read_bytes() == VIDEO and part_files(tmp_path) == []
