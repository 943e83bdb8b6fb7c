"""The ``batch_reference_to_video`` flow: many requests from a manifest, bounded at the service.

Steps: read and check every row (bad rows reported with line number, name and problems, then
skipped) -> skip rows an earlier run delivered to this target (the journal, checked against the
target) -> copy (or download again) rows an earlier run delivered elsewhere, never generating them
again (:mod:`seedance_prefect.delivery.redeliver`) -> refuse to start over the budget -> run the
rows on threads (:mod:`seedance_prefect.batch.runner`). Per row: ``prepare_references``
(when it has references) -> the task ``generate <name>`` (enqueue + wait, holding
``num_generations`` slots of the Prefect **global concurrency limit**, ``seedance-generations`` by
default, from right before the POST until the generations are terminal) -> one task
``deliver <name>`` per video (download -> verify -> deliver) after the slots are given back (see
:mod:`seedance_prefect.tasks`). Because the limit lives on the Prefect server, it holds across
threads, flow runs and workers; its slots and leases are :mod:`seedance_prefect.slots` (its names
are exported here too).

Example:
    ```python
    from seedance_prefect.batch_flows import batch_reference_to_video

    summary = batch_reference_to_video("requests.jsonl", deliver_to="s3://bucket/videos/", concurrency=8)
    print(summary["totals"])
    ```
"""

# No `from __future__ import annotations` here: Prefect builds the flow's parameter model from
# these annotations, and string annotations do not resolve when a runner loads the flow by entrypoint.

import contextvars
import functools
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.logging import get_run_logger
from prefect.runtime import flow_run as current_flow_run

from .batch.budget import RunTotals
from .batch.manifest import BatchPlan, BatchRow, plan_batch, read_manifest
from .batch.runner import Permits, run_rows
from .batch.todo import select_rows
from .credentials import OxenCredentials, resolve_credentials
from .delivery.folder import DeliveredVideo, work_dirs
from .delivery.redeliver import Redelivered, redeliver, succeeded_generation
from .delivery.targets import DeliveryTarget, resolve_target
from .errors import BatchFailed, SeedanceError
from .flows import _RUN_CREDENTIALS, cancel_remote_generations
from .generation.journal import Journal
from .lifecycle import emit_delivered
from .progress import ProgressReporter
from .settings import DEFAULT_SAFETY_POLL_INTERVAL, DEFAULT_TIMEOUT_SECONDS
from .slots import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LIMIT_NAME,
    LimitLeases,
    ensure_concurrency_limit,
    free_slots,
    reclaim_slots,
)
from .tasks import RowGenerations, deliver_generation, generate_row, prepare_references

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_LIMIT_NAME",
    "BatchFailed",
    "batch_reference_to_video",
    "ensure_concurrency_limit",
    "free_slots",
    "reclaim_slots",
]

SUMMARY_COLUMNS = ("line", "name", "status", "generation", "video", "source", "seconds", "cost_usd", "error")
#: How to get past a row whose videos can be neither copied nor downloaded again.
NEW_HINT = (
    "pay for one with seedance generate --new (this row's request) or another --run-key (every row again)"
)
#: Rows copied (or downloaded again) at the same time, beside the generations.
REDELIVERY_THREADS = 4


def _row(line: int, name: str | None, status: str, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(SUMMARY_COLUMNS, "")
    row.update(line=line, name=name or "", status=status, seconds=0.0, cost_usd=0.0, generations=0)
    row.update(values)
    return row


@task(name="validate_manifest", cache_policy=NO_CACHE)
def validate_manifest(
    manifest: str | list[dict[str, Any]],
    run_key: str | None = None,
    shard: int = 0,
    shards: int = 1,
    allow_local_references: bool = False,
) -> BatchPlan:
    """Read the manifest (path, URL or a list of request dicts) and check every row of the shard."""
    if isinstance(manifest, str):
        rows, base_dir = read_manifest(manifest, allow_local_references=allow_local_references)
        selected = [r for i, r in enumerate(rows) if i % shards == shard]
        return plan_batch(selected, base_dir=base_dir, run_key=run_key)
    return plan_batch(
        [r for i, r in enumerate(manifest) if i % shards == shard],
        run_key=run_key,
    )


@dataclass(frozen=True)
class _RowOptions:
    """What every row of one batch run shares: where the journal is, how long to wait, where to deliver."""

    journal_dir: str | None
    timeout: float
    poll_interval: float
    output: str
    started: float
    state: str | None = None  # the journal's state store (wins over journal_dir)

    @functools.cached_property
    def journal(self) -> Journal:
        """The journal of the run (one store client for every row)."""
        return Journal.at(self.state, self.journal_dir)


def _generate(
    row: BatchRow, permits: Permits, credentials: OxenCredentials, options: _RowOptions
) -> RowGenerations:
    """Enqueue a row (or reattach to it) under its permits and wait until its generations are terminal."""
    # A request without references has nothing to prepare: skip the task run.
    prepared = (
        prepare_references(row.request, credentials=credentials, state=options.state)
        if row.request.reference_count
        else row.request
    )
    return generate_row(
        prepared,
        credentials,
        row.name,
        row.run_key,
        options.journal_dir,
        options.timeout,
        options.poll_interval,
        permits,
        state=options.state,
    )


def _finish(
    row: BatchRow,
    done: RowGenerations,
    credentials: OxenCredentials,
    target: DeliveryTarget,
    options: _RowOptions,
) -> dict[str, Any]:
    """Download, verify and deliver a row's succeeded generations; return the row's summary."""
    count = row.request.num_generations
    usd, seconds = row.cost.usd / max(1, count), row.cost.seconds / max(1, count)
    delivered: list[DeliveredVideo] = []
    failures = list(done.failures)
    for index, generation in done.finished:
        name = row.name if len(done.ids) == 1 else f"{row.name}-{index + 1}"
        try:
            delivered.append(
                deliver_generation(
                    generation,
                    credentials,
                    row.request,
                    name=name,
                    output=options.output,
                    target=target,
                    cost_usd=usd,
                    started=options.started,
                )
            )
        except SeedanceError as exc:
            failures.append(f"{generation.generation_id}: {exc}")
    # under the key the generations were enqueued under: the prepared request's fingerprint, which
    # differs from the row's when it has references (they are hosted or re-encoded first)
    options.journal.record_deliveries(done.fingerprint or row.fingerprint, delivered)
    emit_delivered(delivered, row.request.prompt)  # what a contact-sheet trigger starts from
    if failures:
        get_run_logger().error("Row %d (%s) failed: %s", row.line, row.name, "; ".join(failures))
    return _row(
        row.line,
        row.name,
        "failed" if failures else "delivered",
        generation=", ".join(done.ids),
        video=", ".join(d.video for d in delivered),
        generations=len(delivered),
        seconds=seconds * len(delivered),
        cost_usd=round(usd * len(delivered), 2),
        error="; ".join(failures),
    )


def _download_again(
    row: BatchRow,
    generation_id: str,
    name: str,
    credentials: OxenCredentials,
    target: DeliveryTarget,
    options: _RowOptions,
) -> DeliveredVideo:
    """GET a generation an earlier run delivered and, if the service still serves its result, run
    the usual ``deliver <name>`` step on it (download -> verify -> deliver)."""
    with credentials.get_client() as client:
        generation = succeeded_generation(client, generation_id)
    count = row.request.num_generations
    return deliver_generation(
        generation,
        credentials,
        row.request,
        name=name,
        output=options.output,
        target=target,
        cost_usd=row.cost.usd / max(1, count),
        started=options.started,
    )


def _redeliver_row(
    row: BatchRow,
    recorded: list[dict[str, Any]],
    credentials: OxenCredentials,
    target: DeliveryTarget,
    options: _RowOptions,
) -> dict[str, Any]:
    """Deliver a row an earlier run delivered elsewhere to ``target``, without a new generation.

    Each video is copied from its earlier delivery, else downloaded again from the service, else
    the row fails naming how to pay for a new generation
    (:func:`~seedance_prefect.delivery.redeliver.redeliver`). Never enqueues anything.
    """
    work, _ = work_dirs(options.output)
    done: list[Redelivered] = []
    failures: list[str] = []
    for index, delivery in enumerate(recorded):
        gid = str(delivery["generation_id"])
        name = row.name if len(recorded) == 1 else f"{row.name}-{index + 1}"
        try:
            done.append(
                redeliver(
                    delivery,
                    target,
                    name,
                    workdir=work,
                    download_again=lambda gid=gid, name=name: _download_again(  # type: ignore[misc]
                        row, gid, name, credentials, target, options
                    ),
                    new_hint=NEW_HINT,
                )
            )
        except SeedanceError as exc:
            failures.append(str(exc) if gid in str(exc) else f"{gid}: {exc}")
    options.journal.record_deliveries(row.fingerprint, [d.delivered for d in done])
    emit_delivered([d.delivered for d in done if d.how != "already there"], row.request.prompt)
    if failures:
        get_run_logger().error("Row %d (%s) failed: %s", row.line, row.name, "; ".join(failures))
        status = "failed"
    else:
        status = "skipped" if all(d.how == "already there" for d in done) else "copied"
    return _row(
        row.line,
        row.name,
        status,
        generation=", ".join(str(d["generation_id"]) for d in recorded),
        video=", ".join(d.delivered.video for d in done),
        source=", ".join(d.source for d in done if d.how != "already there"),
        error="; ".join(failures),
    )


def _redeliver_rows(
    rows: list[tuple[BatchRow, list[dict[str, Any]]]],
    credentials: OxenCredentials,
    target: DeliveryTarget,
    options: _RowOptions,
) -> tuple[ThreadPoolExecutor | None, list[tuple[BatchRow, "Future[dict[str, Any]]"]]]:
    """Start redelivering ``rows`` on a few threads (each in a copy of the flow run's context)."""
    if not rows:
        return None, []
    pool = ThreadPoolExecutor(min(REDELIVERY_THREADS, len(rows)), thread_name_prefix="seedance-copy")
    futures = []
    for row, done in rows:
        context = contextvars.copy_context()  # one per task: a context runs in one thread at a time
        future = pool.submit(context.run, _redeliver_row, row, done, credentials, target, options)
        futures.append((row, future))
    return pool, futures


class _RowProgress:
    """One progress artifact for the whole batch: the share of rows done (not one per generation)."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self._lock = threading.Lock()
        # at most one artifact update a second; the last one is waited for (briefly) at the end
        self.reporter = ProgressReporter(f"Seedance batch: {total} rows", join_timeout=5.0, min_interval=1.0)

    def row_done(self, summary: dict[str, Any]) -> None:
        with self._lock:
            self.done += 1
            self.reporter.update(100.0 * self.done / self.total)


def _failed(row: BatchRow, exc: BaseException) -> dict[str, Any]:
    get_run_logger().error("Row %d (%s) failed: %s", row.line, row.name, exc)
    return _row(row.line, row.name, "failed", error=str(exc) or type(exc).__name__)


def _artifact_key(manifest: Any) -> str:
    stem = Path(manifest.split("?", 1)[0]).stem if isinstance(manifest, str) else "inline"
    return ("seedance-batch-" + re.sub(r"[^a-z0-9-]+", "-", stem.lower())).strip("-")[:80]


@flow(
    name="seedance-batch-reference-to-video",
    on_cancellation=[cancel_remote_generations],
    on_crashed=[cancel_remote_generations],
    on_failure=[cancel_remote_generations],
)
def batch_reference_to_video(
    manifest: str | list[dict[str, Any]],
    output: str = "seedance-output",
    deliver_to: str | None = None,
    concurrency: int | None = None,
    credentials: OxenCredentials | str | None = None,
    run_key: str | None = None,
    budget_usd: float | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    poll_interval: float = DEFAULT_SAFETY_POLL_INTERVAL,
    journal_dir: str | None = None,
    limit_name: str = DEFAULT_LIMIT_NAME,
    shard: int = 0,
    shards: int = 1,
    state: str | None = None,
    allow_local_references: bool = False,
) -> dict[str, Any]:
    """Generate, verify and deliver every request of a manifest, at most N generations in flight.

    Args:
        manifest: A JSONL or CSV manifest (local path or fsspec URL such as
            ``s3://bucket/nightly.jsonl``), or a list of request dicts (``name`` optional).
        output: Local folder: the delivery folder when ``deliver_to`` is not given, and the
            place of work files and rejected videos.
        deliver_to: An fsspec URL (``s3://bucket/prefix/``) or a saved block
            (``s3-bucket/NAME``, ``remote-file-system/NAME``, ``local-file-system/NAME``).
        concurrency: Generations in flight at most, across every run and worker sharing
            ``limit_name``; sets the global concurrency limit. None: keep the existing limit (or
            create it with 4 slots).
        credentials: An ``OxenCredentials`` block, a saved block's name, or None for the
            environment (``OXEN_API_KEY``, ``OXEN_BASE_URL``).
        run_key: Batch-wide extra key: a different key generates every row again.
        budget_usd: Refuse to start when the estimated cost of the rows to run is over this.
        timeout_seconds: Deadline for each generation; past it the generation is cancelled.
        poll_interval: Seconds between fallback polls (completion events arrive sooner).
        journal_dir: Folder of the durable enqueue journal (default ``~/.seedance/journal``).
        limit_name: Name of the global concurrency limit.
        shard: Run only the rows whose 0-based position modulo ``shards`` is ``shard``.
        shards: Number of shards (split one manifest over several flow runs or workers).
        state: Where the journal lives, shared by every machine that names the same store
            (``"s3://bucket/prefix/"``, ``"s3-bucket/NAME"`` or a folder); wins over
            ``journal_dir``. None: ``$SEEDANCE_STATE``, else ``journal_dir``, else ``~/.seedance``.
        allow_local_references: Let a manifest read from a URL name files of the machine that runs
            it (absolute, ``~``, ``file://``). False: such rows are invalid, so whoever can write
            the manifest cannot make a worker send its files; paths relative to the manifest are
            fetched from its store either way. Local manifests always may.

    Returns:
        ``{"rows": [...], "totals": {...}}``: one summary row per manifest row (``line``,
        ``name``, ``status``, ``generation``, ``video``, ``source``, ``seconds``, ``cost_usd``,
        ``error``) and the run's totals. ``status`` is ``delivered`` (generated now),
        ``copied`` (delivered earlier to another target, copied or downloaded again now: no new
        generation; ``source`` says from where), ``skipped`` (already there: delivered earlier to
        this target), ``failed`` or ``invalid``.

    Raises:
        InvalidRequest: The manifest or the delivery target is unusable (nothing was sent).
        BudgetExceeded: The estimated cost is over ``budget_usd`` (nothing was sent).
        BatchFailed: Some rows were invalid or failed; every other row was still delivered.
    """
    started = time.time()
    logger = get_run_logger()
    if not 0 <= shard < shards:
        raise ValueError("shard must be in 0..shards-1")
    creds = resolve_credentials(credentials)
    run_id = current_flow_run.get_id()
    if run_id:
        _RUN_CREDENTIALS[run_id] = creds
    plan = validate_manifest(manifest, run_key, shard, shards, allow_local_references)
    target = resolve_target(deliver_to, output)
    target.check()
    limit = ensure_concurrency_limit(limit_name, concurrency)
    journal = Journal.at(state, journal_dir)
    summary: list[dict[str, Any]] = []
    for bad in plan.rejected:
        logger.warning("Skipping invalid row %s", bad)
        summary.append(_row(bad.line, bad.name, "invalid", error="; ".join(bad.problems)))
    todo = select_rows(plan.rows, journal, budget_usd=budget_usd, limit=limit, target=target)
    for row, problem in todo.over_limit:
        logger.warning("Skipping invalid row %d (%s): %s", row.line, row.name, problem)
        summary.append(_row(row.line, row.name, "invalid", error=problem))
    for row, done in todo.already_there:
        videos = ", ".join(str(d.get("video", "")) for d in done)
        generation = ", ".join(d["generation_id"] for d in done)
        summary.append(_row(row.line, row.name, "skipped", generation=generation, video=videos))
    to_run, cost = todo.to_run, todo.cost_usd
    logger.info(
        "Batch: %d rows to run (estimated $%.2f), %d to copy from an earlier delivery (free), "
        "%d already there, %d invalid; limit %r = %d",
        len(to_run),
        cost,
        len(todo.to_redeliver),
        len(todo.already_there),
        sum(1 for s in summary if s["status"] == "invalid"),
        limit_name,
        limit,
    )

    options = _RowOptions(journal_dir, timeout_seconds, poll_interval, output, started, state)
    # rows delivered elsewhere before: copied (or downloaded again) beside the generations, never enqueued
    copying, copies = _redeliver_rows(todo.to_redeliver, creds, target, options)
    if to_run:
        leases = LimitLeases(limit_name, run_id)
        progress = _RowProgress(len(to_run))
        with progress.reporter:
            summary += run_rows(
                to_run,
                generate=lambda row, permits: _generate(row, permits, creds, options),
                finish=lambda row, done: _finish(row, done, creds, target, options),
                fail=_failed,
                slots_of=lambda row: row.request.num_generations,
                open_lease=leases.lease,
                server_free=leases.free,
                on_wait=leases.waiting,
                slots=limit,
                on_result=progress.row_done,
            )
    for row, future in copies:
        try:
            summary.append(future.result())
        except Exception as exc:  # a bug or a storage error outside redeliver's own handling
            summary.append(_failed(row, exc))
    if copying is not None:
        copying.shutdown()
    summary.sort(key=lambda r: r["line"])
    totals = RunTotals.from_rows(summary, time.time() - started)
    create_table_artifact(
        [{k: r[k] for k in SUMMARY_COLUMNS} for r in summary],
        key=_artifact_key(manifest),
        description=(
            f"Seedance batch: {totals.delivered} delivered, {totals.copied} copied, "
            f"{totals.skipped} already there, {totals.failed} failed, {totals.invalid} invalid; "
            f"{totals.generations} new videos, "
            f"{totals.seconds:g} s, estimated ${totals.cost_usd:.2f}"
        ),
    )
    emit_event(
        "seedance.batch.completed" if totals.ok else "seedance.batch.failed",
        resource={"prefect.resource.id": f"seedance.batch.{run_id or 'local'}"},
        payload=totals.as_dict(),
    )
    result = {"rows": summary, "totals": totals.as_dict()}
    if not totals.ok:
        raise BatchFailed(
            f"{totals.done} of {totals.rows} rows delivered; "
            f"{totals.failed} failed, {totals.invalid} invalid",
            result,
        )
    return result
