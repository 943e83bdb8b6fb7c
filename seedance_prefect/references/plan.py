"""Plan reference fixes from probes alone: what would change, why, before -> after; no encoding.

:func:`plan_references` turns probed references (:class:`ReferenceInfo`) into a :class:`Plan`: per
reference a target (:class:`ImageTarget`, :class:`VideoTarget`, :class:`AudioTarget`) or nothing
(a compliant reference passes byte-identical), the :class:`~.fixes.PlannedFix` records, and the
problems no preprocessing can fix. :func:`plan_fixes` does the same for a whole request (probing
local files and ``data:`` URIs; no network). :mod:`.preprocess` executes a plan.

Rules (upstream limits from :mod:`seedance_prefect.limits`):

- Images: EXIF orientation applied; formats other than JPEG/PNG/WebP converted (JPEG, or PNG
  when the picture may have transparency); aspect brought into 0.4-2.5 (pad or crop); sides into
  300-6000 px (aspect kept); at most 30 MB (quality stepped down, then size).
- Videos: rotation applied; variable frame rate made constant; 24-30 fps when re-encoded;
  pixels into 409,600-927,408 with even sides and the aspect kept (floor to even when scaling
  down, ceil to even when scaling up, as ComfyUI does); combined duration into 2-15 s; under
  50 MB in total; H.264/AAC MP4 with ``+faststart``.
- Audio: MP3 or WAV (others become WAV; a video's track is extracted), 15 MB each, 15 s combined.
- Combined durations: in/out points (``#t=in,out``) are honoured as given. When the total is still
  too long, time is cut from the *tail of the last reference without in/out points first*, then
  the one before it, never below ``trim_keep_seconds`` (2 s) while another can give time. The head
  of every reference is kept.

Example:
    >>> from seedance_prefect.media.probe import MediaInfo
    >>> clip = MediaInfo(kind="video", container="mp4", width=1920, height=1080, coded_width=1920,
    ...                  coded_height=1080, duration=20.0, fps=30.0, size_bytes=9_000_000,
    ...                  video_codec="h264", has_video=True)
    >>> plan = plan_references([ReferenceInfo("input_videos[0]", "/v/phone.mp4", "path", media=clip)])
    >>> [(f.what, f.after) for f in plan.fixes]
    [('scale', '1284x722 = 927,048 px'), ('trim', '0.0-15.0 s (15.0 s)')]
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from .. import limits
from ..errors import FieldProblem, InvalidRequest
from ..media.probe import MediaInfo, heif_available
from ..media.targets import AudioTarget, ImageTarget, Target, VideoTarget
from ..rules import DURATION_TOLERANCE_S, VIDEO_MAX_FPS, VIDEO_MIN_FPS, fmt_bytes, fmt_pixels
from .fixes import FixOptions, PlannedFix, Trim
from .source import FIELDS, ReferenceInfo, request_refs, resolve_reference

__all__ = [
    "FIELDS",
    "AudioTarget",
    "ImageTarget",
    "Plan",
    "ReferenceInfo",
    "ReferencePlan",
    "Target",
    "VideoTarget",
    "heif_available",
    "plan_fixes",
    "plan_references",
    "request_refs",
    "resolve_reference",
    "video_dimensions",
]


@dataclass
class ReferencePlan:
    """The plan for one reference.

    Attributes:
        ref: The reference.
        action: ``"pass"`` (sent byte-identical, hosted if local), ``"rehost"`` (same bytes, new
            URI: a data: URI whose declared type is wrong) or ``"encode"`` (rewritten to ``target``).
        target: The output to make, for ``"encode"``.
        fixes: What changes and why.
        expected: The output as planned (for ``"encode"``).
    """

    ref: ReferenceInfo
    action: Literal["pass", "rehost", "encode"] = "pass"
    target: Target | None = None
    fixes: list[PlannedFix] = field(default_factory=list)
    expected: MediaInfo | None = None


@dataclass
class Plan:
    """The plan for every reference of a request.

    Attributes:
        references: One :class:`ReferencePlan` per reference, in request order.
        errors: Problems no preprocessing can fix (field and file named).
        handled: Fields whose fixable problems the plan takes care of (``"input_videos[0]"``, or
            ``"input_videos"`` for combined limits).
    """

    references: list[ReferencePlan] = field(default_factory=list)
    errors: list[FieldProblem] = field(default_factory=list)
    handled: set[str] = field(default_factory=set)

    @property
    def fixes(self) -> list[PlannedFix]:
        """Every planned fix, in request order."""
        return [f for r in self.references for f in r.fixes]

    def raise_for_errors(self) -> Plan:
        """Raise :class:`~seedance_prefect.errors.InvalidRequest` with the errors; return self if none."""
        if self.errors:
            raise InvalidRequest(self.errors)
        return self


_IMAGE_OK = ("jpeg", "png", "webp")
_ALPHA_MODES = ("RGBA", "LA", "PA", "P", "RGBa", "La")
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_MAX_AUDIO_RATE = 48000
#: Share of the 50 MB video budget that re-encoded videos aim at (headroom for container overhead).
_VIDEO_BUDGET_SHARE = 0.9
_HEIC_FIX = "pip install 'seedance-prefect[heic]' (adds pillow-heif), or convert the image to JPEG"


# --------------------------------------------------------------------------- helpers


def _even_down(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _even_up(value: float) -> int:
    n = math.ceil(value - 1e-9)
    return n + (n % 2)


def video_dimensions(width: int, height: int) -> tuple[int, int]:
    """Even display size inside the 409,600-927,408 px window, aspect kept (ComfyUI's rounding).

    Above the window each side is scaled by ``sqrt(max / pixels)`` and floored to even; below it,
    scaled up and ceiled to even; inside it, odd sides are made even.

    Example:
        >>> video_dimensions(1920, 1080), video_dimensions(3840, 2160), video_dimensions(480, 360)
        ((1284, 722), (1284, 722), (740, 556))
        >>> video_dimensions(1080, 1920), video_dimensions(854, 480)
        ((722, 1284), (854, 480))
    """
    pixels = width * height
    if pixels > limits.VIDEO_MAX_PIXELS:
        scale = math.sqrt(limits.VIDEO_MAX_PIXELS / pixels)
        return _even_down(width * scale), _even_down(height * scale)
    if pixels < limits.VIDEO_MIN_PIXELS:
        scale = math.sqrt(limits.VIDEO_MIN_PIXELS / pixels)
        return _even_up(width * scale), _even_up(height * scale)
    w, h = width - width % 2, height - height % 2
    if w * h < limits.VIDEO_MIN_PIXELS:
        w, h = _even_up(width), _even_up(height)
    return w, h


def _fit_total(
    lengths: Sequence[float], fixed: Sequence[bool], maximum: float, keep: float
) -> list[float] | None:
    """Cut seconds from the tails, last free reference first, so the lengths sum to ``maximum``.

    Returns the new lengths, or None when references with in/out points alone are too long.
    """
    out = list(lengths)
    excess = sum(out) - maximum
    if excess <= DURATION_TOLERANCE_S:
        return out
    for floor in (keep, 0.0):
        for i in reversed(range(len(out))):
            if excess <= 1e-9:
                break
            if fixed[i]:
                continue
            give = max(0.0, out[i] - min(floor, out[i]))
            cut = min(give, excess)
            out[i] -= cut
            excess -= cut
    return out if excess <= 1e-6 else None


def _fps_for(info: MediaInfo, options: FixOptions) -> Fraction:
    lo, hi = options.video_min_fps, options.video_max_fps
    src = info.fps
    if src and not info.variable_frame_rate and lo - 0.01 <= src <= hi + 0.01:
        return Fraction(src).limit_denominator(1001)
    return Fraction(min(hi, max(lo, round(src or hi))))


def _fps_text(rate: Fraction | float) -> str:
    return f"{float(rate):.3f}".rstrip("0").rstrip(".") + " fps"


def _span(start: float, end: float) -> str:
    return f"{start:.1f}-{end:.1f} s ({end - start:.1f} s)"


def _fix(ref: ReferenceInfo, what: str, why: str, before: str, after: str) -> PlannedFix:
    return PlannedFix(ref.field, ref.label, what, why, before, after)


def _problem(
    ref: ReferenceInfo, message: str, fix: str | None = None, found: str | None = None
) -> FieldProblem:
    return FieldProblem(ref.field, message, found=found or ref.label, fix=fix)


def _unreadable(ref: ReferenceInfo) -> FieldProblem | None:
    """An error when the reference is not readable media of its field's kind (None when it is)."""
    if ref.kind == "url":
        return None
    if ref.problem:
        return ref.problem  # the error preflight reports: names the field and the file, with a fix
    info = ref.media
    if info is None:
        return _problem(ref, "Could not be read")
    want = ref.modality
    if (
        want == "image"
        and info.kind == "image"
        and info.container in ("heic", "heif")
        and not heif_available()
    ):
        return _problem(ref, "HEIC/HEIF images need the optional 'heic' extra", _HEIC_FIX)
    if info.error or info.kind == "unknown":
        return _problem(
            ref,
            f"Not a readable {want} file",
            f"Give a valid {want} file (the content is checked, not the file name)",
            found=f"{ref.label}: {info.error or 'not media'}",
        )
    if want == "audio" and info.kind == "video" and info.has_audio:
        return None  # the track is extracted
    if info.kind != want:
        return _problem(
            ref, f"Not a{'n' if want[0] in 'aeiou' else ''} {want}", found=f"{ref.label}: {info.kind}"
        )
    return None


# --------------------------------------------------------------------------- images


def _image_plan(ref: ReferenceInfo, options: FixOptions) -> ReferencePlan:
    info = ref.media
    assert info is not None
    plan = ReferencePlan(ref)
    fixes = plan.fixes
    w, h = info.width or 0, info.height or 0
    orient = info.exif_orientation not in (None, 1)
    if orient:
        fixes.append(
            _fix(
                ref,
                "orient",
                "the service may ignore EXIF orientation",
                f"stored {info.coded_width}x{info.coded_height}, EXIF orientation {info.exif_orientation}",
                f"{w}x{h} upright, no orientation tag",
            )
        )
    container = info.container or "?"
    alpha = (info.pix_fmt or "") in _ALPHA_MODES
    fmt = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}.get(container) or ("PNG" if alpha else "JPEG")
    if container not in _IMAGE_OK:
        fixes.append(_fix(ref, "convert", "the service takes JPEG, PNG or WebP", container.upper(), fmt))
    canvas = None
    ratio = w / h if w and h else 1.0
    if not limits.IMAGE_MIN_ASPECT <= ratio <= limits.IMAGE_MAX_ASPECT:
        wide = ratio > limits.IMAGE_MAX_ASPECT
        edge = limits.IMAGE_MAX_ASPECT if wide else limits.IMAGE_MIN_ASPECT
        if options.image_aspect == "pad":
            canvas = (w, math.ceil(w / edge)) if wide else (math.ceil(h * edge), h)
        else:
            canvas = (math.floor(h * edge), h) if wide else (w, math.floor(w / edge))
        cw, ch = canvas
        fixes.append(
            _fix(
                ref,
                options.image_aspect,
                f"aspect ratio must be {limits.IMAGE_MIN_ASPECT}-{limits.IMAGE_MAX_ASPECT} (upstream limit)",
                f"{w}x{h} = {ratio:.2f}",
                f"{cw}x{ch} = {cw / ch:.2f}",
            )
        )
        w, h = canvas
    small, large = min(w, h), max(w, h)
    nw, nh = w, h
    if large > limits.IMAGE_MAX_SIDE:
        scale = limits.IMAGE_MAX_SIDE / large
        nw, nh = (
            (limits.IMAGE_MAX_SIDE, round(h * scale)) if w >= h else (round(w * scale), limits.IMAGE_MAX_SIDE)
        )
    elif small < limits.IMAGE_MIN_SIDE:
        scale = limits.IMAGE_MIN_SIDE / small
        nw, nh = (
            (limits.IMAGE_MIN_SIDE, math.ceil(h * scale))
            if w <= h
            else (math.ceil(w * scale), limits.IMAGE_MIN_SIDE)
        )
    if (nw, nh) != (w, h):
        fixes.append(
            _fix(
                ref,
                "resize",
                f"sides must be {limits.IMAGE_MIN_SIDE}-{limits.IMAGE_MAX_SIDE} px (upstream limit)",
                f"{w}x{h}",
                f"{nw}x{nh}",
            )
        )
    size = info.size_bytes or 0
    if size > options.image_max_bytes:
        fixes.append(
            _fix(
                ref,
                "compress",
                f"images must be at most {fmt_bytes(options.image_max_bytes)}",
                fmt_bytes(size, options.image_max_bytes),
                f"at most {fmt_bytes(options.image_max_bytes)} ({fmt}, quality stepped down as needed)",
            )
        )
    if fixes:
        plan.action = "encode"
        plan.target = ImageTarget(
            orient, canvas, options.image_aspect if canvas else None, nw, nh, fmt,
            options.image_max_bytes, options.jpeg_quality,
        )  # fmt: skip
        plan.expected = MediaInfo(
            kind="image", container=fmt.lower() if fmt != "JPEG" else "jpeg", width=nw, height=nh
        )
    return plan


# --------------------------------------------------------------------------- videos and audio


def _durations(refs: Sequence[ReferenceInfo]) -> list[tuple[float, float]]:
    """(start, end) of every reference after its own in/out points (source seconds)."""
    spans = []
    for ref in refs:
        duration = (ref.media.duration if ref.media else None) or 0.0
        trim = ref.trim or Trim()
        start = min(trim.start, duration)
        spans.append((start, start + trim.length(duration)))
    return spans


def _combined(
    refs: Sequence[ReferenceInfo], maximum: float, minimum: float, options: FixOptions, noun: str, plan: Plan
) -> list[tuple[float, float]] | None:
    """Fit the combined duration; return (start, end) per reference, or None after an error."""
    field_name = "input_videos" if noun == "video" else "input_audios"
    spans = _durations(refs)
    for ref in refs:
        duration = ref.media.duration if ref.media else None
        if ref.trim and duration is not None and ref.trim.start >= duration:
            plan.errors.append(
                _problem(
                    ref,
                    "In point is past the end",
                    "Use an in point inside the media",
                    found=f"{ref.label}: {ref.trim} on {duration:.2f} s",
                )
            )
            return None
    lengths = [e - s for s, e in spans]
    fitted = _fit_total(lengths, [r.trim is not None for r in refs], maximum, options.trim_keep_seconds)
    names = ", ".join(r.label for r in refs)
    if fitted is None:
        plan.errors.append(
            FieldProblem(
                field_name,
                f"In/out points keep too much {noun} in total",
                limit=f"at most {maximum:g} s combined",
                found=f"{sum(lengths):.1f} s from {names}",
                fix="Choose in/out points that add up to 15 s at most",
            )
        )
        return None
    raw = sum((r.media.duration or 0.0) for r in refs if r.media)
    if minimum and sum(fitted) < minimum - DURATION_TOLERANCE_S and raw >= minimum - DURATION_TOLERANCE_S:
        plan.errors.append(
            FieldProblem(
                field_name,
                f"In/out points keep too little {noun} in total",
                limit=f"at least {minimum:g} s combined",
                found=f"{sum(fitted):.1f} s from {names}",
                fix="Widen the in/out points",
            )
        )
        return None
    plan.handled.add(field_name)  # the combined duration is within the limit after the plan
    return [(s, s + n) for (s, _e), n in zip(spans, fitted, strict=True)]


def _trim_fix(
    ref: ReferenceInfo, duration: float, start: float, end: float, limit_cut: bool, maximum: float, noun: str
) -> PlannedFix | None:
    if start <= 1e-6 and end >= duration - DURATION_TOLERANCE_S:
        return None
    reasons = []
    if ref.trim is not None:
        reasons.append(f"in/out points {ref.trim}")
    if limit_cut:
        reasons.append(f"{noun} over {maximum:g} s in total: the tail of the last reference is cut first")
    return _fix(ref, "trim", "; ".join(reasons), f"{duration:.1f} s", _span(start, end))


def _video_plans(refs: list[ReferenceInfo], options: FixOptions, plan: Plan) -> list[ReferencePlan]:
    spans = _combined(
        refs, limits.VIDEO_MAX_TOTAL_SECONDS, limits.VIDEO_MIN_TOTAL_SECONDS, options, "video", plan
    )
    if spans is None:
        return [ReferencePlan(r) for r in refs]
    own = _durations(refs)
    total_len = sum(e - s for s, e in spans) or 1.0
    raw_size = sum((r.media.size_bytes or 0) for r in refs if r.media)
    budget = int(_VIDEO_BUDGET_SHARE * limits.VIDEO_TOTAL_MAX_BYTES * 8 / total_len) - options.audio_bitrate
    too_big = raw_size >= limits.VIDEO_TOTAL_MAX_BYTES
    out = []
    for ref, (start, end), (_own_start, own_end) in zip(refs, spans, own, strict=True):
        info = ref.media
        assert info is not None
        rp = ReferencePlan(ref)
        duration = info.duration or 0.0
        fixes = rp.fixes
        if info.container not in limits.VIDEO_CONTAINERS:
            fixes.append(
                _fix(ref, "convert", "the service takes MP4 or MOV", str(info.container), "MP4 (H.264/AAC)")
            )
        rotation = info.rotation % 360
        if rotation:
            fixes.append(
                _fix(
                    ref,
                    "rotate",
                    "the service may ignore the rotation flag",
                    f"stored {info.coded_width}x{info.coded_height}, rotation {rotation}",
                    f"{info.width}x{info.height} upright",
                )
            )
        rate = _fps_for(info, options)
        fps_reason = None
        if info.variable_frame_rate:
            fps_reason = "variable frame rate made constant"
        elif info.fps and not VIDEO_MIN_FPS - 0.5 <= info.fps <= VIDEO_MAX_FPS + 0.5:
            fps_reason = f"frame rate must be {VIDEO_MIN_FPS}-{VIDEO_MAX_FPS} fps (upstream limit)"
        if fps_reason:
            before = ("variable, average " if info.variable_frame_rate else "") + _fps_text(info.fps or 0)
            fixes.append(_fix(ref, "frame rate", fps_reason, before, _fps_text(rate) + " constant"))
        w, h = info.width or 0, info.height or 0
        nw, nh = video_dimensions(w, h)
        pixels_out = not limits.VIDEO_MIN_PIXELS <= w * h <= limits.VIDEO_MAX_PIXELS
        if pixels_out:
            fixes.append(
                _fix(
                    ref,
                    "scale",
                    f"pixels must be {limits.VIDEO_MIN_PIXELS:,}-{limits.VIDEO_MAX_PIXELS:,} "
                    "(~480p to ~720p)",
                    fmt_pixels(w, h),
                    fmt_pixels(nw, nh),
                )
            )
        cut = end < own_end - 1e-9
        trim = _trim_fix(ref, duration, start, end, cut, limits.VIDEO_MAX_TOTAL_SECONDS, "videos")
        if trim:
            fixes.append(trim)
        length = max(end - start, 1e-6)
        bitrate = (info.size_bytes or 0) * 8 / max(duration, 1e-6)
        if too_big and bitrate > budget + options.audio_bitrate:
            fixes.append(
                _fix(
                    ref,
                    "re-encode",
                    f"videos must be under {fmt_bytes(limits.VIDEO_TOTAL_MAX_BYTES)} in total",
                    f"{fmt_bytes(info.size_bytes or 0)} ({bitrate / 1e6:.1f} Mbit/s); all videos "
                    f"{fmt_bytes(raw_size)}",
                    f"at most {budget / 1e6:.1f} Mbit/s video",
                )
            )
        if fixes:
            if (nw, nh) != (w, h) and not pixels_out:
                fixes.append(_fix(ref, "scale", "H.264 needs even sides", f"{w}x{h}", f"{nw}x{nh}"))
            if not fps_reason and abs(float(rate) - (info.fps or 0)) > 0.01:
                fixes.append(
                    _fix(
                        ref,
                        "frame rate",
                        f"re-encoded videos run at {options.video_min_fps}-{options.video_max_fps} fps",
                        _fps_text(info.fps or 0),
                        _fps_text(rate) + " constant",
                    )
                )
            frames = max(1, math.floor(length * rate + 1e-6))
            rp.action = "encode"
            rp.target = VideoTarget(
                rotation, nw, nh, str(rate), round(start, 6), round(end, 6), frames, info.has_audio,
                options.video_crf, options.video_preset, max(budget, 500_000), options.scale_flags,
                options.audio_bitrate,
            )  # fmt: skip
            rp.expected = MediaInfo(
                kind="video", container="mp4", width=nw, height=nh, duration=frames / float(rate),
                fps=float(rate), video_codec="h264", has_video=True, has_audio=info.has_audio,
            )  # fmt: skip
        if too_big:
            plan.handled.add("input_videos")
        out.append(rp)
    return out


def _audio_rate(src: int | None, fmt: str) -> int:
    rate = min(src or 44100, _MAX_AUDIO_RATE)
    if fmt == "mp3":
        rate = min(_MP3_RATES, key=lambda r: (abs(r - rate), -r))
    return rate


def _audio_plans(refs: list[ReferenceInfo], options: FixOptions, plan: Plan) -> list[ReferencePlan]:
    spans = _combined(refs, limits.AUDIO_MAX_TOTAL_SECONDS, 0.0, options, "audio", plan)
    if spans is None:
        return [ReferencePlan(r) for r in refs]
    own = _durations(refs)
    out = []
    for ref, (start, end), (_own_start, own_end) in zip(refs, spans, own, strict=True):
        info = ref.media
        assert info is not None
        rp = ReferencePlan(ref)
        fixes = rp.fixes
        duration = info.duration or 0.0
        fmt: Literal["wav", "mp3"] = "mp3" if info.container == "mp3" else "wav"
        if info.kind == "video":
            fixes.append(
                _fix(ref, "extract audio", "a video where audio is expected", f"{info.container} video",
                     f"{fmt.upper()} audio track")
            )  # fmt: skip
        elif info.container not in limits.AUDIO_CONTAINERS:
            fixes.append(
                _fix(
                    ref,
                    "convert",
                    "the service takes MP3 or WAV",
                    f"{info.container} ({info.audio_codec})",
                    "WAV",
                )
            )
        size = info.size_bytes or 0
        if size > limits.AUDIO_MAX_BYTES:
            fixes.append(
                _fix(
                    ref,
                    "re-encode",
                    f"audio files must be at most {fmt_bytes(limits.AUDIO_MAX_BYTES)}",
                    fmt_bytes(size, limits.AUDIO_MAX_BYTES),
                    f"16-bit {fmt.upper()}, at most 2 channels and {_MAX_AUDIO_RATE:,} Hz",
                )
            )
        cut = end < own_end - 1e-9
        trim = _trim_fix(ref, duration, start, end, cut, limits.AUDIO_MAX_TOTAL_SECONDS, "audio")
        if trim:
            fixes.append(trim)
        if fixes:
            rate = _audio_rate(info.sample_rate, fmt)
            channels = min(info.channels or 2, 2)
            if rate != info.sample_rate and info.sample_rate:
                fixes.append(
                    _fix(ref, "resample", f"{fmt.upper()} output at {_MAX_AUDIO_RATE:,} Hz at most",
                         f"{info.sample_rate:,} Hz", f"{rate:,} Hz")
                )  # fmt: skip
            samples = max(1, math.floor((end - start) * rate + 1e-6))
            rp.action = "encode"
            rp.target = AudioTarget(
                fmt, rate, channels, round(start, 6), round(end, 6), samples, options.audio_bitrate
            )
            rp.expected = MediaInfo(
                kind="audio", container=fmt, duration=samples / rate, sample_rate=rate, channels=channels
            )
        out.append(rp)
    return out


# --------------------------------------------------------------------------- the plan


def plan_references(refs: Iterable[ReferenceInfo], options: FixOptions | None = None) -> Plan:
    """Plan the fixes of probed references (pure: no file is read or written).

    Args:
        refs: Every reference of a request (all modalities; order kept per field).
        options: Fix options (defaults: :class:`~.fixes.FixOptions`).

    Returns:
        The plan; ``plan.errors`` holds what cannot be fixed, each naming the field and the file.

    Example:
        >>> from pathlib import Path
        >>> from seedance_prefect.media.probe import MediaInfo
        >>> short = MediaInfo(kind="video", container="mp4", width=854, height=480, duration=1.0, fps=24.0)
        >>> ref = ReferenceInfo("input_videos[0]", "/v/a.mp4", "path", path=Path("/v/a.mp4"), media=short)
        >>> plan = plan_references([ref])
        >>> [(p.field, p.message, p.found) for p in plan.errors]
        [('input_videos', 'Videos too short in total', '1.0 s from /v/a.mp4')]
    """
    options = options or FixOptions()
    refs = list(refs)
    plan = Plan()
    plans: dict[str, ReferencePlan] = {}
    readable: dict[str, list[ReferenceInfo]] = {"image": [], "video": [], "audio": []}
    for ref in refs:
        error = _unreadable(ref)
        if error is not None:
            plan.errors.append(error)
        elif ref.kind == "url":
            if ref.trim is not None or "#t=" in ref.uri:
                plan.errors.append(
                    _problem(ref, "In/out points (#t=) apply to local files and data: URIs only",
                             "Download the file and give its local path, or remove #t=")
                )  # fmt: skip
        else:
            readable[ref.modality].append(ref)
    for ref in readable["image"]:
        plans[ref.field] = _image_plan(ref, options)
    videos = readable["video"]
    if videos:
        total = sum((r.media.duration or 0.0) for r in videos if r.media)
        measured = len(videos) == sum(r.modality == "video" for r in refs)
        if measured and total < limits.VIDEO_MIN_TOTAL_SECONDS - DURATION_TOLERANCE_S:
            plan.errors.append(
                FieldProblem(
                    "input_videos",
                    "Videos too short in total",
                    limit=f"{limits.VIDEO_MIN_TOTAL_SECONDS:g}-{limits.VIDEO_MAX_TOTAL_SECONDS:g} s combined",
                    found=f"{total:.1f} s from " + ", ".join(r.label for r in videos),
                    fix="Use at least 2 s of video in total",
                )
            )
        else:
            for rp in _video_plans(videos, options, plan):
                plans[rp.ref.field] = rp
    if readable["audio"]:
        for rp in _audio_plans(readable["audio"], options, plan):
            plans[rp.ref.field] = rp
    for ref in refs:
        rp = plans.get(ref.field) or ReferencePlan(ref)
        if rp.action == "pass" and ref.kind == "data" and ref.field in plans:
            declared, actual = ref.mime or "", _mime(rp.ref.media)
            if declared != actual and actual != "application/octet-stream":
                rp.action = "rehost"
                rp.fixes.append(
                    _fix(ref, "media type", "the declared type must match the content", declared, actual)
                )
        if rp.fixes:
            plan.handled.add(ref.field)
        plan.references.append(rp)
    return plan


def _mime(info: MediaInfo | None) -> str:
    from .hosting import mime_type

    return mime_type(info) if info is not None else "application/octet-stream"


def plan_fixes(
    request: Any,
    base_dir: str | os.PathLike[str] | None = None,
    options: FixOptions | None = None,
) -> list[PlannedFix]:
    """Probe a request's local references and list the fixes preprocessing would make (no network).

    Args:
        request: A :class:`~seedance_prefect.models.SeedanceRequest` or a body mapping.
        base_dir: Folder relative paths start from.
        options: Fix options.

    Returns:
        The planned fixes, in request order (empty when every reference is compliant).

    Raises:
        InvalidRequest: A reference cannot be fixed (each problem names the field and the file).

    Example:
        >>> import tempfile, pathlib
        >>> from seedance_prefect.media.samples import make_image
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = make_image(d / "wide.png", 1600, 400, format="PNG")
        >>> [(f.what, f.after) for f in plan_fixes({"prompt": "x", "input_images": ["wide.png"]}, d)]
        [('pad', '1600x640 = 2.50')]
    """
    plan = plan_references(request_refs(request, base_dir), options)
    plan.raise_for_errors()
    return plan.fixes
