"""What the benchmarks share: the emulator in its own process, and their manifests (``bench/run``
skips files whose name starts with ``_``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def start_emulator(port: int, *options: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m seedance_prefect.emulator --port PORT *options`` and wait until it answers.

    Args:
        port: Its port on 127.0.0.1.
        *options: More command-line options (``"--latency", "2"``...); ``--log-level error`` is added.
        env: Its environment (default: this one, with the checkout on ``PYTHONPATH``).

    Returns:
        The running process (terminate it when done).

    Raises:
        RuntimeError: It did not answer its health check within 60 s.
    """
    cmd = [sys.executable, "-m", "seedance_prefect.emulator", "--port", str(port), *options]
    cmd += ["--log-level", "error"]
    if env is None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    proc.wait(10)
    raise RuntimeError("the emulator did not start")


def seedance_command() -> list[str]:
    """The ``seedance`` console script of this environment (as a user runs it), else ``-m``."""
    script = Path(sys.executable).with_name("seedance")
    return [str(script)] if script.exists() else [sys.executable, "-m", "seedance_prefect.cli"]


def manifest(count: int, name: str, prompt: str, **fields: object) -> str:
    """A JSONL manifest of ``count`` 4 s 480p 16:9 rows; ``name`` and ``prompt`` are formatted with ``i``.

    Example:
        >>> json.loads(manifest(2, "clip-{i:03d}", "A boat, take {i}").splitlines()[1])["name"]
        'clip-001'
    """
    rows = (
        {
            "name": name.format(i=i),
            "prompt": prompt.format(i=i),
            "duration": "4",
            "resolution": "480p",
            "aspect_ratio": "16:9",
            **fields,
        }
        for i in range(count)
    )
    return "".join(json.dumps(row) + "\n" for row in rows)
