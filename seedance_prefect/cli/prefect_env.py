"""The local Prefect environment of the ``seedance`` commands: a quiet, patient start, leases on disk.

Prefect's embedded (ephemeral) server needs about 35 s for its first start on a 2-core machine,
past Prefect's default 20 s timeout, and logs telemetry failures when offline. Before Prefect is
imported the commands set, unless the user already set them in the environment
(:func:`apply_prefect_defaults`):

- ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180``
- ``PREFECT_SERVER_ANALYTICS_ENABLED=false``
- ``PREFECT_SERVER_LOGGING_LEVEL=WARNING`` (the embedded server's own chatter)
- ``PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=prefect.server.concurrency.lease_storage.filesystem``:
  every command starts its own embedded server, and Prefect's default lease storage is that
  server's memory, so the slots of a ``seedance batch`` killed mid-run stayed taken in the
  database for good (the next server knew nothing of their leases, and an embedded server runs no
  Repossessor anyway). On disk (``$PREFECT_HOME/concurrency_leases``) the leases outlive the
  process, and the next batch gives a dead run's slots back
  (:func:`seedance_prefect.slots.reclaim_slots`). A profile setting of the lease storage is
  overridden by this default; set the variable in the environment to choose another storage.

Flows that the CLI runs in its own process (not through a deployment) run without Prefect's flow
run heartbeats, unless ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` is set (see
:func:`local_flow_settings`). What SIGINT and SIGTERM do during a command is in
:mod:`seedance_prefect.cli.interrupt`.

This module imports no Prefect at import time.

Example:
    >>> sorted(PREFECT_DEFAULTS)[0]
    'PREFECT_SERVER_ANALYTICS_ENABLED'
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..settings import FILESYSTEM_LEASE_STORAGE

__all__ = ["HEARTBEAT_SETTINGS", "PREFECT_DEFAULTS", "apply_prefect_defaults", "local_flow_settings"]

PREFECT_DEFAULTS: dict[str, str] = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": FILESYSTEM_LEASE_STORAGE,
}

#: Environment variables that ask for flow run heartbeats (the current name and the legacy one).
HEARTBEAT_SETTINGS: tuple[str, ...] = (
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY",
    "PREFECT_RUNNER_HEARTBEAT_FREQUENCY",
)


def apply_prefect_defaults() -> None:
    """Set the Prefect environment defaults of :data:`PREFECT_DEFAULTS` (never overriding the user's own).

    Example:
        >>> import os
        >>> apply_prefect_defaults()
        >>> all(key in os.environ for key in PREFECT_DEFAULTS)
        True
    """
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def local_flow_settings() -> Iterator[None]:
    """Prefect settings for flows called in this process: no flow run heartbeats, unless asked for.

    Prefect 3.9 sends a heartbeat event every 180 s from a thread that sleeps in 1 s steps and
    is joined when the flow ends, which adds up to 1 s (0.5 s on average) to every flow run and
    subflow. The heartbeats feed Prefect's zombie-run automations for runs started by workers;
    a flow the CLI calls in its own process ends with the process, and its hooks cancel its
    remote work. So the ``seedance`` commands switch them off, unless
    ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` (or its legacy name) is set or the active profile sets
    another frequency; deployments run by workers keep Prefect's default.

    Example:
        ```python
        from seedance_prefect.flows import reference_to_video
        from seedance_prefect.cli.prefect_env import local_flow_settings

        with local_flow_settings():
            for request in requests:
                reference_to_video(request, output="videos")
        ```
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings
    from prefect.settings.models.flows import FlowsSettings

    default = FlowsSettings.model_fields["heartbeat_frequency"].default
    asked = any(name in os.environ for name in HEARTBEAT_SETTINGS)
    if asked or get_current_settings().flows.heartbeat_frequency != default:
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
