"""Prefect tasks: one retryable, observable step of a generation each.

``validate_request`` -> ``prepare_references`` -> ``enqueue_generation`` (or ``generate_sync``) ->
``wait_for_generation`` -> ``download_video`` -> ``verify_video`` -> ``deliver_video``.

Retries happen only on transient errors (429, 5xx, broken connections, truncated downloads), with
jittered exponential delays; permanent errors (invalid input, 401, 404, a failed generation, a
video that does not verify) fail at once with the service's message. ``Retry-After`` is honoured
inside the client, which is the only place that sees it. Every task uses ``NO_CACHE``: a poll must
never be answered from a cache, and the enqueue's idempotency comes from the durable journal
(see :mod:`seedance_prefect.generation.journal` for why).

Customise any task the Prefect way, e.g. ``enqueue_generation.with_options(retries=5)``.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from . import limits
from .client.completion import CompletionHub, wait_for_completion
from .credentials import OxenCredentials
from .delivery.folder import DeliveredVideo, sha256_file
from .delivery.targets import DeliveryTarget, resolve_target
from .delivery.verify import verify_video_file
from .errors import (
    ApiError,
    GenerationTimeout,
    RateLimitedError,
    SeedanceError,
    VerificationFailed,
    is_transient,
)
from .generation.journal import Journal, JournalEntry, row_matches
from .models import Generation, SeedanceRequest
from .preflight.check import validate_request as _preflight_validate
from .progress import ProgressReporter
from .references.hosting import hosting_from_spec
from .references.prepare import default_cache_dir
from .references.prepare import prepare as prepare_media
from .settings import DEFAULT_SAFETY_POLL_INTERVAL, DEFAULT_TIMEOUT_SECONDS

__all__ = [
    "DownloadedVideo",
    "deliver_video",
    "download_video",
    "enqueue_generation",
    "generate_sync",
    "prepare_references",
    "retry_if_transient",
    "validate_request",
    "verify_video",
    "wait_for_generation",
]

#: Times a 429 answer to a POST is waited out inside the task (nothing was created by a 429).
RATE_LIMIT_TRIES = 5
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


@dataclass(frozen=True)
class DownloadedVideo:
    """A result file on local disk, not yet verified.

    Attributes:
        generation_id: The generation it came from.
        path: Where it is.
        sha256: Its checksum.
        size_bytes: Its size.
        source: ``"url"`` or ``"b64_json"``.
        downloaded_at: Unix time the download finished.
    """

    generation_id: str
    path: str
    sha256: str
    size_bytes: int
    source: str
    downloaded_at: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


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
    strategy = hosting_from_spec(hosting, repository=repository, credentials=credentials, state_dir=cache)
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


def _journal_body(request: SeedanceRequest) -> dict[str, Any]:
    """The queue body as journaled: data: URIs shortened to a checksum (the journal stays small)."""
    import hashlib

    body = request.to_body("queue")
    for name in ("input_images", "input_videos", "input_audios"):
        if name in body:
            body[name] = [
                f"data:...;sha256={hashlib.sha256(u.encode()).hexdigest()}" if u.startswith("data:") else u
                for u in body[name]
            ]
    return body


def _recover(client: Any, entry: JournalEntry, since: float, count: int) -> list[str]:
    """Find generations created by a POST whose answer was lost. Raises if the lookup fails."""
    known = set(entry.generation_ids)
    rows: list[Generation] = list(client.list(model=limits.MODEL_ID))
    if len([r for r in rows if row_matches(r, entry.body, since=since)]) < count:
        for status in ("succeeded", "failed"):
            rows += client.list(model=limits.MODEL_ID, status=status)
    found: list[Generation] = []
    for row in rows:
        if row.generation_id in known or any(f.generation_id == row.generation_id for f in found):
            continue
        if row_matches(row, entry.body, since=since):
            found.append(row)
    found.sort(key=lambda r: r.enqueued_at or 0.0)
    return [r.generation_id for r in found[:count]]


def _reattach(client: Any, entry: JournalEntry, count: int, logger: Any) -> list[str] | None:
    """Return the generation ids to continue with, or None when a new POST is needed."""
    last = entry.last_attempt
    if last is None:
        return None
    if last.generation_ids:
        usable = []
        for gid in last.generation_ids:
            try:
                row = client.get(gid)
            except ApiError as exc:
                if exc.status_code == 404:
                    continue
                raise
            if row.state in ("active", "succeeded"):
                usable.append(gid)
        if usable:
            logger.info("Reattached to generation(s) %s from an earlier run", ", ".join(usable))
            return list(last.generation_ids)
        logger.info("The earlier generation(s) of this request failed; enqueuing a new one")
        return None
    if last.state == "posting":
        found = _recover(client, entry, last.started_at, count)
        if found:
            last.record(found, recovered=True, detail="answer lost; found by listing the queue")
            logger.warning("An earlier enqueue's answer was lost; adopted generation(s) %s", ", ".join(found))
            return found
        last.state, last.detail = "refused", "no generation found for a POST whose answer was lost"
    return None


@task(name="enqueue_generation", **RETRYING)
def enqueue_generation(
    request: SeedanceRequest,
    credentials: OxenCredentials,
    run_key: str | None = None,
    journal_dir: str | None = None,
    slot: Any = None,
) -> list[str]:
    """Enqueue a request once, however often it is run: returns its generation ids.

    The durable journal is written before and after the POST. A re-run reattaches to known
    generations that did not fail; a POST whose answer was lost is recovered by listing the queue
    and matching prompt and parameters, before anything is posted again.

    Args:
        request: A validated request whose references are reachable.
        credentials: The account.
        run_key: Extra key that makes otherwise equal requests distinct.
        journal_dir: Where the journal lives (default ``~/.seedance/journal``).
        slot: A concurrency slot (anything with an idempotent ``acquire()``), taken after the
            journal is read and written and right before the generation is posted or reattached
            to, so the journal's work is not done while holding it.

    Returns:
        One generation id per ``num_generations``.
    """
    logger = get_run_logger()
    journal = Journal(journal_dir)
    fingerprint = request.fingerprint(run_key)
    run_id = flow_run.get_id()
    with journal.lock(fingerprint), credentials.get_client() as client:
        entry = journal.load(fingerprint) or JournalEntry(
            fingerprint=fingerprint, body=_journal_body(request)
        )
        if run_id:
            if run_id not in entry.flow_runs:
                entry.flow_runs.append(run_id)
            journal.link_flow_run(run_id, fingerprint)
        ids = _reattach(client, entry, request.num_generations, logger)
        if ids:
            journal.save(entry)
            if slot is not None:
                slot.acquire()
            return ids
        # The attempt is on disk before the slot is waited for, so the POST follows the slot at
        # once; a crash from here on is recovered by listing the queue from the saved (earlier) time.
        attempt = entry.begin_attempt()
        journal.save(entry)
        if slot is not None:
            slot.acquire()
            attempt.started_at = time.time()
        for _ in range(RATE_LIMIT_TRIES):
            try:
                rows = client.enqueue(request)
            except RateLimitedError as exc:  # nothing was created: wait it out and post again
                logger.info("Rate limited; waiting %.1f s before enqueuing", exc.retry_after or 1.0)
                time.sleep(min(exc.retry_after or 1.0, 60.0))
                continue
            except SeedanceError as exc:
                if not exc.transient:  # the service said no: nothing was created
                    attempt.state, attempt.detail = "refused", str(exc)
                    journal.save(entry)
                    raise
                # 5xx or a broken connection: the generation may exist. Look before posting again.
                found = _recover(client, entry, attempt.started_at, request.num_generations)
                journal.save(entry)  # without a find it stays "posting": the retry lists again first
                if not found:
                    raise
                attempt.record(found, recovered=True, detail=f"answer lost ({type(exc).__name__})")
                journal.save(entry)
                logger.warning("Enqueue answer lost (%s); adopted generation(s) %s", exc, ", ".join(found))
                return found
            attempt.record([row.generation_id for row in rows])
            journal.save(entry)
            logger.info("Enqueued generation(s) %s", ", ".join(attempt.generation_ids))
            return attempt.generation_ids
        attempt.state, attempt.detail = "refused", "rate limited on every try"
        journal.save(entry)
        raise RateLimitedError(429, "rate_limited", "Still rate limited after several tries")


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

    api_key = credentials.api_key.get_secret_value()
    hub = CompletionHub.for_account(credentials.base_url, api_key, credentials.get_client)
    with reporter or nullcontext(), credentials.get_client() as client:
        try:
            return wait_for_completion(
                client,
                generation_id,
                timeout=timeout,
                poll_interval=poll_interval,
                hub=hub,
                on_change=on_change,
            )
        except GenerationTimeout:
            if cancel_on_timeout:
                _cancel_quietly(client, generation_id, logger)
            raise
        except Exception:
            raise  # a failed generation or a transient error: nothing to cancel
        except BaseException:  # interrupted: Ctrl-C, SIGTERM, Prefect cancellation or timeout
            _cancel_quietly(client, generation_id, logger)
            raise


def _cancel_quietly(client: Any, generation_id: str, logger: Any) -> None:
    try:
        client.cancel(generation_id)
        logger.warning("Cancelled remote generation %s", generation_id)
    except Exception as exc:  # best effort: the run is ending anyway
        logger.warning("Could not cancel generation %s: %s", generation_id, exc)


@task(name="download_video", **RETRYING)
def download_video(generation: Generation, credentials: OxenCredentials, workdir: str) -> DownloadedVideo:
    """Stream a result to ``workdir`` (temp file, then atomic rename) and checksum it.

    On a retry the row is read again, so an expired result link is refreshed.
    """
    target = Path(workdir) / f"{generation.generation_id}.mp4"
    with credentials.get_client() as client:
        row = generation
        from prefect.runtime import task_run

        if (task_run.get_run_count() or 1) > 1 or not row.result_url:
            row = client.get(generation.generation_id)
        path = client.download(row, target)
    return DownloadedVideo(
        generation.generation_id, str(path), sha256_file(path), Path(path).stat().st_size, "url", time.time()
    )


@task(name="generate_sync", cache_policy=NO_CACHE, retries=0)
def generate_sync(request: SeedanceRequest, credentials: OxenCredentials, workdir: str) -> DownloadedVideo:
    """Call the synchronous endpoint and save its video (hosted ``url`` or inline ``b64_json``).

    Not retried: a lost answer of the synchronous endpoint cannot be recovered (it has no id), so
    a retry could pay twice. A 429 (nothing created) is waited out and posted again.
    """
    logger = get_run_logger()
    Path(workdir).mkdir(parents=True, exist_ok=True)
    ident = f"sync-{request.fingerprint()[:12]}-{int(time.time())}"
    inline = Path(workdir) / f"{ident}.mp4"
    with credentials.get_client() as client:
        for _ in range(RATE_LIMIT_TRIES):
            try:  # an inline (b64_json) video is decoded to disk while the answer arrives
                result = client.generate(request, save_to=inline)
                break
            except RateLimitedError as exc:
                logger.info("Rate limited; waiting %.1f s", exc.retry_after or 1.0)
                time.sleep(min(exc.retry_after or 1.0, 60.0))
        else:
            raise RateLimitedError(429, "rate_limited", "Still rate limited after several tries")
        if not result.videos:
            raise SeedanceError("The synchronous endpoint answered without a video")
        item = result.videos[0]
        if item.saved_to:
            path, source = Path(item.saved_to), "b64_json"
        else:
            path, source = client.download(item, inline), "url"
    return DownloadedVideo(
        ident, str(path), sha256_file(path), Path(path).stat().st_size, source, time.time()
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
