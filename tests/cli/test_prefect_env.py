"""The local Prefect environment of the seedance commands, and the old ``seedance_prefect.runtime`` path.

``local_flow_settings``: the seedance commands run flows without Prefect's flow heartbeats.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from prefect.settings import get_current_settings

from seedance_prefect.cli.prefect_env import local_flow_settings

REPO = Path(__file__).resolve().parents[2]

#: What users of the old module imported from it -> the module of seedance_prefect.cli it lives in now.
RUNTIME_NAMES = {
    "local_flow_settings": "prefect_env",
    "apply_prefect_defaults": "prefect_env",
    "PREFECT_DEFAULTS": "prefect_env",
    "HEARTBEAT_SETTINGS": "prefect_env",
    "run_generate": "commands",
    "run_batch": "commands",
    "format_summary": "commands",
    "run_demo": "demo",
    "make_demo_request": "demo",
    "DEMO_PROMPT": "demo",
    "EXIT_OK": "main",
    "EXIT_FAILED": "main",
    "EXIT_BAD_INPUT": "main",
}


def test_heartbeats_are_off_inside_and_back_after(monkeypatch):
    monkeypatch.delenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", raising=False)
    monkeypatch.delenv("PREFECT_RUNNER_HEARTBEAT_FREQUENCY", raising=False)
    before = get_current_settings().flows.heartbeat_frequency
    with local_flow_settings():
        assert get_current_settings().flows.heartbeat_frequency is None
    assert get_current_settings().flows.heartbeat_frequency == before


def test_a_frequency_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")
    with local_flow_settings():
        assert get_current_settings().flows.heartbeat_frequency is not None


def test_the_old_runtime_path_warns_and_has_every_name():
    code = (
        "import json, sys, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import seedance_prefect.runtime as runtime\n"
        "import importlib\n"
        "names = json.loads(sys.argv[1])\n"
        "home = {n: importlib.import_module('seedance_prefect.cli.' + m) for n, m in names.items()}\n"
        "print(json.dumps({\n"
        "    'warnings': [str(w.message) for w in caught if w.category is DeprecationWarning],\n"
        "    'same': {n: getattr(runtime, n) is getattr(home[n], n) for n in names},\n"
        "}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(RUNTIME_NAMES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert [w.split(";")[0] for w in report["warnings"]] == [
        "seedance_prefect.runtime moved to seedance_prefect.cli.commands"
    ]
    assert report["same"] == dict.fromkeys(RUNTIME_NAMES, True)
