"""Runs whose worker died (issue 12 E): heartbeats, the automation that marks them Crashed, and the
cleanup flow that cancels the generations they left running.

``flows/automations.yaml`` must load with ``prefect automation create --from-file`` (checked against
the session's real Prefect server); the deployments of ``flows/prefect.yaml`` send heartbeats; the
``cancel-orphaned-generations`` deployment's trigger starts ``flows/cleanup.py`` on a Crashed run
of the seedance flows, and the flow cancels what the journal links to that run.
"""

from __future__ import annotations

import contextlib
import doctest
import functools
import importlib.util
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml

from seedance_prefect.batch_flows import batch_reference_to_video
from seedance_prefect.flows import reference_to_video
from seedance_prefect.jobs import run_seedance_job
from tests.kit import stats, stop_process, wait_until

REPO = Path(__file__).resolve().parents[2]
FLOWS = REPO / "flows"
AUTOMATION = "seedance-crash-zombie-flow-runs"
SEEDANCE_FLOWS = {reference_to_video.name, batch_reference_to_video.name, run_seedance_job.name}
REQUEST = {"prompt": "A lighthouse in a storm", "resolution": "480p", "duration": "4", "seed": 11}


@functools.cache
def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, FLOWS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _deployments() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((FLOWS / "prefect.yaml").read_text(encoding="utf-8"))
    return {d["name"]: d for d in config["deployments"]}


def _automations() -> list[dict[str, Any]]:
    return yaml.safe_load((FLOWS / "automations.yaml").read_text(encoding="utf-8"))["automations"]


def _heartbeat(deployment: dict[str, Any]) -> int | None:
    env = ((deployment.get("work_pool") or {}).get("job_variables") or {}).get("env") or {}
    value = env.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY")
    return int(value) if value is not None else None


def _env(prefect_server: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PREFECT_API_URL"] = prefect_server
    env["PREFECT_RUNNER_POLL_FREQUENCY"] = "2"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


# ---------------------------------------------------------------------------------------------------
# configuration: heartbeats, the zombie automation, the cleanup deployment


def test_the_generation_deployments_send_heartbeats() -> None:
    deployments = _deployments()
    for name in (
        "nightly-batch",
        "batch",
        "reference-to-video",
        "cancel-orphaned-generations",
        "resume-crashed-batches",
    ):
        frequency = _heartbeat(deployments[name])
        assert frequency is not None and frequency >= 30, name  # Prefect's minimum is 30 s


def test_the_automation_file_validates_and_marks_silent_runs_crashed() -> None:
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    [automation] = [AutomationCore.model_validate(entry) for entry in _automations()]
    assert automation.name == AUTOMATION and automation.enabled
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger) and trigger.posture == Posture.Proactive
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert trigger.expect == {
        f"prefect.flow-run.{name}" for name in ("heartbeat", "Completed", "Failed", "Cancelled", "Crashed")
    }
    assert trigger.match.model_dump() == {"prefect.resource.id": "prefect.flow-run.*"}
    assert trigger.for_each == {"prefect.resource.id"} and trigger.threshold == 1
    frequency = _heartbeat(_deployments()["reference-to-video"])
    assert frequency is not None and trigger.within.total_seconds() == 3 * frequency  # ~3 heartbeats
    [action] = automation.actions
    assert isinstance(action, ChangeFlowRunState) and action.state == StateType.CRASHED


def test_prefect_automation_create_loads_the_file(prefect_server: str) -> None:
    from prefect.client.orchestration import get_client

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect",
            "automation",
            "create",
            "--from-file",
            str(FLOWS / "automations.yaml"),
        ],
        env=_env(prefect_server),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Created automation '{AUTOMATION}'" in done.stdout
    with get_client(sync_client=True) as client:
        created = client.read_automations_by_name(AUTOMATION)
        try:
            assert [a.trigger.posture for a in created] == ["Proactive"]
            assert [a.actions[0].type for a in created] == ["change-flow-run-state"]
        finally:
            for automation in created:  # the session's other tests must not meet it
                client.delete_automation(automation.id)


def test_the_cleanup_deployment_and_its_trigger() -> None:
    deployment = _deployments()["cancel-orphaned-generations"]
    assert deployment["entrypoint"] == "cleanup.py:cancel_orphaned_generations"
    assert deployment["work_pool"]["name"] == "seedance-process"
    [trigger] = _module("contact_sheet").deployment_triggers(
        "cancel-orphaned-generations", FLOWS / "prefect.yaml"
    )
    assert trigger.expect == {"prefect.flow-run.Crashed"} and trigger.posture == "Reactive"
    assert trigger.match.model_dump() == {"prefect.resource.id": "prefect.flow-run.*"}
    related = trigger.match_related.model_dump()
    assert related["prefect.resource.role"] == "flow"
    # the names the flows really have; a crashed batch is resumed, not cancelled
    assert set(related["prefect.resource.name"]) == SEEDANCE_FLOWS - {batch_reference_to_video.name}
    assert trigger.parameters == {"flow_run_id": "{{ event.resource.id }}"}
    cleanup = _module("cleanup")
    assert cleanup.cancel_orphaned_generations.name not in SEEDANCE_FLOWS  # its own crash starts nothing


def test_the_resume_deployment_and_its_trigger() -> None:
    deployment = _deployments()["resume-crashed-batches"]
    assert deployment["entrypoint"] == "cleanup.py:resume_crashed_run"
    [trigger] = _module("contact_sheet").deployment_triggers("resume-crashed-batches", FLOWS / "prefect.yaml")
    assert trigger.expect == {"prefect.flow-run.Crashed"} and trigger.posture == "Reactive"
    related = trigger.match_related.model_dump()
    assert related == {
        "prefect.resource.role": "flow",
        "prefect.resource.name": batch_reference_to_video.name,
    }
    assert trigger.parameters == {"flow_run_id": "{{ event.resource.id }}"}
    assert _module("cleanup").resume_crashed_run.name not in SEEDANCE_FLOWS  # its own crash starts nothing


def test_the_doctests_of_the_cleanup_file() -> None:
    failed, attempted = doctest.testmod(_module("cleanup"))
    assert attempted >= 3 and failed == 0


# ---------------------------------------------------------------------------------------------------
# the cleanup flow


def _hold(emu: Any, on: bool) -> None:
    httpx.post(f"{emu.url}/_emulator/hold", json={"hold": on}).raise_for_status()


def _status(emu: Any, generation_id: str) -> str:
    return stats(emu)["generations"][generation_id]["status"]


def test_the_cleanup_flow_cancels_what_a_flow_run_left(prefect_server, emulator, tmp_path) -> None:
    """Journaled generations (one delivered: left alone), a POST whose answer never came (its poster
    was killed: found by listing the queue), and another flow run's generation (left alone)."""
    from seedance_prefect.credentials import resolve_credentials
    from seedance_prefect.generation.enqueue import enqueue_once, journal_body
    from seedance_prefect.generation.journal import Claim, Journal, JournalEntry
    from seedance_prefect.models import SeedanceRequest

    _hold(emulator, True)  # generations stay processing until cancelled
    state = tmp_path / "shared-state"
    journal = Journal.at(str(state))
    crashed, other = str(uuid.uuid4()), str(uuid.uuid4())

    def request(n: int, **extra: Any) -> SeedanceRequest:
        return SeedanceRequest.model_validate({**REQUEST, "prompt": f"{REQUEST['prompt']} #{n}", **extra})

    with resolve_credentials(None).get_client() as client:
        two = enqueue_once(client, request(1, num_generations=2), journal=journal, flow_run_id=crashed)
        delivered = enqueue_once(client, request(2), journal=journal, flow_run_id=crashed)
        others = enqueue_once(client, request(3), journal=journal, flow_run_id=other)
        # a POST that reached the service, its poster killed before the answer: only "posting" journaled
        lost_request = request(4)
        entry = JournalEntry(lost_request.fingerprint(), body=journal_body(lost_request), flow_runs=[crashed])
        attempt = entry.begin_attempt()
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait(30)
        entry.claim = Claim(f"{socket.gethostname()}:{dead.pid}:ab12", 0, attempt.started_at + 10)
        journal.save(entry)
        journal.link_flow_run(crashed, entry.fingerprint)
        [lost] = [row.generation_id for row in client.enqueue(lost_request)]
    done = SimpleNamespace(generation_id=delivered[0], video="v.mp4", sha256="00")
    journal.record_deliveries(request(2).fingerprint(), [done])

    summary = _module("cleanup").cancel_orphaned_generations(
        f"prefect.flow-run.{crashed}", state=str(state), credentials=None
    )

    assert sorted(summary["cancelled"]) == sorted([*two, lost])
    assert summary["recovered"] == [lost] and summary["not_cancelled"] == {}
    assert all(_status(emulator, gid) == "cancelled" for gid in [*two, lost])
    assert _status(emulator, delivered[0]) == "processing"  # delivered: not this flow's to cancel
    assert _status(emulator, others[0]) == "processing"  # another flow run's
    again = _module("cleanup").cancel_orphaned_generations(crashed, state=str(state), credentials=None)
    assert again["cancelled"] == [] and stats(emulator)["deletes"] == 3  # twice is harmless


@pytest.mark.slow
def test_a_crashed_run_starts_the_cleanup_deployment(prefect_server, emulator, tmp_path) -> None:
    """A flow run killed with SIGKILL, then marked Crashed (what the zombie automation does after the
    missed heartbeats): the served cleanup deployment's trigger runs the cleanup, which cancels its
    generation."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.states import Crashed

    _hold(emulator, True)
    env = _env(prefect_server)
    serve = subprocess.Popen(
        [sys.executable, str(FLOWS / "cleanup.py"), "--name", "cleanup-test"],
        env=env,
        cwd=tmp_path,
        stdout=(tmp_path / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    code = (
        "import json, sys; from seedance_prefect.flows import reference_to_video; "
        "reference_to_video(json.loads(sys.argv[1]), output=sys.argv[2], poll_interval=1.0)"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(REQUEST), str(tmp_path / "o")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def automation_ready() -> Any:
            with get_client(sync_client=True) as client:
                try:
                    deployment = client.read_deployment_by_name(
                        "seedance-cancel-orphaned-generations/cleanup-test"
                    )
                except Exception:
                    return None
                owned = client.read_resource_related_automations(f"prefect.deployment.{deployment.id}")
                return deployment if owned else None

        deployment = wait_until(automation_ready, 180, "the served cleanup deployment and its trigger")
        runs = tmp_path / "state" / "journal" / "runs"
        journaled = wait_until(
            lambda: [
                p for p in (tmp_path / "state" / "journal").glob("*.json") if "enqueued" in p.read_text()
            ],
            120,
            "the flow to journal its generation",
        )
        assert journaled
        worker.kill()  # SIGKILL: no hook runs
        worker.wait(30)
        [generation_id] = stats(emulator)["generations"]
        assert _status(emulator, generation_id) == "processing"
        [flow_run_id] = [p.name for p in runs.iterdir()]
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(
                uuid.UUID(flow_run_id), Crashed(message="missed heartbeats"), force=True
            )

        wait_until(lambda: _status(emulator, generation_id) == "cancelled", 180, "the cleanup's cancel", 0.5)

        def finished_cleanup() -> Any:
            with get_client(sync_client=True) as client:
                found = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
                )
            return found if found and all(r.state and r.state.is_final() for r in found) else None

        [cleanup] = wait_until(finished_cleanup, 120, "the cleanup run to end", 0.5)
        assert cleanup.state.is_completed(), (tmp_path / "serve.log").read_text()[-3000:]
        assert cleanup.parameters["flow_run_id"] == f"prefect.flow-run.{flow_run_id}"
        assert cleanup.created_by is not None and cleanup.created_by.type == "AUTOMATION"
    finally:
        worker.kill()
        stop_process(serve)
        with get_client(sync_client=True) as client, contextlib.suppress(Exception):
            served = client.read_deployment_by_name("seedance-cancel-orphaned-generations/cleanup-test")
            client.delete_deployment(served.id)  # and its trigger: later crashes start nothing


# ---------------------------------------------------------------------------------------------------
# the resume flow


def test_a_crashed_batch_run_is_resumed_once_with_its_parameters(
    prefect_server, monkeypatch, tmp_path
) -> None:
    """resume_crashed_run starts the crashed run's deployment again with the same parameters (one
    new run per crash, tagged with the resume count); a run that did not crash is left alone, and
    past max_resumes the run is not started again."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    resume = _module("cleanup").resume_crashed_run
    params = {"manifest": "s3://bucket/nightly.jsonl", "shard": 1, "shards": 3, "concurrency": 4}
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(batch_reference_to_video.name)
        deployment_id = client.create_deployment(flow_id, f"resume-test-{uuid.uuid4().hex[:6]}")
        crashed = client.create_flow_run_from_deployment(deployment_id, parameters=params, tags=["nightly"])
        running = client.create_flow_run_from_deployment(deployment_id, parameters=params)
        client.set_flow_run_state(crashed.id, Crashed(message="missed heartbeats"), force=True)

        first = resume(f"prefect.flow-run.{crashed.id}")
        again = resume(str(crashed.id))  # the trigger fired twice: still one new run
        left_alone = resume(str(running.id))

        assert first["resumed_as"] and again["resumed_as"] == first["resumed_as"]
        new = client.read_flow_run(uuid.UUID(first["resumed_as"]))
        assert new.deployment_id == deployment_id and new.parameters == params
        assert sorted(new.tags) == ["nightly", "seedance-resume:1"]
        assert left_alone["resumed_as"] is None and "not resumed" in left_alone["why"]

        tired = client.create_flow_run_from_deployment(
            deployment_id, parameters=params, tags=["seedance-resume:3"]
        )
        client.set_flow_run_state(tired.id, Crashed(message="missed heartbeats"), force=True)
        monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "state"))  # its leftovers: none here
        gave_up = resume(str(tired.id), max_resumes=3)
        assert gave_up["resumed_as"] is None and "resumed 3 times already" in gave_up["why"]
        assert gave_up["cancelled"]["cancelled"] == []
