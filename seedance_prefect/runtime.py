"""Running flows from the command line: Prefect defaults for a quiet, patient start, and the demo.

Prefect's embedded (ephemeral) server needs about 35 s for its first start on a 2-core machine,
past Prefect's default 20 s timeout, and logs telemetry failures when offline. Before Prefect is
imported this module sets, unless the user already set them:

- ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180``
- ``PREFECT_SERVER_ANALYTICS_ENABLED=false``
- ``PREFECT_SERVER_LOGGING_LEVEL=WARNING`` (the embedded server's own chatter)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

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
    timeout: float = 1800.0,
    poll_interval: float = 30.0,
) -> int:
    """Run the ``reference_to_video`` flow for the CLI and return its exit code.

    Returns:
        0 delivered, 1 generation/download/verification/delivery failed, 2 invalid input.
    """
    apply_prefect_defaults()
    _sigterm_as_interrupt()
    from .credentials import resolve_credentials
    from .errors import AuthenticationError, InvalidRequest, SeedanceError

    try:  # a missing key is bad input: say so before starting Prefect
        resolve_credentials(credentials)
    except AuthenticationError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .flows import reference_to_video

    try:
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
    from .media.samples import make_audio, make_image, make_video

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
    from .emulator import EmulatorConfig, run_emulator

    print("Starting the offline Oxen API emulator...")
    with run_emulator(EmulatorConfig(latency=2.0)) as emulator, tempfile.TemporaryDirectory() as tmp:
        os.environ["OXEN_BASE_URL"] = emulator.base_url
        os.environ.setdefault("OXEN_API_KEY", "demo-key-for-the-local-emulator")
        os.environ.setdefault("SEEDANCE_STATE_DIR", str(Path(tmp) / "state"))
        request = make_demo_request(Path(tmp) / "references")
        print(f"Emulator at {emulator.base_url}; starting Prefect (the first start can take a minute)...")
        return run_generate(request, output=output, name="seedance-demo", new=True, poll_interval=5.0)
