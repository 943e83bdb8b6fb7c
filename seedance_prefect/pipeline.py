"""The end of one generation's pipeline, shared by the single and the batch flows.

:func:`finish_generation` runs ``verify_video`` -> sidecar -> ``deliver_video`` (as a Prefect asset
materialization when the target gives a valid asset key); :func:`complete_generation` runs
``download_video`` first. Both must be called inside a flow run.

Example:
    ```python
    from seedance_prefect.pipeline import complete_generation

    delivered = complete_generation(row, credentials, request, name="boat", output="./videos",
                                    target=resolve_target("s3://bucket/videos", None))
    ```
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from prefect.assets import materialize
from prefect.cache_policies import NO_CACHE

from .credentials import OxenCredentials
from .delivery import DeliveredVideo
from .models import Generation, SeedanceRequest
from .storage import DeliveryTarget
from .tasks import DownloadedVideo, deliver_video, download_video, verify_video

__all__ = ["complete_generation", "finish_generation", "work_dirs"]

_ASSET_KEY_OK = re.compile(r"^[A-Za-z0-9/_.:\-]+$")


def work_dirs(output: str | Path) -> tuple[Path, Path]:
    """Return the local ``(work, rejected)`` folders under ``output``.

    Example:
        >>> [p.name for p in work_dirs("/tmp/videos")]
        ['.seedance-work', 'rejected']
    """
    out = Path(output).resolve()
    return out / ".seedance-work", out / "rejected"


def _asset_key(target: DeliveryTarget, name: str) -> str | None:
    key = target.asset_key(name)
    return key if key and _ASSET_KEY_OK.match(key) and len(key) <= 512 else None


def _deliver(
    video: DownloadedVideo, target: DeliveryTarget, output: Path, name: str, sidecar: dict[str, Any]
) -> DeliveredVideo:
    """Run ``deliver_video``, as an asset materialization when the target makes a valid asset key."""
    key = _asset_key(target, name)
    if key is None:
        return deliver_video(video, str(output), name, sidecar, target)
    task = materialize(
        key,
        by="seedance-prefect",
        name="deliver_video",
        cache_policy=NO_CACHE,
        retries=2,
        retry_delay_seconds=1,
    )(deliver_video.fn)
    return task(video, str(output), name, sidecar, target)


def finish_generation(
    video: DownloadedVideo,
    row: Generation | None,
    request: SeedanceRequest,
    *,
    name: str,
    output: str | Path,
    target: DeliveryTarget,
    endpoint: str = "queue",
    cost_usd: float | None = None,
    started: float | None = None,
) -> DeliveredVideo:
    """Verify a downloaded video, build its sidecar and deliver both to ``target``.

    Args:
        video: The downloaded, not yet verified video.
        row: The generation's queue row (None for the synchronous endpoint).
        request: The request it was made from (checked against the video).
        name: Base name of the delivered files.
        output: Local folder whose ``rejected/`` keeps videos that fail verification.
        target: Where to deliver.
        endpoint: ``"queue"`` or ``"sync"`` (recorded in the sidecar's request body).
        cost_usd: Estimated cost of this video, for the sidecar.
        started: Unix time the flow started, for the sidecar's timings.

    Returns:
        The delivery.
    """
    _, rejected = work_dirs(output)
    probe = verify_video(video, request, str(rejected))
    sidecar = {
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
    return _deliver(video, target, Path(output).resolve(), name, sidecar)


def complete_generation(
    row: Generation,
    credentials: OxenCredentials,
    request: SeedanceRequest,
    *,
    name: str,
    output: str | Path,
    target: DeliveryTarget,
    cost_usd: float | None = None,
    started: float | None = None,
) -> DeliveredVideo:
    """Download a succeeded generation, then :func:`finish_generation` it.

    Args:
        row: The generation's terminal (succeeded) queue row.
        credentials: The account.
        request: The request it was made from.
        name: Base name of the delivered files.
        output: Local folder for the work files and rejected videos.
        target: Where to deliver.
        cost_usd: Estimated cost of this video, for the sidecar.
        started: Unix time the flow started, for the sidecar's timings.

    Returns:
        The delivery.
    """
    work, _ = work_dirs(output)
    video = download_video(row, credentials, str(work))
    return finish_generation(
        video,
        row,
        request,
        name=name,
        output=output,
        target=target,
        cost_usd=cost_usd,
        started=time.time() if started is None else started,
    )
