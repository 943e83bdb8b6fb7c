"""Crash pipelines: resume a crashed batch, or cancel the remote generations a crashed run left running.

A flow run whose worker died (SIGKILL, a lost machine) runs no hook: its generations keep running
and costing. With heartbeats on (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` in the deployments of
``prefect.yaml``) the automation of ``automations.yaml`` marks such a run Crashed once it misses
its heartbeats; the ``cancel-orphaned-generations`` deployment of ``prefect.yaml`` has a trigger on
``prefect.flow-run.Crashed`` of the seedance flows that passes ``{{ event.resource.id }}``
(``prefect.flow-run.<id>``) to this flow. It reads the journal's links of that flow run and
cancels what it left: the generations the journal records and did not deliver, and those of an
attempt still ``posting`` (found by listing the queue), with the same functions as the flows'
cancellation hooks (:mod:`seedance_prefect.generation.cancel`). A crash whose hook ran already
leaves nothing active: cancelling twice is harmless.

The next run of the same request reattaches (the journal) instead of paying again; this flow is
for runs that nobody runs again.

A batch is run again: the ``resume-crashed-batches`` deployment (trigger on
``prefect.flow-run.Crashed`` of ``seedance-batch-reference-to-video``) runs
:func:`resume_crashed_run`, which starts a new flow run of the crashed run's deployment with the same
parameters. That run reattaches to the generations the dead one started (the shared journal:
``state``), downloads what they made, and goes on with the rows nobody started: nothing is paid
twice and nothing is cancelled. A run is resumed at most ``max_resumes`` times in a row (a batch
that keeps crashing its machine is not started for ever); past that, its leftovers are cancelled.

Serve it with the trigger of ``prefect.yaml`` (one long-running process, no work pool):

    python flows/cleanup.py

or deploy it with the other pipelines (``prefect deploy``, ``docs/deployment.md``). Run it by hand:

    python -c "from cleanup import cancel_orphaned_generations as c; c('<flow run id>')"
"""

# No `from __future__ import annotations` here: Prefect builds the flow's parameter model from
# these annotations, and string annotations do not resolve when a runner loads the flow by entrypoint.

import argparse
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow
from prefect.logging import get_run_logger

from seedance_prefect.credentials import OxenCredentials, resolve_credentials
from seedance_prefect.errors import SeedanceError
from seedance_prefect.generation.cancel import cancel_leftovers, left_by
from seedance_prefect.generation.journal import Journal

__all__ = [
    "DEPLOYMENT",
    "RESUME_DEPLOYMENT",
    "cancel_orphaned_generations",
    "flow_run_id_of",
    "main",
    "resume_crashed_run",
]

#: The deployment of ``prefect.yaml`` that this file serves.
DEPLOYMENT = "cancel-orphaned-generations"
#: The deployment of ``prefect.yaml`` that resumes crashed batches.
RESUME_DEPLOYMENT = "resume-crashed-batches"
#: The tag of a resumed run: ``seedance-resume:<n>`` (n-th resume in a row).
RESUME_TAG = "seedance-resume:"
PREFECT_YAML = Path(__file__).resolve().with_name("prefect.yaml")
_PREFIX = "prefect.flow-run."


def flow_run_id_of(value: str) -> str:
    """A flow run id from an event's resource id (``prefect.flow-run.<id>``) or the id itself.

    Args:
        value: ``{{ event.resource.id }}`` of a flow-run event, or a flow run id.

    Returns:
        The flow run id (a UUID's canonical text).

    Raises:
        ValueError: Not a flow run id.

    Example:
        >>> flow_run_id_of("prefect.flow-run.0b6f6e8e-1c5e-4f55-9b7a-2f4e1d1e2c3a")
        '0b6f6e8e-1c5e-4f55-9b7a-2f4e1d1e2c3a'
        >>> flow_run_id_of("0B6F6E8E1C5E4F559B7A2F4E1D1E2C3A")
        '0b6f6e8e-1c5e-4f55-9b7a-2f4e1d1e2c3a'
        >>> flow_run_id_of("prefect.deployment.x")
        Traceback (most recent call last):
        ...
        ValueError: not a flow run id: 'prefect.deployment.x'
    """
    text = value.strip()
    text = text[len(_PREFIX) :] if text.startswith(_PREFIX) else text
    try:
        return str(UUID(text))
    except ValueError:
        raise ValueError(f"not a flow run id: {value!r}") from None


def _parameters_of(flow_run_id: str, logger: Any) -> dict[str, Any]:
    """The parameters of the crashed flow run (where its journal is, its account), or {} when unknown."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            return dict(client.read_flow_run(UUID(flow_run_id)).parameters or {})
    except Exception as exc:  # not on this server, or unreachable: the flow's own parameters decide
        logger.warning("Could not read flow run %s: %s", flow_run_id, exc)
        return {}


def _job_of(params: dict[str, Any], logger: Any) -> Any:
    """The SeedanceJob a ``seedance-run-job`` run was given by name, if any."""
    name = params.get("seedance_job")
    if not isinstance(name, str) or not name:
        return None
    from seedance_prefect.jobs import SeedanceJob

    try:
        return SeedanceJob.load(name)
    except Exception as exc:
        logger.warning("Could not load the job %r of the crashed run: %s", name, exc)
        return None


@flow(name="seedance-cancel-orphaned-generations", retries=2, retry_delay_seconds=30)
def cancel_orphaned_generations(
    flow_run_id: str,
    state: str | None = None,
    credentials: OxenCredentials | str | None = "oxen",
    journal_dir: str | None = None,
) -> dict[str, Any]:
    """Cancel the remote generations a (crashed) flow run left running.

    Args:
        flow_run_id: The flow run: its id, or ``{{ event.resource.id }}`` of its event
            (``prefect.flow-run.<id>``).
        state: The journal's store (``s3://bucket/prefix/``, ``s3-bucket/NAME`` or a folder). None:
            the crashed run's own ``state`` parameter (or its job's), else ``$SEEDANCE_STATE``,
            else ``journal_dir``, else ``~/.seedance``.
        credentials: An ``OxenCredentials`` block or a saved block's name (default ``"oxen"``).
            None: the crashed run's (its ``credentials`` parameter when it names a saved block,
            or its job's), else ``OXEN_API_KEY`` / ``OXEN_BASE_URL``.
        journal_dir: Folder of the journal when there is no ``state`` (default: the crashed
            run's ``journal_dir`` parameter).

    Returns:
        ``flow_run_id``, ``cancelled`` (ids), ``recovered`` (ids of a POST whose answer was not
        journaled, found by listing the queue), ``ended`` (already over), ``left_alone``
        (fingerprint -> why: another live process posts it) and ``not_cancelled`` (id -> why).

    Raises:
        SeedanceError: Some generations could not be cancelled (the flow is retried).
        ValueError: ``flow_run_id`` is not a flow run id.

    Example:
        ```python
        cancel_orphaned_generations("prefect.flow-run.0b6f6e8e-1c5e-4f55-9b7a-2f4e1d1e2c3a")
        ```
    """
    logger = get_run_logger()
    run_id = flow_run_id_of(flow_run_id)
    params = _parameters_of(run_id, logger)
    job = _job_of(params, logger) if state is None or credentials is None else None
    if state is None and job is not None:
        journal = job.journal()
    else:
        journal = Journal.at(state or params.get("state"), journal_dir or params.get("journal_dir"))
    left = left_by(journal, [run_id])
    summary: dict[str, Any] = {"flow_run_id": run_id, "cancelled": [], "recovered": [], "ended": []}
    summary.update(left_alone=dict(left.left_alone), not_cancelled={})
    for fingerprint, why in left.left_alone.items():
        logger.info("Not cancelling the enqueue of %s: %s", fingerprint[:12], why)
    if not left:
        logger.info("Flow run %s left no generation to cancel (journal %s)", run_id, journal.store.url)
        return summary
    if credentials is not None:
        creds = resolve_credentials(credentials)
    elif job is not None:
        creds = job.credentials
    else:
        own = params.get("credentials")
        creds = resolve_credentials(own if isinstance(own, str) else None)
    with creds.get_client(timeout=10.0) as client:
        report = cancel_leftovers(client, left, log=logger)
    summary.update(
        cancelled=report.cancelled,
        recovered=report.recovered,
        ended=report.ended,
        not_cancelled=report.not_cancelled,
    )
    logger.info(
        "Flow run %s: cancelled %d generation(s), %d already over, %d left alone",
        run_id,
        len(report.cancelled),
        len(report.ended),
        len(report.left_alone),
    )
    if report.not_cancelled:
        raise SeedanceError(
            "Could not cancel: " + "; ".join(f"{gid}: {why}" for gid, why in report.not_cancelled.items())
        )
    return summary


def _resumes_of(tags: list[str]) -> int:
    """How many times in a row the run was resumed already (its ``seedance-resume:<n>`` tag)."""
    counts = [
        int(t[len(RESUME_TAG) :]) for t in tags if t.startswith(RESUME_TAG) and t[len(RESUME_TAG) :].isdigit()
    ]
    return max(counts, default=0)


@flow(name="seedance-resume-crashed-run", retries=2, retry_delay_seconds=10)
def resume_crashed_run(flow_run_id: str, max_resumes: int = 3) -> dict[str, Any]:
    """Start a crashed flow run again: a new run of its deployment with the same parameters.

    The new run reattaches to what the crashed one enqueued (the journal in its ``state``) and
    goes on with the rest, so nothing is paid twice. Only a Crashed run of a deployment is resumed;
    the new run is created once per crashed run (an idempotency key), tagged
    ``seedance-resume:<n>``. Past ``max_resumes`` resumes in a row, the run's leftovers are
    cancelled instead (:func:`cancel_orphaned_generations`).

    Args:
        flow_run_id: The crashed flow run: its id, or ``{{ event.resource.id }}`` of its event.
        max_resumes: How many times in a row a run may be resumed.

    Returns:
        ``flow_run_id``, ``resumed_as`` (the new run's id, or None) and ``why`` (what was done).

    Example:
        ```python
        resume_crashed_run("prefect.flow-run.0b6f6e8e-1c5e-4f55-9b7a-2f4e1d1e2c3a")
        ```
    """
    from prefect.client.orchestration import get_client

    logger = get_run_logger()
    run_id = flow_run_id_of(flow_run_id)
    with get_client(sync_client=True) as client:
        crashed = client.read_flow_run(UUID(run_id))
        summary: dict[str, Any] = {"flow_run_id": run_id, "resumed_as": None}
        if crashed.state is None or not crashed.state.is_crashed():
            summary["why"] = (
                f"not resumed: the run is {crashed.state.name if crashed.state else 'without state'}"
            )
        elif crashed.deployment_id is None:
            summary["why"] = "not resumed: the run was not started from a deployment"
        elif (done := _resumes_of(list(crashed.tags or []))) >= max_resumes:
            summary["why"] = f"not resumed: resumed {done} times already (max_resumes={max_resumes})"
            logger.error("Flow run %s %s; cancelling what it left", crashed.name, summary["why"])
            summary["cancelled"] = cancel_orphaned_generations.fn(run_id, credentials=None)
            return summary
        else:
            tags = [t for t in crashed.tags or [] if not t.startswith(RESUME_TAG)] + [
                f"{RESUME_TAG}{done + 1}"
            ]
            new = client.create_flow_run_from_deployment(
                crashed.deployment_id,
                parameters=dict(crashed.parameters or {}),
                tags=tags,
                idempotency_key=f"seedance-resume-of-{run_id}",
                job_variables=dict(crashed.job_variables or {}) or None,
            )
            summary.update(resumed_as=str(new.id), why=f"resumed as {new.name} ({RESUME_TAG}{done + 1})")
        logger.info("Flow run %s: %s", crashed.name, summary["why"])
    return summary


def main(argv: list[str] | None = None) -> None:
    """Serve the flow with the trigger of its ``prefect.yaml`` deployment until interrupted."""
    from contact_sheet import deployment_triggers  # beside this file: builds triggers as `prefect deploy`

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--name", default=DEPLOYMENT, help="deployment name")
    parser.add_argument(
        "--credentials",
        default=None,
        help="a saved OxenCredentials block (default: the crashed run's, else OXEN_API_KEY / OXEN_BASE_URL)",
    )
    args = parser.parse_args(argv)
    cancel_orphaned_generations.serve(
        name=args.name,
        triggers=deployment_triggers(DEPLOYMENT, PREFECT_YAML),
        parameters={"credentials": args.credentials},
        print_starting_message=True,
    )


if __name__ == "__main__":
    main()
