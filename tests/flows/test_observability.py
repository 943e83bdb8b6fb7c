"""What a user sees in Prefect: a named task run per step, artifacts, and timeouts that stop paying."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedance_prefect.emulator import EmulatorConfig, run_emulator
from seedance_prefect.errors import VerificationFailed
from seedance_prefect.flows import reference_to_video
from seedance_prefect.media.samples import make_video
from seedance_prefect.models import SeedanceRequest
from seedance_prefect.tasks import DownloadedVideo, verify_video
from tests.kit import API_KEY, FLOW_STEPS, recorded_task_runs, stats

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_flow_run_shows_each_step_and_artifacts(emulator, out_dir):
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )

    state = reference_to_video(
        {"prompt": "Lanterns over a river", "resolution": "480p", "duration": "4"},
        output=str(out_dir),
        poll_interval=2.0,
        return_state=True,
    )
    assert state.is_completed()
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["seedance-reference-to-video"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
        )
        assert [r.id for r in runs] == [run_id]
        task_runs = recorded_task_runs(run_id, count=len(FLOW_STEPS))
        names = {t.name.rsplit("-", 1)[0] for t in task_runs}
        assert names >= FLOW_STEPS
        assert all(t.state.is_completed() for t in task_runs)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
        kinds = {a.type for a in artifacts}
        assert {"markdown", "progress"} <= kinds
        summary = next(a for a in artifacts if a.type == "markdown")
        assert "Lanterns over a river" in summary.data and API_KEY not in summary.data


def test_prefect_flow_timeout_cancels_the_remote_generation(monkeypatch, tmp_path):
    with run_emulator(EmulatorConfig(latency=30.0)) as emu:
        monkeypatch.setenv("OXEN_API_KEY", API_KEY)
        monkeypatch.setenv("OXEN_BASE_URL", emu.base_url)
        monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "state"))
        state = reference_to_video.with_options(timeout_seconds=4)(
            {"prompt": "A slow sunrise", "resolution": "480p", "duration": "4"},
            output=str(tmp_path / "out"),
            poll_interval=1.0,
            return_state=True,
        )
        assert state.is_failed() and "timeout" in (state.message or "").lower()
        [generation] = stats(emu)["generations"].values()
        assert generation["status"] == "cancelled"


def test_video_failing_verification_is_kept_aside(tmp_path):
    clip = make_video(tmp_path / "work" / "g1.mp4", 640, 640, seconds=4.0)
    video = DownloadedVideo("g1", str(clip), "0" * 64, clip.stat().st_size, "url", 0.0)
    request = SeedanceRequest(prompt="x", resolution="480p", duration="4", aspect_ratio="16:9")
    with pytest.raises(VerificationFailed) as info:
        verify_video.fn(video, request, str(tmp_path / "rejected"))
    assert not clip.exists()
    assert Path(info.value.kept_at) == tmp_path / "rejected" / "g1.mp4"
    assert Path(info.value.kept_at).exists()
    assert "aspect ratio" in str(info.value) and "audio" in str(info.value)


def test_flow_takes_a_saved_credentials_block_by_name(emulator, out_dir, monkeypatch):
    from seedance_prefect.credentials import OxenCredentials

    OxenCredentials(api_key=API_KEY, base_url=emulator.base_url).save("test-oxen", overwrite=True)
    monkeypatch.delenv("OXEN_API_KEY")
    monkeypatch.delenv("OXEN_BASE_URL")
    [delivered] = reference_to_video(
        {"prompt": "A heron in the reeds", "resolution": "480p", "duration": "4"},
        credentials="test-oxen",
        output=str(out_dir),
        poll_interval=2.0,
    )
    assert Path(delivered["video"]).exists()
    assert stats(emulator)["enqueue_calls"] == 1
