"""The ``SeedanceJob`` block: a saved, UI-editable generation, run as trigger -> wait -> fetch result.

The shape of Prefect's job integrations (prefect-dbt's ``DbtCloudJob``, prefect-aws's Glue job):
a :class:`~prefect.blocks.abstract.JobBlock` whose :meth:`SeedanceJob.trigger` returns a
:class:`~prefect.blocks.abstract.JobRun`, and a ready flow, :func:`run_seedance_job`, that runs the
three steps as task runs.

- :meth:`SeedanceJob.trigger` validates the request, checks the delivery target, prepares the
  references and enqueues the request once (the durable journal of
  :func:`~seedance_prefect.generation.enqueue.enqueue_once`: a second trigger of the same job
  reattaches to its generations, a lost answer is recovered, nothing is paid twice). A job whose
  videos an earlier run delivered is not enqueued again at all: its videos are delivered again
  from the earlier delivery or the service (:func:`~seedance_prefect.delivery.redeliver.redeliver`).
- :meth:`SeedanceJobRun.wait_for_completion` waits for every generation (completion events, slow
  safety polls); one past the deadline is cancelled on the service.
- :meth:`SeedanceJobRun.fetch_result` downloads, verifies (PyAV) and delivers each video with its
  JSON sidecar, records the deliveries in the journal and emits ``seedance.video.delivered`` (the
  event deployment triggers start downstream work on).

Register the block types with a Prefect server (``prefect block register -m seedance_prefect``),
then create and edit jobs in the UI (Blocks -> Seedance Job).
"""

# No `from __future__ import annotations` here: Prefect builds the flow's parameter model from
# these annotations, and string annotations do not resolve when a runner loads the flow by entrypoint.

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.blocks.abstract import JobBlock, JobRun
from prefect.context import FlowRunContext, TaskRunContext
from prefect.runtime import flow_run as current_flow_run
from pydantic import Field

from .batch.manifest import already_delivered
from .client.completion import DEFAULT_CONNECT_TIMEOUT, wait_for_completion
from .credentials import OxenCredentials
from .delivery.folder import DeliveredVideo, default_name, safe_name, work_dirs
from .delivery.redeliver import redeliver, succeeded_generation
from .delivery.sidecar import build_sidecar
from .delivery.targets import DeliveryTarget, resolve_target
from .errors import GenerationFailed, GenerationTimeout, SeedanceError
from .generation.cancel import cancel_leftovers, cancel_quietly, left_by
from .generation.download import download_generation
from .generation.enqueue import enqueue_once
from .generation.journal import Journal
from .generation.ratelimit import RATE_LIMIT_TRIES
from .lifecycle import GenerationWatch, announce_enqueued, emit_delivered
from .models import Generation, SeedanceRequest
from .preflight.check import validate_request
from .pricing import estimate_cost
from .references.hosting import hosting_from_spec
from .references.preprocess import default_cache_dir, prepare
from .settings import DEFAULT_SAFETY_POLL_INTERVAL, DEFAULT_TIMEOUT_SECONDS
from .tasks import RETRYING, verify_video

__all__ = [
    "SeedanceJob",
    "SeedanceJobRun",
    "cancel_job_generations",
    "fetch_seedance_job_result",
    "run_seedance_job",
    "trigger_seedance_job",
    "wait_for_seedance_job_run",
]

#: How to ask for a new (paid) generation of a job whose earlier videos cannot be delivered again.
NEW_GENERATION_HINT = "give the job another run_key to pay for a new one"


def _in_run() -> bool:
    return bool(FlowRunContext.get() or TaskRunContext.get())


class SeedanceJobRun(JobRun[list[DeliveredVideo]]):  # not a block
    """The generation(s) of one :meth:`SeedanceJob.trigger`: wait for them, then fetch the videos.

    Attributes:
        job: The job this run was triggered from.
        request: The validated request (what each video is verified against).
        fingerprint: The request's journal key (the prepared request and the job's ``run_key``).
        generation_ids: One id per generation, in order.
        earlier: What an earlier run delivered (the run then generates nothing), else None.
        base_name: Base name of the delivered files (``<base_name>[-<n>].mp4``).
    """

    def __init__(
        self,
        job: "SeedanceJob",
        *,
        request: SeedanceRequest,
        fingerprint: str,
        generation_ids: list[str],
        target: DeliveryTarget,
        base_name: str,
        cost_usd: float,
        started: float,
        earlier: list[dict[str, Any]] | None = None,
    ) -> None:
        self.job = job
        self.request = request
        self.fingerprint = fingerprint
        self.generation_ids = list(generation_ids)
        self.earlier = earlier
        self.base_name = base_name
        self._target = target
        self._cost_usd = cost_usd
        self._started = started
        self._rows: dict[str, Generation] = {}
        self._failures: dict[str, SeedanceError] = {}  # of the wait: failed, cancelled, timed out
        self._delivery_failures: dict[str, SeedanceError] = {}  # of the last fetch
        self._delivered: dict[str, DeliveredVideo] = {}
        self._waited = earlier is not None

    def __repr__(self) -> str:
        return f"SeedanceJobRun(generation_ids={self.generation_ids!r}, target={self._target.url!r})"

    @property
    def generations(self) -> dict[str, Generation]:
        """The succeeded generations waited for so far, by id."""
        return dict(self._rows)

    @property
    def failures(self) -> dict[str, SeedanceError]:
        """Why each generation that was not delivered failed (failed, cancelled, timed out, or the
        last :meth:`fetch_result` could not deliver it), by id, in the order of the generations."""
        found = {**self._failures, **self._delivery_failures}
        return {gid: found[gid] for gid in self.generation_ids if gid in found}

    def _output_name(self, index: int) -> str:
        count = len(self.generation_ids)
        return self.base_name if count == 1 else f"{self.base_name}-{index + 1}"

    def wait_for_completion(self) -> None:  # type: ignore[override]
        """Wait until every generation is terminal (completion events first, slow safety polls).

        A generation that fails, is cancelled or passes the job's ``timeout_seconds`` (it is then
        cancelled on the service, so it stops costing) is recorded in :attr:`failures`;
        :meth:`fetch_result` raises for it. An interrupt (Ctrl-C, SIGTERM, Prefect cancellation)
        cancels every generation still running and is raised again. Each generation's end emits
        ``seedance.generation.succeeded``, ``failed`` or ``cancelled`` once.
        """
        if self._waited:
            return
        creds = self.job.credentials
        hub = creds.completion_hub()
        with creds.get_client() as client:
            for gid in self.generation_ids:
                if gid in self._rows or gid in self._failures:
                    continue

                def on_change(row: Generation, gid: str = gid) -> None:
                    self.logger.info("Generation %s is %s", gid, row.status)

                watch = GenerationWatch(gid, on_change)
                try:
                    self._rows[gid] = watch.succeeded(
                        wait_for_completion(
                            client,
                            gid,
                            timeout=self.job.timeout_seconds,
                            poll_interval=self.job.poll_interval,
                            hub=hub,
                            on_change=watch.on_change,
                        )
                    )
                except GenerationTimeout as exc:
                    if cancel_quietly(client, gid, self.logger):
                        watch.cancelled("timeout", str(exc))
                    self._failures[gid] = exc
                except SeedanceError as exc:
                    if isinstance(exc, GenerationFailed):
                        watch.failed(exc)
                    self.logger.error("Generation %s: %s", gid, exc)
                    self._failures[gid] = exc
                except BaseException:  # interrupted: nothing of this run may keep running (and costing)
                    for other in self.generation_ids:
                        pending = other not in self._rows and other not in self._failures
                        if pending and cancel_quietly(client, other, self.logger):
                            (watch if other == gid else GenerationWatch(other)).cancelled("interrupted")
                    raise
        self._waited = True

    async def await_for_completion(self) -> None:
        """:meth:`wait_for_completion` for async code (runs in a worker thread)."""
        await asyncio.to_thread(self.wait_for_completion)

    def _deliver(self, client: Any, row: Generation, index: int) -> DeliveredVideo:
        """Download, verify and deliver one succeeded generation."""
        work, rejected = work_dirs(self.job.output)
        video = download_generation(client, row, work)
        probe = verify_video.fn(video, self.request, str(rejected))  # a failing video is kept aside
        sidecar = build_sidecar(video, row, self.request, probe, "queue", self._cost_usd, self._started)
        delivered = self._target.deliver(
            video.path,
            self._output_name(index),
            sidecar,
            generation_id=video.generation_id,
            sha256=video.sha256,
        )
        self.logger.info(
            "Delivered %s (%d bytes, sha256 %s)", delivered.video, delivered.size_bytes, delivered.sha256[:12]
        )
        return delivered

    def _deliver_again(self, index: int, recorded: dict[str, Any]) -> DeliveredVideo:
        """Deliver what an earlier run delivered (already there, copied or downloaded again), never
        with a new generation."""
        creds = self.job.credentials
        work, _ = work_dirs(self.job.output)
        gid = str(recorded["generation_id"])

        def download_again() -> DeliveredVideo:
            with creds.get_client() as client:
                return self._deliver(client, succeeded_generation(client, gid), index)

        done = redeliver(
            recorded,
            self._target,
            self._output_name(index),
            workdir=work,
            download_again=download_again,
            new_hint=NEW_GENERATION_HINT,
        )
        self.logger.info("Generation %s (delivered before): %s, %s", gid, done.how, done.delivered.video)
        return done.delivered

    def fetch_result(self) -> list[DeliveredVideo]:  # type: ignore[override]
        """Download, verify and deliver every succeeded generation; return the deliveries.

        Waits first when :meth:`wait_for_completion` was not called. Each video is checked with
        PyAV against the request (one that fails is moved to ``<output>/rejected/``, never
        delivered) and delivered with its JSON sidecar; the same bytes already there are not
        written again. The deliveries are recorded in the journal (a later trigger of the same
        job delivers them again at no cost) and each emits ``seedance.video.delivered``.

        Returns:
            One delivery per video, in the order of the generations.

        Raises:
            SeedanceError: A generation failed, was cancelled, timed out or could not be
                delivered: the error itself when it is the only generation, else one naming every
                failure (after the others were delivered).
        """
        self.wait_for_completion()
        self._delivery_failures = {}
        new: list[DeliveredVideo] = []
        with self.job.credentials.get_client() as client:
            for index, gid in enumerate(self.generation_ids):
                if gid in self._delivered or gid in self._failures:
                    continue  # delivered by an earlier call (or nothing to deliver)
                try:
                    if self.earlier is not None:
                        done = self._deliver_again(index, self.earlier[index])
                    else:
                        done = self._deliver(client, self._rows[gid], index)
                except SeedanceError as exc:
                    self.logger.error("Generation %s: %s", gid, exc)
                    self._delivery_failures[gid] = exc
                else:
                    self._delivered[gid] = done
                    new.append(done)
        self.job.journal().record_deliveries(self.fingerprint, new)
        self._emit_delivered(new)  # once per delivery, however often the result is fetched
        delivered = [self._delivered[gid] for gid in self.generation_ids if gid in self._delivered]
        failures = list(self.failures.items())
        if failures:
            if len(failures) == 1 and not delivered:
                raise failures[0][1]
            raise SeedanceError(
                f"{len(delivered)} of {len(delivered) + len(failures)} generations delivered; failed: "
                + "; ".join(f"{g}: {e}" for g, e in failures)
            )
        return delivered

    async def afetch_result(self) -> list[DeliveredVideo]:
        """:meth:`fetch_result` for async code (runs in a worker thread)."""
        return await asyncio.to_thread(self.fetch_result)

    def _emit_delivered(self, delivered: list[DeliveredVideo]) -> None:
        """``seedance.video.delivered`` per video, inside a Prefect run or with a Prefect API set."""
        emit_delivered(delivered, self.request.prompt)


class SeedanceJob(JobBlock[list[DeliveredVideo]]):
    """A Seedance 2.0 reference-to-video generation, saved as a block and run on demand.

    The request template (the API body, references included), the account, where the videos go
    and how long to wait, edited in the Prefect UI like any block. :meth:`trigger` enqueues it
    once (a second trigger reattaches, never pays twice), the returned :class:`SeedanceJobRun`
    waits and delivers.

    Attributes:
        credentials: The Oxen.ai account (an ``OxenCredentials`` block).
        request: The API body: ``prompt``, ``input_images`` / ``input_videos`` / ``input_audios``
            (URLs, ``data:`` URIs or local paths), ``duration``, ``resolution``, ...
        output: Local folder of the videos, or, with ``deliver_to``, of the work files only.
        deliver_to: Deliver here instead: an fsspec URL or a saved storage block
            (``"s3-bucket/NAME"``).
        output_name: Base name of the delivered files (default from the prompt and fingerprint).
        run_key: Extra key: the same request with another key is a new (paid) generation.
        timeout_seconds: Deadline of each generation; past it the generation is cancelled.
        poll_interval: Seconds between safety polls (completion events arrive sooner).
        fix_references: Fix references the service would refuse (False: refuse the request).
        hosting: How local reference files reach the service: ``"data"``, ``"oxen"`` or
            ``"s3-bucket/NAME"``.
        base_dir: Folder that relative local paths of the request start from.
        journal_dir: Folder of the durable enqueue journal (default: the package's state store).
        state: The journal's store shared by machines (``s3://bucket/prefix/``, ``"s3-bucket/NAME"``
            or a folder); wins over ``journal_dir``. A job that moves to another machine then
            reattaches instead of paying again.

    Example:
        Save a job once (or in the UI: Blocks -> Seedance Job), then run it from any flow:
        ```python
        from prefect import flow
        from seedance_prefect import OxenCredentials
        from seedance_prefect import SeedanceJob

        SeedanceJob(
            credentials=OxenCredentials.load("oxen"),
            request={"prompt": "A paper boat on a pond at dawn", "duration": "5"},
            deliver_to="s3-bucket/videos",
        ).save("paper-boat", overwrite=True)

        @flow
        def nightly():
            seedance_job = SeedanceJob.load("BLOCK_NAME")
            run = seedance_job.trigger()
            run.wait_for_completion()
            return run.fetch_result()
        ```
    """

    _block_type_name: ClassVar[str] = "Seedance Job"
    _block_type_slug: ClassVar[str] = "seedance-job"
    _logo_url: ClassVar[str] = "https://avatars.githubusercontent.com/u/98217562?s=200&v=4"
    _documentation_url: ClassVar[str] = "https://docs.oxen.ai/inference-api/overview"
    _description: ClassVar[str] = (
        "A Seedance 2.0 reference-to-video generation on Oxen.ai: request, account, delivery target "
        "and wait options. Trigger it, wait for it and fetch the delivered videos."
    )

    credentials: OxenCredentials = Field(
        default=..., title="Oxen Credentials", description="The Oxen.ai account that pays for the job."
    )
    request: dict[str, Any] = Field(
        default=...,
        title="Request",
        description=(
            "The API body: prompt, input_images / input_videos / input_audios (URLs, data: URIs or "
            "local paths), duration, resolution, aspect_ratio, ..."
        ),
        examples=[
            {"prompt": "@Image1 waves at the camera", "input_images": ["portrait.jpg"], "duration": "5"}
        ],
    )
    output: str = Field(
        default="seedance-output",
        title="Output folder",
        description="Local folder of the videos (with deliver_to: of the work files and rejected videos).",
    )
    deliver_to: str | None = Field(
        default=None,
        title="Deliver to",
        description=(
            "Deliver here instead of the output folder: an fsspec URL (s3://bucket/prefix/) or a "
            "saved storage block as s3-bucket/NAME, remote-file-system/NAME or local-file-system/NAME."
        ),
    )
    output_name: str | None = Field(
        default=None,
        title="Output name",
        description="Base name of the delivered files (default: from the prompt and the request).",
    )
    run_key: str | None = Field(
        default=None,
        title="Run key",
        description="Extra key: the same request with another key is generated (and paid) again.",
    )
    timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        gt=0,
        title="Timeout (seconds)",
        description="Deadline of each generation; past it the generation is cancelled on the service.",
    )
    poll_interval: float = Field(
        default=DEFAULT_SAFETY_POLL_INTERVAL,
        gt=0,
        title="Poll interval (seconds)",
        description="Seconds between safety polls (completion events usually arrive sooner).",
    )
    fix_references: bool = Field(
        default=True,
        title="Fix references",
        description="Fix references the service would refuse (False: refuse the request instead).",
    )
    hosting: str | None = Field(
        default=None,
        title="Hosting",
        description=(
            "How local reference files reach the service: data, oxen or s3-bucket/NAME "
            "(default: oxen when the credentials name a repository, else data)."
        ),
    )
    base_dir: str | None = Field(
        default=None,
        title="Base folder",
        description="Folder that relative local paths of the request start from (default: working folder).",
    )
    journal_dir: str | None = Field(
        default=None,
        title="Journal folder",
        description=(
            "Folder of the durable enqueue journal that keeps a job from being paid twice "
            "(default: SEEDANCE_STATE, else ~/.seedance/journal)."
        ),
    )
    state: str | None = Field(
        default=None,
        title="Shared state",
        description=(
            "Where the journal lives when several machines run jobs: s3://bucket/prefix/, "
            "s3-bucket/NAME or a folder; wins over the journal folder (default: SEEDANCE_STATE)."
        ),
    )

    def trigger(self) -> SeedanceJobRun:  # type: ignore[override]
        """Check the job, prepare its references and enqueue it once; return the run to wait on.

        Nothing is paid before the request passed every local check and the delivery target
        answered. The enqueue goes through the durable journal: triggering the same job again
        reattaches to its generations, and a job whose videos were all delivered before enqueues
        nothing (:meth:`SeedanceJobRun.fetch_result` delivers them again at no cost). A POST emits
        ``seedance.generation.enqueued`` per generation; a reattach emits nothing.

        Returns:
            The run: wait for it, then fetch its videos.

        Raises:
            InvalidRequest: The request, a reference, the name or the target was refused locally
                (nothing sent, nothing paid).
            SeedanceError: The service refused the request or kept answering 429.

        Example:
            >>> import tempfile
            >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
            >>> folder = tempfile.mkdtemp()
            >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
            ...     job = SeedanceJob(
            ...         credentials=OxenCredentials(api_key="k3y", base_url=emu.base_url),
            ...         request={"prompt": "A paper boat on a pond", "duration": "4", "resolution": "480p"},
            ...         output=folder, output_name="boat", poll_interval=0.5, journal_dir=f"{folder}/journal",
            ...     )
            ...     run = job.trigger()
            ...     run.wait_for_completion()
            ...     [video] = run.fetch_result()
            >>> Path(video.video).name, Path(video.sidecar).name, video.size_bytes > 0
            ('boat.mp4', 'boat.json', True)
        """
        started = time.time()
        creds = self.credentials
        req = validate_request(self.request, endpoint="queue", base_dir=self.base_dir)
        if not self.fix_references:
            validate_request(req, fix=False)
        base_name = (
            safe_name(self.output_name, field="output_name")
            if self.output_name
            else default_name(req.prompt, req.fingerprint(self.run_key))
        )
        out = Path(self.output).resolve()
        target = resolve_target(self.deliver_to, out)
        target.check()  # before references are uploaded and before anything is paid
        journal = self.journal()  # a bad state value fails here, before anything is paid
        prepared = self._prepare(req)
        cost = estimate_cost(req.duration, req.num_generations)
        fingerprint = prepared.fingerprint(self.run_key)
        common: dict[str, Any] = {
            "request": req,
            "fingerprint": fingerprint,
            "target": target,
            "base_name": base_name,
            "cost_usd": cost.usd / max(1, req.num_generations),
            "started": started,
        }
        earlier = already_delivered(journal, fingerprint)
        if earlier:
            ids = [str(d["generation_id"]) for d in earlier]
            self.logger.info("Delivered by an earlier run (%s): nothing is enqueued", ", ".join(ids))
            return SeedanceJobRun(self, generation_ids=ids, earlier=earlier, **common)
        self.logger.info("Enqueuing %s (estimated %s)", base_name, cost)
        # the service does not replay completion events: have the account's stream up before the POST
        creds.completion_hub().ensure_connected(DEFAULT_CONNECT_TIMEOUT)
        with creds.get_client() as client:
            ids = enqueue_once(
                client,
                prepared,
                journal=journal,
                run_key=self.run_key,
                flow_run_id=current_flow_run.get_id(),
                log=self.logger,
                rate_limit_tries=RATE_LIMIT_TRIES,
                on_enqueued=announce_enqueued(prepared, self.run_key),
            )
        self.logger.info("Generation(s) %s of %s", ", ".join(ids), base_name)
        return SeedanceJobRun(self, generation_ids=ids, **common)

    def journal(self) -> Journal:
        """The job's durable enqueue journal (``state``, else ``journal_dir``, else the default store).

        Example:
            >>> import tempfile
            >>> folder = tempfile.mkdtemp()
            >>> job = SeedanceJob(credentials=OxenCredentials(api_key="k"), request={}, journal_dir=folder)
            >>> job.journal().directory == Path(folder)
            True
        """
        return Journal.at(self.state, self.journal_dir)

    async def atrigger(self) -> SeedanceJobRun:
        """:meth:`trigger` for async code (runs in a worker thread)."""
        return await asyncio.to_thread(self.trigger)

    def _prepare(self, request: SeedanceRequest) -> SeedanceRequest:
        """Fix and host the references (the ``prepare_references`` step, without its task run)."""
        cache = default_cache_dir()
        strategy = hosting_from_spec(
            self.hosting, credentials=self.credentials, state_dir=cache, state=self.state
        )
        prepared = prepare(request, cache_dir=cache, hosting=strategy, fix=self.fix_references)
        for applied in prepared.fixes:
            self.logger.info("Reference fix: %s", applied)
        if prepared.references and _in_run():
            create_table_artifact(
                prepared.table(),
                key="seedance-reference-fixes",
                description=(
                    f"Reference preprocessing: {len(prepared.fixes)} fix(es), hosting {strategy.name}"
                ),
            )
        return prepared.request


# ---------------------------------------------------------------------------------------------------
# The ready flow and its tasks (one task run per block method, as prefect-dbt's run_dbt_cloud_job).


@task(name="trigger_seedance_job", **RETRYING)
def trigger_seedance_job(seedance_job: SeedanceJob) -> SeedanceJobRun:
    """Task: :meth:`SeedanceJob.trigger` (retried on transient errors; a retry reattaches).

    Example:
        ```python
        from prefect import flow
        from seedance_prefect.jobs import SeedanceJob, trigger_seedance_job

        @flow
        def start_only() -> list[str]:
            return trigger_seedance_job(SeedanceJob.load("paper-boat")).generation_ids
        ```
    """
    return seedance_job.trigger()


@task(name="wait_for_seedance_job_run", **{**RETRYING, "retries": 2})
def wait_for_seedance_job_run(run: SeedanceJobRun) -> SeedanceJobRun:
    """Task: :meth:`SeedanceJobRun.wait_for_completion`; returns the run, waited for.

    Example:
        ```python
        run = wait_for_seedance_job_run(trigger_seedance_job(SeedanceJob.load("paper-boat")))
        print(run.failures)
        ```
    """
    run.wait_for_completion()
    return run


@task(name="fetch_seedance_job_result", **RETRYING)
def fetch_seedance_job_result(run: SeedanceJobRun) -> list[DeliveredVideo]:
    """Task: :meth:`SeedanceJobRun.fetch_result` (download, verify, deliver); returns the deliveries.

    Example:
        ```python
        for delivered in fetch_seedance_job_result(run):
            print(delivered.video, delivered.sha256)
        ```
    """
    return run.fetch_result()


#: Jobs of the latest flow runs of this process, for the cancellation hooks (never persisted; a
#: hook in another process loads the saved block by the name the run was given).
_RUN_JOBS: OrderedDict[str, SeedanceJob] = OrderedDict()
_RUN_JOBS_KEPT = 64


def _job_for_hook(flow_run: Any) -> SeedanceJob | None:
    job = _RUN_JOBS.get(str(flow_run.id))
    if job is not None:
        return job
    param = (flow_run.parameters or {}).get("seedance_job")
    if isinstance(param, str) and param:
        try:
            return SeedanceJob.load(param)  # type: ignore[return-value]
        except Exception:
            return None
    return None


def cancel_job_generations(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook: cancel every remote generation this flow run enqueued and did not deliver.

    Used as the ``on_cancellation``, ``on_crashed`` and ``on_failure`` hook of
    :func:`run_seedance_job`. The ids come from the durable journal (the flow run is linked to
    the request's entry when it enqueues), not from memory, with this run's attempts still marked
    ``posting`` recovered by listing the queue (:mod:`seedance_prefect.generation.cancel`, as
    the flows' hook does); the account from the job the run was given (a saved block's name is
    loaded again in another process).

    Example:
        ```python
        from prefect import flow
        from seedance_prefect.jobs import cancel_job_generations

        @flow(on_cancellation=[cancel_job_generations])
        def my_flow(seedance_job: str): ...
        ```
    """
    job = _job_for_hook(flow_run)
    if job is None:
        return
    # the same reading and cancelling as the flows' hook: known ids, and this run's attempts
    # still marked posting (found by listing the queue); another live poster's are left alone
    left = left_by(job.journal(), [str(flow_run.id)])
    if not left:
        return
    with job.credentials.get_client(timeout=4.0, max_retries=0) as client:
        cancel_leftovers(client, left, log=job.logger)


_HOOKS: list[Callable[..., None]] = [cancel_job_generations]


@flow(
    name="seedance-run-job",
    on_cancellation=_HOOKS,
    on_crashed=_HOOKS,
    on_failure=_HOOKS,
)
def run_seedance_job(seedance_job: SeedanceJob | str) -> list[dict[str, Any]]:
    """Run a Seedance job: trigger -> wait for completion -> fetch (download, verify, deliver).

    The flow of the job block, as ``run_dbt_cloud_job`` is prefect-dbt's: one task run per step.
    Cancelling, crashing or failing the flow run cancels the generations it enqueued.

    Args:
        seedance_job: A ``SeedanceJob`` block, or the name of a saved one (what a deployment
            takes: its parameters are stored by the Prefect server, a block's secret masked).

    Returns:
        One dict per delivered video: ``generation_id``, ``video``, ``sidecar``, ``sha256``,
        ``size_bytes``, ``reused``.

    Raises:
        InvalidRequest: The job was refused locally (nothing sent).
        SeedanceError: A generation failed, timed out or could not be delivered.

    Example:
        ```python
        from seedance_prefect.jobs import run_seedance_job

        deliveries = run_seedance_job("paper-boat")   # a saved SeedanceJob
        print(deliveries[0]["video"])
        ```
    """
    job = SeedanceJob.load(seedance_job) if isinstance(seedance_job, str) else seedance_job
    run_id = current_flow_run.get_id()
    if run_id:
        _RUN_JOBS[run_id] = job  # type: ignore[assignment]
        while len(_RUN_JOBS) > _RUN_JOBS_KEPT:
            _RUN_JOBS.popitem(last=False)
    run = trigger_seedance_job(job)
    run = wait_for_seedance_job_run(run)
    return [d.to_dict() for d in fetch_seedance_job_result(run)]
