"""The whole flow with each hosting strategy: the service side receives only compliant references."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from seedance_prefect import limits
from seedance_prefect.errors import InvalidRequest
from seedance_prefect.flows import reference_to_video
from seedance_prefect.media.probe import probe_bytes
from tests.references.conftest import emulator_stats, request_for

pytestmark = pytest.mark.usefixtures("prefect_server")

IMAGE_FORMATS = {"JPEG", "PNG", "WEBP"}


@pytest.fixture
def state(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One state folder for the flow tests: prepared references are encoded once for all of them."""
    monkeypatch.setenv("SEEDANCE_STATE_DIR", str(shared_cache / "flow-state"))
    return shared_cache / "flow-state"


def _body(media: Any) -> dict[str, Any]:
    body = request_for(
        input_images=[media.s("exif6"), media.s("png_ok")],
        input_videos=[media.s("rotated"), media.s("vfr")],
        input_audios=[media.s("wav20")],
    )
    return {**body, "resolution": "480p", "duration": "4", "seed": 1}


def _run(body: dict[str, Any], tmp_path: Path, **kwargs: Any) -> list[dict[str, Any]]:
    return reference_to_video(
        body,
        output=str(tmp_path / "out"),
        journal_dir=str(tmp_path / "journal"),
        poll_interval=2.0,
        timeout_seconds=120,
        **kwargs,
    )


def _received(emu: Any) -> list[dict[str, Any]]:
    [generation] = emulator_stats(emu)["generations"].values()
    assert generation["status"] == "succeeded", generation.get("error_message")
    return generation["references"]


def _assert_compliant(references: list[dict[str, Any]]) -> None:
    """What the service received breaks no documented or upstream limit."""
    assert references and all(r["fetched"] for r in references)
    videos = [r for r in references if r["field"] == "input_videos"]
    for r in references:
        probe = r["probe"]
        if r["field"] == "input_images":
            assert probe["format"] in IMAGE_FORMATS and r["bytes"] <= limits.IMAGE_MAX_BYTES
            w, h = probe["width"], probe["height"]
            assert min(w, h) >= limits.IMAGE_MIN_SIDE and max(w, h) <= limits.IMAGE_MAX_SIDE
            assert limits.IMAGE_MIN_ASPECT <= w / h <= limits.IMAGE_MAX_ASPECT
        elif r["field"] == "input_videos":
            video = probe["video"]
            assert "mp4" in probe["format"] and video["codec"] == "h264"
            assert limits.VIDEO_MIN_PIXELS <= video["width"] * video["height"] <= limits.VIDEO_MAX_PIXELS
            assert 24 <= video["fps"] <= 60
        else:
            assert probe["format"] in ("wav", "mp3") and r["bytes"] <= limits.AUDIO_MAX_BYTES
            assert probe["audio"]["duration"] <= limits.AUDIO_MAX_TOTAL_SECONDS + 0.02
    seconds = sum(r["probe"]["video"]["duration"] for r in videos)
    assert limits.VIDEO_MIN_TOTAL_SECONDS <= seconds <= limits.VIDEO_MAX_TOTAL_SECONDS + 0.02
    assert sum(r["bytes"] for r in videos) < limits.VIDEO_TOTAL_MAX_BYTES


def _assert_compliant_one_untouched(references: list[dict[str, Any]], media: Any) -> None:
    png = next(r for r in references if r["field"] == "input_images" and r["index"] == 1)
    assert png["sha256"] == hashlib.sha256(media["png_ok"].read_bytes()).hexdigest()  # byte-identical


def _fix_table() -> list[dict[str, str]]:
    from prefect.artifacts import Artifact

    artifact = Artifact.get("seedance-reference-fixes")
    assert artifact is not None and artifact.type == "table"
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def test_data_uri_hosting_by_default(emulator, state, media, tmp_path):
    [delivered] = _run(_body(media), tmp_path)
    assert Path(delivered["video"]).is_file()
    references = _received(emulator)
    assert {r["scheme"] for r in references} == {"data"}
    _assert_compliant(references)
    _assert_compliant_one_untouched(references, media)
    rows = _fix_table()
    assert {(r["field"], r["what"]) for r in rows} >= {
        ("input_images[0]", "orient"),
        ("input_videos[0]", "rotate"),
        ("input_videos[1]", "frame rate"),
        ("input_audios[0]", "trim"),
        ("input_images[1]", "none"),
    }


def test_oxen_repository_hosting(emulator, state, media, tmp_path):
    _run(_body(media), tmp_path, hosting="oxen", repository="ada/refs")
    references = _received(emulator)
    assert {(r["scheme"], r["host"]) for r in references} == {("http", "127.0.0.1")}
    _assert_compliant(references)
    _assert_compliant_one_untouched(references, media)
    [generation] = emulator_stats(emulator)["generations"].values()
    rotated = generation["params"]["input_videos"][0]
    assert "/repos/ada/refs/file/main/seedance-references/" in rotated
    info = probe_bytes(httpx.get(rotated).content)
    assert (info.rotation, info.width, info.height, info.variable_frame_rate) == (0, 480, 854, False)
    assert emulator_stats(emulator)["uploads"] == 5


def test_s3_bucket_hosting(emulator, state, media, tmp_path, s3_bucket):
    s3_bucket.save("seedance-refs", overwrite=True)
    _run(_body(media), tmp_path, hosting="s3-bucket/seedance-refs")
    references = _received(emulator)
    assert {r["host"] for r in references} == {"127.0.0.1"}
    _assert_compliant(references)
    _assert_compliant_one_untouched(references, media)
    client = s3_bucket.credentials.get_s3_client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket.bucket_name)["Contents"]]
    assert len(keys) == 5 and all(k.startswith("seedance-references/") for k in keys)


def test_preprocessing_off_refuses_before_any_call(emulator, state, media, tmp_path):
    with pytest.raises(InvalidRequest) as info:
        _run(_body(media), tmp_path, fix_references=False)
    assert "input_audios" in info.value.fields
    assert emulator_stats(emulator)["enqueue_calls"] == 0
