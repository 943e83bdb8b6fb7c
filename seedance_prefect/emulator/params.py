"""The emulator's own reading of the Seedance 2.0 reference-to-video request schema.

Validation order follows the seed document's error table: prompt -> total files -> audio needs image/video ->
duration -> resolution, then the remaining fields (per-modality counts, aspect ratio, types).
Both wire profiles are accepted when parsing: string durations (``"auto"``, ``"4"``..``"15"``) and integer
durations (``-1``, ``4``..``15``); aspect ``"auto"`` and ``"adaptive"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Documented messages (seed document "Errors" table).
MSG_FIELD_REQUIRED = "Field required"
MSG_TOO_MANY_FILES = "Too many input files"
MSG_AUDIO_NEEDS_VISUAL = "Audio requires at least one image or video"
MSG_INVALID_DURATION = "Invalid duration"
MSG_INVALID_RESOLUTION = "Invalid resolution"
MSG_NUM_GENERATIONS = "num_generations must be an integer between 1 and 4"

ASPECT_RATIOS: tuple[str, ...] = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
AUTO_ASPECTS: tuple[str, ...] = ("auto", "adaptive")
RESOLUTIONS: tuple[str, ...] = ("480p", "720p")
RESPONSE_FORMATS: tuple[str, ...] = ("url", "b64_json")
MIN_DURATION, MAX_DURATION = 4, 15

#: Reference fields -> modality; the face arrays come from the profile B registry schema.
REFERENCE_FIELDS: dict[str, str] = {
    "input_images": "image",
    "input_face_images": "image",
    "input_videos": "video",
    "input_face_videos": "video",
    "input_audios": "audio",
}
MAX_PER_MODALITY: dict[str, int] = {"image": 9, "video": 3, "audio": 3}
MAX_TOTAL_FILES: dict[str, int] = {"A": 12, "B": 15}


class ParamError(ValueError):
    """A request parameter is invalid; ``str(exc)`` is the message the service answers."""


@dataclass(frozen=True)
class VideoRequest:
    """A validated Seedance request.

    Attributes:
        prompt: The text prompt.
        references: ``(field, uri)`` pairs in field order.
        resolution: ``"480p"`` or ``"720p"``.
        duration: Seconds to render (``auto`` already resolved).
        duration_auto: True when the caller asked for ``"auto"`` / ``-1`` / nothing.
        aspect_ratio: One of ``ASPECT_RATIOS`` or ``"auto"``.
        generate_audio: Whether the result has an audio track.
        seed: The caller's seed or None.
        response_format: ``"url"`` or ``"b64_json"``.
        target_namespace: Namespace results are saved to, or None (= caller).
    """

    prompt: str
    references: tuple[tuple[str, str], ...]
    resolution: str
    duration: int
    duration_auto: bool
    aspect_ratio: str
    generate_audio: bool
    seed: int | None
    response_format: str
    target_namespace: str | None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_duration(value: object) -> int | None:
    """Parse a duration in either profile.

    Args:
        value: ``None``, ``"auto"``, ``"4"``..``"15"``, ``-1`` or ``4``..``15`` (``"-1"`` is accepted too).

    Returns:
        Seconds, or None for auto.

    Raises:
        ParamError: ``Invalid duration``.

    Example:
        >>> parse_duration("8"), parse_duration(-1), parse_duration("auto")
        (8, None, None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "auto" or text == "-1":
            return None
        if text.isdigit() and MIN_DURATION <= int(text) <= MAX_DURATION:
            return int(text)
        raise ParamError(MSG_INVALID_DURATION)
    if _is_int(value):
        if value == -1:
            return None
        if MIN_DURATION <= value <= MAX_DURATION:  # type: ignore[operator]
            return int(value)  # type: ignore[arg-type]
    raise ParamError(MSG_INVALID_DURATION)


def parse_num_generations(value: object) -> int:
    """Validate ``num_generations`` of ``POST /api/ai/queue``.

    Args:
        value: The raw value (None = 1).

    Returns:
        The count, 1..4.

    Raises:
        ParamError: ``num_generations must be an integer between 1 and 4``.

    Example:
        >>> parse_num_generations(None), parse_num_generations(3)
        (1, 3)
    """
    if value is None:
        return 1
    if _is_int(value) and 1 <= value <= 4:  # type: ignore[operator]
        return int(value)  # type: ignore[arg-type]
    raise ParamError(MSG_NUM_GENERATIONS)


def _references(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    refs: list[tuple[str, str]] = []
    for name in REFERENCE_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ParamError(f"Invalid {name}: expected an array of URI strings")
        refs.extend((name, v) for v in value)
    return refs


def parse_video_request(
    body: Mapping[str, Any], *, profile: str = "A", auto_duration: int = 5
) -> VideoRequest:
    """Validate a Seedance request body (sync body or the pass-through part of a queue body).

    Args:
        body: The JSON body (``model``/``num_generations`` are ignored here).
        profile: ``"A"`` (12 files total, audio on by default) or ``"B"`` (15 files, audio off by default).
        auto_duration: Seconds rendered for ``auto``.

    Returns:
        The validated request.

    Raises:
        ParamError: With the documented message (see module docstring for the order).

    Example:
        >>> req = parse_video_request({"prompt": "a fox", "duration": "4", "resolution": "480p"})
        >>> req.duration, req.resolution, req.generate_audio
        (4, '480p', True)
        >>> parse_video_request({"duration": "4"})
        Traceback (most recent call last):
        ...
        seedance_prefect.emulator.params.ParamError: Field required
    """
    prompt = body.get("prompt")
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        raise ParamError(MSG_FIELD_REQUIRED)
    if not isinstance(prompt, str):
        raise ParamError("Invalid prompt: expected a string")

    refs = _references(body)
    if len(refs) > MAX_TOTAL_FILES.get(profile, 12):
        raise ParamError(MSG_TOO_MANY_FILES)
    counts = {"image": 0, "video": 0, "audio": 0}
    for name, _ in refs:
        counts[REFERENCE_FIELDS[name]] += 1
    if counts["audio"] and not (counts["image"] or counts["video"]):
        raise ParamError(MSG_AUDIO_NEEDS_VISUAL)

    seconds = parse_duration(body.get("duration"))

    resolution = body.get("resolution")
    resolution = "720p" if resolution is None else resolution
    if resolution not in RESOLUTIONS:
        raise ParamError(MSG_INVALID_RESOLUTION)

    for modality, limit in MAX_PER_MODALITY.items():
        if counts[modality] > limit:
            raise ParamError(f"Too many input {modality}s (max {limit})")

    aspect = body.get("aspect_ratio")
    if aspect is None or aspect in AUTO_ASPECTS:
        aspect = "auto"
    elif aspect not in ASPECT_RATIOS:
        raise ParamError("Invalid aspect_ratio")

    generate_audio = body.get("generate_audio")
    if generate_audio is None:
        generate_audio = profile != "B"
    elif not isinstance(generate_audio, bool):
        raise ParamError("Invalid generate_audio: expected a boolean")

    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise ParamError("Invalid seed: expected an integer")

    response_format = body.get("response_format")
    response_format = "url" if response_format is None else response_format
    if response_format not in RESPONSE_FORMATS:
        raise ParamError("Invalid response_format")

    watermark = body.get("watermark")
    if watermark is not None and not isinstance(watermark, bool):
        raise ParamError("Invalid watermark: expected a boolean")

    namespace = body.get("target_namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace.strip()):
        raise ParamError("Invalid target_namespace")

    return VideoRequest(
        prompt=prompt,
        references=tuple(refs),
        resolution=resolution,
        duration=auto_duration if seconds is None else seconds,
        duration_auto=seconds is None,
        aspect_ratio=aspect,
        generate_audio=generate_audio,
        seed=seed,
        response_format=response_format,
        target_namespace=namespace,
    )


#: Keys of a queue body that are not echoed into rows (they are the queue's own parameters).
NOT_ECHOED: frozenset[str] = frozenset({"model", "num_generations"})


def echo_params(body: Mapping[str, Any], *, profile: str = "A") -> dict[str, Any]:
    """Return the enqueue parameters a queue row echoes at top level.

    Profile A echoes what the caller sent. Profile B echoes the registry types: duration as an int
    (``-1`` = auto) and ``"adaptive"`` for an automatic aspect ratio.

    Args:
        body: The enqueue body.
        profile: ``"A"`` or ``"B"``.

    Returns:
        The parameters to merge into the row.

    Example:
        >>> echo_params({"model": "m", "prompt": "p", "duration": "auto"}, profile="B")
        {'prompt': 'p', 'duration': -1}
    """
    echoed = {k: v for k, v in body.items() if k not in NOT_ECHOED}
    if profile == "B":
        if "duration" in echoed:
            try:
                seconds = parse_duration(echoed["duration"])
                echoed["duration"] = -1 if seconds is None else seconds
            except ParamError:
                pass
        if echoed.get("aspect_ratio") == "auto":
            echoed["aspect_ratio"] = "adaptive"
    return echoed
