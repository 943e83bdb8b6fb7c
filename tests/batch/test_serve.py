"""`flows/batch.py` serves the batch flow with a cron schedule; a triggered run delivers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.batch.test_batch_flow import _row
from tests.batch.test_workers import REPO
from tests.kit import stop_process, wait_until


def test_batch_flow_served_with_a_cron_schedule(prefect_server, emulator, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    manifest = tmp_path / "nightly.jsonl"
    manifest.write_text("".join(json.dumps(_row(i)) + "\n" for i in range(2)))
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, str(REPO / "flows" / "batch.py"), "--name", "nightly-test", "--cron", "0 3 * * *",
           "--manifest", str(manifest), "--output", str(tmp_path / "out"), "--concurrency", "2"]  # fmt: skip
    serve = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=(tmp_path / "serve.log").open("wb"),
                             stderr=subprocess.STDOUT)  # fmt: skip
    try:

        def deployment() -> object | None:
            with get_client(sync_client=True) as client:
                try:
                    return client.read_deployment_by_name("seedance-batch-reference-to-video/nightly-test")
                except Exception:
                    return None

        found = wait_until(deployment, 120, "the served deployment")
        [schedule] = found.schedules
        assert schedule.schedule.cron == "0 3 * * *" and schedule.active
        assert found.parameters["manifest"] == str(manifest)

        run = run_deployment("seedance-batch-reference-to-video/nightly-test", timeout=120)

        assert run.state.is_completed(), (tmp_path / "serve.log").read_text()[-3000:]
        assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == ["clip-00.mp4", "clip-01.mp4"]
    finally:
        stop_process(serve)
