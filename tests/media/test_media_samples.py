"""Sample generators: deterministic, exact sizes, the requested properties, clear errors."""

from __future__ import annotations

import av
import pytest
from PIL import Image

from seedance_prefect.media.probe import decode_check, probe_path
from seedance_prefect.media.samples import make_audio, make_image, make_video, pattern


def test_images_are_deterministic(tmp_path):
    for fmt in ("JPEG", "PNG", "WEBP"):
        a = make_image(tmp_path / f"a.{fmt}", 96, 64, format=fmt, seed=3).read_bytes()
        b = make_image(tmp_path / f"b.{fmt}", 96, 64, format=fmt, seed=3).read_bytes()
        c = make_image(tmp_path / f"c.{fmt}", 96, 64, format=fmt, seed=4).read_bytes()
        assert a == b and a != c, fmt


def test_pattern_marks_the_top_left_corner():
    im = pattern(100, 80)
    assert im.getpixel((1, 1)) == (255, 255, 255)
    assert im.getpixel((99, 79)) != (255, 255, 255)


def test_image_exif_orientation_is_written(tmp_path):
    with Image.open(make_image(tmp_path / "x.jpg", 80, 60, exif_orientation=8)) as im:
        assert im.getexif()[0x0112] == 8


def test_png_padding_is_exact_and_harmless(tmp_path):
    path = make_image(tmp_path / "p.png", 64, 64, format="PNG", pad_to_bytes=100_000)
    assert path.stat().st_size == 100_000
    info = probe_path(path)
    assert (info.kind, info.width, info.error) == ("image", 64, None)
    with Image.open(path) as im:
        im.load()


def test_padding_refused_where_unsupported(tmp_path):
    with pytest.raises(ValueError, match="PNG"):
        make_image(tmp_path / "x.jpg", 64, 64, pad_to_bytes=10_000)
    with pytest.raises(ValueError, match="WAV"):
        make_audio(tmp_path / "x.mp3", 0.2, format="mp3", pad_to_bytes=10_000)
    with pytest.raises(ValueError, match="MP4"):
        make_video(tmp_path / "x.webm", 64, 64, 0.2, container="webm", pad_to_bytes=10_000)
    with pytest.raises(ValueError, match="smaller"):
        make_image(tmp_path / "y.png", 64, 64, format="PNG", pad_to_bytes=10)


def test_video_properties(tmp_path):
    path = make_video(tmp_path / "v.mp4", 176, 144, 1.5, fps=10, audio=True, seed=2)
    info = probe_path(path)
    assert (info.container, info.width, info.height, info.video_codec) == ("mp4", 176, 144, "h264")
    assert info.duration == pytest.approx(1.5) and info.fps == pytest.approx(10)
    assert info.has_audio and info.audio_codec == "aac"
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 15
    assert decode_check(path) is None


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_video_rotation_round_trips(tmp_path, rotation):
    info = probe_path(make_video(tmp_path / "r.mp4", 64, 48, 0.25, fps=8, rotation=rotation))
    assert info.rotation == rotation
    assert (info.width, info.height) == ((48, 64) if rotation in (90, 270) else (64, 48))


def test_video_padding_is_exact(tmp_path):
    path = make_video(tmp_path / "v.mov", 64, 48, 0.25, fps=8, container="mov", pad_to_bytes=2_000_000)
    assert path.stat().st_size == 2_000_000
    info = probe_path(path)
    assert (info.container, info.duration, info.error) == ("mov", 0.25, None)
    assert decode_check(path) is None


def test_video_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="even"):
        make_video(tmp_path / "odd.mp4", 65, 48, 0.25)
    with pytest.raises(ValueError, match="container"):
        make_video(tmp_path / "x.flv", 64, 48, 0.25, container="flv")


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "m4a", "ogg"])
def test_audio_formats(tmp_path, fmt):
    info = probe_path(make_audio(tmp_path / f"a.{fmt}", 0.5, format=fmt))
    assert info.kind == "audio" and info.error is None
    assert info.duration == pytest.approx(0.5, abs=0.03)


def test_audio_wav_is_deterministic_and_paddable(tmp_path):
    a = make_audio(tmp_path / "a.wav", 0.3, seed=5).read_bytes()
    assert a == make_audio(tmp_path / "b.wav", 0.3, seed=5).read_bytes()
    assert a != make_audio(tmp_path / "c.wav", 0.3, seed=6).read_bytes()
    padded = make_audio(tmp_path / "p.wav", 0.3, pad_to_bytes=200_000)
    assert padded.stat().st_size == 200_000
    info = probe_path(padded)
    assert info.duration == pytest.approx(0.3) and info.error is None
    assert decode_check(padded) is None


def test_audio_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="unsupported audio format"):
        make_audio(tmp_path / "a.aiff", 0.2, format="aiff")
    with pytest.raises(ValueError, match="even"):
        make_audio(tmp_path / "a.wav", 0.2, pad_to_bytes=100_001)
