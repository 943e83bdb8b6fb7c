"""The downstream pipeline of ``flows/``: a delivered video starts one contact-sheet run, by its event.

``flows/contact_sheet.py`` is served in a subprocess with the trigger of its ``prefect.yaml``
deployment (built as ``prefect deploy`` builds it) against the session's real Prefect server, whose
triggers and actions services run. Videos are then delivered for real (the emulator, the
``reference_to_video`` flow and the ``SeedanceJob`` flow); each ``seedance.video.delivered`` event
must start exactly one run, with the video's location as its ``video`` parameter.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from PIL import Image

from seedance_prefect.credentials import OxenCredentials
from seedance_prefect.flows import reference_to_video
from seedance_prefect.jobs import SeedanceJob, run_seedance_job
from tests.kit import API_KEY, stop_process, wait_until

REPO = Path(__file__).resolve().parents[2]
FLOWS = REPO / "flows"
DEPLOYMENT = "seedance-contact-sheet/contact-sheet-test"


def _contact_sheet_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("contact_sheet", FLOWS / "contact_sheet.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_deployment_and_its_trigger_in_prefect_yaml() -> None:
    config = yaml.safe_load((FLOWS / "prefect.yaml").read_text(encoding="utf-8"))
    [deployment] = [d for d in config["deployments"] if d["name"] == "contact-sheet"]
    assert deployment["entrypoint"] == "contact_sheet.py:contact_sheet"
    assert deployment["work_pool"]["name"] == "seedance-process"
    [trigger] = _contact_sheet_module().deployment_triggers()
    assert trigger.expect == {"seedance.video.delivered"}
    assert trigger.match.model_dump() == {"prefect.resource.id": "seedance.generation.*"}
    assert trigger.posture == "Reactive" and trigger.threshold == 1
    assert trigger.parameters == {"video": "{{ event.payload.video }}"}


def test_the_doctests_of_the_flow_file() -> None:
    failed, attempted = doctest.testmod(_contact_sheet_module())
    assert attempted >= 4 and failed == 0


def _env(prefect_server: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PREFECT_API_URL"] = prefect_server
    env["PREFECT_RUNNER_POLL_FREQUENCY"] = "2"  # the served runner looks for new runs every 2 s
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _runs(deployment_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


def _finished_run_of(deployment_id: Any, video: str) -> Any:
    runs = [r for r in _runs(deployment_id) if r.parameters.get("video") == video]
    return runs[0] if runs and runs[0].state and runs[0].state.is_final() else None


@pytest.mark.slow
def test_a_delivered_video_starts_one_contact_sheet_run(prefect_server, emulator, tmp_path):
    from prefect.client.orchestration import get_client

    log = tmp_path / "serve.log"
    serve = subprocess.Popen(
        [sys.executable, str(FLOWS / "contact_sheet.py"), "--name", "contact-sheet-test"],
        env=_env(prefect_server),
        cwd=tmp_path,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:

        def automation_ready() -> Any:
            with get_client(sync_client=True) as client:
                try:
                    deployment = client.read_deployment_by_name(DEPLOYMENT)
                except Exception:
                    return None
                owned = client.read_resource_related_automations(f"prefect.deployment.{deployment.id}")
                return deployment if owned else None

        deployment = wait_until(automation_ready, 180, "the served deployment and its trigger")
        assert _runs(deployment.id) == []

        # 1. a video delivered by the reference_to_video flow
        [first] = reference_to_video(
            {"prompt": "A kite over the dunes", "resolution": "480p", "duration": "4"},
            output=str(tmp_path / "videos"),
            name="kite",
            poll_interval=1.0,
        )
        run = wait_until(
            lambda: _finished_run_of(deployment.id, first["video"]), 180, "the contact-sheet run", 0.5
        )
        assert run.state.is_completed(), (run.state, log.read_text()[-3000:])
        assert run.parameters == {"video": first["video"]}
        assert run.created_by is not None and run.created_by.type == "AUTOMATION"
        sheet = tmp_path / "videos" / "kite.contact-sheet.png"
        with Image.open(sheet) as image:  # 8 frames of 854x480 in 4 columns of 320 px
            assert (image.format, image.size) == ("PNG", (1320, 416))

        # 2. a second video, delivered by the SeedanceJob flow: its run comes after any duplicate of
        # the first event's would have (the triggers service takes events in order)
        job = SeedanceJob(
            credentials=OxenCredentials(api_key=API_KEY, base_url=emulator.base_url),
            request={"prompt": "A heron in the reeds", "resolution": "480p", "duration": "4"},
            output=str(tmp_path / "videos"),
            output_name="heron",
            poll_interval=1.0,
        )
        [second] = run_seedance_job(job)
        later = wait_until(
            lambda: _finished_run_of(deployment.id, second["video"]), 180, "the second contact-sheet run", 0.5
        )
        assert later.state.is_completed(), (later.state, log.read_text()[-3000:])
        assert (tmp_path / "videos" / "heron.contact-sheet.png").exists()

        videos = sorted(r.parameters["video"] for r in _runs(deployment.id))
        assert videos == sorted([first["video"], second["video"]])  # one run per delivered video
    finally:
        stop_process(serve)
