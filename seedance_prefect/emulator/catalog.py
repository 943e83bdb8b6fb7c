"""The model catalogue served by ``GET /api/ai/models[/{id}]`` (contract section 6)."""

from __future__ import annotations

from typing import Any

from seedance_prefect.emulator.config import MODEL_ID
from seedance_prefect.emulator.params import ASPECT_RATIOS, MAX_DURATION, MIN_DURATION, RESOLUTIONS

CREATED = 1776124800  # 2026-04-14, when the walkthrough page appeared


def _uri_array(description: str, max_items: int, render: str) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "string", "format": "uri"},
        "maxItems": max_items,
        "description": description,
        "renderType": render,
    }


def request_schema(profile: str = "A") -> dict[str, Any]:
    """Return the JSON Schema of the model's request for a wire profile.

    Args:
        profile: ``"A"`` (string durations, ``auto``, audio on) or ``"B"`` (int durations, ``adaptive``).

    Returns:
        A JSON Schema object.

    Example:
        >>> request_schema("B")["properties"]["duration"]["default"]
        -1
    """
    seconds = list(range(MIN_DURATION, MAX_DURATION + 1))
    if profile == "B":
        duration = {"type": "integer", "enum": [-1, *seconds], "default": -1, "description": "-1 = auto"}
        aspect = {"type": "string", "enum": ["adaptive", *ASPECT_RATIOS], "default": "adaptive"}
        audio_default, total = False, 15
    else:
        duration = {"type": "string", "enum": ["auto", *map(str, seconds)], "default": "auto"}
        aspect = {"type": "string", "enum": ["auto", *ASPECT_RATIOS], "default": "auto"}
        audio_default, total = True, 12
    props: dict[str, Any] = {
        "prompt": {"type": "string", "description": "Use @Image1, @Video1, @Audio1 ... to reference inputs."},
        "input_images": _uri_array("JPEG/PNG/WebP, <= 30 MB each", 9, "image-url"),
        "input_videos": _uri_array("MP4/MOV, combined 2-15 s, < 50 MB total", 3, "video-url"),
        "input_audios": _uri_array("MP3/WAV, combined <= 15 s, <= 15 MB each", 3, "audio-url"),
        "resolution": {"type": "string", "enum": list(RESOLUTIONS), "default": "720p"},
        "duration": duration,
        "generate_audio": {"type": "boolean", "default": audio_default},
        "aspect_ratio": aspect,
        "seed": {"type": "integer"},
    }
    if profile == "B":
        props["input_face_images"] = _uri_array("images containing real human faces", 9, "image-url")
        props["input_face_videos"] = _uri_array("videos containing real human faces", 3, "video-url")
        props["watermark"] = {"type": "boolean", "default": False}
    for order, prop in enumerate(props.values()):
        prop["x-order"] = order
    return {
        "type": "object",
        "required": ["prompt"],
        "properties": props,
        "basic": ["prompt", "input_images", "duration", "resolution"],
        "description": f"At most {total} reference files in total.",
    }


def model_object(profile: str = "A") -> dict[str, Any]:
    """Return the Model object of the emulated model.

    Args:
        profile: Wire profile (changes ``request_schema``).

    Returns:
        The Model object.

    Example:
        >>> model_object()["pricing"]["cost_per_second"]
        0.4
    """
    return {
        "id": MODEL_ID,
        "object": "model",
        "created": CREATED,
        "owned_by": "oxen",
        "display_name": "Seedance 2.0 Reference to Video",
        "description": (
            "ByteDance Seedance 2.0: generate video from a prompt and reference images, videos and audio."
        ),
        "summary": "Reference-to-video with synchronized audio, 480p/720p, 4-15 s.",
        "model_type": "base",
        "endpoint": "/videos/generate",
        "capabilities": {"input": ["text", "image", "video", "audio"], "output": ["video"]},
        "pricing": {
            "method": "per_video_output_second",
            "cost_per_second": 0.4,
            "cost_per_second_with_audio": 0.4,
            "cost_per_second_high_res": None,
            "cost_per_image": None,
            "input_cost_per_token": None,
            "output_cost_per_token": None,
        },
        "fine_tuning": None,
        "deployments": [],
        "developer": {"name": "ByteDance", "logo": None},
        "source_model": None,
        "image_url": None,
        "released_at": "2026-04-14T00:00:00Z",
        "request_schema": request_schema(profile),
    }


def find_model(model_id: str, profile: str = "A") -> dict[str, Any] | None:
    """Look a model up by id.

    Args:
        model_id: The id asked for.
        profile: Wire profile.

    Returns:
        The Model object, or None if unknown.

    Example:
        >>> find_model("nope") is None
        True
    """
    return model_object(profile) if model_id == MODEL_ID else None
