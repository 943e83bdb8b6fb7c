"""Reference media for the preflight tests, generated lazily once per session.

``refs["v2"]`` makes the file on first use, so a targeted run generates only what it needs.
Sizes and durations sit exactly on the documented limits (frames * fps chosen to be exact,
files padded to exact byte counts), so both sides of every limit are real files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from seedance_prefect.media.samples import make_audio, make_image, make_video
from tests.mediakit import LazyMedia, write

MODEL = "bytedance-seedance-2-0-reference-to-video"


def _recipes() -> dict[str, Callable[[Path], Path]]:
    def video(w: int, h: int, s: float, fps: int = 4, **kw: object) -> Callable[[Path], Path]:
        return lambda p: make_video(p, w, h, s, fps=fps, **kw)  # type: ignore[arg-type]

    return {
        # images
        "jpeg": lambda p: make_image(p.with_suffix(".jpg"), 1024, 768),
        "png": lambda p: make_image(p.with_suffix(".png"), 640, 640, format="PNG"),
        "webp": lambda p: make_image(p.with_suffix(".webp"), 800, 600, format="WEBP"),
        "gif": lambda p: make_image(p.with_suffix(".gif"), 400, 400, format="GIF"),
        "heic": lambda p: make_image(p.with_suffix(".heic"), 640, 480, format="HEIC"),
        "small": lambda p: make_image(p.with_suffix(".jpg"), 200, 320),
        "wide": lambda p: make_image(p.with_suffix(".jpg"), 1600, 400),
        "exif6": lambda p: make_image(p.with_suffix(".jpg"), 800, 600, exif_orientation=6),
        "img_30mb": lambda p: make_image(
            p.with_suffix(".png"), 640, 480, format="PNG", pad_to_bytes=30_000_000
        ),
        "img_30mb_plus": lambda p: make_image(
            p.with_suffix(".png"), 640, 480, format="PNG", pad_to_bytes=30_000_001
        ),
        "png_named_mp4": lambda p: make_image(p.with_suffix(".mp4"), 640, 640, format="PNG"),
        # videos (854x480 = 409,920 px, inside the window)
        "v2": video(854, 480, 2.0, fps=24),
        "v19": video(854, 480, 1.9, fps=10),
        "v5": video(854, 480, 5.0),
        "v55": video(854, 480, 5.5),
        "v15": video(854, 480, 15.0),
        "v155": video(854, 480, 15.5),
        "mov": video(854, 480, 2.0, fps=24, container="mov", audio=True),
        "webm": video(854, 480, 2.0, codec="libvpx-vp9", container="webm"),
        "rotated": video(854, 480, 2.0, fps=24, rotation=90),
        "vfr": video(854, 480, 2.0, fps=24, variable_frame_rate=True),
        "px_640x640": video(640, 640, 2.0),
        "px_638x640": video(638, 640, 2.0),
        "px_1112x834": video(1112, 834, 2.0),
        "px_1114x834": video(1114, 834, 2.0),
        "px_1920x1080": video(1920, 1080, 2.0),
        "v_24_95mb": video(854, 480, 2.0, pad_to_bytes=24_950_000),
        "v_25_05mb": video(854, 480, 2.0, pad_to_bytes=25_050_000),
        # audio
        "a5": lambda p: make_audio(p.with_suffix(".wav"), 5.0, sample_rate=8000, channels=1),
        "a55": lambda p: make_audio(p.with_suffix(".wav"), 5.5, sample_rate=8000, channels=1),
        "mp3": lambda p: make_audio(p.with_suffix(".mp3"), 3.0, format="mp3"),
        "flac": lambda p: make_audio(p.with_suffix(".flac"), 1.0, format="flac"),
        "a_15mb": lambda p: make_audio(p.with_suffix(".wav"), 1.0, pad_to_bytes=15_000_000),
        "a_15mb_plus": lambda p: make_audio(p.with_suffix(".wav"), 1.0, pad_to_bytes=15_000_002),
        # not media
        "text_named_jpg": lambda p: write(p.with_suffix(".jpg"), b"a shopping list, not a photo\n" * 10),
    }


@pytest.fixture(scope="session")
def refs(tmp_path_factory: pytest.TempPathFactory) -> LazyMedia:
    """Name -> path of the reference files (``refs.s(name)``: as a string, as in a request)."""
    return LazyMedia(tmp_path_factory.mktemp("refs"), _recipes())
