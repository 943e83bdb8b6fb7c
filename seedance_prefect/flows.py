"""The ``reference_to_video`` flow: validate -> prepare references -> enqueue -> wait -> download ->
verify -> deliver, with remote cancellation when the run is cancelled, crashes or fails.

Example:
    ```python
    from seedance_prefect.flows import reference_to_video

    deliveries = reference_to_video(
        {"prompt": "@Image1 waves at the camera", "input_images": ["https://example.com/a.png"],
         "duration": "5"},
        credentials="oxen",          # a saved OxenCredentials block (or None: OXEN_API_KEY)
        output="./videos",
    )
    print(deliveries[0]["video"])
    ```
"""

# No `from __future__ import annotations` here: Prefect builds the flow's parameter model from
# these annotations, and string annotations do not resolve when a runner loads the flow by entrypoint.

import functools
import logging
import re
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.runtime import flow_run as current_flow_run

from .batch.manifest import already_delivered
from .credentials import OxenCredentials, resolve_credentials
from .delivery.folder import DeliveredVideo, default_name, safe_name, work_dirs
from .delivery.redeliver import redeliver, succeeded_generation
from .delivery.targets import resolve_target
from .errors import SeedanceError
from .generation.cancel import cancel_leftovers, left_by
from .generation.journal import Journal
from .lifecycle import emit_delivered
from .models import SeedanceRequest
from .pricing import estimate_cost
from .settings import DEFAULT_SAFETY_POLL_INTERVAL, DEFAULT_TIMEOUT_SECONDS
from .tasks import (
    DownloadedVideo,
    download_video,
    enqueue_generation,
    finish_generation,
    generate_sync,
    prepare_references,
    validate_request,
    wait_for_generation,
)

__all__ = ["cancel_remote_generations", "reference_to_video"]

#: Credentials of the latest flow runs of this process, for the cancellation hooks (never
#: persisted; a hook in another process falls back to the saved block's name or the environment).
_RUN_CREDENTIALS: OrderedDict[str, OxenCredentials] = OrderedDict()
_RUN_CREDENTIALS_KEPT = 64


def _credentials_for_hook(flow_run: Any) -> OxenCredentials | None:
    creds = _RUN_CREDENTIALS.get(str(flow_run.id))
    if creds is not None:
        return creds
    param = (flow_run.parameters or {}).get("credentials")
    try:  # in a runner process: a saved block's name, or the environment
        return resolve_credentials(param if isinstance(param, str) else None)
    except Exception:
        return None


def cancel_remote_generations(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook: cancel (DELETE) every remote generation this flow run enqueued and did not deliver.

    Used as ``on_cancellation``, ``on_crashed`` and ``on_failure`` hook. The generations come
    from the durable journal, not from memory, so the hook also works when Prefect runs it in the
    runner process: the ids the journal records, and those of this run's attempts still marked
    ``posting`` (the run ended while its POST was in flight, or before the answer was journaled),
    found by listing the queue as a re-run does. A ``posting`` attempt that another live process
    is posting (its lease is fresh) is left alone. Cancelling a generation that already ended has
    no effect on the service. The same functions serve the CLI's interrupt and the cleanup flow of
    crashed runs (:mod:`seedance_prefect.generation.cancel`).

    Args:
        flow: The flow (unused; a hook's signature).
        flow_run: The flow run: its id, and its ``state``, ``journal_dir`` and ``credentials``
            parameters.
        state: The state that called the hook.

    Example:
        >>> from types import SimpleNamespace
        >>> import tempfile
        >>> run = SimpleNamespace(id="run-0", parameters={"journal_dir": tempfile.mkdtemp()})
        >>> cancel_remote_generations(None, run, SimpleNamespace(name="Crashed"))  # nothing journaled
    """
    logger = get_run_logger() if _has_run_context() else None
    params = flow_run.parameters or {}
    try:
        journal = Journal.at(params.get("state"), params.get("journal_dir"))
        left = left_by(journal, [str(flow_run.id)])
    except Exception as exc:  # best effort; never mask the run's own failure
        if logger:
            logger.warning("Could not read the journal to cancel remote generations: %s", exc)
        return
    if logger:
        for fingerprint, why in left.left_alone.items():
            logger.info("Not cancelling the enqueue of %s: %s", fingerprint[:12], why)
    if not left:
        return
    creds = _credentials_for_hook(flow_run)
    if creds is None:
        if logger:
            logger.warning("No credentials to cancel remote generation(s) %s", ", ".join(left.known))
        return
    with creds.get_client(timeout=4.0, max_retries=0) as client:
        cancel_leftovers(client, left, log=logger or logging.getLogger(__name__))


def _has_run_context() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return bool(FlowRunContext.get() or TaskRunContext.get())


def _link(location: str) -> str:
    """A link to a delivered file: URLs as they are, local paths as file:// URIs."""
    return location if "://" in location else Path(location).resolve().as_uri()


def _summary(
    request: SeedanceRequest, delivered: list[DeliveredVideo], failures: list[str], cost: Any, started: float
) -> str:
    lines = [
        "# Seedance reference-to-video",
        "",
        f"**Prompt:** {request.prompt[:500]}",
        "",
        f"**Estimated cost:** {cost}  ",
        f"**Wall time:** {time.time() - started:.1f} s",
        "",
        "| generation | video | size | sha256 |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {d.generation_id} | [{Path(d.video).name}]({_link(d.video)}) | "
        f"{d.size_bytes:,} B | `{d.sha256[:16]}` |"
        for d in delivered
    ]
    if failures:
        lines += ["", "**Failed:**", *[f"- {f}" for f in failures]]
    return "\n".join(lines)


@flow(
    name="seedance-reference-to-video",
    on_cancellation=[cancel_remote_generations],
    on_crashed=[cancel_remote_generations],
    on_failure=[cancel_remote_generations],
)
def reference_to_video(
    request: SeedanceRequest | dict[str, Any],
    credentials: OxenCredentials | str | None = None,
    output: str = "seedance-output",
    sync: bool = False,
    name: str | None = None,
    run_key: str | None = None,
    new: bool = False,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    poll_interval: float = DEFAULT_SAFETY_POLL_INTERVAL,
    base_dir: str | None = None,
    journal_dir: str | None = None,
    deliver_to: str | None = None,
    hosting: str | None = None,
    repository: str | None = None,
    fix_references: bool = True,
    state: str | None = None,
) -> list[dict[str, Any]]:
    """Generate video(s) from a prompt and references, verify them and deliver them to storage.

    Args:
        request: The API body (a dict or a ``SeedanceRequest``); local reference paths are
            resolved against ``base_dir``.
        credentials: An ``OxenCredentials`` block, a saved block's name, or None for
            ``OXEN_API_KEY`` / ``OXEN_BASE_URL``.
        output: Output folder; ``<name>.mp4`` and ``<name>.json`` per generation.
        sync: Use the synchronous endpoint (one video; ``response_format`` url or b64_json).
        name: Base name of the outputs; default from the prompt and the request fingerprint.
        run_key: Extra key: equal requests with different keys are generated separately.
        new: Force a fresh (paid) generation instead of reattaching to an earlier one. Without it,
            videos an earlier run delivered are delivered again with no new generation: kept when
            this target already holds them, else copied from the earlier delivery, else
            downloaded again from the service; when none works they fail, naming ``--new``.
        timeout_seconds: Deadline for each generation; past it the generation is cancelled.
        poll_interval: Seconds between fallback polls (completion events arrive sooner).
        base_dir: Folder that relative local paths in the request are relative to.
        journal_dir: Folder of the durable enqueue journal (default ``~/.seedance/journal``).
        deliver_to: Deliver here instead of ``output`` (which then only keeps work files and
            rejected videos): an fsspec URL such as ``s3://bucket/prefix/`` or a saved block as
            ``"s3-bucket/NAME"``, ``"remote-file-system/NAME"``, ``"local-file-system/NAME"``.
            Checked before anything is paid.
        hosting: How local reference files reach the service: ``"data"`` (inline data: URIs),
            ``"oxen"`` (upload to ``repository``) or ``"s3-bucket/<block-name>"`` (presigned
            URLs). None: ``"oxen"`` when a repository is configured, else ``"data"``.
        repository: Oxen repository ``namespace/name`` for ``"oxen"`` hosting (default: the
            credentials block's ``repository``).
        fix_references: Fix references the service would refuse (rotation, size, duration,
            format...; a table artifact lists every change). False: send them as they are, and
            refuse the request when one needs a fix.
        state: Where the journal (and the S3 hosting's URL record) lives, shared by every machine
            that names the same store: ``"s3://bucket/prefix/"``, ``"s3-bucket/NAME"`` or a folder.
            None: ``$SEEDANCE_STATE``, else ``journal_dir``, else ``~/.seedance``. A run that
            moves to another machine then reattaches instead of paying again.

    Returns:
        One dict per delivered video: ``generation_id``, ``video``, ``sidecar``, ``sha256``,
        ``size_bytes``, ``reused``.

    Raises:
        InvalidRequest: The request was refused locally (nothing sent).
        GenerationFailed: The generation failed on the service.
        VerificationFailed: The video does not match the request (kept aside, not delivered).
    """
    started = time.time()
    logger = get_run_logger()
    run_id = current_flow_run.get_id()
    creds = resolve_credentials(credentials)
    if run_id:
        _RUN_CREDENTIALS[run_id] = creds
        while len(_RUN_CREDENTIALS) > _RUN_CREDENTIALS_KEPT:
            _RUN_CREDENTIALS.popitem(last=False)
    req = validate_request(request, "sync" if sync else "queue", base_dir)
    if new:
        run_key = f"{run_key or ''}new-{run_id or time.time()}"
    base_name = safe_name(name) if name else default_name(req.prompt, req.fingerprint(run_key))
    out = Path(output).resolve()
    target = resolve_target(deliver_to, out)
    target.check()  # before references are uploaded and before anything is paid
    journal = Journal.at(state, journal_dir)  # a bad state value fails here, before anything is paid
    prepared = prepare_references(req, creds, hosting, repository, fix_references, state=state)
    cost = estimate_cost(req.duration, 1 if sync else req.num_generations)
    work, _ = work_dirs(out)
    delivered: list[DeliveredVideo] = []
    failures: list[tuple[str, BaseException]] = []

    def output_name(index: int, count: int) -> str:
        return base_name if count == 1 else f"{base_name}-{index + 1}"

    def deliver(video: DownloadedVideo, row: Any, index: int, count: int) -> DeliveredVideo:
        return finish_generation(
            video,
            row,
            req,
            name=output_name(index, count),
            output=out,
            target=target,
            endpoint="sync" if sync else "queue",
            cost_usd=cost.usd / max(1, count),
            started=started,
        )

    def finish(video: DownloadedVideo, row: Any, index: int, count: int) -> None:
        delivered.append(deliver(video, row, index, count))

    def download_again(gid: str, index: int, count: int) -> DeliveredVideo:
        with creds.get_client() as client:
            row = succeeded_generation(client, gid)  # DownloadError when the service no longer has it
        return deliver(download_video(row, creds, str(work)), row, index, count)

    fingerprint = prepared.fingerprint(run_key)
    # Delivered by an earlier run (maybe to another target): already there, copied or downloaded
    # again; never enqueued again (new=True changed the run key, so nothing is found then).
    earlier = None if sync or new else already_delivered(journal, fingerprint)
    if sync:
        finish(generate_sync(prepared, creds, str(work)), None, 0, 1)
    elif earlier:
        for index, recorded in enumerate(earlier):
            gid, count = str(recorded["generation_id"]), len(earlier)
            try:
                done = redeliver(
                    recorded,
                    target,
                    output_name(index, count),
                    workdir=work,
                    download_again=functools.partial(download_again, gid, index, count),
                )
            except SeedanceError as exc:
                logger.error("Generation %s: %s", gid, exc)
                failures.append((gid, exc))
            else:
                logger.info("Generation %s (delivered before): %s, %s", gid, done.how, done.delivered.video)
                delivered.append(done.delivered)
        journal.record_deliveries(fingerprint, delivered)
    else:
        ids = enqueue_generation(prepared, creds, run_key=run_key, journal_dir=journal_dir, state=state)
        for index, gid in enumerate(ids):
            try:
                row = wait_for_generation(gid, creds, timeout_seconds, poll_interval)
                finish(download_video(row, creds, str(work)), row, index, len(ids))
            except SeedanceError as exc:
                logger.error("Generation %s: %s", gid, exc)
                failures.append((gid, exc))
        journal.record_deliveries(fingerprint, delivered)

    create_markdown_artifact(
        _summary(req, delivered, [f"{g}: {e}" for g, e in failures], cost, started),
        key=re.sub(r"[^a-z0-9-]+", "-", base_name.lower()).strip("-")[:60] or None,
        description="Seedance generation summary",
    )
    emit_delivered(delivered, req.prompt)
    if failures:
        if len(failures) == 1 and not delivered:
            raise failures[0][1]
        raise SeedanceError(
            f"{len(delivered)} of {len(delivered) + len(failures)} generations delivered; failed: "
            + "; ".join(f"{g}: {e}" for g, e in failures)
        )
    return [d.to_dict() for d in delivered]
