"""verify_video_file against real MP4s made with PyAV."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedance_prefect.delivery.verify import expected_dimensions, verify_video_file
from seedance_prefect.errors import VerificationFailed
from seedance_prefect.media.samples import make_video
from seedance_prefect.models import SeedanceRequest


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "c.mp4", 854, 480, seconds=4.0, audio=True)


def test_expected_dimensions():
    assert expected_dimensions("720p", "21:9") == (1680, 720)
    assert expected_dimensions("480p", "1:1") == (480, 480)
    assert expected_dimensions("720p", "auto") is None


def test_matching_video_passes(clip):
    probe = verify_video_file(
        clip, SeedanceRequest(prompt="x", resolution="480p", duration="4", aspect_ratio="16:9")
    )
    assert (probe["width"], probe["height"], probe["has_audio"]) == (854, 480, True)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"resolution": "720p"}, "resolution"),
        ({"aspect_ratio": "9:16"}, "aspect ratio"),
        ({"duration": "8"}, "duration"),
        ({"generate_audio": False}, "audio"),
    ],
)
def test_each_mismatch_is_reported(clip, overrides, reason):
    request = SeedanceRequest(
        prompt="x", **{"resolution": "480p", "duration": "4", "aspect_ratio": "16:9", **overrides}
    )
    with pytest.raises(VerificationFailed, match=reason):
        verify_video_file(clip, request)


def test_truncated_file_fails(clip, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(VerificationFailed):
        verify_video_file(broken, SeedanceRequest(prompt="x", resolution="480p", duration="4"))


def test_not_a_video_fails(tmp_path):
    text = tmp_path / "x.mp4"
    text.write_text("hello")
    with pytest.raises(VerificationFailed, match="not a video"):
        verify_video_file(text, SeedanceRequest(prompt="x"))
