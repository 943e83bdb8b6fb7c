"""The `seedance` command as a user meets it: generate, demo, block registration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from tests.kit import API_KEY, stats

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def _seedance(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seedance_prefect.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.usefixtures("prefect_server")
class TestGenerate:
    def test_generate_delivers_and_exits_0(self, emulator, prefect_server, tmp_path):
        request = {
            "prompt": "A kite over the dunes",
            "resolution": "480p",
            "duration": "4",
            "generate_audio": False,
        }
        (tmp_path / "request.json").write_text(json.dumps(request))
        result = _seedance(
            "generate",
            "request.json",
            "--out",
            "videos",
            "--name",
            "kite",
            env=_env(PREFECT_API_URL=prefect_server),
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Delivered {tmp_path / 'videos' / 'kite.mp4'}" in result.stdout
        assert API_KEY not in result.stdout + result.stderr
        with av.open(str(tmp_path / "videos" / "kite.mp4")) as container:
            assert not container.streams.audio
        assert stats(emulator)["enqueue_calls"] == 1

    def test_failed_generation_exits_1(self, emulator, prefect_server, tmp_path):
        from tests.kit import set_faults

        set_faults(emulator, "fail=1")
        (tmp_path / "request.json").write_text(
            json.dumps({"prompt": "x", "duration": "4", "resolution": "480p"})
        )
        result = _seedance("generate", "request.json", env=_env(PREFECT_API_URL=prefect_server), cwd=tmp_path)
        assert result.returncode == 1
        assert "error: Generation" in result.stderr

    def test_invalid_input_exits_2_before_prefect_starts(self, emulator, tmp_path):
        (tmp_path / "request.json").write_text(json.dumps({"prompt": "x", "duration": "99"}))
        result = _seedance("generate", "request.json", env=_env(), cwd=tmp_path)
        assert result.returncode == 2
        assert "error: duration: Invalid duration" in result.stderr
        assert "prefect" not in result.stderr.lower()
        assert sum(n for r, n in stats(emulator)["requests_by_route"].items() if " /api/" in r) == 0

    def test_missing_key_exits_2_with_a_hint(self, tmp_path):
        (tmp_path / "request.json").write_text(json.dumps({"prompt": "x"}))
        env = _env()
        env.pop("OXEN_API_KEY", None)
        result = _seedance("generate", "request.json", env=env, cwd=tmp_path)
        assert result.returncode == 2
        assert "OXEN_API_KEY" in result.stderr and "Traceback" not in result.stderr


def test_block_type_registers_like_an_integration(prefect_server):
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "seedance_prefect"],
        env=_env(PREFECT_API_URL=prefect_server),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Oxen Credentials" in result.stdout


def test_demo_on_a_fresh_prefect_home(tmp_path):
    """The README's first command, as a new user runs it: fresh Prefect home, nothing configured."""
    env = _env(PREFECT_HOME=str(tmp_path / "prefect-home"), HOME=str(tmp_path))
    for key in ("PREFECT_API_URL", "OXEN_API_KEY", "OXEN_BASE_URL", "SEEDANCE_STATE_DIR"):
        env.pop(key, None)
    result = _seedance("demo", env=env, cwd=tmp_path, timeout=400)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    video = tmp_path / "seedance-output" / "seedance-demo.mp4"
    assert f"Delivered {video}" in output
    for noise in ("Traceback", "database is locked", "telemetry", "ERROR"):
        assert noise not in output, noise
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.width, stream.codec_context.height) == (
            "h264",
            854,
            480,
        )
        assert container.streams.audio
    sidecar = json.loads(video.with_suffix(".json").read_text())
    assert sidecar["probe"]["has_audio"] is True


def test_a_negative_budget_is_bad_input_not_a_traceback(tmp_path, monkeypatch, capsys):
    from seedance_prefect.cli import main

    manifest = tmp_path / "requests.jsonl"
    manifest.write_text('{"prompt": "A paper boat", "duration": "5"}\n')
    monkeypatch.setenv("OXEN_API_KEY", API_KEY)
    assert main(["batch", str(manifest), "--budget-usd", "-1"]) == 2
    err = capsys.readouterr().err
    assert "budget_usd: A budget cannot be negative" in err and "Traceback" not in err
