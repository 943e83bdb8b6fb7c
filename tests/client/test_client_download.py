"""download() and save_b64(): atomic files, truncation, size cap, clean-up; sha256_file()."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from seedance_prefect.client import SeedanceClient, sha256_file
from seedance_prefect.client._atomic import iter_b64_chunks
from seedance_prefect.errors import DownloadError, NotFoundError
from seedance_prefect.models import CompletionEvent, Generation, VideoItem, VideoResult
from tests.client.clientkit import BASE, GID, KEY, VIDEO, VIDEO_B64, part_files, row

RESULT = "https://cdn.test/renders/v.mp4?X-Signature=abc"


def succeeded(result_url: str | None = RESULT) -> Generation:
    return Generation.model_validate(row("succeeded", result_url=result_url))


def video_response(body: bytes = VIDEO, **headers: str) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"Content-Type": "video/mp4", **headers})


def test_download_generation(client: SeedanceClient, api: respx.MockRouter, tmp_path: Path) -> None:
    route = api.get(RESULT).mock(return_value=video_response())
    path = client.download(succeeded(), tmp_path / "out" / "v.mp4")
    assert path == tmp_path / "out" / "v.mp4" and path.read_bytes() == VIDEO
    assert part_files(path.parent) == []
    assert route.calls.last.request.headers["Accept"] == "*/*"


@pytest.mark.parametrize(
    "source",
    [
        RESULT,
        VideoItem(url=RESULT),
        VideoResult(videos=[VideoItem(url=RESULT)]),
        CompletionEvent(generation_id="g", status="succeeded", url=RESULT),
    ],
    ids=["str", "VideoItem", "VideoResult", "CompletionEvent"],
)
def test_download_sources(
    client: SeedanceClient, api: respx.MockRouter, tmp_path: Path, source: object
) -> None:
    api.get(RESULT).mock(return_value=video_response())
    assert client.download(source, tmp_path / "v.mp4").read_bytes() == VIDEO  # type: ignore[arg-type]


def test_download_into_directory(client: SeedanceClient, api: respx.MockRouter, tmp_path: Path) -> None:
    api.get(RESULT).mock(return_value=video_response())
    assert client.download(succeeded(), tmp_path) == tmp_path / f"{GID}.mp4"
    assert client.download(RESULT, tmp_path) == tmp_path / "v.mp4"


def test_relative_url_resolves_against_api_origin(
    client: SeedanceClient, api: respx.MockRouter, tmp_path: Path
) -> None:
    route = api.get("https://hub.test/api/repos/ns/r/files/v.mp4").mock(return_value=video_response())
    client.download("/api/repos/ns/r/files/v.mp4", tmp_path / "v.mp4")
    assert route.called


def test_no_result_url(client: SeedanceClient, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="no result URL") as info:
        client.download(succeeded(None), tmp_path / "v.mp4")
    assert not info.value.transient
    with pytest.raises(DownloadError, match="Cannot download from a 'ftp' URL"):
        client.download("ftp://cdn.test/v.mp4", tmp_path / "v.mp4")


def test_truncation_detected_and_cleaned(api: respx.MockRouter, tmp_path: Path) -> None:
    route = api.get(RESULT).mock(
        return_value=video_response(VIDEO[:1000], **{"Content-Length": str(len(VIDEO))})
    )
    with (
        SeedanceClient(KEY, base_url=BASE, max_retries=1, backoff_factor=0.001) as client,
        pytest.raises(DownloadError, match="truncated: received 1000 of 76800 bytes") as info,
    ):
        client.download(RESULT, tmp_path / "v.mp4")
    assert info.value.transient
    assert route.call_count == 2  # retried once
    assert list(tmp_path.iterdir()) == []
    assert "X-Signature" not in str(info.value)  # signed query kept out of messages


def test_truncation_recovers_on_retry(client: SeedanceClient, api: respx.MockRouter, tmp_path: Path) -> None:
    api.get(RESULT).mock(
        side_effect=[
            video_response(VIDEO[:10], **{"Content-Length": str(len(VIDEO))}),
            video_response(),
        ]
    )
    assert client.download(RESULT, tmp_path / "v.mp4").read_bytes() == VIDEO
    assert part_files(tmp_path) == []


def test_cap_from_content_length(client: SeedanceClient, api: respx.MockRouter, tmp_path: Path) -> None:
    route = api.get(RESULT).mock(return_value=video_response())
    with pytest.raises(DownloadError, match="over the size cap") as info:
        client.download(RESULT, tmp_path / "v.mp4", max_bytes=1000)
    assert not info.value.transient and route.call_count == 1
    assert list(tmp_path.iterdir()) == []


class _Chunked(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(VIDEO), 4096):
            yield VIDEO[start : start + 4096]


def test_cap_while_streaming_without_content_length(api: respx.MockRouter, tmp_path: Path) -> None:
    api.get(RESULT).mock(return_value=httpx.Response(200, stream=_Chunked()))
    with (
        SeedanceClient(KEY, base_url=BASE, download_max_bytes=10_000) as client,
        pytest.raises(DownloadError, match="over the size cap"),
    ):
        client.download(RESULT, tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []
    with SeedanceClient(KEY, base_url=BASE, download_max_bytes=10_000) as client:
        path = client.download(RESULT, tmp_path / "v.mp4", max_bytes=len(VIDEO))  # per-call cap wins
    assert path.stat().st_size == len(VIDEO)


def test_failure_keeps_previous_file_intact(
    client: SeedanceClient, api: respx.MockRouter, tmp_path: Path
) -> None:
    target = tmp_path / "v.mp4"
    target.write_bytes(b"previous good render")
    api.get(RESULT).mock(return_value=video_response(VIDEO[:5], **{"Content-Length": "99"}))
    with pytest.raises(DownloadError):
        client.download(RESULT, target)
    assert target.read_bytes() == b"previous good render"
    assert part_files(tmp_path) == []


def test_replace_is_atomic(
    client: SeedanceClient, api: respx.MockRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        calls.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    api.get(RESULT).mock(return_value=video_response())
    client.download(RESULT, tmp_path / "v.mp4")
    [(src, dst)] = calls
    assert src.startswith("v.mp4.part-") and dst == "v.mp4"


def test_result_host_404(client: SeedanceClient, api: respx.MockRouter, tmp_path: Path) -> None:
    api.get(RESULT).mock(return_value=httpx.Response(404, text="NoSuchKey"))
    with pytest.raises(NotFoundError) as info:
        client.download(RESULT, tmp_path / "v.mp4")
    assert info.value.url == "https://cdn.test/renders/v.mp4"
    assert list(tmp_path.iterdir()) == []


def test_redirects_are_followed(client: SeedanceClient, api: respx.MockRouter, tmp_path: Path) -> None:
    api.get("https://hub.test/api/repos/x/v.mp4").mock(
        return_value=httpx.Response(302, headers={"Location": RESULT})
    )
    redirected = api.get(RESULT).mock(return_value=video_response())
    assert client.download("https://hub.test/api/repos/x/v.mp4", tmp_path / "v.mp4").read_bytes() == VIDEO
    assert "Authorization" not in redirected.calls.last.request.headers


# --------------------------------------------------------------------------- base64


@pytest.mark.parametrize(
    "source",
    [
        VideoItem(b64_json=VIDEO_B64),
        VideoResult(videos=[VideoItem(b64_json=VIDEO_B64)]),
        VIDEO_B64,
        "data:video/mp4;base64," + VIDEO_B64,
        base64.encodebytes(VIDEO).decode(),
    ],
    ids=["VideoItem", "VideoResult", "str", "data-uri", "line-wrapped"],
)
def test_save_b64(client: SeedanceClient, tmp_path: Path, source: object) -> None:
    path = client.save_b64(source, tmp_path / "v.mp4")  # type: ignore[arg-type]
    assert path.read_bytes() == VIDEO and part_files(tmp_path) == []


def test_save_b64_invalid_and_missing(client: SeedanceClient, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="Invalid base64") as info:
        client.save_b64("not*base64!", tmp_path / "v.mp4")
    assert not info.value.transient
    with pytest.raises(DownloadError, match="no b64_json"):
        client.save_b64(VideoItem(url=RESULT), tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


def test_save_b64_cap(client: SeedanceClient, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="over the size cap"):
        client.save_b64(VIDEO_B64, tmp_path / "v.mp4", max_bytes=1000)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 17, 100])
@pytest.mark.parametrize("slice_chars", [4, 8, 12])
def test_iter_b64_chunks_round_trip(size: int, slice_chars: int) -> None:
    data = os.urandom(size)
    text = base64.b64encode(data).decode()
    assert b"".join(iter_b64_chunks(text, slice_chars)) == data
    assert b"".join(iter_b64_chunks(text.rstrip("="), slice_chars)) == data  # padding optional
    assert all(len(chunk) <= slice_chars // 4 * 3 for chunk in iter_b64_chunks(text, slice_chars))


def test_sha256_file(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_bytes(VIDEO)
    digest = sha256_file(tmp_path / "v.mp4")
    assert digest == (hashlib.sha256(VIDEO).hexdigest(), len(VIDEO))
    assert digest.sha256 == hashlib.sha256(VIDEO).hexdigest() and digest.size == len(VIDEO)


def test_download_into_new_directory_by_trailing_slash(
    client: SeedanceClient, api: respx.MockRouter, tmp_path: Path
) -> None:
    api.get(RESULT).mock(return_value=video_response())
    path = client.download(succeeded(), f"{tmp_path}/renders/")
    assert path == tmp_path / "renders" / f"{GID}.mp4" and path.read_bytes() == VIDEO
