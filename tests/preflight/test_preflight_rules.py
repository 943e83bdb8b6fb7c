"""The media rules at their exact boundaries, on hand-made MediaInfo values (no files)."""

from __future__ import annotations

import pytest

from seedance_prefect import limits
from seedance_prefect.media.probe import MediaInfo
from seedance_prefect.rules import (
    DURATION_TOLERANCE_S,
    audio_rules,
    audio_total_rules,
    fmt_bytes,
    fmt_pixels,
    fmt_seconds,
    image_rules,
    video_rules,
    video_total_rules,
)


def image(**kw: object) -> MediaInfo:
    base = {"kind": "image", "container": "jpeg", "size_bytes": 1000, "width": 1024, "height": 768}
    return MediaInfo(**{**base, **kw})  # type: ignore[arg-type]


def video(**kw: object) -> MediaInfo:
    base = {
        "kind": "video",
        "container": "mp4",
        "size_bytes": 1000,
        "width": 1280,
        "height": 720,
        "coded_width": 1280,
        "coded_height": 720,
        "duration": 5.0,
        "fps": 24.0,
        "has_video": True,
    }
    return MediaInfo(**{**base, **kw})  # type: ignore[arg-type]


def audio(**kw: object) -> MediaInfo:
    base = {"kind": "audio", "container": "mp3", "size_bytes": 1000, "duration": 5.0, "has_audio": True}
    return MediaInfo(**{**base, **kw})  # type: ignore[arg-type]


def names(problems: list) -> list[str]:
    return [p.message for p in problems if p.severity == "error"]


@pytest.mark.parametrize(
    ("size", "ok"), [(limits.IMAGE_MAX_BYTES, True), (limits.IMAGE_MAX_BYTES + 1, False)]
)
def test_image_bytes(size, ok):
    assert (names(image_rules("f", image(size_bytes=size))) == []) is ok


@pytest.mark.parametrize(
    ("container", "ok"),
    [
        ("jpeg", True),
        ("png", True),
        ("webp", True),
        ("heic", False),
        ("avif", False),
        ("tiff", False),
        ("gif", False),
    ],
)
def test_image_formats(container, ok):
    problems = image_rules("f", image(container=container))
    assert (names(problems) == []) is ok
    assert all(p.fixable for p in problems)


@pytest.mark.parametrize(
    ("width", "height", "warns"),
    [
        (300, 300, False),
        (299, 400, True),
        (6000, 3000, False),
        (6001, 3000, True),
        (1000, 400, False),
        (1001, 400, True),
        (400, 1000, False),
        (400, 1001, True),
    ],
)
def test_image_upstream_sides_and_aspect_are_warnings(width, height, warns):
    problems = image_rules("f", image(width=width, height=height))
    assert names(problems) == []
    assert bool(problems) is warns
    assert all(p.severity == "warning" for p in problems)


@pytest.mark.parametrize(
    ("width", "height", "ok"),
    [
        (640, 640, True),
        (1112, 834, True),
        (834, 1112, True),
        (1280, 720, True),
        (854, 480, True),
        (640, 638, False),
        (1114, 834, False),
        (832, 480, False),
        (1920, 1080, False),
    ],
)
def test_video_pixel_window(width, height, ok):
    assert (names(video_rules("f", video(width=width, height=height))) == []) is ok


@pytest.mark.parametrize(
    ("container", "ok"), [("mp4", True), ("mov", True), ("webm", False), ("mkv", False), ("avi", False)]
)
def test_video_containers(container, ok):
    assert (names(video_rules("f", video(container=container))) == []) is ok


@pytest.mark.parametrize(
    ("durations", "expected"),
    [
        ([2.0], []),
        ([2.0 - DURATION_TOLERANCE_S], []),
        ([1.97], ["Videos too short in total"]),
        ([1.9], ["Videos too short in total"]),
        ([1.0, 1.0], []),
        ([15.0], []),
        ([15.0 + DURATION_TOLERANCE_S], []),
        ([15.03], ["Videos too long in total"]),
        ([5.0, 5.0, 5.0], []),
        ([5.0, 5.0, 5.5], ["Videos too long in total"]),
    ],
)
def test_video_total_duration(durations, expected):
    items = [(f"input_videos[{i}]", video(duration=d)) for i, d in enumerate(durations)]
    assert names(video_total_rules(items)) == expected


def test_video_total_with_unmeasured_reference():
    # a remote video may be long enough: too short is not claimed; too long is, from the known part
    assert video_total_rules([("input_videos[0]", video(duration=1.0)), ("input_videos[1]", None)]) == []
    long = video_total_rules([("input_videos[0]", video(duration=16.0)), ("input_videos[1]", None)])
    assert names(long) == ["Videos too long in total"]


@pytest.mark.parametrize(
    ("sizes", "ok"),
    [
        ([49_999_999], True),
        ([50_000_000], False),
        ([24_950_000, 24_950_000], True),
        ([24_950_000, 25_050_000], False),
    ],
)
def test_video_total_size(sizes, ok):
    items = [(f"input_videos[{i}]", video(size_bytes=s, duration=2.0)) for i, s in enumerate(sizes)]
    assert (names(video_total_rules(items)) == []) is ok


@pytest.mark.parametrize(
    ("size", "ok"), [(limits.AUDIO_MAX_BYTES, True), (limits.AUDIO_MAX_BYTES + 1, False)]
)
def test_audio_bytes(size, ok):
    assert (names(audio_rules("f", audio(size_bytes=size))) == []) is ok


@pytest.mark.parametrize(
    ("durations", "ok"),
    [
        ([15.0], True),
        ([5.0, 5.0, 5.0], True),
        ([15.5], False),
        ([5.0, 5.0, 5.5], False),
        ([15.01], True),
        ([15.03], False),
    ],
)
def test_audio_total_duration(durations, ok):
    items = [(f"input_audios[{i}]", audio(duration=d)) for i, d in enumerate(durations)]
    assert (audio_total_rules(items) == []) is ok


@pytest.mark.parametrize(
    ("container", "ok"), [("mp3", True), ("wav", True), ("flac", False), ("m4a", False), ("ogg", False)]
)
def test_audio_formats(container, ok):
    assert (names(audio_rules("f", audio(container=container))) == []) is ok


def test_unreadable_media_is_one_error():
    (problem,) = image_rules("input_images[0]", MediaInfo(error="boom"))
    assert problem.message == "Not a readable image file" and problem.found == "boom"
    (problem,) = video_rules("input_videos[0]", video(error="truncated"))
    assert problem.message == "Not a readable video file"


def test_formatting_helpers():
    assert fmt_bytes(61_300_000) == "61.3 MB"
    assert fmt_bytes(30_000_001, limits.IMAGE_MAX_BYTES) == "30.0 MB (30,000,001 bytes)"
    assert fmt_seconds(18.24) == "18.2 s"
    assert fmt_seconds(15.049, 15.0) == "15.049 s"
    assert fmt_pixels(1920, 1080) == "1920x1080 = 2,073,600 px"
