"""SeedanceJob: Prefect's block standards, registration, and trigger -> wait -> fetch against the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from prefect.blocks.abstract import JobBlock, JobRun
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from seedance_prefect.credentials import OxenCredentials
from seedance_prefect.emulator import EmulatorConfig, run_emulator
from seedance_prefect.errors import GenerationFailed, GenerationTimeout, InvalidRequest
from seedance_prefect.jobs import SeedanceJob, SeedanceJobRun, run_seedance_job
from tests.kit import API_KEY, recorded_task_runs, set_faults, stats, wait_until

REPO = Path(__file__).resolve().parents[1]
REQUEST = {"prompt": "A paper boat drifts across a pond", "resolution": "480p", "duration": "4", "seed": 5}


def _job(emu: Any, out: Path, tmp_path: Path, **fields: Any) -> SeedanceJob:
    values: dict[str, Any] = {
        "credentials": OxenCredentials(api_key=API_KEY, base_url=emu.base_url),
        "request": dict(REQUEST),
        "output": str(out),
        "poll_interval": 1.0,
        "timeout_seconds": 60,
        "journal_dir": str(tmp_path / "journal"),
    }
    values.update(fields)
    return SeedanceJob(**values)


def _env(prefect_server: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if prefect_server:
        env["PREFECT_API_URL"] = prefect_server
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _api_calls(emu: Any) -> dict[str, int]:
    return {route: n for route, n in stats(emu)["requests_by_route"].items() if " /api/" in route}


# ---------------------------------------------------------------------------------------------------
# The block as Prefect sees it


class TestSeedanceJobStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[SeedanceJob]:
        return SeedanceJob

    def test_has_a_valid_image(self, block: type[SeedanceJob]) -> None:  # offline variant
        """Prefect's own check downloads the logo; here we check it is an https URL."""
        assert str(block._logo_url).startswith("https://")


def test_a_job_block_whose_credentials_are_a_nested_block() -> None:
    assert issubclass(SeedanceJob, JobBlock) and issubclass(SeedanceJobRun, JobRun)
    assert SeedanceJob.get_block_type_slug() == "seedance-job"
    schema = SeedanceJob.model_json_schema()
    assert schema["block_schema_references"]["credentials"]["block_type_slug"] == "oxen-credentials"
    assert schema["required"] == ["credentials", "request"]
    assert {"trigger"} <= set(dir(SeedanceJob)) and {"wait_for_completion", "fetch_result"} <= set(
        dir(SeedanceJobRun)
    )


def test_the_secret_stays_masked(tmp_path: Path) -> None:
    job = SeedanceJob(
        credentials=OxenCredentials(api_key=API_KEY), request=dict(REQUEST), output=str(tmp_path)
    )
    assert API_KEY not in repr(job) and API_KEY not in job.model_dump_json()


def test_the_entry_point_registers_both_block_types_in_a_fresh_process() -> None:
    """What Prefect does on a worker: load the ``prefect.collections`` entry points, then resolve a slug."""
    code = (
        "from prefect.blocks.core import Block\n"
        "print(Block.get_block_class_from_key('seedance-job').__name__,"
        " Block.get_block_class_from_key('oxen-credentials').__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["SeedanceJob", "OxenCredentials"]


def test_prefect_block_register_registers_both_block_types(prefect_server: str) -> None:
    from prefect.client.orchestration import get_client

    done = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "seedance_prefect"],
        env=_env(prefect_server),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Seedance Job" in done.stdout and "Oxen Credentials" in done.stdout
    with get_client(sync_client=True) as client:
        block_type = client.read_block_type_by_slug("seedance-job")
        assert block_type.name == "Seedance Job"
        assert block_type.code_example and 'SeedanceJob.load("BLOCK_NAME")' in block_type.code_example


# ---------------------------------------------------------------------------------------------------
# trigger -> wait -> fetch, against the emulator


def _probe(path: str) -> tuple[int, int, str]:
    with av.open(path) as container:
        video = container.streams.video[0]
        return video.codec_context.width, video.codec_context.height, video.codec_context.name


@pytest.mark.usefixtures("prefect_server")
class TestRunSeedanceJob:
    def test_a_saved_job_runs_by_name_as_three_task_runs(self, emulator, out_dir, tmp_path):
        creds = OxenCredentials(api_key=API_KEY, base_url=emulator.base_url)
        creds.save("test-job-oxen", overwrite=True)
        job = _job(
            emulator, out_dir, tmp_path, credentials=OxenCredentials.load("test-job-oxen"), output_name="boat"
        )
        job.save("test-paper-boat", overwrite=True)
        loaded = SeedanceJob.load("test-paper-boat")
        assert loaded.credentials.api_key.get_secret_value() == API_KEY  # the nested block, loaded

        state = run_seedance_job("test-paper-boat", return_state=True)
        [delivered] = state.result()

        assert Path(delivered["video"]) == out_dir / "boat.mp4"
        assert _probe(delivered["video"]) == (854, 480, "h264")
        sidecar = json.loads((out_dir / "boat.json").read_text())
        assert sidecar["generation_id"] == delivered["generation_id"]
        assert sidecar["sha256"] == delivered["sha256"]
        assert stats(emulator)["enqueue_calls"] == 1
        runs = recorded_task_runs(state.state_details.flow_run_id, count=3)
        assert sorted(r.name.rsplit("-", 1)[0] for r in runs) == [
            "fetch_seedance_job_result",
            "trigger_seedance_job",
            "wait_for_seedance_job_run",
        ]

    def test_triggering_again_pays_nothing(self, emulator, out_dir, tmp_path):
        job = _job(emulator, out_dir, tmp_path, output_name="again")
        run = job.trigger()
        run.wait_for_completion()
        [first] = run.fetch_result()

        again = job.trigger()  # delivered before: nothing is enqueued
        assert again.earlier is not None and again.generation_ids == [first.generation_id]
        [second] = again.fetch_result()
        assert second.video == first.video and second.sha256 == first.sha256 and second.reused
        assert stats(emulator)["enqueue_calls"] == 1

        elsewhere = _job(emulator, tmp_path / "elsewhere", tmp_path, output_name="again")
        [copied] = elsewhere.trigger().fetch_result()  # another target: copied, still not paid again
        assert Path(copied.video).read_bytes() == Path(first.video).read_bytes()
        assert stats(emulator)["enqueue_calls"] == 1

    def test_fetching_the_result_twice_delivers_once(self, emulator, out_dir, tmp_path):
        run = _job(emulator, out_dir, tmp_path, output_name="twice").trigger()
        assert run.fetch_result() == run.fetch_result()
        routes = stats(emulator)["requests_by_route"]
        assert sum(n for r, n in routes.items() if r.startswith("GET") and "/files/" in r) == 1

    def test_a_shared_state_wins_over_the_journal_folder(self, emulator, out_dir, tmp_path):
        shared = str(tmp_path / "shared-state")
        machine_a = _job(emulator, out_dir, tmp_path / "a", output_name="s", state=shared)
        machine_b = _job(emulator, out_dir, tmp_path / "b", output_name="s", state=shared)
        [first] = machine_a.trigger().fetch_result()
        [second] = machine_b.trigger().fetch_result()  # another journal folder, the same state
        assert second.generation_id == first.generation_id
        assert stats(emulator)["enqueue_calls"] == 1

    def test_a_new_run_key_is_a_new_generation(self, emulator, out_dir, tmp_path):
        _job(emulator, out_dir, tmp_path, output_name="k").trigger().fetch_result()
        _job(emulator, out_dir, tmp_path, output_name="k2", run_key="take-2").trigger().fetch_result()
        assert stats(emulator)["enqueue_calls"] == 2

    def test_two_generations_give_two_videos(self, emulator, out_dir, tmp_path):
        job = _job(emulator, out_dir, tmp_path, output_name="pair", request={**REQUEST, "num_generations": 2})
        delivered = job.trigger().fetch_result()  # fetch_result waits when not asked to
        assert [Path(d.video).name for d in delivered] == ["pair-1.mp4", "pair-2.mp4"]
        assert len({d.generation_id for d in delivered}) == 2

    def test_an_invalid_request_is_refused_before_any_call(self, emulator, out_dir, tmp_path):
        job = _job(emulator, out_dir, tmp_path, request={**REQUEST, "duration": "3"})
        with pytest.raises(InvalidRequest) as info:
            job.trigger()
        assert "duration" in info.value.fields
        assert _api_calls(emulator) == {}

    def test_a_failed_generation_fails_the_fetch(self, emulator, out_dir, tmp_path):
        set_faults(emulator, "fail=1")
        run = _job(emulator, out_dir, tmp_path).trigger()
        run.wait_for_completion()
        assert list(run.failures) == run.generation_ids and run.generations == {}
        with pytest.raises(GenerationFailed):
            run.fetch_result()
        assert stats(emulator)["enqueue_calls"] == 1
        assert not list(out_dir.glob("*.mp4"))

    def test_the_deadline_cancels_the_remote_generation(self, emulator, out_dir, tmp_path):
        run = _job(emulator, out_dir, tmp_path, timeout_seconds=0.05, poll_interval=0.5).trigger()
        with pytest.raises(GenerationTimeout):
            run.fetch_result()
        assert stats(emulator)["deletes"] >= 1

    async def test_async_twins(self, emulator, out_dir, tmp_path):
        run = await _job(emulator, out_dir, tmp_path, output_name="async").atrigger()
        await run.await_for_completion()
        [delivered] = await run.afetch_result()
        assert Path(delivered.video) == out_dir / "async.mp4"


@pytest.fixture
def slow_emulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """An emulator whose generations take 60 s, so the flow fails while its generation runs."""
    with run_emulator(EmulatorConfig(latency=60.0, keepalive=1.0)) as emu:
        monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "state"))
        yield emu


@pytest.mark.usefixtures("prefect_server")
def test_a_failing_flow_run_cancels_the_generation_it_enqueued(slow_emulator, tmp_path, monkeypatch):
    def broken_wait(self: SeedanceJobRun) -> None:
        raise RuntimeError("the worker lost its network")

    monkeypatch.setattr(SeedanceJobRun, "wait_for_completion", broken_wait)
    job = _job(slow_emulator, tmp_path / "out", tmp_path)
    with pytest.raises(RuntimeError, match="lost its network"):
        run_seedance_job(job)

    def status() -> str | None:
        generations = stats(slow_emulator)["generations"]
        return next(iter(generations.values()))["status"] if generations else None

    assert wait_until(lambda: status() == "cancelled", 30, "the generation to be cancelled")
    assert stats(slow_emulator)["enqueue_calls"] == 1
