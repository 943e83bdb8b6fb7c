"""Typed request and response models of the Oxen Seedance 2.0 reference-to-video API.

:class:`SeedanceRequest` holds every parameter of the seed document with its default and refuses
bad values with the API's own messages (``"Invalid duration"``, ``"Invalid resolution"``...).
Response models (:class:`VideoResult`, :class:`Generation`, :class:`CompletionEvent`) are tolerant:
they keep unknown fields and read both documented profiles (string or integer duration, ``model``
or ``model_name``, ``url`` or ``result_url``), so a change on the service side is never fatal.

Example:
    >>> req = SeedanceRequest(prompt="@Image1 waves at the camera", input_images=["https://example.com/a.png"],
    ...                       duration=8)
    >>> req.to_body()["duration"]
    '8'
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from . import limits

__all__ = [
    "ACTIVE_STATUSES",
    "CancelResult",
    "CompletionEvent",
    "Endpoint",
    "Generation",
    "SeedanceRequest",
    "VideoItem",
    "VideoResult",
    "count_problems",
    "unknown_parameters",
]

Endpoint = Literal["queue", "sync"]

#: Statuses that mean "still running". Anything else that is not succeeded/failed/cancelled
#: (e.g. "expired") is treated as terminal-unknown.
ACTIVE_STATUSES = frozenset(
    {"queued", "processing", "pending", "running", "starting", "in_queue", "in_progress"}
)
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})

_MEDIA_FIELDS = ("input_images", "input_videos", "input_audios")


def _normalise_duration(value: Any) -> Any:
    """Map the other documented profile onto the seed's wire format: -1 -> "auto", 8 -> "8"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return "auto" if value == -1 else str(value)
    if isinstance(value, float) and value.is_integer():
        return "auto" if value == -1 else str(int(value))
    if isinstance(value, str):
        text = value.strip()
        return "auto" if text in ("-1", "adaptive") else text
    return value


def unknown_parameters(data: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """List the keys of ``data`` that are not request parameters, each with a close match if any.

    Args:
        data: A request body as a mapping.

    Returns:
        ``(key, suggestion)`` pairs; ``suggestion`` is None when nothing is close.

    Example:
        >>> unknown_parameters({"prompt": "x", "durations": "5", "colour": 1})
        [('durations', 'duration'), ('colour', None)]
    """
    known = list(SeedanceRequest.model_fields)
    result = []
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            result.append((str(key), close[0] if close else None))
    return result


def count_problems(images: int, videos: int, audios: int) -> list[tuple[str, str, str, str]]:
    """Check the cross-field counting rules of the API.

    Args:
        images: Number of reference images.
        videos: Number of reference videos.
        audios: Number of reference audio files.

    Returns:
        ``(field, api_message, limit, fix)`` tuples for each broken rule.

    Example:
        >>> count_problems(9, 3, 1)  # doctest: +NORMALIZE_WHITESPACE
        [('input_images', 'Too many input files', 'at most 12 files across images, videos and audio',
          'Reduce the number of reference files')]
        >>> count_problems(0, 0, 1)[0][1]
        'Audio requires at least one image or video'
    """
    problems = []
    if images + videos + audios > limits.MAX_FILES_TOTAL:
        problems.append(
            (
                "input_images",
                "Too many input files",
                f"at most {limits.MAX_FILES_TOTAL} files across images, videos and audio",
                "Reduce the number of reference files",
            )
        )
    if audios and not (images or videos):
        problems.append(
            (
                "input_audios",
                "Audio requires at least one image or video",
                "input_audios needs at least one input_images or input_videos entry",
                "Add at least one reference image or video",
            )
        )
    return problems


class SeedanceRequest(BaseModel):
    """A Seedance 2.0 reference-to-video request, with the seed document's defaults.

    Attributes:
        model: The model id; only ``bytedance-seedance-2-0-reference-to-video`` is accepted.
        prompt: Text prompt; refer to references as ``@Image1``, ``@Video1``, ``@Audio1``...
        input_images: Reference images (JPEG/PNG/WebP, up to 9, 30 MB each): https/http URLs,
            ``data:`` URIs or local paths (local paths are hosted before sending).
        input_videos: Reference videos (MP4/MOV, up to 3, 2-15 s combined, under 50 MB in total).
        input_audios: Reference audio (MP3/WAV, up to 3, 15 s combined, 15 MB each); needs an
            image or a video.
        resolution: ``"480p"`` or ``"720p"`` (default).
        duration: ``"auto"`` (default) or ``"4"``..``"15"``; ints are accepted and sent as strings.
        generate_audio: Generate a synchronized soundtrack (default True; same price).
        aspect_ratio: ``"auto"`` (default), ``"21:9"``, ``"16:9"``, ``"4:3"``, ``"1:1"``, ``"3:4"``
            or ``"9:16"``.
        seed: Random seed (best-effort reproducibility).
        response_format: ``"url"`` (default) or ``"b64_json"``; synchronous endpoint only.
        target_namespace: User or organisation to save results in and bill; default the caller.
        num_generations: Videos to make from this request, 1-4 (queue only; the synchronous
            endpoint makes one).
        extra_params: Other body keys passed through unchanged, for parameters this package does
            not know yet (e.g. ``{"watermark": False}``).

    Example:
        >>> req = SeedanceRequest(prompt="A paper boat on a pond", resolution="480p", duration="5")
        >>> body = req.to_body("sync")
        >>> body["model"], body["resolution"], body["generate_audio"]
        ('bytedance-seedance-2-0-reference-to-video', '480p', True)
        >>> SeedanceRequest(prompt="x", durations="5")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pydantic_core._pydantic_core.ValidationError: 1 validation error for SeedanceRequest
        ...Unknown parameter 'durations'; did you mean 'duration'?...
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    model: str = limits.MODEL_ID
    prompt: str
    input_images: list[str] = Field(default_factory=list)
    input_videos: list[str] = Field(default_factory=list)
    input_audios: list[str] = Field(default_factory=list)
    resolution: str = limits.DEFAULT_RESOLUTION
    duration: str = limits.DEFAULT_DURATION
    generate_audio: bool = limits.DEFAULT_GENERATE_AUDIO
    aspect_ratio: str = limits.DEFAULT_ASPECT_RATIO
    seed: int | None = None
    response_format: str = limits.DEFAULT_RESPONSE_FORMAT
    target_namespace: str | None = None
    num_generations: int = 1
    extra_params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = unknown_parameters(data)
            if unknown:
                parts = [
                    f"Unknown parameter {key!r}" + (f"; did you mean {hint!r}?" if hint else "")
                    for key, hint in unknown
                ]
                raise PydanticCustomError(
                    "unknown_parameter",
                    "{parts}. Pass parameters this package does not know in extra_params.",
                    {"parts": "; ".join(parts)},
                )
        return data

    @field_validator("model")
    @classmethod
    def _only_this_model(cls, value: str) -> str:
        if value != limits.MODEL_ID:
            raise PydanticCustomError(
                "model_not_supported",
                "Model not supported: {value}; this package drives only {model}",
                {"value": value, "model": limits.MODEL_ID},
            )
        return value

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_required(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise PydanticCustomError("missing", "Field required")
        return value

    @field_validator("resolution", mode="before")
    @classmethod
    def _resolution(cls, value: Any) -> Any:
        if value not in limits.RESOLUTIONS:
            raise PydanticCustomError(
                "invalid_resolution",
                'Invalid resolution: {value}; use "480p" or "720p"',
                {"value": repr(value)},
            )
        return value

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        normalised = _normalise_duration(value)
        if normalised not in limits.DURATIONS:
            raise PydanticCustomError(
                "invalid_duration",
                'Invalid duration: {value}; use "auto" or "4" through "15"',
                {"value": repr(value)},
            )
        return normalised

    @field_validator("aspect_ratio", mode="before")
    @classmethod
    def _aspect_ratio(cls, value: Any) -> Any:
        value = "auto" if value == "adaptive" else value
        if value not in limits.ASPECT_RATIOS:
            raise PydanticCustomError(
                "invalid_aspect_ratio",
                "Invalid aspect_ratio: {value}; use one of {choices}",
                {"value": repr(value), "choices": ", ".join(limits.ASPECT_RATIOS)},
            )
        return value

    @field_validator("response_format", mode="before")
    @classmethod
    def _response_format(cls, value: Any) -> Any:
        if value not in limits.RESPONSE_FORMATS:
            raise PydanticCustomError(
                "invalid_response_format",
                'Invalid response_format: {value}; use "url" or "b64_json"',
                {"value": repr(value)},
            )
        return value

    @field_validator("num_generations", mode="before")
    @classmethod
    def _num_generations(cls, value: Any) -> Any:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not (limits.NUM_GENERATIONS_MIN <= value <= limits.NUM_GENERATIONS_MAX)
        ):
            raise PydanticCustomError(
                "invalid_num_generations", "num_generations must be an integer between 1 and 4"
            )
        return value

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_is_int(cls, value: Any) -> Any:
        if isinstance(value, bool) or (value is not None and not isinstance(value, int)):
            raise PydanticCustomError(
                "invalid_seed", "seed must be an integer, got {value}", {"value": repr(value)}
            )
        return value

    @field_validator("extra_params")
    @classmethod
    def _extra_params_are_new(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(set(value) & set(cls.model_fields))
        if clash:
            raise PydanticCustomError(
                "extra_params_clash",
                "extra_params may not repeat known parameters: {clash}; set them directly",
                {"clash": ", ".join(clash)},
            )
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> SeedanceRequest:
        problems = count_problems(len(self.input_images), len(self.input_videos), len(self.input_audios))
        if problems:
            raise PydanticCustomError(
                "invalid_references", "{messages}", {"messages": "; ".join(p[1] for p in problems)}
            )
        return self

    def to_body(self, endpoint: Endpoint = "queue") -> dict[str, Any]:
        """Build the JSON body for an endpoint, in the seed document's wire format.

        Every parameter is sent explicitly (defaults included), so a change of defaults on the
        service side (the newer registry schema defaults ``generate_audio`` to false) does not
        change what you get. Empty reference lists and unset optional fields are left out;
        ``response_format`` goes only to the synchronous endpoint and ``num_generations`` only to
        the queue.

        Args:
            endpoint: ``"queue"`` (``POST /ai/queue``) or ``"sync"`` (``POST /ai/videos/generate``).

        Returns:
            The body as a dict.

        Raises:
            ValueError: ``num_generations`` above 1 for the synchronous endpoint.

        Example:
            >>> body = SeedanceRequest(prompt="hi", num_generations=2).to_body("queue")
            >>> body["num_generations"], "response_format" in body
            (2, False)
        """
        if endpoint == "sync" and self.num_generations > 1:
            raise ValueError(
                "num_generations must be 1 for the synchronous endpoint; use the queue for 2-4 generations"
            )
        body: dict[str, Any] = {"model": self.model, "prompt": self.prompt}
        for name in _MEDIA_FIELDS:
            items = getattr(self, name)
            if items:
                body[name] = list(items)
        body.update(
            resolution=self.resolution,
            duration=self.duration,
            generate_audio=self.generate_audio,
            aspect_ratio=self.aspect_ratio,
        )
        if self.seed is not None:
            body["seed"] = self.seed
        if endpoint == "sync":
            body["response_format"] = self.response_format
        if self.target_namespace:
            body["target_namespace"] = self.target_namespace
        if endpoint == "queue":
            body["num_generations"] = self.num_generations
        body.update(self.extra_params)
        return body

    def fingerprint(self, run_key: str | None = None) -> str:
        """Return a stable sha256 of the normalised request (plus an optional user key).

        Two requests with the same parameters give the same fingerprint whatever the key order
        or spelling (``8`` vs ``"8"``); it is the key of the durable enqueue record.

        Example:
            >>> a = SeedanceRequest(prompt="x", duration=8).fingerprint()
            >>> a == SeedanceRequest(duration="8", prompt="x").fingerprint()
            True
            >>> a == SeedanceRequest(prompt="x", duration=8).fingerprint(run_key="retake-2")
            False
        """
        canonical = json.dumps(
            {"body": self.to_body("queue"), "run_key": run_key}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def reference_count(self) -> int:
        """Total number of reference files."""
        return len(self.input_images) + len(self.input_videos) + len(self.input_audios)


class _Tolerant(BaseModel):
    """Base of response models: unknown fields are kept, never fatal."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @property
    def extra_fields(self) -> dict[str, Any]:
        """Fields the service sent that this model does not know."""
        return dict(self.__pydantic_extra__ or {})


def _to_timestamp(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


class VideoItem(_Tolerant):
    """One generated video of a synchronous answer: a hosted ``url`` or inline ``b64_json``.

    ``saved_to`` is not part of the answer: it names the local file an inline video was decoded to
    when the client streamed it to disk (``generate(..., save_to=...)``).

    Example:
        >>> VideoItem.model_validate({"url": "https://hub.oxen.ai/v.mp4"}).url
        'https://hub.oxen.ai/v.mp4'
    """

    url: str | None = None
    b64_json: str | None = Field(default=None, repr=False)
    saved_to: str | None = None


class VideoResult(_Tolerant):
    """Answer of ``POST /ai/videos/generate``: ``{"created", "model", "videos": [...]}``.

    Also reads the 2025 shape with a top-level ``video_url``.

    Example:
        >>> r = VideoResult.model_validate({"created": 1775090723, "model": "m",
        ...                                 "videos": [{"url": "https://hub.oxen.ai/v.mp4"}]})
        >>> r.videos[0].url
        'https://hub.oxen.ai/v.mp4'
        >>> VideoResult.model_validate({"video_url": "https://x/v.mp4"}).videos[0].url
        'https://x/v.mp4'
    """

    created: int | None = None
    model: str | None = None
    videos: list[VideoItem] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _older_shapes(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "videos" not in data:
            data = dict(data)
            if "video_url" in data:
                data["videos"] = [{"url": data.pop("video_url")}]
            elif isinstance(data.get("data"), list):
                data["videos"] = data.pop("data")
        return data


class Generation(_Tolerant):
    """A queue row (``GET /ai/queue/{id}``): status, result and every echoed parameter.

    Unknown statuses (e.g. ``"expired"``) are terminal-unknown: :attr:`is_terminal` is True and
    :attr:`state` is ``"unknown"``. Older rows that say ``model`` instead of ``model_name`` and
    integer durations are read as well.

    Example:
        >>> g = Generation.model_validate({"generation_id": "g1", "status": "expired", "model": "m",
        ...                                "duration": -1, "surprise": 1})
        >>> g.model_name, g.duration, g.is_terminal, g.state, g.extra_fields
        ('m', 'auto', True, 'unknown', {'surprise': 1})
    """

    generation_id: str
    status: str = "queued"
    model_name: str | None = Field(default=None, validation_alias=AliasChoices("model_name", "model"))
    prompt: str | None = None
    media_type: str | None = None
    result_url: str | None = Field(default=None, validation_alias=AliasChoices("result_url", "url"))
    error_message: str | None = Field(default=None, validation_alias=AliasChoices("error_message", "error"))
    enqueued_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    duration: str | None = None

    @field_validator("enqueued_at", "started_at", "completed_at", mode="before")
    @classmethod
    def _timestamps(cls, value: Any) -> float | None:
        try:
            return _to_timestamp(value)
        except ValueError:
            return None

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else str(_normalise_duration(value))

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> str:
        return str(value or "queued").strip().lower()

    @property
    def is_active(self) -> bool:
        """True while the generation is queued or processing."""
        return self.status in ACTIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        """True once the status will not change (succeeded, failed, cancelled or unknown)."""
        return not self.is_active

    @property
    def state(self) -> Literal["active", "succeeded", "failed", "cancelled", "unknown"]:
        """The status folded into five states; unknown statuses fold into ``"unknown"``."""
        if self.is_active:
            return "active"
        if self.status in TERMINAL_STATUSES:
            return self.status  # type: ignore[return-value]
        if self.status == "canceled":
            return "cancelled"
        return "unknown"


class CompletionEvent(_Tolerant):
    """A ``media_generation_completed`` server-sent event.

    The event names its fields differently from the REST rows (``url`` / ``error`` / ``model``);
    :meth:`to_generation` maps it onto a :class:`Generation`.

    Example:
        >>> e = CompletionEvent.model_validate({"generation_id": "g1", "status": "succeeded",
        ...                                     "media_type": "video", "url": "https://x/v.mp4"})
        >>> e.to_generation().result_url
        'https://x/v.mp4'
    """

    event: str = "media_generation_completed"
    generation_id: str
    status: str
    media_type: str | None = None
    model: str | None = None
    url: str | None = None
    error: str | None = None

    def to_generation(self) -> Generation:
        """Return the event as a queue row."""
        return Generation(
            generation_id=self.generation_id,
            status=self.status,
            model_name=self.model,
            media_type=self.media_type,
            result_url=self.url,
            error_message=self.error,
        )


class CancelResult(_Tolerant):
    """Answer of ``DELETE /ai/queue/{id}``: ``{"status": "success", "generation_id": ...}``."""

    status: str = "success"
    generation_id: str | None = None
