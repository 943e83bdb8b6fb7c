"""The CLI: options map onto EmulatorConfig; ``python -m seedance_prefect.emulator`` serves until Ctrl-C."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

import seedance_prefect.emulator as emulator_pkg
from seedance_prefect.emulator.cli import build_parser, config_from_args

REPO_ROOT = Path(emulator_pkg.__file__).parent.parent.parent
BANNER = re.compile(r"^Seedance emulator listening; export OXEN_BASE_URL=(http://127\.0\.0\.1:\d+/api)$")


def test_every_option_reaches_the_config() -> None:
    argv = shlex.split(
        "--host 127.0.0.1 --port 9999 --latency 0.5 --faults 429=0.1 --api-key k --seed 3 --max-running 2"
        " --result-host localhost --keepalive 5 --first-status processing --profile B --queue-delay 0.1"
        " --auto-duration 6 --extra-fields"
    )
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    assert (config.host, config.port, config.latency, config.api_key, config.seed) == (
        "127.0.0.1",
        9999,
        0.5,
        "k",
        3,
    )
    assert (config.max_running, config.result_host, config.keepalive) == (2, "localhost", 5.0)
    assert (config.first_status, config.profile, config.queue_delay, config.auto_duration) == (
        "processing",
        "B",
        0.1,
        6,
    )
    assert config.extra_fields and config.fault_spec().rate("429") == 0.1


def test_python_m_serves_and_exits_0_on_ctrl_c() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        "-m",
        "seedance_prefect.emulator",
        "--port",
        "0",
        "--latency",
        "0.1",
        "--api-key",
        "k",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=30)  # deadline for the banner
        assert lines, "no banner within 30 s"
        match = BANNER.match(lines[0].strip())
        assert match, lines[0]
        base_url = match.group(1)
        with httpx.Client(
            base_url=base_url, headers={"Authorization": "Bearer k"}, trust_env=False
        ) as client:
            assert client.get("/ai/models").json()["object"] == "list"
            assert "k" not in client.get("/ai/queue", headers={"Authorization": "Bearer nope"}).text.split(
                '"'
            )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
