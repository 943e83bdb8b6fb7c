"""The individual rules of :mod:`seedance_prefect.preflight`, as small pure functions.

Each rule takes plain values (counts, a prompt, :class:`~seedance_prefect.media.probe.MediaInfo`
objects) and returns :class:`~seedance_prefect.errors.FieldProblem` objects, errors and warnings
mixed (see ``severity``). Nothing here touches files or the network, so every limit can be tested
at its boundary with hand-made ``MediaInfo`` values.

Example:
    >>> from seedance_prefect.media.probe import MediaInfo
    >>> [p.message for p in video_total_rules([("input_videos[0]", MediaInfo(kind="video", duration=1.9))])]
    ['Videos too short in total']
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from . import limits
from .errors import FieldProblem
from .media.probe import MediaInfo
from .models import count_problems

__all__ = [
    "DURATION_TOLERANCE_S",
    "MODALITIES",
    "VIDEO_MAX_FPS",
    "VIDEO_MIN_FPS",
    "audio_rules",
    "audio_total_rules",
    "count_rules",
    "endpoint_rules",
    "fmt_bytes",
    "fmt_pixels",
    "fmt_seconds",
    "image_rules",
    "prompt_rules",
    "tag_rules",
    "video_rules",
    "video_total_rules",
]

#: Our choice: durations are compared with this slack, so container rounding and AAC priming
#: (a few ms) do not refuse a clip that is 15 s to the frame. Under half a frame at 24 fps.
DURATION_TOLERANCE_S = 0.02
#: Upstream (BytePlus) frame-rate window for reference videos; not documented by Oxen (warning).
VIDEO_MIN_FPS, VIDEO_MAX_FPS = 24, 60

#: field -> (modality, tag word, max count, accepted containers)
MODALITIES: dict[str, tuple[str, str, int, tuple[str, ...]]] = {
    "input_images": ("image", "Image", limits.MAX_IMAGES, tuple(f.lower() for f in limits.IMAGE_FORMATS)),
    "input_videos": ("video", "Video", limits.MAX_VIDEOS, limits.VIDEO_CONTAINERS),
    "input_audios": ("audio", "Audio", limits.MAX_AUDIOS, limits.AUDIO_CONTAINERS),
}
_FIELD_OF_KIND = {kind: name for name, (kind, *_rest) in MODALITIES.items()}
_TAG_RE = re.compile(r"@(image|video|audio)(\d+)", re.IGNORECASE)
_PIXEL_WINDOW = (
    f"{limits.VIDEO_MIN_PIXELS:,}-{limits.VIDEO_MAX_PIXELS:,} px (~480p to ~720p, e.g. 854x480 to 1280x720)"
)


def fmt_bytes(n: int, limit: int | None = None) -> str:
    """Format a byte count in MB (10**6), exact bytes when the rounding would hide the difference.

    Example:
        >>> fmt_bytes(61_300_000), fmt_bytes(50_000_000, limits.VIDEO_TOTAL_MAX_BYTES)
        ('61.3 MB', '50.0 MB (50,000,000 bytes)')
    """
    text = f"{n / limits.MB:.1f} MB"
    if limit is not None and text == f"{limit / limits.MB:.1f} MB":
        text += f" ({n:,} bytes)"
    return text


def fmt_seconds(s: float, limit: float | None = None) -> str:
    """Format seconds with one decimal, three when the rounding would hide the difference.

    Example:
        >>> fmt_seconds(18.24), fmt_seconds(15.04, 15.0)
        ('18.2 s', '15.040 s')
    """
    if limit is not None and f"{s:.1f}" == f"{limit:.1f}":
        return f"{s:.3f} s"
    return f"{s:.1f} s"


def fmt_pixels(width: int, height: int) -> str:
    """Format a frame size with its pixel count.

    Example:
        >>> fmt_pixels(1920, 1080)
        '1920x1080 = 2,073,600 px'
    """
    return f"{width}x{height} = {width * height:,} px"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def count_rules(images: int, videos: int, audios: int) -> list[FieldProblem]:
    """Per-modality maxima (9/3/3) and the API's cross-field counting rules.

    Example:
        >>> [p.message for p in count_rules(10, 0, 0)]
        ['Too many reference images']
        >>> [p.message for p in count_rules(9, 3, 1)]
        ['Too many input files']
    """
    problems = []
    counts = {"input_images": images, "input_videos": videos, "input_audios": audios}
    for name, (kind, _word, maximum, _formats) in MODALITIES.items():
        if counts[name] > maximum:
            noun = "audio file" if kind == "audio" else kind
            problems.append(
                FieldProblem(
                    name,
                    f"Too many reference {noun}s",
                    limit=f"at most {maximum}",
                    found=_plural(counts[name], noun),
                    fix=f"Keep at most {maximum} in {name}",
                )
            )
    for name, message, limit, fix in count_problems(images, videos, audios):
        if message == "Too many input files":
            found = f"{images + videos + audios} files ({images} images, {videos} videos, {audios} audio)"
        else:
            found = f"{_plural(audios, 'audio file')}, no image or video"
        problems.append(FieldProblem(name, message, limit=limit, found=found, fix=fix))
    return problems


def prompt_rules(prompt: str) -> list[FieldProblem]:
    """Length, control characters and text that cannot be encoded as UTF-8.

    Example:
        >>> [p.message for p in prompt_rules("a\\x00b")]
        ['Prompt contains control characters']
        >>> prompt_rules("A boat\\non a pond")
        []
    """
    problems = []
    if len(prompt) > limits.PROMPT_MAX_CHARS:
        problems.append(
            FieldProblem(
                "prompt",
                "Prompt too long",
                limit=f"at most {limits.PROMPT_MAX_CHARS:,} characters",
                found=f"{len(prompt):,} characters",
                fix="Shorten the prompt",
            )
        )
    controls = [
        (i, ch) for i, ch in enumerate(prompt) if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t"
    ]
    if controls:
        i, ch = controls[0]
        problems.append(
            FieldProblem(
                "prompt",
                "Prompt contains control characters",
                limit="no control characters except tab and newline",
                found=f"{_plural(len(controls), 'control character')}, first U+{ord(ch):04X} at position {i}",
                fix="Remove the control characters (NUL, escape codes...) from the prompt",
            )
        )
    surrogates = [(i, ch) for i, ch in enumerate(prompt) if "\ud800" <= ch <= "\udfff"]
    if surrogates:
        i, ch = surrogates[0]
        problems.append(
            FieldProblem(
                "prompt",
                "Prompt is not valid UTF-8",
                limit="valid Unicode text",
                found=f"lone surrogate U+{ord(ch):04X} at position {i}",
                fix="Fix the text's encoding (a broken emoji or a bad \\ud800-style escape)",
            )
        )
    return problems


def tag_rules(prompt: str, images: int, videos: int, audios: int) -> list[FieldProblem]:
    """``@Image1``/``@Video2``/``@Audio1`` tags: past the attachments is an error, unused attachments warn.

    Tags are 1-based per modality. A tag in another case (``@image1``) counts as a reference but
    is flagged, since the documented spelling is ``@Image1``.

    Example:
        >>> [(p.field, p.severity) for p in tag_rules("@Image1 meets @Video2", 2, 1, 0)]
        [('prompt', 'error'), ('input_images[1]', 'warning'), ('input_videos[0]', 'warning')]
    """
    counts = {"image": images, "video": videos, "audio": audios}
    problems: list[FieldProblem] = []
    used: set[tuple[str, int]] = set()
    seen: set[str] = set()
    for match in _TAG_RE.finditer(prompt):
        kind, number, tag = match.group(1).lower(), int(match.group(2)), match.group(0)
        proper = f"@{kind.capitalize()}{number}"
        field = _FIELD_OF_KIND[kind]
        if tag in seen:
            continue
        seen.add(tag)
        if 1 <= number <= counts[kind]:
            used.add((kind, number))
            if tag != proper:
                problems.append(
                    FieldProblem(
                        "prompt",
                        f"Tag {tag} is not spelled as documented",
                        limit="tags look like @Image1, @Video1, @Audio1",
                        found=tag,
                        fix=f"Write {proper}",
                        severity="warning",
                    )
                )
            continue
        noun = "audio file" if kind == "audio" else kind
        attached = _plural(counts[kind], noun) + f" in {field}"
        article = "an" if noun[0] in "aeiou" else "a"
        message = (
            f"{tag} refers to no {noun}: tags count from 1"
            if number == 0
            else f"{tag} refers to {article} {noun} that is not attached"
        )
        word = kind.capitalize()
        limit = f"@{word}1..@{word}{counts[kind]}" if counts[kind] else f"no {noun} attached"
        problems.append(
            FieldProblem(
                "prompt",
                message,
                limit=limit,
                found=f"{tag} with {attached}",
                fix=f"Attach the {noun} in {field} or correct the tag",
            )
        )
    for kind, word in (("image", "Image"), ("video", "Video"), ("audio", "Audio")):
        for n in range(1, counts[kind] + 1):
            if (kind, n) not in used:
                problems.append(
                    FieldProblem(
                        f"{_FIELD_OF_KIND[kind]}[{n - 1}]",
                        f"Never referenced in the prompt as @{word}{n}",
                        fix=f"Say in the prompt how to use @{word}{n}, or remove the reference",
                        severity="warning",
                    )
                )
    return problems


def endpoint_rules(endpoint: str, num_generations: Any, response_format: Any) -> list[FieldProblem]:
    """Rules that depend on the endpoint the request goes to.

    Example:
        >>> [p.severity for p in endpoint_rules("sync", 2, "url")]
        ['error']
        >>> [p.severity for p in endpoint_rules("queue", 1, "b64_json")]
        ['warning']
    """
    problems = []
    is_int = isinstance(num_generations, int) and not isinstance(num_generations, bool)
    if endpoint == "sync" and is_int and num_generations > 1:
        problems.append(
            FieldProblem(
                "num_generations",
                "num_generations must be 1 for the synchronous endpoint",
                limit="1 on POST /ai/videos/generate; 1-4 on /ai/queue",
                found=str(num_generations),
                fix="Use the queue endpoint for 2-4 generations, or set num_generations to 1",
            )
        )
    if endpoint == "queue" and response_format == "b64_json":
        problems.append(
            FieldProblem(
                "response_format",
                "response_format is ignored by the queue, which returns result_url only",
                found='"b64_json"',
                severity="warning",
                fix='Use the synchronous endpoint for inline base64, or leave response_format at "url"',
            )
        )
    return problems


def _kind_problem(field: str, expected: str, info: MediaInfo) -> FieldProblem | None:
    """An error when the content is not of the field's modality (or not media at all)."""
    if info.kind == expected and not info.error:
        return None
    found = f"{info.kind} ({info.container})" if info.container else info.kind
    if info.kind == "unknown" or info.error:
        return FieldProblem(
            field,
            f"Not a readable {expected} file",
            found=info.error or found,
            fix=f"Give a valid {expected} file (the content is checked, not the file name)",
        )
    if expected == "audio" and info.kind == "video" and info.has_audio:
        return FieldProblem(
            field,
            "A video where audio is expected",
            limit="MP3 or WAV",
            found=found,
            fix="Extract the audio track to MP3/WAV",
            fixable=True,
        )
    target = _FIELD_OF_KIND.get(info.kind)
    return FieldProblem(
        field,
        f"Not an {expected}" if expected[0] in "aeiou" else f"Not a {expected}",
        found=found,
        fix=f"Move it to {target}" if target else None,
    )


def image_rules(field: str, info: MediaInfo) -> list[FieldProblem]:
    """Format and size (errors), upstream side and aspect limits (warnings) of one image.

    Example:
        >>> info = MediaInfo(kind="image", container="png", size_bytes=30_000_001, width=640, height=480)
        >>> [(p.message, p.found) for p in image_rules("input_images[0]", info)]
        [('Image too large', '30.0 MB (30,000,001 bytes)')]
    """
    problem = _kind_problem(field, "image", info)
    if problem:
        return [problem]
    problems = []
    allowed = MODALITIES["input_images"][3]
    if info.container not in allowed:
        problems.append(
            FieldProblem(
                field,
                "Unsupported image format",
                limit="JPEG, PNG or WebP",
                found=str(info.container),
                fix="Convert it to JPEG, PNG or WebP",
                fixable=True,
            )
        )
    if info.size_bytes is not None and info.size_bytes > limits.IMAGE_MAX_BYTES:
        problems.append(
            FieldProblem(
                field,
                "Image too large",
                limit=f"at most {fmt_bytes(limits.IMAGE_MAX_BYTES)} each",
                found=fmt_bytes(info.size_bytes, limits.IMAGE_MAX_BYTES),
                fix="Re-encode or downscale the image",
                fixable=True,
            )
        )
    if info.width and info.height:
        small, large = min(info.width, info.height), max(info.width, info.height)
        if small < limits.IMAGE_MIN_SIDE or large > limits.IMAGE_MAX_SIDE:
            problems.append(
                FieldProblem(
                    field,
                    "Image sides outside the upstream limits (not documented by Oxen)",
                    limit=f"{limits.IMAGE_MIN_SIDE}-{limits.IMAGE_MAX_SIDE} px per side",
                    found=f"{info.width}x{info.height}",
                    fix="Upscale small images; downscale large ones",
                    severity="warning",
                    fixable=True,
                )
            )
        ratio = info.width / info.height
        if not limits.IMAGE_MIN_ASPECT <= ratio <= limits.IMAGE_MAX_ASPECT:
            problems.append(
                FieldProblem(
                    field,
                    "Image aspect ratio outside the upstream limits (not documented by Oxen)",
                    limit=f"width/height {limits.IMAGE_MIN_ASPECT}-{limits.IMAGE_MAX_ASPECT}",
                    found=f"{info.width}x{info.height} = {ratio:.2f}",
                    fix="Pad or crop the image into the window",
                    severity="warning",
                    fixable=True,
                )
            )
    if info.exif_orientation not in (None, 1):
        problems.append(
            FieldProblem(
                field,
                "Image relies on its EXIF orientation, which the service may ignore",
                found=f"EXIF orientation {info.exif_orientation} (shown {info.width}x{info.height})",
                fix="Rotate the pixels upright and drop the tag",
                severity="warning",
                fixable=True,
            )
        )
    return problems


def video_rules(field: str, info: MediaInfo) -> list[FieldProblem]:
    """Container and pixel count (errors); rotation, variable or unusual frame rate (warnings).

    Example:
        >>> info = MediaInfo(kind="video", container="mp4", has_video=True, width=1920, height=1080)
        >>> [(p.message, p.found) for p in video_rules("input_videos[0]", info)]
        [('Video resolution outside ~480p to ~720p', '1920x1080 = 2,073,600 px')]
    """
    problem = _kind_problem(field, "video", info)
    if problem:
        return [problem]
    problems = []
    if info.container not in limits.VIDEO_CONTAINERS:
        problems.append(
            FieldProblem(
                field,
                "Unsupported video container",
                limit="MP4 or MOV",
                found=str(info.container),
                fix="Convert it to MP4 (H.264)",
                fixable=True,
            )
        )
    pixels = info.pixels
    if pixels is not None and not limits.VIDEO_MIN_PIXELS <= pixels <= limits.VIDEO_MAX_PIXELS:
        problems.append(
            FieldProblem(
                field,
                "Video resolution outside ~480p to ~720p",
                limit=_PIXEL_WINDOW,
                found=fmt_pixels(info.width or 0, info.height or 0),
                fix="Scale it into the window, keeping the aspect ratio",
                fixable=True,
            )
        )
    if info.rotation:
        problems.append(
            FieldProblem(
                field,
                "Video is stored sideways with a rotation flag, which the service may ignore",
                found=f"rotation {info.rotation} degrees (stored {info.coded_width}x{info.coded_height})",
                fix="Rotate the frames upright",
                severity="warning",
                fixable=True,
            )
        )
    if info.variable_frame_rate:
        problems.append(
            FieldProblem(
                field,
                "Variable frame rate",
                found=f"average {info.fps:.2f} fps" if info.fps else "uneven timestamps",
                fix="Re-encode at a constant frame rate",
                severity="warning",
                fixable=True,
            )
        )
    elif info.fps and not VIDEO_MIN_FPS - 0.5 <= info.fps <= VIDEO_MAX_FPS + 0.5:
        problems.append(
            FieldProblem(
                field,
                "Frame rate outside the upstream limits (not documented by Oxen)",
                limit=f"{VIDEO_MIN_FPS}-{VIDEO_MAX_FPS} fps",
                found=f"{info.fps:.2f} fps",
                fix="Re-encode at 24-60 fps",
                severity="warning",
                fixable=True,
            )
        )
    return problems


def audio_rules(field: str, info: MediaInfo) -> list[FieldProblem]:
    """Format and size of one audio file.

    Example:
        >>> info = MediaInfo(kind="audio", container="flac", size_bytes=1000, has_audio=True)
        >>> [p.message for p in audio_rules("input_audios[0]", info)]
        ['Unsupported audio format']
    """
    problem = _kind_problem(field, "audio", info)
    if problem:
        return [problem]
    problems = []
    if info.container not in limits.AUDIO_CONTAINERS:
        problems.append(
            FieldProblem(
                field,
                "Unsupported audio format",
                limit="MP3 or WAV",
                found=str(info.container),
                fix="Convert it to MP3 or WAV",
                fixable=True,
            )
        )
    if info.size_bytes is not None and info.size_bytes > limits.AUDIO_MAX_BYTES:
        problems.append(
            FieldProblem(
                field,
                "Audio file too large",
                limit=f"at most {fmt_bytes(limits.AUDIO_MAX_BYTES)} each",
                found=fmt_bytes(info.size_bytes, limits.AUDIO_MAX_BYTES),
                fix="Re-encode it as MP3 or shorten it",
                fixable=True,
            )
        )
    return problems


def _durations(items: Sequence[tuple[str, MediaInfo | None]], kind: str) -> tuple[float, bool]:
    """Sum the known durations of items of ``kind``; tell whether every item's duration is known."""
    total, complete = 0.0, True
    for _field, info in items:
        if info is None or info.kind != kind or info.duration is None:
            complete = False
        else:
            total += info.duration
    return total, complete


def video_total_rules(items: Sequence[tuple[str, MediaInfo | None]]) -> list[FieldProblem]:
    """Combined limits of the videos: 2-15 s in total and under 50 MB in total.

    ``items`` holds every video reference; ``None`` stands for one that could not be measured
    (a remote URL). Too-long and too-large are refused as soon as the known part breaks the
    limit; too-short only when every video was measured.

    Example:
        >>> ok = MediaInfo(kind="video", duration=2.0, size_bytes=1000)
        >>> video_total_rules([("input_videos[0]", ok)])
        []
    """
    problems = []
    total, complete = _durations(items, "video")
    limit = f"{limits.VIDEO_MIN_TOTAL_SECONDS:g}-{limits.VIDEO_MAX_TOTAL_SECONDS:g} s combined"
    if total > limits.VIDEO_MAX_TOTAL_SECONDS + DURATION_TOLERANCE_S:
        problems.append(
            FieldProblem(
                "input_videos",
                "Videos too long in total",
                limit=limit,
                found=fmt_seconds(total, limits.VIDEO_MAX_TOTAL_SECONDS),
                fix="Trim the videos to 15 s in total",
                fixable=True,
            )
        )
    elif complete and items and total < limits.VIDEO_MIN_TOTAL_SECONDS - DURATION_TOLERANCE_S:
        problems.append(
            FieldProblem(
                "input_videos",
                "Videos too short in total",
                limit=limit,
                found=fmt_seconds(total, limits.VIDEO_MIN_TOTAL_SECONDS),
                fix="Use at least 2 s of video in total",
            )
        )
    size = sum(info.size_bytes or 0 for _f, info in items if info is not None)
    if size >= limits.VIDEO_TOTAL_MAX_BYTES:
        problems.append(
            FieldProblem(
                "input_videos",
                "Videos too large in total",
                limit=f"less than {fmt_bytes(limits.VIDEO_TOTAL_MAX_BYTES)} in total",
                found=fmt_bytes(size, limits.VIDEO_TOTAL_MAX_BYTES),
                fix="Re-encode the videos at a lower bitrate",
                fixable=True,
            )
        )
    return problems


def audio_total_rules(items: Sequence[tuple[str, MediaInfo | None]]) -> list[FieldProblem]:
    """Combined limit of the audio files: at most 15 s in total.

    Example:
        >>> long = MediaInfo(kind="audio", duration=8.0)
        >>> [p.found for p in audio_total_rules([("input_audios[0]", long), ("input_audios[1]", long)])]
        ['16.0 s']
    """
    total, _complete = _durations(items, "audio")
    if total > limits.AUDIO_MAX_TOTAL_SECONDS + DURATION_TOLERANCE_S:
        return [
            FieldProblem(
                "input_audios",
                "Audio too long in total",
                limit=f"at most {limits.AUDIO_MAX_TOTAL_SECONDS:g} s combined",
                found=fmt_seconds(total, limits.AUDIO_MAX_TOTAL_SECONDS),
                fix="Trim the audio to 15 s in total",
                fixable=True,
            )
        ]
    return []
