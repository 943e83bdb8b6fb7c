"""Steps composed from the tasks, shared by the single and the batch flows.

The single flow runs one task per step; :func:`finish_generation` is its tail: ``verify_video`` ->
sidecar -> ``deliver_video`` (as a Prefect asset materialization when the target gives a valid
asset key).

A batch runs two task runs per generation instead of six, because every task run is a handful of
events the Prefect server must write (on a small server, the task runs of a large batch cost more
than the batch itself): :func:`generate_row` (enqueue + wait, the time a concurrency slot is held)
and :func:`deliver_generation` (download -> verify -> deliver, as an asset materialization when the
target allows). Both run the same step functions as the single flow's tasks, with the same
retry rule (transient errors only); a retried :func:`generate_row` reattaches to its generations
through the durable journal instead of enqueuing again. All of them must be called inside a
flow run.

Example:
    ```python
    from seedance_prefect.pipeline import deliver_generation, generate_row

    generated = generate_row(request, credentials, name="boat")
    for index, row in generated.finished:
        deliver_generation(row, credentials, request, name="boat", output="./videos",
                           target=resolve_target("s3://bucket/videos", None))
    ```
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prefect import task
from prefect.assets import materialize

from .credentials import OxenCredentials
from .delivery.folder import DeliveredVideo
from .delivery.targets import DeliveryTarget
from .errors import SeedanceError
from .models import Generation, SeedanceRequest
from .settings import DEFAULT_SAFETY_POLL_INTERVAL, DEFAULT_TIMEOUT_SECONDS
from .tasks import (
    DELIVER_VIDEO_OPTIONS,
    RETRYING,
    DownloadedVideo,
    deliver_video,
    download_video,
    enqueue_generation,
    verify_video,
    wait_for_generation,
)

__all__ = [
    "RowGenerations",
    "SlotHold",
    "deliver_generation",
    "finish_generation",
    "generate_row",
    "work_dirs",
]

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


def _delivering(step: Any, options: dict[str, Any], target: DeliveryTarget, name: str) -> Any:
    """``step`` (a task), or the same function as an asset materialization of the delivered video
    (with the same task ``options``) when the target makes a valid asset key of ``name``."""
    key = _asset_key(target, name)
    return step if key is None else materialize(key, by="seedance-prefect", **options)(step.fn)


def _deliver(
    video: DownloadedVideo, target: DeliveryTarget, output: Path, name: str, sidecar: dict[str, Any]
) -> DeliveredVideo:
    """Run ``deliver_video``, as an asset materialization when the target makes a valid asset key."""
    step = _delivering(deliver_video, DELIVER_VIDEO_OPTIONS, target, name)
    return step(video, str(output), name, sidecar, target)


def _sidecar(
    video: DownloadedVideo,
    row: Generation | None,
    request: SeedanceRequest,
    probe: dict[str, Any],
    endpoint: str,
    cost_usd: float | None,
    started: float | None,
) -> dict[str, Any]:
    """The JSON written next to a delivered video."""
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
    """Verify a downloaded video, build its sidecar and deliver both to ``target`` (two task runs).

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
    sidecar = _sidecar(video, row, request, probe, endpoint, cost_usd, started)
    return _deliver(video, target, Path(output).resolve(), name, sidecar)


class SlotHold(Protocol):
    """What :func:`generate_row` needs of a concurrency slot: idempotent acquire and release."""

    def acquire(self) -> None: ...
    def release(self) -> None: ...


@dataclass
class RowGenerations:
    """What :func:`generate_row` leaves for the delivery of a row's videos.

    Attributes:
        ids: Every generation id of the row, in order.
        finished: ``(index, row)`` of each generation that succeeded.
        failures: ``"<id>: <reason>"`` of each generation that failed, was cancelled or timed out.
    """

    ids: list[str]
    finished: list[tuple[int, Generation]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@task(name="generate_row", task_run_name="generate {name}", **RETRYING)
def generate_row(
    request: SeedanceRequest,
    credentials: OxenCredentials,
    name: str,
    run_key: str | None = None,
    journal_dir: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    poll_interval: float = DEFAULT_SAFETY_POLL_INTERVAL,
    slot: SlotHold | None = None,
) -> RowGenerations:
    """Enqueue a request once (or reattach to it) and wait until its generations are terminal.

    The steps of ``enqueue_generation`` and ``wait_for_generation`` in one task run (no progress
    artifact per generation). A transient error retries the task, which reattaches to the
    generations it already enqueued (the journal), so nothing is paid twice; a generation that
    fails, is cancelled or times out is recorded in ``failures`` and the others go on.

    With ``slot``, the task takes it (``slot.acquire()``) right before it posts (after the journal
    is read and the attempt written) and gives it back (``slot.release()``) as soon as every
    generation is terminal, so a concurrency slot is held only while generations are in flight. A
    retry keeps the slot taken on the first try.

    Args:
        request: A validated request whose references are reachable.
        credentials: The account.
        name: The row's name (names the task run).
        run_key: Extra key that makes otherwise equal requests distinct.
        journal_dir: Where the journal lives.
        timeout: Deadline for each generation; past it the generation is cancelled.
        poll_interval: Seconds between fallback polls.
        slot: The concurrency permits of the row (see above), e.g. a batch's
            :class:`~seedance_prefect.batch.runner.Permits`.

    Returns:
        The generation ids, the succeeded rows and the failures.
    """
    generated = RowGenerations(enqueue_generation.fn(request, credentials, run_key, journal_dir, slot))
    for index, gid in enumerate(generated.ids):
        try:
            row = wait_for_generation.fn(gid, credentials, timeout, poll_interval, progress=False)
        except SeedanceError as exc:
            if exc.transient:
                raise  # the retry reattaches; the generations are not lost
            generated.failures.append(f"{gid}: {exc}")
        else:
            generated.finished.append((index, row))
    if slot is not None:
        slot.release()  # every generation is terminal: nothing of this row is in flight
    return generated


def _download_verify_deliver(
    row: Generation,
    credentials: OxenCredentials,
    request: SeedanceRequest,
    name: str,
    output: str,
    target: DeliveryTarget,
    cost_usd: float | None = None,
    started: float | None = None,
) -> DeliveredVideo:
    work, rejected = work_dirs(output)
    video = download_video.fn(row, credentials, str(work))
    probe = verify_video.fn(video, request, str(rejected))
    sidecar = _sidecar(video, row, request, probe, "queue", cost_usd, started)
    return deliver_video.fn(video, str(Path(output).resolve()), name, sidecar, target)


_DELIVER_OPTIONS: dict[str, Any] = {
    "name": "deliver_generation",
    "task_run_name": "deliver {name}",
    **RETRYING,
}
_deliver_generation = task(**_DELIVER_OPTIONS)(_download_verify_deliver)


def deliver_generation(
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
    """Download, verify and deliver a succeeded generation in one task run.

    The task is an asset materialization of the delivered video when the target gives a valid
    asset key. A transient error (download or storage) retries the whole step; a video that does
    not verify is moved to ``<output>/rejected/`` and fails it at once.

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
    step = _delivering(_deliver_generation, _DELIVER_OPTIONS, target, name)
    return step(
        row,
        credentials,
        request,
        name,
        str(output),
        target,
        cost_usd,
        time.time() if started is None else started,
    )
