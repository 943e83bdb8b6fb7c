"""Records of reference fixes (planned and applied), fix options, and per-reference in/out points.

A :class:`PlannedFix` says what preprocessing *would* change in one reference and why (``seedance
plan`` prints them, nothing is encoded); an :class:`AppliedFix` says what *was* changed, measured
on the output. Both name the request field and the file.

In/out points are written on the reference itself as a W3C media fragment, ``#t=<in>,<out>`` in
seconds (``clip.mp4#t=2,9``, ``#t=3`` from 3 s to the end, ``#t=,6`` the first 6 s), on local
files and ``data:`` URIs; :func:`split_trim` parses them. They never reach the API body: the
reference is trimmed locally and hosted as a new file.

Example:
    >>> split_trim("/clips/dance.mp4#t=2,9.5")
    ('/clips/dance.mp4', Trim(start=2.0, end=9.5))
    >>> print(PlannedFix("input_videos[0]", "dance.mp4", "scale", "above 927,408 px",
    ...                  "1920x1080 = 2,073,600 px", "1284x722 = 927,048 px"))
    input_videos[0] (dance.mp4): scale 1920x1080 = 2,073,600 px -> 1284x722 = 927,048 px (above 927,408 px)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["AppliedFix", "FixOptions", "PlannedFix", "Trim", "split_trim"]

_TRIM_RE = re.compile(r"#t=(?:npt:)?(?P<start>\d+(?:\.\d*)?)?(?:,(?P<end>\d+(?:\.\d*)?))?$")


@dataclass(frozen=True)
class Trim:
    """In/out points of one reference, in seconds of its own timeline.

    Attributes:
        start: In point (0 = the beginning).
        end: Out point; None = the end of the media.

    Example:
        >>> Trim(2, 9).length(20.0), Trim(3).length(10.0), Trim(0, 30).length(12.0)
        (7.0, 7.0, 12.0)
    """

    start: float = 0.0
    end: float | None = None

    def length(self, duration: float) -> float:
        """Seconds kept from media of ``duration`` seconds (0 when the in point is past the end)."""
        end = duration if self.end is None else min(self.end, duration)
        return float(max(0.0, end - self.start))

    def __str__(self) -> str:
        end = "" if self.end is None else f"{self.end:g}"
        return f"#t={self.start:g}" + (f",{end}" if end else "")


def split_trim(uri: str) -> tuple[str, Trim | None]:
    """Split a ``#t=in,out`` media fragment off a reference.

    Only a fragment at the very end of the string counts. The caller decides what to do with a
    literal ``#`` in a file name (preflight prefers an existing file of that exact name).

    Args:
        uri: A local path, ``file://`` URI or ``data:`` URI, maybe ending in ``#t=...``.

    Returns:
        ``(uri without the fragment, Trim)``, or ``(uri, None)`` without a fragment.

    Raises:
        ValueError: A ``#t=`` fragment that is malformed or whose out point is not after its in point.

    Example:
        >>> split_trim("a.wav#t=,6"), split_trim("a.wav")
        (('a.wav', Trim(start=0.0, end=6.0)), ('a.wav', None))
        >>> split_trim("a.wav#t=9,2")
        Traceback (most recent call last):
        ...
        ValueError: out point 2 s is not after in point 9 s in '#t=9,2'
    """
    index = uri.rfind("#t=")
    if index < 0:
        return uri, None
    fragment = uri[index:]
    match = _TRIM_RE.match(fragment)
    if not match or (match.group("start") is None and match.group("end") is None):
        raise ValueError(f"malformed in/out points {fragment!r}: use #t=<in>,<out> in seconds, e.g. #t=2,9")
    start = float(match.group("start") or 0.0)
    end = float(match.group("end")) if match.group("end") is not None else None
    if end is not None and end <= start:
        raise ValueError(f"out point {end:g} s is not after in point {start:g} s in {fragment!r}")
    return uri[:index], Trim(start, end)


@dataclass(frozen=True)
class PlannedFix:
    """One change that preprocessing would make to a reference (nothing encoded yet).

    Attributes:
        field: The request field, e.g. ``"input_videos[0]"``.
        file: The file as the user gave it (a path, or ``data: URI (12,345 bytes)``).
        what: Short name of the change: ``orient``, ``convert``, ``pad``, ``resize``, ``compress``,
            ``rotate``, ``frame rate``, ``scale``, ``trim``, ``re-encode``, ``extract audio``,
            ``resample``, ``media type``.
        why: The rule it satisfies.
        before: What the reference is now.
        after: What it will be.
    """

    field: str
    file: str
    what: str
    why: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.field} ({self.file}): {self.what} {self.before} -> {self.after} ({self.why})"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AppliedFix(PlannedFix):
    """One change that preprocessing made; ``after`` is measured by probing the output.

    Attributes:
        cached: The output came from the prepared-reference cache (not encoded in this run).

    Example:
        >>> fix = AppliedFix("input_audios[0]", "talk.wav", "trim", "audio over 15 s in total",
        ...                  "20.0 s", "15.0 s", cached=True)
        >>> fix.to_dict()["cached"], str(fix).endswith("(audio over 15 s in total; cached)")
        (True, True)
    """

    cached: bool = False

    def __str__(self) -> str:
        text = super().__str__()
        return text[:-1] + "; cached)" if self.cached else text


@dataclass(frozen=True)
class FixOptions:
    """Knobs of reference preprocessing. Every field takes part in the cache key of an output.

    Attributes:
        image_aspect: How an image outside the 0.4-2.5 aspect window is fixed: ``"pad"`` (default:
            add bars in the image's mean colour, nothing of the picture is lost) or ``"crop"``
            (cut the centre out).
        image_max_bytes: Byte cap of one image (the API's 30 MB).
        jpeg_quality: First JPEG/WebP quality tried; lowered in steps until the cap holds.
        video_crf: x264 constant rate factor of re-encoded videos.
        video_preset: x264 preset (``veryfast``: about real time for 720p on two cores).
        video_min_fps: Lowest frame rate of a re-encoded video.
        video_max_fps: Highest frame rate of a re-encoded video (faster sources are reduced).
        scale_flags: FFmpeg scaler algorithm (``bicubic``, ``lanczos``, ``bilinear``...).
        audio_bitrate: Bitrate of AAC tracks and MP3 outputs, bits per second.
        trim_keep_seconds: When combined durations are too long, no reference is cut below this
            many seconds while another can still give time.

    Example:
        >>> FixOptions().video_crf, FixOptions(image_aspect="crop").image_aspect
        (23, 'crop')
    """

    image_aspect: Literal["pad", "crop"] = "pad"
    image_max_bytes: int = 30_000_000
    jpeg_quality: int = 95
    video_crf: int = 23
    video_preset: str = "veryfast"
    video_min_fps: int = 24
    video_max_fps: int = 30
    scale_flags: str = "bicubic"
    audio_bitrate: int = 192_000
    trim_keep_seconds: float = 2.0

    def key(self) -> dict[str, Any]:
        """The options as a dict, for cache keys."""
        return dataclasses.asdict(self)
