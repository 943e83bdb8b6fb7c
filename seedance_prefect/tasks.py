"""Prefect tasks: one retryable, observable step of a generation each.

``validate_request`` -> ``prepare_references`` -> ``enqueue_generation`` (or ``generate_sync``) ->
``wait_for_generation`` -> ``download_video`` -> ``verify_video`` -> ``deliver_video``.

Retries happen only on transient errors (429, 5xx, broken connections, truncated downloads), with
jittered exponential delays; permanent errors (invalid input, 401, 404, a failed generation, a
video that does not verify) fail at once with the service's message. ``Retry-After`` is honoured
inside the client, which is the only place that sees it. Every task uses ``NO_CACHE``: a poll must
never be answered from a cache, and the enqueue's idempotency comes from the durable journal
(see :mod:`seedance_prefect.generation.journal` for why).

The never-pay-twice enqueue, the rate-limit loop, the download and the synchronous generation are
Prefect-free functions of :mod:`seedance_prefect.generation`; the tasks here only add the run
logger, the flow run id and Prefect's retries around them.

Customise any task the Prefect way, e.g. ``enqueue_generation.with_options(retries=5)``.

**Async flows.** Each step has an async twin named as prefect-aws names them (``batch_submit`` /
``abatch_submit``): :data:`avalidate_request`, :data:`aprepare_references`, :data:`aenqueue_generation`,
:data:`await_for_generation`, :data:`adownload_video`, :data:`agenerate_sync`, :data:`averify_video` and
:data:`adeliver_video`. A twin is a task of the same name and options that runs the same function in a
worker thread, so an async flow's event loop stays free while a generation is awaited::

    @flow
    async def my_flow(request: SeedanceRequest, credentials: OxenCredentials) -> str:
        [gid] = await aenqueue_generation(request, credentials)
        row = await await_for_generation(gid, credentials)
        return row.result_url

The sync tasks stay plain :class:`~prefect.Task` objects (``.with_options``, ``.submit``, ``.map``):
Prefect's ``async_dispatch`` would have turned them into functions, and it is private to Prefect.
Cancelling an async flow does not stop a twin's thread; the flow's cancellation hooks cancel its
generations on the service.

**Events.** ``enqueue_generation`` and ``wait_for_generation`` (and so ``generate_row``) emit the
``seedance.generation.*`` lifecycle events of :mod:`seedance_prefect.lifecycle`.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Coroutine
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio.to_thread
from prefect import Task, task
from prefect.artifacts import create_table_artifact
from prefect.assets import materialize
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger
from prefect.runtime import flow_run, task_run
from prefect.tasks import exponential_backoff

from .client.completion import DEFAULT_CONNECT_TIMEOUT, wait_for_completion
from .credentials import OxenCredentials
from .delivery.folder import DeliveredVideo, work_dirs
from .delivery.sidecar import build_sidecar
from .delivery.targets import DeliveryTarget, resolve_target
from .delivery.verify import verify_video_file
from .errors import GenerationFailed, GenerationTimeout, SeedanceError, VerificationFailed, is_transient
from .generation.cancel import cancel_quietly
from .generation.download import DownloadedVideo, download_generation, generate_and_save
from .generation.enqueue import enqueue_once
from .generation.journal import Journal
from .generation.ratelimit import RATE_LIMIT_TRIES  # times a 429 to a POST is waited out in a task
from .lifecycle import GenerationWatch, announce_enqueued
from .models import Generation, SeedanceRequest
from .preflight.check import validate_request as _preflight_validate
from .progress import ProgressReporter
from .references.hosting import hosting_from_spec
from .references.preprocess import default_cache_dir
from .references.preprocess import prepare as prepare_media
from .settings import DEFAULT_SAFETY_POLL_INTERVAL, DEFAULT_TIMEOUT_SECONDS

__all__ = [
    "DownloadedVideo",
    "RowGenerations",
    "SlotHold",
    "adeliver_video",
    "adownload_video",
    "aenqueue_generation",
    "agenerate_sync",
    "aprepare_references",
    "avalidate_request",
    "averify_video",
    "await_for_generation",
    "deliver_generation",
    "deliver_video",
    "download_video",
    "enqueue_generation",
    "finish_generation",
    "generate_row",
    "generate_sync",
    "prepare_references",
    "retry_if_transient",
    "validate_request",
    "verify_video",
    "wait_for_generation",
]

PROGRESS = {"queued": 0.1, "processing": 0.5}


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only what :func:`~seedance_prefect.errors.is_transient` allows.

    Example:
        ```python
        from prefect import task
        from seedance_prefect.tasks import retry_if_transient

        @task(retries=3, retry_condition_fn=retry_if_transient)
        def my_step(): ...
        ```
    """
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)


#: Options of every task that talks to the service: transient errors retried with jittered backoff.
RETRYING: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
    "cache_policy": NO_CACHE,
}


@task(name="validate_request", cache_policy=NO_CACHE)
def validate_request(
    request: SeedanceRequest | dict[str, Any],
    endpoint: str = "queue",
    base_dir: str | None = None,
) -> SeedanceRequest:
    """Check a request locally (limits, references, prompt tags) before anything is paid.

    Raises:
        InvalidRequest: With every problem found; never retried.
    """
    data = request.model_dump() if isinstance(request, SeedanceRequest) else request
    validated = _preflight_validate(data, endpoint=endpoint, base_dir=Path(base_dir) if base_dir else None)
    return validated


@task(name="prepare_references", cache_policy=NO_CACHE)
def prepare_references(
    request: SeedanceRequest,
    credentials: OxenCredentials | None = None,
    hosting: str | None = None,
    repository: str | None = None,
    fix: bool = True,
    cache_dir: str | None = None,
    state: str | None = None,
) -> SeedanceRequest:
    """Fix what the service would refuse, and host what is local (see ``docs/references.md``).

    Every change is logged and published as the table artifact ``seedance-reference-fixes``
    (what, why, before -> after); compliant references are sent byte-identical. Prepared outputs
    are cached by content hash in ``cache_dir`` (default ``$SEEDANCE_STATE_DIR/cache``), uploads
    are named by content hash, so re-runs neither re-encode nor re-upload.

    Args:
        request: A validated request (local paths absolute, maybe with ``#t=in,out``).
        credentials: The account (key and base URL for Oxen repository hosting).
        hosting: ``"data"``, ``"oxen"`` or ``"s3-bucket/<block-name>"``; None: ``"oxen"`` when a
            repository is configured, else ``"data"``.
        repository: Oxen repository ``namespace/name`` (default: the credentials block's).
        fix: False: send the references as they are (what preprocessing would fix is refused).
        cache_dir: Cache of prepared references.
        state: The state store of the S3 hosting's URL record (the journal's: see
            :func:`~seedance_prefect.state.resolve_state`); None: ``$SEEDANCE_STATE``, else ``cache_dir``.

    Returns:
        A new request whose references the service can read; the original is not changed.

    Raises:
        InvalidRequest: A reference cannot be fixed (or ``fix=False`` and one needs a fix).
        HostingError: A file could not be hosted.
    """
    logger = get_run_logger()
    if not fix:
        _preflight_validate(request, fix=False)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    strategy = hosting_from_spec(
        hosting, repository=repository, credentials=credentials, state_dir=cache, state=state
    )
    prepared = prepare_media(request, cache_dir=cache, hosting=strategy, fix=fix)
    for applied in prepared.fixes:
        logger.info("Reference fix: %s", applied)
    for ref in prepared.references:
        logger.info("%s: %s via %s (%s)", ref.field, ref.action, ref.hosting or "as given", ref.uri[:120])
    if prepared.references:
        create_table_artifact(
            prepared.table(),
            key="seedance-reference-fixes",
            description=f"Reference preprocessing: {len(prepared.fixes)} fix(es), hosting {strategy.name}",
        )
    return prepared.request


@task(name="enqueue_generation", **RETRYING)
def enqueue_generation(
    request: SeedanceRequest,
    credentials: OxenCredentials,
    run_key: str | None = None,
    journal_dir: str | None = None,
    slot: Any = None,
    state: str | None = None,
) -> list[str]:
    """Enqueue a request once, however often and on however many machines it is run: returns its ids.

    The attempt is claimed in the durable journal right before the POST and its ids recorded
    after it. A re-run reattaches to known generations that did not fail, waits for another run
    that is posting the same request, and recovers a POST whose answer was lost by listing the
    queue and matching prompt and parameters, before anything is posted again. The account's
    completion-event stream is connected first (at most 5 s): events are not replayed, so a
    generation that ends before the waiting step starts still has its event.

    Emits ``seedance.generation.enqueued`` per generation when this run's POST created them (or
    recovered a lost answer), not on a reattach.

    Args:
        request: A validated request whose references are reachable.
        credentials: The account.
        run_key: Extra key that makes otherwise equal requests distinct.
        journal_dir: Where the journal lives (default ``~/.seedance/journal``).
        slot: A concurrency slot (anything with an idempotent ``acquire()``), taken right before
            the attempt is claimed and posted (or the ids returned on a reattach).
        state: The state store of the journal, shared by machines that name the same one
            (``s3://bucket/prefix/``, ``s3-bucket/NAME`` or a folder); wins over ``journal_dir``.

    Returns:
        One generation id per ``num_generations``.
    """
    # the service does not replay completion events: have the account's stream up before the POST
    credentials.completion_hub().ensure_connected(DEFAULT_CONNECT_TIMEOUT)
    with credentials.get_client() as client:
        return enqueue_once(
            client,
            request,
            journal=Journal.at(state, journal_dir),
            run_key=run_key,
            flow_run_id=flow_run.get_id(),
            slot=slot,
            log=get_run_logger(),
            rate_limit_tries=RATE_LIMIT_TRIES,
            on_enqueued=announce_enqueued(request, run_key),
        )


@task(name="wait_for_generation", **{**RETRYING, "retries": 2})
def wait_for_generation(
    generation_id: str,
    credentials: OxenCredentials,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    poll_interval: float = DEFAULT_SAFETY_POLL_INTERVAL,
    cancel_on_timeout: bool = True,
    progress: bool = True,
) -> Generation:
    """Wait for a generation: completion events first, a slow poll as the fallback.

    Logs one line per status change and keeps a progress artifact up to date (``progress=False``:
    no artifact, e.g. for the rows of a large batch, which get one progress artifact for the whole
    run). On the deadline the remote generation is cancelled (so it stops costing) unless
    ``cancel_on_timeout`` is False.

    Emits ``seedance.generation.succeeded``, ``failed`` or ``cancelled`` (also when the deadline or
    an interrupt cancels it) once, when the wait ends; nothing per poll.

    Raises:
        GenerationFailed: The generation failed (not retried).
        GenerationTimeout: The deadline passed.
    """
    logger = get_run_logger()
    reporter = ProgressReporter(f"Seedance generation {generation_id}") if progress else None

    def on_change(row: Generation) -> None:
        logger.info("Generation %s is %s", generation_id, row.status)
        if reporter is not None:
            reporter.update((1.0 if row.is_terminal else PROGRESS.get(row.status, 0.3)) * 100)

    hub = credentials.completion_hub()
    watch = GenerationWatch(generation_id, on_change)
    with reporter or nullcontext(), credentials.get_client() as client:
        try:
            return watch.succeeded(
                wait_for_completion(
                    client,
                    generation_id,
                    timeout=timeout,
                    poll_interval=poll_interval,
                    hub=hub,
                    on_change=watch.on_change,
                )
            )
        except GenerationTimeout as exc:
            if cancel_on_timeout and cancel_quietly(client, generation_id, logger):
                watch.cancelled("timeout", str(exc))
            raise
        except GenerationFailed as exc:
            watch.failed(exc)
            raise
        except Exception:
            raise  # a transient error: nothing to cancel, nothing changed
        except BaseException:  # interrupted: Ctrl-C, SIGTERM, Prefect cancellation or timeout
            if cancel_quietly(client, generation_id, logger):
                watch.cancelled("interrupted")
            raise


@task(name="download_video", **RETRYING)
def download_video(generation: Generation, credentials: OxenCredentials, workdir: str) -> DownloadedVideo:
    """Stream a result to ``workdir`` (temp file, then atomic rename) and checksum it.

    On a retry the row is read again, so an expired result link is refreshed.
    """
    with credentials.get_client() as client:
        return download_generation(client, generation, workdir, refresh=(task_run.get_run_count() or 1) > 1)


@task(name="generate_sync", cache_policy=NO_CACHE, retries=0)
def generate_sync(request: SeedanceRequest, credentials: OxenCredentials, workdir: str) -> DownloadedVideo:
    """Call the synchronous endpoint and save its video (hosted ``url`` or inline ``b64_json``).

    Not retried: a lost answer of the synchronous endpoint cannot be recovered (it has no id), so
    a retry could pay twice. A 429 (nothing created) is waited out and posted again.
    """
    with credentials.get_client() as client:
        return generate_and_save(
            client, request, workdir, log=get_run_logger(), rate_limit_tries=RATE_LIMIT_TRIES
        )


@task(name="verify_video", cache_policy=NO_CACHE)
def verify_video(video: DownloadedVideo, request: SeedanceRequest, rejected_dir: str) -> dict[str, Any]:
    """Probe the video with PyAV and check it against the request.

    A video that fails is moved to ``rejected_dir`` (kept aside, never delivered) and the task
    fails with every failed check. Not retried.

    Returns:
        The probe as a dict (codec, size, duration, audio...).
    """
    try:
        return verify_video_file(video.path, request)
    except VerificationFailed as exc:
        aside = Path(rejected_dir) / Path(video.path).name
        aside.parent.mkdir(parents=True, exist_ok=True)
        Path(video.path).replace(aside)
        raise VerificationFailed(exc.problems, kept_at=str(aside)) from None


#: Options of ``deliver_video`` (also used when it runs as an asset materialization).
DELIVER_VIDEO_OPTIONS: dict[str, Any] = {
    "name": "deliver_video",
    "cache_policy": NO_CACHE,
    "retries": 2,
    "retry_delay_seconds": 1,
}


@task(**DELIVER_VIDEO_OPTIONS)
def deliver_video(
    video: DownloadedVideo,
    output: str,
    name: str,
    sidecar: dict[str, Any],
    deliver_to: str | DeliveryTarget | None = None,
) -> DeliveredVideo:
    """Deliver the verified video and its JSON sidecar to the output folder or ``deliver_to``.

    Same bytes already there: nothing is written again. Different bytes under the same name: the
    new file gets the generation id in its name (never a silent overwrite). ``deliver_to`` is a
    :class:`~seedance_prefect.delivery.targets.DeliveryTarget` or anything
    :func:`~seedance_prefect.delivery.targets.resolve_target` reads (an fsspec URL, a saved block as
    ``"s3-bucket/NAME"``); stored objects are verified by size and sha256.
    """
    target = deliver_to if isinstance(deliver_to, DeliveryTarget) else resolve_target(deliver_to, output)
    delivered = target.deliver(
        video.path, name, sidecar, generation_id=video.generation_id, sha256=video.sha256
    )
    get_run_logger().info(
        "Delivered %s (%d bytes, sha256 %s)", delivered.video, delivered.size_bytes, delivered.sha256[:12]
    )
    return delivered


# Async twins: the same tasks for async flows (see the module docstring).

_R = TypeVar("_R")


def _async_twin(sync_task: Task[..., _R]) -> Task[..., Coroutine[Any, Any, _R]]:
    """An async task of the same name and options that runs ``sync_task``'s function in a worker thread.

    Inside the thread the run context names ``sync_task``: Prefect's helpers that serve sync and async
    callers alike (artifacts) ask it whether the running task is async, and would otherwise hand the
    function a coroutine it cannot await.

    Example:
        >>> twin = _async_twin(validate_request)
        >>> twin.isasync, twin.name, twin.fn.__name__, twin.retries == validate_request.retries
        (True, 'validate_request', 'avalidate_request', True)
    """
    fn: Callable[..., _R] = sync_task.fn

    async def twin(*args: Any, **kwargs: Any) -> _R:
        def call() -> _R:
            context = TaskRunContext.get()
            if context is None:
                return fn(*args, **kwargs)
            with context.model_copy(update={"task": sync_task}):
                return fn(*args, **kwargs)

        return await anyio.to_thread.run_sync(call)

    functools.update_wrapper(twin, fn)  # the signature (Prefect binds parameters with it) and docstring
    twin.__name__ = twin.__qualname__ = f"a{fn.__name__}"
    twin.__doc__ = f"Async twin of :func:`{fn.__name__}` (its function, in a worker thread).\n\n{fn.__doc__}"
    return task(  # type: ignore[return-value]
        name=sync_task.name,
        description=sync_task.description,
        task_run_name=sync_task.task_run_name,
        retries=sync_task.retries,
        retry_delay_seconds=sync_task.retry_delay_seconds,
        retry_jitter_factor=sync_task.retry_jitter_factor,
        retry_condition_fn=sync_task.retry_condition_fn,
        timeout_seconds=sync_task.timeout_seconds,
        cache_policy=NO_CACHE,  # as every task of this module
    )(twin)


avalidate_request = _async_twin(validate_request)
"""Async :func:`validate_request`: ``request = await avalidate_request(data)``."""
aprepare_references = _async_twin(prepare_references)
"""Async :func:`prepare_references`: ``prepared = await aprepare_references(request, credentials)``."""
aenqueue_generation = _async_twin(enqueue_generation)
"""Async :func:`enqueue_generation`: ``ids = await aenqueue_generation(request, credentials)``."""
await_for_generation = _async_twin(wait_for_generation)
"""Async :func:`wait_for_generation`: ``row = await await_for_generation(generation_id, credentials)``."""
adownload_video = _async_twin(download_video)
"""Async :func:`download_video`: ``video = await adownload_video(row, credentials, workdir)``."""
agenerate_sync = _async_twin(generate_sync)
"""Async :func:`generate_sync`: ``video = await agenerate_sync(request, credentials, workdir)``."""
averify_video = _async_twin(verify_video)
"""Async :func:`verify_video`: ``probe = await averify_video(video, request, rejected_dir)``."""
adeliver_video = _async_twin(deliver_video)
"""Async :func:`deliver_video`: ``delivered = await adeliver_video(video, output, name, sidecar)``."""


# Steps composed from the tasks above: the single flow's verify -> sidecar -> deliver, and a batch's
# two task runs per generation (enqueue + wait, then download + verify + deliver). Every task run is
# a handful of events the Prefect server must write, so a batch uses two per generation, not six.

_ASSET_KEY_OK = re.compile(r"^[A-Za-z0-9/_.:\-]+$")


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
    sidecar = build_sidecar(video, row, request, probe, endpoint, cost_usd, started)
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
        fingerprint: The journal key the generations were enqueued under: the fingerprint of the
            request as posted (references prepared), where their deliveries are recorded too.
    """

    ids: list[str]
    finished: list[tuple[int, Generation]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    fingerprint: str = ""


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
    state: str | None = None,
) -> RowGenerations:
    """Enqueue a request once (or reattach to it) and wait until its generations are terminal.

    The steps of ``enqueue_generation`` and ``wait_for_generation`` in one task run (no progress
    artifact per generation). A transient error retries the task, which reattaches to the
    generations it already enqueued (the journal), so nothing is paid twice; a generation that
    fails, is cancelled or times out is recorded in ``failures`` and the others go on.

    With ``slot``, the task takes it (``slot.acquire()``) right before it claims the attempt and
    posts (after the journal is read) and gives it back (``slot.release()``) as soon as every
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
        state: The journal's state store (wins over ``journal_dir``).

    Returns:
        The generation ids, the succeeded rows and the failures.
    """
    generated = RowGenerations(
        enqueue_generation.fn(request, credentials, run_key, journal_dir, slot, state),
        fingerprint=request.fingerprint(run_key),
    )
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
    sidecar = build_sidecar(video, row, request, probe, "queue", cost_usd, started)
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
