"""What a normalizer makes of a file: image, video and audio targets (plain data, no I/O).

Example:
    >>> ImageTarget(False, None, None, 640, 480, "PNG", 30_000_000, 95).extension
    'png'
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = ["AudioTarget", "ImageTarget", "Target", "VideoTarget"]


@dataclass(frozen=True)
class ImageTarget:
    """How an image is rewritten.

    Attributes:
        orient: Apply the EXIF orientation (the pixels are turned upright, the tag dropped).
        canvas: ``(width, height)`` after padding/cropping to the aspect window, or None.
        aspect_mode: ``"pad"`` or ``"crop"`` when ``canvas`` is set.
        width: Final width.
        height: Final height.
        format: Pillow format of the output: ``"JPEG"``, ``"PNG"`` or ``"WEBP"``.
        max_bytes: Byte cap of the output.
        quality: First JPEG/WebP quality tried.
    """

    orient: bool
    canvas: tuple[int, int] | None
    aspect_mode: str | None
    width: int
    height: int
    format: str
    max_bytes: int
    quality: int

    @property
    def extension(self) -> str:
        """File extension of the output."""
        return {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[self.format]


@dataclass(frozen=True)
class VideoTarget:
    """How a video is re-encoded (always H.264 yuv420p + AAC in MP4 with ``+faststart``).

    Attributes:
        rotation: Counter-clockwise degrees the stored frames are turned (0, 90, 180, 270).
        width: Output width (display orientation, even).
        height: Output height (even).
        fps: Output frame rate (constant), as ``"num/den"``.
        start: In point, seconds of the source.
        end: Out point, seconds of the source.
        frames: Exact number of frames written (``floor((end - start) * fps)``).
        audio: Keep the first audio track (re-encoded to AAC).
        crf: x264 CRF.
        preset: x264 preset.
        max_bitrate: x264 ``maxrate`` in bits/s (keeps the videos under 50 MB in total).
        scale_flags: FFmpeg scaler.
        audio_bitrate: AAC bitrate.
    """

    rotation: int
    width: int
    height: int
    fps: str
    start: float
    end: float
    frames: int
    audio: bool
    crf: int
    preset: str
    max_bitrate: int | None
    scale_flags: str
    audio_bitrate: int

    extension = "mp4"

    @property
    def rate(self) -> Fraction:
        """The frame rate as a Fraction."""
        return Fraction(self.fps)

    @property
    def duration(self) -> float:
        """Seconds of output video."""
        return self.frames / float(self.rate)


@dataclass(frozen=True)
class AudioTarget:
    """How an audio reference is rewritten.

    Attributes:
        format: ``"wav"`` (PCM s16le) or ``"mp3"`` (libmp3lame).
        sample_rate: Output sample rate.
        channels: 1 or 2.
        start: In point, seconds of the source.
        end: Out point, seconds of the source.
        samples: Exact number of samples per channel written.
        bitrate: MP3 bitrate.
    """

    format: Literal["wav", "mp3"]
    sample_rate: int
    channels: int
    start: float
    end: float
    samples: int
    bitrate: int

    @property
    def extension(self) -> str:
        """File extension of the output."""
        return self.format


Target = ImageTarget | VideoTarget | AudioTarget
