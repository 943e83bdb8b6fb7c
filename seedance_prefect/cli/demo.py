"""``seedance demo``: the whole job offline (in-process emulator, embedded Prefect server, local delivery).

Example:
    >>> DEMO_PROMPT.startswith("@Image1")
    True
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["DEMO_PROMPT", "make_demo_request", "run_demo"]

DEMO_PROMPT = (
    "@Image1 drifts across a calm lake at sunset, the camera follows like in @Video1, "
    "with the soundscape of @Audio1"
)


def make_demo_request(folder: Path) -> dict[str, Any]:
    """Generate the demo's reference media in ``folder`` and return the demo request.

    Args:
        folder: Where the image, video and audio references are written (created if missing).

    Returns:
        The request body, with local paths to the references.

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

    Args:
        output: The delivery folder.

    Returns:
        The exit code (0 when a verified MP4 was delivered).

    Example:
        ```python
        run_demo(Path("seedance-output"))   # seedance demo
        ```
    """
    from ..emulator import EmulatorConfig, run_emulator
    from .commands import run_generate

    print("Starting the offline Oxen API emulator...")
    with run_emulator(EmulatorConfig(latency=2.0)) as emulator, tempfile.TemporaryDirectory() as tmp:
        os.environ["OXEN_BASE_URL"] = emulator.base_url
        os.environ.setdefault("OXEN_API_KEY", "demo-key-for-the-local-emulator")
        os.environ.setdefault("SEEDANCE_STATE_DIR", str(Path(tmp) / "state"))
        request = make_demo_request(Path(tmp) / "references")
        print(f"Emulator at {emulator.base_url}; starting Prefect (the first start can take a minute)...")
        return run_generate(request, output=output, name="seedance-demo", new=True, poll_interval=5.0)
