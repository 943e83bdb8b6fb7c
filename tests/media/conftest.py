"""Sample media shared by the probe tests: generated once per session, small and fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedance_prefect.media.samples import make_audio, make_image, make_video


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Name -> path of every sample the probe tests read (names deliberately carry wrong extensions)."""
    root = tmp_path_factory.mktemp("media")
    files = {
        "jpeg": make_image(root / "photo.jpg", 640, 480),
        "png": make_image(root / "photo.png", 640, 480, format="PNG"),
        "webp": make_image(root / "photo.webp", 640, 480, format="WEBP"),
        "exif6": make_image(root / "portrait.jpg", 400, 300, exif_orientation=6),
        "gif": make_image(root / "anim.gif", 64, 48, format="GIF"),
        "png_as_mp4": make_image(root / "clip.mp4", 320, 240, format="PNG"),
        "mp4": make_video(root / "clip.mp4.bin", 320, 240, 1.0, fps=12),
        "mov": make_video(root / "clip.mov", 320, 240, 1.0, fps=12, container="mov", audio=True),
        "rotated": make_video(root / "phone.mov", 320, 240, 1.0, fps=12, container="mov", rotation=90),
        "vfr": make_video(root / "vfr.mp4", 320, 240, 2.0, fps=12, variable_frame_rate=True),
        "webm": make_video(root / "clip.webm", 160, 120, 0.5, fps=8, codec="libvpx-vp9", container="webm"),
        "wav": make_audio(root / "tone.wav", 1.5),
        "mp3": make_audio(root / "tone.mp3", 1.5, format="mp3", channels=1, sample_rate=22050),
        "flac": make_audio(root / "tone.flac", 0.5, format="flac"),
        "m4a": make_audio(root / "tone.m4a", 0.5, format="m4a"),
    }
    text = root / "notes.jpg"
    text.write_text("these are notes, not a picture\n" * 20)
    files["text"] = text
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    files["empty"] = empty
    data = files["mp4"].read_bytes()
    truncated = root / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    files["truncated"] = truncated
    png = files["png"].read_bytes()
    broken_png = root / "broken.png"
    broken_png.write_bytes(png[:200])
    files["broken_png"] = broken_png
    return files
