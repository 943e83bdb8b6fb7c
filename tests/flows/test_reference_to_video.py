"""The reference_to_video flow under a real Prefect server, against the emulator over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import pytest

from seedance_prefect.errors import (
    AuthenticationError,
    GenerationFailed,
    InvalidRequest,
)
from seedance_prefect.flows import reference_to_video
from seedance_prefect.media.samples import make_image
from tests.kit import API_KEY, set_faults, stats

pytestmark = pytest.mark.usefixtures("prefect_server")


def _request(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    image = make_image(tmp_path / "ref.png", 640, 480, format="PNG", seed=7)
    body: dict[str, Any] = {
        "prompt": "@Image1 rolls down a green hill",
        "input_images": [str(image)],
        "resolution": "480p",
        "duration": "4",
        "aspect_ratio": "16:9",
        "seed": 3,
    }
    body.update(overrides)
    return body


def _run(request: dict[str, Any], out: Path, **kwargs: Any) -> list[dict[str, Any]]:
    return reference_to_video(request, output=str(out), poll_interval=2.0, timeout_seconds=60, **kwargs)


def _probe(path: str) -> tuple[int, int, float, bool, str]:
    with av.open(path) as container:
        video = container.streams.video[0]
        duration = float(container.duration or 0) / 1_000_000
        has_audio = bool(container.streams.audio)
        for _ in container.decode(video=0):
            pass
        return (
            video.codec_context.width,
            video.codec_context.height,
            duration,
            has_audio,
            video.codec_context.name,
        )


def _emulator_sha(emu: object, generation_id: str) -> str:
    return stats(emu)["generations"][generation_id]["result"]["sha256"]


class TestSuccess:
    def test_queue_delivers_a_verified_mp4_with_sidecar(self, emulator, out_dir, tmp_path):
        [delivered] = _run(_request(tmp_path), out_dir, name="hill")

        video = Path(delivered["video"])
        assert video == out_dir / "hill.mp4"
        assert _probe(str(video)) == (854, 480, pytest.approx(4.0, abs=0.1), True, "h264")
        sidecar = json.loads((out_dir / "hill.json").read_text())
        assert sidecar["generation_id"] == delivered["generation_id"]
        assert sidecar["sha256"] == delivered["sha256"] == _emulator_sha(emulator, delivered["generation_id"])
        assert sidecar["request"]["prompt"] == "@Image1 rolls down a green hill"
        assert sidecar["probe"]["video_codec"] == "h264"
        assert sidecar["estimated_cost_usd"] == pytest.approx(1.6)
        assert stats(emulator)["enqueue_calls"] == 1
        assert not list((out_dir / ".seedance-work").glob("*"))

    def test_rerun_reattaches_instead_of_paying_again(self, emulator, out_dir, tmp_path):
        first = _run(_request(tmp_path), out_dir, name="again")
        second = _run(_request(tmp_path), out_dir, name="again")
        assert second[0]["generation_id"] == first[0]["generation_id"]
        assert second[0]["reused"] is True
        assert stats(emulator)["enqueue_calls"] == 1

    def test_new_forces_a_fresh_generation(self, emulator, out_dir, tmp_path):
        first = _run(_request(tmp_path), out_dir, name="fresh")
        second = _run(_request(tmp_path), out_dir, name="fresh", new=True)
        assert second[0]["generation_id"] != first[0]["generation_id"]
        assert stats(emulator)["enqueue_calls"] == 2

    def test_three_generations_give_three_outputs(self, emulator, out_dir, tmp_path):
        delivered = _run(_request(tmp_path, num_generations=3), out_dir, name="trio")
        assert [Path(d["video"]).name for d in delivered] == ["trio-1.mp4", "trio-2.mp4", "trio-3.mp4"]
        assert len({d["generation_id"] for d in delivered}) == 3
        assert stats(emulator)["generations_created"] == 3

    @pytest.mark.parametrize("response_format", ["url", "b64_json"])
    def test_sync_endpoint(self, emulator, out_dir, tmp_path, response_format):
        request = _request(tmp_path, response_format=response_format, generate_audio=False)
        [delivered] = _run(request, out_dir, sync=True, name=f"sync-{response_format}")
        assert _probe(delivered["video"])[3] is False
        assert json.loads(Path(delivered["sidecar"]).read_text())["source"] == response_format
        assert stats(emulator)["generate_calls"] == 1
        assert stats(emulator)["enqueue_calls"] == 0


class TestFailures:
    def test_invalid_request_is_refused_before_any_call(self, emulator, out_dir, tmp_path):
        request = _request(tmp_path, duration="3", input_audios=[str(tmp_path / "missing.wav")])
        with pytest.raises(InvalidRequest) as info:
            _run(request, out_dir)
        fields = info.value.fields
        assert "duration" in fields and "input_audios[0]" in fields
        api_calls = {r: n for r, n in stats(emulator)["requests_by_route"].items() if " /api/" in r}
        assert api_calls == {}

    def test_failed_generation_fails_without_retry(self, emulator, out_dir, tmp_path):
        set_faults(emulator, "fail=1")
        with pytest.raises(GenerationFailed):
            _run(_request(tmp_path), out_dir)
        assert stats(emulator)["enqueue_calls"] == 1
        assert not list(out_dir.glob("*.mp4"))

    def test_wrong_key_is_permanent(self, emulator, out_dir, tmp_path, monkeypatch):
        monkeypatch.setenv("OXEN_API_KEY", "")
        with pytest.raises(AuthenticationError):
            _run(_request(tmp_path), out_dir)
        assert stats(emulator)["enqueue_calls"] == 0

    def test_transient_errors_are_retried(self, emulator, out_dir, tmp_path):
        set_faults(emulator, "5xx=0.3,429=0.2,poll429=1")
        [delivered] = _run(_request(tmp_path), out_dir)
        assert delivered["sha256"] == _emulator_sha(emulator, delivered["generation_id"])
        s = stats(emulator)
        assert s["generations_created"] == 1
        assert sum(s["faults"].values()) >= 1

    def test_lost_enqueue_answer_still_one_generation(self, emulator, out_dir, tmp_path):
        set_faults(emulator, "drop_enqueue=1")
        [delivered] = _run(_request(tmp_path), out_dir)
        s = stats(emulator)
        assert s["generations_created"] == 1
        assert s["faults"]["drop_enqueue"] >= 1
        assert Path(delivered["video"]).exists()

    def test_truncated_download_is_retried_and_never_delivered_short(self, emulator, out_dir, tmp_path):
        set_faults(emulator, "truncate=0.5")
        [delivered] = _run(_request(tmp_path), out_dir)
        assert delivered["sha256"] == _emulator_sha(emulator, delivered["generation_id"])

    def test_oversized_download_is_refused_and_never_delivered(self, emulator, out_dir, tmp_path):
        from seedance_prefect.credentials import OxenCredentials
        from seedance_prefect.errors import DownloadError

        set_faults(emulator, "")
        creds = OxenCredentials(api_key=API_KEY, base_url=emulator.base_url, max_download_bytes=10_000)
        with pytest.raises(DownloadError, match="over the size cap"):
            _run(_request(tmp_path), out_dir, credentials=creds, name="too-big")
        s = stats(emulator)
        assert s["generations_created"] == 1
        routes = s["requests_by_route"]
        downloads = sum(n for r, n in routes.items() if r.startswith("GET") and "/files/" in r)
        assert downloads == 1  # tried once, refused, not retried (a permanent error)
        assert not [p for p in out_dir.rglob("*") if p.is_file() and p.suffix in (".mp4", ".json", ".part")]

    def test_deadline_cancels_the_remote_generation(self, emulator, out_dir, tmp_path):
        from seedance_prefect.errors import GenerationTimeout

        set_faults(emulator, "")
        with pytest.raises(GenerationTimeout):
            reference_to_video(
                _request(tmp_path, duration="5"), output=str(out_dir), poll_interval=0.5, timeout_seconds=0.05
            )
        s = stats(emulator)
        assert s["deletes"] >= 1


def test_api_key_is_not_in_outputs_or_database(emulator, out_dir, tmp_path, prefect_server):
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    from seedance_prefect.credentials import OxenCredentials

    creds = OxenCredentials(api_key=API_KEY, base_url=emulator.base_url)
    _run(_request(tmp_path), out_dir, credentials=creds, name="secret-scan")
    for path in out_dir.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
    db_url = str(PREFECT_API_DATABASE_CONNECTION_URL.value() or "")
    db_file = Path(db_url.split("///", 1)[-1])
    assert db_file.exists(), db_url
    scanned = list(db_file.parent.glob(db_file.name + "*"))
    # a positive control: the run's parameters are in this database, the key is not
    assert any(b"rolls down a green hill" in p.read_bytes() for p in scanned)
    for candidate in scanned:
        assert API_KEY.encode() not in candidate.read_bytes(), candidate
