"""``local_flow_settings``: the seedance commands run flows without Prefect's flow heartbeats."""

from __future__ import annotations

from prefect.settings import get_current_settings

from seedance_prefect.cli.commands import local_flow_settings


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
