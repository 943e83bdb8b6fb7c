"""Check that a downloaded video is what the request asked for, by probing it with PyAV.

Checks: an MP4 container with an H.264 video stream; the resolution class (short side 480 or 720,
within 10 %); the aspect ratio (within 3 %, unless ``"auto"``); the duration (within
:data:`DURATION_TOLERANCE_SECONDS` of the asked one, or 4-15 s for ``"auto"``); an audio track if
and only if ``generate_audio``; every packet decodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import VerificationFailed
from ..media.probe import MediaInfo, decode_check, probe_path
from ..models import SeedanceRequest

__all__ = ["DURATION_TOLERANCE_SECONDS", "check_video", "expected_dimensions", "verify_video_file"]

RESOLUTION_TOLERANCE = 0.10
ASPECT_TOLERANCE = 0.03
DURATION_TOLERANCE_SECONDS = 0.5


def expected_dimensions(resolution: str, aspect_ratio: str) -> tuple[int, int] | None:
    """Return the expected (width, height) of a result, or None when the aspect is ``"auto"``.

    The short side is 480 or 720; the long side is the short side times the ratio, made even.

    Example:
        >>> expected_dimensions("720p", "16:9"), expected_dimensions("480p", "9:16")
        ((1280, 720), (480, 854))
    """
    if aspect_ratio in ("auto", "adaptive"):
        return None
    short = int(resolution.rstrip("p"))
    w_ratio, h_ratio = (int(x) for x in aspect_ratio.split(":"))
    long_side = round(short * max(w_ratio, h_ratio) / min(w_ratio, h_ratio) / 2) * 2
    return (long_side, short) if w_ratio >= h_ratio else (short, long_side)


def check_video(info: MediaInfo, request: SeedanceRequest) -> list[str]:
    """Return one sentence per check that ``info`` fails against ``request`` (empty when all pass).

    Example:
        >>> from seedance_prefect.media.probe import MediaInfo
        >>> info = MediaInfo(kind="video", container="mp4", size_bytes=1, width=1280, height=720,
        ...                  duration=8.0, video_codec="h264", has_video=True, has_audio=False)
        >>> check_video(info, SeedanceRequest(prompt="x", duration="8", aspect_ratio="16:9"))
        ['audio: asked for generate_audio=True but the video has no audio track']
    """
    problems: list[str] = []
    if info.kind != "video" or not info.has_video:
        return [f"not a video (probed as {info.kind}{': ' + info.error if info.error else ''})"]
    if info.container not in ("mp4", "mov"):
        problems.append(f"container: expected MP4, found {info.container}")
    if info.video_codec != "h264":
        problems.append(f"codec: expected H.264, found {info.video_codec}")
    width, height = info.width or 0, info.height or 0
    short = min(width, height)
    target = int(request.resolution.rstrip("p"))
    if not short or abs(short - target) > target * RESOLUTION_TOLERANCE:
        problems.append(f"resolution: expected short side {target} px (±10%), found {width}x{height}")
    expected = expected_dimensions(request.resolution, request.aspect_ratio)
    if expected and short:
        want, got = expected[0] / expected[1], width / height
        if abs(got - want) / want > ASPECT_TOLERANCE:
            problems.append(f"aspect ratio: expected {request.aspect_ratio} (±3%), found {width}x{height}")
    duration = info.duration or 0.0
    if request.duration == "auto":
        if not 4 - DURATION_TOLERANCE_SECONDS <= duration <= 15 + DURATION_TOLERANCE_SECONDS:
            problems.append(f'duration: expected 4-15 s for "auto", found {duration:.2f} s')
    elif abs(duration - int(request.duration)) > DURATION_TOLERANCE_SECONDS:
        problems.append(
            f"duration: expected {request.duration} s (±{DURATION_TOLERANCE_SECONDS} s), "
            f"found {duration:.2f} s"
        )
    if request.generate_audio and not info.has_audio:
        problems.append("audio: asked for generate_audio=True but the video has no audio track")
    if not request.generate_audio and info.has_audio:
        problems.append("audio: asked for generate_audio=False but the video has an audio track")
    return problems


def verify_video_file(path: str | Path, request: SeedanceRequest) -> dict[str, Any]:
    """Probe a video, check it against the request and decode it completely.

    Args:
        path: The downloaded video.
        request: The request it was generated from.

    Returns:
        The probe as a JSON-ready dict.

    Raises:
        VerificationFailed: With every failed check.

    Example:
        ```python
        probe = verify_video_file("out/video.mp4", SeedanceRequest(prompt="x", duration="5"))
        ```
    """
    info = probe_path(path)
    problems = check_video(info, request)
    if not problems:
        error = decode_check(path)
        if error:
            problems.append(f"decode: {error}")
    if problems:
        raise VerificationFailed(problems)
    return info.to_dict()
