"""``download_generation`` and ``generate_and_save`` without Prefect, over real HTTP against the emulator."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from seedance_prefect.errors import DownloadError, RateLimitedError
from seedance_prefect.generation import DownloadedVideo, download_generation, generate_and_save
from seedance_prefect.models import Generation, SeedanceRequest
from tests.kit import set_faults, stats, wait_until

POLL_ROUTE = "GET /api/ai/queue/{generation_id}"


def _request(prompt: str = "A lighthouse sweeps the sea", **params: object) -> SeedanceRequest:
    return SeedanceRequest(prompt=prompt, duration="4", resolution="480p", **params)  # type: ignore[arg-type]


def _succeeded(client, request: SeedanceRequest) -> tuple[Generation, Generation]:
    """Enqueue ``request``; return its first (queued) row and, once it succeeded, its finished row."""
    [queued] = client.enqueue(request)

    def done() -> Generation | None:
        row = client.get(queued.generation_id)
        return row if row.state == "succeeded" else None

    return queued, wait_until(done, 30, "the generation to succeed")


def _check_file(video: DownloadedVideo) -> bytes:
    data = Path(video.path).read_bytes()
    assert video.size_bytes == len(data) > 0
    assert video.sha256 == hashlib.sha256(data).hexdigest()
    assert data[4:8] == b"ftyp"  # an MP4
    return data


def test_download_generation_writes_the_result_and_its_checksum(emulator, client, tmp_path):
    _, row = _succeeded(client, _request())
    polls = stats(emulator)["requests_by_route"].get(POLL_ROUTE, 0)

    video = download_generation(client, row, tmp_path / "work")

    assert video.generation_id == row.generation_id and video.source == "url"
    assert Path(video.path) == tmp_path / "work" / f"{row.generation_id}.mp4"
    _check_file(video)
    snapshot = stats(emulator)
    assert snapshot["result_downloads"] == 1
    assert snapshot["requests_by_route"].get(POLL_ROUTE, 0) == polls  # the row it was given had a link


def test_a_row_without_a_link_or_a_refresh_reads_the_row_again(emulator, client, tmp_path):
    queued, row = _succeeded(client, _request("A swing in an empty park"))
    assert queued.result_url is None
    polls = stats(emulator)["requests_by_route"].get(POLL_ROUTE, 0)

    first = download_generation(client, queued, tmp_path)  # no link yet: the row is read again
    second = download_generation(client, row, tmp_path, refresh=True)  # e.g. a retry: an expired link

    assert stats(emulator)["requests_by_route"].get(POLL_ROUTE, 0) == polls + 2
    assert _check_file(first) == _check_file(second) and first.path == second.path


def test_a_truncated_download_leaves_nothing_behind(emulator, client, tmp_path):
    _, row = _succeeded(client, _request("A clock without hands"))
    set_faults(emulator, "truncate=1")

    with pytest.raises(DownloadError) as caught:
        download_generation(client, row, tmp_path)

    assert caught.value.transient  # the task retries it
    assert stats(emulator)["faults"]["truncate"] >= 1
    assert list(tmp_path.iterdir()) == []  # no partial file


@pytest.mark.parametrize("response_format", ["url", "b64_json"])
def test_generate_and_save_saves_the_synchronous_video(emulator, client, tmp_path, response_format):
    request = _request("A kettle starts to steam", response_format=response_format)

    video = generate_and_save(client, request, tmp_path / "new-folder")

    assert video.source == response_format and video.generation_id.startswith(
        f"sync-{request.fingerprint()[:12]}-"
    )
    assert Path(video.path) == tmp_path / "new-folder" / f"{video.generation_id}.mp4"
    _check_file(video)
    snapshot = stats(emulator)
    assert snapshot["generate_calls"] == 1 and snapshot["sync_generations"] == 1
    assert snapshot["result_downloads"] == (1 if response_format == "url" else 0)


def test_generate_and_save_waits_out_429_with_the_same_loop_and_gives_up(emulator, client, tmp_path, caplog):
    set_faults(emulator, "429=1")
    with caplog.at_level("INFO"), pytest.raises(RateLimitedError, match="after 2 tries"):
        generate_and_save(client, _request("A paper plane"), tmp_path, rate_limit_tries=2)

    snapshot = stats(emulator)
    assert snapshot["faults"]["429"] == 2 and snapshot["generate_calls"] == 0
    assert [r.getMessage() for r in caplog.records if "Rate limited" in r.getMessage()] == [
        "Rate limited; waiting 1.0 s before generating"
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_refresh_on_a_queue_that_forgot_the_row_reads_the_history(tmp_path):
    from seedance_prefect.client import SeedanceClient
    from seedance_prefect.emulator import EmulatorConfig, run_emulator
    from seedance_prefect.errors import NotFoundError

    with (
        run_emulator(EmulatorConfig(latency=0.2, vanish_terminal=True)) as emu,
        SeedanceClient(api_key="k", base_url=emu.base_url) as client,
    ):
        [queued] = client.enqueue(_request())
        done = wait_until(
            lambda: (row := client.history(queued.generation_id)).state == "succeeded" and row,
            30,
            "the generation to succeed",
        )
        with pytest.raises(NotFoundError):
            client.get(queued.generation_id)  # the queue forgot the finished row
        video = download_generation(client, queued, tmp_path, refresh=True)
    assert video.generation_id == done.generation_id
    _check_file(video)
