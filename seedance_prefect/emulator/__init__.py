"""Offline emulator of the Oxen.ai Seedance 2.0 API: real MP4 results and fault injection.

It is "the other party": it imports nothing from the rest of ``seedance_prefect`` and not Prefect.

Example:
    >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
    >>> with run_emulator(EmulatorConfig(latency=0.2, faults="429=0.1")) as emu:
    ...     emu.base_url.startswith("http://127.0.0.1:") and emu.base_url.endswith("/api")  # OXEN_BASE_URL
    True
"""

from __future__ import annotations

from seedance_prefect.emulator.app import EmulatorApp, create_app
from seedance_prefect.emulator.config import MODEL_ID, EmulatorConfig
from seedance_prefect.emulator.faults import FAULT_KINDS, FaultSpec, parse_faults
from seedance_prefect.emulator.render import RenderSpec, frame_size, render_mp4
from seedance_prefect.emulator.server import RunningEmulator, run_emulator, start_emulator

__all__ = [
    "FAULT_KINDS",
    "MODEL_ID",
    "EmulatorApp",
    "EmulatorConfig",
    "FaultSpec",
    "RenderSpec",
    "RunningEmulator",
    "create_app",
    "frame_size",
    "main",
    "parse_faults",
    "render_mp4",
    "run_emulator",
    "start_emulator",
]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI (see ``seedance_prefect.emulator.cli.main``).

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    from seedance_prefect.emulator.cli import main as cli_main

    return cli_main(argv)
