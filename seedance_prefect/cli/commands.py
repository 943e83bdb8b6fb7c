"""Running flows from the command line: Prefect defaults for a quiet, patient start, and the demo.

Prefect's embedded (ephemeral) server needs about 35 s for its first start on a 2-core machine,
past Prefect's default 20 s timeout, and logs telemetry failures when offline. Before Prefect is
imported this module sets, unless the user already set them:

- ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180``
- ``PREFECT_SERVER_ANALYTICS_ENABLED=false``
- ``PREFECT_SERVER_LOGGING_LEVEL=WARNING`` (the embedded server's own chatter)

Flows that the CLI runs in its own process (not through a deployment) run without Prefect's flow
run heartbeats, unless ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` is set (see
:func:`local_flow_settings`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..settings import DEFAULT_SAFETY_POLL_INTERVAL, DEFAULT_TIMEOUT_SECONDS

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def apply_prefect_defaults() -> None:
    """Set the Prefect environment defaults above (never overriding the user's own)."""
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)


HEARTBEAT_SETTINGS = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


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
        from seedance_prefect.cli.commands import local_flow_settings

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


def _sigterm_as_interrupt() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so a terminated run cancels its remote work too."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, handler)


def _print_deliveries(deliveries: list[dict[str, Any]]) -> None:
    for d in deliveries:
        probe: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            probe = json.loads(Path(d["sidecar"]).read_text()).get("probe", {})
        shape = ""
        if probe:
            audio = "with audio" if probe.get("has_audio") else "no audio"
            shape = (
                f" ({probe.get('width')}x{probe.get('height')}, {probe.get('duration', 0):.1f} s, {audio})"
            )
        print(f"Delivered {d['video']}{shape}")
        print(f"  sidecar {d['sidecar']}  sha256 {d['sha256']}")


def run_generate(
    request: Any,
    *,
    output: Path,
    sync: bool = False,
    new: bool = False,
    run_key: str | None = None,
    name: str | None = None,
    credentials: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    poll_interval: float = DEFAULT_SAFETY_POLL_INTERVAL,
    deliver_to: str | None = None,
    hosting: str | None = None,
    repository: str | None = None,
) -> int:
    """Run the ``reference_to_video`` flow for the CLI and return its exit code.

    Returns:
        0 delivered, 1 generation/download/verification/delivery failed, 2 invalid input.
    """
    apply_prefect_defaults()
    _sigterm_as_interrupt()
    from ..credentials import resolve_credentials
    from ..errors import AuthenticationError, InvalidRequest, SeedanceError

    try:  # a missing key is bad input: say so before starting Prefect
        resolve_credentials(credentials)
    except AuthenticationError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from ..flows import reference_to_video

    try:
        with local_flow_settings():
            deliveries = reference_to_video(
                request,
                credentials=credentials,
                output=str(output),
                sync=sync,
                name=name,
                run_key=run_key,
                new=new,
                timeout_seconds=timeout,
                poll_interval=poll_interval,
                deliver_to=deliver_to,
                hosting=hosting,
                repository=repository,
            )
    except InvalidRequest as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SeedanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    _print_deliveries(deliveries)
    return EXIT_OK


def run_batch(
    manifest: str,
    *,
    output: Path,
    deliver_to: str | None = None,
    concurrency: int | None = None,
    credentials: str | None = None,
    run_key: str | None = None,
    budget_usd: float | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    poll_interval: float = DEFAULT_SAFETY_POLL_INTERVAL,
    limit_name: str | None = None,
) -> int:
    """Run the ``batch_reference_to_video`` flow for the CLI, print its summary, return the exit code.

    The manifest is read and checked, and the budget applied, before Prefect starts, so bad input
    fails in a second; bad rows are reported (line, name, problems) and skipped.

    Returns:
        0 every row delivered, 1 some rows invalid or failed (the rest delivered), 2 nothing run
        (unreadable manifest, no valid row, over budget, missing key, bad target).
    """
    apply_prefect_defaults()
    _sigterm_as_interrupt()
    from ..batch.budget import BudgetExceeded, check_budget
    from ..batch.manifest import already_delivered, plan_batch, read_manifest
    from ..credentials import resolve_credentials
    from ..errors import AuthenticationError, InvalidRequest, SeedanceError
    from ..generation.journal import Journal

    try:
        resolve_credentials(credentials)
        rows, base_dir = read_manifest(manifest)
        plan = plan_batch(rows, base_dir=base_dir, run_key=run_key)
        for bad in plan.rejected:
            print(f"invalid row: {bad}", file=sys.stderr)
        if not plan.rows:
            print("error: no valid row in the manifest; nothing was sent", file=sys.stderr)
            return EXIT_BAD_INPUT
        journal = Journal()
        todo = [r for r in plan.rows if not already_delivered(journal, r.fingerprint)]
        check_budget(round(sum(r.cost.usd for r in todo), 2), budget_usd)
    except AuthenticationError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except InvalidRequest as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BudgetExceeded as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{len(todo)} of {len(plan.rows)} valid rows to run; starting Prefect...", file=sys.stderr)
    from ..batch_flows import DEFAULT_LIMIT_NAME, BatchFailed, batch_reference_to_video

    code = EXIT_OK
    try:
        with local_flow_settings():
            result = batch_reference_to_video(
                manifest,
                output=str(output),
                deliver_to=deliver_to,
                concurrency=concurrency,
                credentials=credentials,
                run_key=run_key,
                budget_usd=budget_usd,
                timeout_seconds=timeout,
                poll_interval=poll_interval,
                limit_name=limit_name or DEFAULT_LIMIT_NAME,
            )
    except BatchFailed as exc:
        result, code = exc.summary, EXIT_FAILED
    except (InvalidRequest, BudgetExceeded) as exc:
        problems = getattr(exc, "problems", None) or [exc]
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SeedanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(format_summary(result))
    return code


def format_summary(result: dict[str, Any]) -> str:
    """Return a batch summary (``{"rows": [...], "totals": {...}}``) as a terminal table.

    Example:
        >>> print(format_summary({"rows": [{"line": 2, "name": "boat", "status": "delivered",
        ...     "generation": "g1", "seconds": 5.0, "cost_usd": 2.0, "video": "out/boat.mp4",
        ...     "error": ""}], "totals": {"rows": 1, "delivered": 1, "skipped": 0, "failed": 0,
        ...     "invalid": 0, "generations": 1, "seconds": 5.0, "cost_usd": 2.0, "wall_seconds": 9.5}}))
        line  name  status     generation  seconds  cost   video / error
        2     boat  delivered  g1          5        $2.00  out/boat.mp4
        Delivered 1 of 1 rows (0 already, 0 failed, 0 invalid): 1 videos, 5 s, estimated $2.00, in 9.5 s
    """
    header = ("line", "name", "status", "generation", "seconds", "cost", "video / error")
    table = [header]
    for row in result.get("rows", []):
        detail = row.get("error") or row.get("video") or ""
        table.append(
            (
                str(row.get("line", "")),
                str(row.get("name", ""))[:40],
                str(row.get("status", "")),
                str(row.get("generation", ""))[:36],
                f"{float(row.get('seconds') or 0):g}",
                f"${float(row.get('cost_usd') or 0):.2f}",
                str(detail)[:160],
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip() for r in table
    ]
    t = result.get("totals", {})
    lines.append(
        f"Delivered {t.get('delivered', 0) + t.get('skipped', 0)} of {t.get('rows', 0)} rows "
        f"({t.get('skipped', 0)} already, {t.get('failed', 0)} failed, {t.get('invalid', 0)} invalid): "
        f"{t.get('generations', 0)} videos, {t.get('seconds', 0):g} s, "
        f"estimated ${t.get('cost_usd', 0):.2f}, in {t.get('wall_seconds', 0):g} s"
    )
    return "\n".join(lines)


DEMO_PROMPT = (
    "@Image1 drifts across a calm lake at sunset, the camera follows like in @Video1, "
    "with the soundscape of @Audio1"
)


def make_demo_request(folder: Path) -> dict[str, Any]:
    """Generate the demo's reference media in ``folder`` and return the demo request.

    Example:
        ```python
        request = make_demo_request(Path("refs"))
        ```
    """
    from ..media.samples import make_audio, make_image, make_video

    folder.mkdir(parents=True, exist_ok=True)
    image = make_image(folder / "boat.jpg", 1024, 768, seed=1)
    video = make_video(folder / "camera-move.mp4", 960, 540, seconds=3.0, seed=2)
    audio = make_audio(folder / "lake.wav", seconds=3.0, seed=3)
    return {
        "prompt": DEMO_PROMPT,
        "input_images": [str(image)],
        "input_videos": [str(video)],
        "input_audios": [str(audio)],
        "resolution": "480p",
        "duration": "5",
        "aspect_ratio": "16:9",
        "generate_audio": True,
        "seed": 42,
    }


def run_demo(output: Path) -> int:
    """Run the whole job offline: in-process emulator, embedded Prefect server, local delivery.

    Returns:
        The exit code (0 when a verified MP4 was delivered).
    """
    from ..emulator import EmulatorConfig, run_emulator

    print("Starting the offline Oxen API emulator...")
    with run_emulator(EmulatorConfig(latency=2.0)) as emulator, tempfile.TemporaryDirectory() as tmp:
        os.environ["OXEN_BASE_URL"] = emulator.base_url
        os.environ.setdefault("OXEN_API_KEY", "demo-key-for-the-local-emulator")
        os.environ.setdefault("SEEDANCE_STATE_DIR", str(Path(tmp) / "state"))
        request = make_demo_request(Path(tmp) / "references")
        print(f"Emulator at {emulator.base_url}; starting Prefect (the first start can take a minute)...")
        return run_generate(request, output=output, name="seedance-demo", new=True, poll_interval=5.0)
