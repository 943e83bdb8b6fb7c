"""The base job templates of the Docker and Kubernetes work pools (``flows/job-templates/``).

No Docker daemon or Kubernetes cluster exists here, and neither prefect-docker nor prefect-kubernetes
is installed: the templates are checked as far as Prefect itself goes. On the files: every
``{{ placeholder }}`` of ``job_configuration`` is a declared variable, the variables are a valid JSON
schema whose defaults validate, the env defaults hold the shared state store and the heartbeats of
``flows/prefect.yaml``, and no API key value is anywhere (Kubernetes takes ``OXEN_API_KEY`` from a
secret reference). Against the session's real Prefect server: ``prefect work-pool create --type docker
|kubernetes --base-job-template <file>`` (the server validates the template and its defaults) stores
the file as it is; ``prefect deploy --name batch --pool <docker pool>`` from ``flows/`` keeps the
heartbeats and the pull step's ``{{ $SEEDANCE_PIPELINES_DIR }}``; a flow run whose job variables break
the schema is refused; a deployment's env is merged over the pool's the way a worker renders it; a
template with an undeclared placeholder or a bad default is refused. The CLI runs through
``prefect_cli`` of ``tests/stackkit.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kit import SECRETS
from tests.stackkit import prefect_cli

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "flows" / "job-templates"
KINDS = ("docker", "kubernetes")
IMAGE = "seedance-prefect:latest"


def _template(kind: str) -> dict[str, Any]:
    return json.loads((TEMPLATES / f"{kind}.json").read_text(encoding="utf-8"))


def _defaults(template: dict[str, Any]) -> dict[str, Any]:
    properties = template["variables"]["properties"]
    return {name: spec["default"] for name, spec in properties.items() if spec.get("default") is not None}


def _heartbeat_of_the_deployments() -> str:
    config = yaml.safe_load((REPO / "flows" / "prefect.yaml").read_text(encoding="utf-8"))
    deployment = next(d for d in config["deployments"] if d["name"] == "batch")
    return deployment["work_pool"]["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]


def _container(template: dict[str, Any]) -> dict[str, Any]:
    return template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]


# ---------------------------------------------------------------------------------------------------
# the files


@pytest.mark.parametrize("kind", KINDS)
def test_every_placeholder_is_a_declared_variable(kind: str) -> None:
    from prefect.utilities.templating import PlaceholderType, find_placeholders

    template = _template(kind)
    placeholders = find_placeholders(template["job_configuration"])
    assert {p.type for p in placeholders} == {PlaceholderType.STANDARD}  # no $ENV, block or variable
    used = {p.name for p in placeholders}
    declared = set(template["variables"]["properties"])
    assert used - declared == set(), "undeclared"
    assert declared - used == set(), "declared but never used"
    assert {"command", "env", "labels", "name", "image"} <= used


@pytest.mark.parametrize("kind", KINDS)
def test_the_variables_are_a_json_schema_and_the_defaults_validate(kind: str) -> None:
    from prefect.utilities.schema_tools import ValidationError, is_valid_schema, validate

    variables = _template(kind)["variables"]
    assert variables["type"] == "object"
    is_valid_schema(variables, preprocess=False)
    validate(
        _defaults(_template(kind)), variables, raise_on_error=True, preprocess=True, ignore_required=True
    )
    with pytest.raises(ValidationError):  # the validator does bite
        validate({"image_pull_policy": "Sometimes"}, variables, raise_on_error=True, preprocess=True)


@pytest.mark.parametrize("kind", KINDS)
def test_the_env_defaults_share_the_state_and_send_heartbeats(kind: str) -> None:
    from seedance_prefect.state import resolve_state

    defaults = _defaults(_template(kind))
    assert defaults["image"] == IMAGE
    env = defaults["env"]
    assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == _heartbeat_of_the_deployments() == "60"
    assert resolve_state(env["SEEDANCE_STATE"]).url.startswith("s3://")  # the containers' disk is lost
    assert not {name for name in env if name.startswith("OXEN_")}


@pytest.mark.parametrize("kind", KINDS)
def test_no_api_key_value_is_in_the_template(kind: str) -> None:
    text = (TEMPLATES / f"{kind}.json").read_text(encoding="utf-8")
    assert not [secret for secret in SECRETS if secret in text]
    assert not re.search(r"\bsk-[A-Za-z0-9]{8,}", text)
    template = _template(kind)
    if kind == "kubernetes":
        [entry] = [e for e in _container(template)["env"] if e["name"] == "OXEN_API_KEY"]
        assert "value" not in entry
        assert entry["valueFrom"]["secretKeyRef"] == {
            "name": "{{ oxen_api_key_secret }}",
            "key": "api-key",
            "optional": True,  # without the secret, the flows' credentials block is used
        }
    else:
        # Docker: the oxen-credentials block only (the name appears in a description, as advice)
        assert "OXEN_API_KEY" not in json.dumps(template["job_configuration"])


def test_the_kubernetes_manifest_keeps_what_the_worker_requires_and_renders() -> None:
    from prefect.utilities.templating import apply_values

    template = _template("kubernetes")
    manifest = template["job_configuration"]["job_manifest"]
    # what prefect-kubernetes' KubernetesWorkerJobConfiguration validators insist on
    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "Job")
    pod = manifest["spec"]["template"]["spec"]
    assert (pod["parallelism"], pod["completions"], pod["restartPolicy"]) == (1, 1, "Never")
    assert _container(template)["name"] == "prefect-job"
    # the env list (not "{{ env }}"): the worker puts the env job variable in front of it
    assert isinstance(_container(template)["env"], list)
    assert template["job_configuration"]["env"] == "{{ env }}"

    rendered = apply_values(template["job_configuration"], _defaults(template))
    container = rendered["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE and container["imagePullPolicy"] == "IfNotPresent"
    assert container["resources"] == {
        "limits": {"cpu": "2", "memory": "4Gi"},
        "requests": {"cpu": "2", "memory": "2Gi"},
    }
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "oxen-api-key"
    assert rendered["job_manifest"]["spec"]["ttlSecondsAfterFinished"] == 3600


# ---------------------------------------------------------------------------------------------------
# a real Prefect server


def test_the_prefect_server_accepts_the_templates(prefect_server: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
    from prefect.workers.base import BaseJobConfiguration

    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    env.pop("SEEDANCE_PIPELINES_DIR", None)  # the image sets it; the pull step must keep the template
    suffix = uuid.uuid4().hex[:8]
    pools = {kind: f"seedance-{kind}-{suffix}" for kind in KINDS}
    with get_client(sync_client=True) as client:
        deployment = None
        try:
            # the recipe of docs/deployment.md
            for kind, pool in pools.items():
                path = TEMPLATES / f"{kind}.json"
                out = prefect_cli(
                    env, "work-pool", "create", pool, "--type", kind, "--base-job-template", str(path)
                )
                assert f"Created work pool {pool!r}" in out, out
                stored = client.read_work_pool(pool)
                assert stored.type == kind
                assert stored.base_job_template == _template(kind)
            prefect_cli(
                env, "--no-prompt", "deploy", "--name", "batch", "--pool", pools["docker"], cwd=REPO / "flows"
            )
            deployment = client.read_deployment_by_name("seedance-batch-reference-to-video/batch")
            assert deployment.work_pool_name == pools["docker"]
            job_variables = deployment.job_variables
            assert job_variables == {
                "env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": _heartbeat_of_the_deployments()}
            }
            assert "{{ $SEEDANCE_PIPELINES_DIR }}" in json.dumps(deployment.pull_steps)

            # flow runs (never picked up: no worker): job variables within the schema are accepted,
            # others refused
            parameters = {"manifest": "s3://bucket/nightly.jsonl", "deliver_to": "s3://bucket/videos/"}
            run = client.create_flow_run_from_deployment(
                deployment.id, parameters=parameters, job_variables={"mem_limit": "8g"}
            )
            client.delete_flow_run(run.id)
            assert run.job_variables == {"mem_limit": "8g"}
            with pytest.raises(PrefectHTTPStatusError, match="auto_remove") as refused:
                client.create_flow_run_from_deployment(
                    deployment.id, parameters=parameters, job_variables={"auto_remove": "maybe"}
                )
            assert refused.value.response.status_code == 422

            # what a worker renders (this part is Prefect's, not the integrations'): the
            # deployment's env is merged over the pool's env defaults, not in place of them
            render = BaseJobConfiguration.from_template_and_values
            for kind in KINDS:
                config = asyncio.run(render(_template(kind), job_variables))
                assert config.env == _defaults(_template(kind))["env"]
                elsewhere = {"env": {**job_variables["env"], "SEEDANCE_STATE": "s3://bucket/seedance/"}}
                config = asyncio.run(render(_template(kind), elsewhere))
                assert config.env == elsewhere["env"]

            # the server does check: an undeclared placeholder, a default outside the schema
            broken = _template("docker")
            broken["job_configuration"]["env"] = {"OXEN_API_KEY": "{{ oxen_api_key }}"}
            with pytest.raises(PrefectHTTPStatusError, match="undeclared") as refused:
                client.create_work_pool(
                    WorkPoolCreate(name=f"broken-{suffix}", type="docker", base_job_template=broken)
                )
            assert refused.value.response.status_code == 422
            broken = _template("kubernetes")
            broken["variables"]["properties"]["image_pull_policy"]["default"] = "Sometimes"
            with pytest.raises(PrefectHTTPStatusError, match="job variable defaults") as refused:
                client.create_work_pool(
                    WorkPoolCreate(name=f"broken-{suffix}", type="kubernetes", base_job_template=broken)
                )
            assert refused.value.response.status_code == 422
        finally:
            if deployment is not None:
                client.delete_deployment(deployment.id)
            for pool in pools.values():
                with contextlib.suppress(ObjectNotFound):
                    client.delete_work_pool(pool)
