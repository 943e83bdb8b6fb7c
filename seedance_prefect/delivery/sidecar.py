"""The JSON sidecar written next to every delivered video (no Prefect, no I/O)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..generation.download import DownloadedVideo
    from ..models import Generation, SeedanceRequest

__all__ = ["build_sidecar"]


def build_sidecar(
    video: DownloadedVideo,
    row: Generation | None,
    request: SeedanceRequest,
    probe: dict[str, Any],
    endpoint: str,
    cost_usd: float | None,
    started: float | None,
) -> dict[str, Any]:
    """The JSON written next to a delivered video: the request, the timings, the source and the probe.

    Example:
        >>> from types import SimpleNamespace
        >>> video = SimpleNamespace(generation_id="g1", downloaded_at=3.0, source="https://cdn/v.mp4")
        >>> request = SimpleNamespace(to_body=lambda endpoint: {"prompt": "a boat", "endpoint": endpoint})
        >>> sidecar = build_sidecar(video, None, request, {"width": 854}, "queue", 2.0, 1.0)
        >>> sidecar["request"]["endpoint"], sidecar["timings"]["downloaded_at"], sidecar["estimated_cost_usd"]
        ('queue', 3.0, 2.0)
    """
    return {
        "generation_id": video.generation_id,
        "request": request.to_body("sync" if endpoint == "sync" else "queue"),
        "estimated_cost_usd": cost_usd,
        "timings": {
            "flow_started_at": started,
            "enqueued_at": getattr(row, "enqueued_at", None),
            "started_at": getattr(row, "started_at", None),
            "completed_at": getattr(row, "completed_at", None),
            "downloaded_at": video.downloaded_at,
        },
        "source": video.source,
        "probe": probe,
    }
