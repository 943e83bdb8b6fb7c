"""Downstream pipeline: a contact sheet (PNG) of a delivered video, started by its delivery event.

Every delivered video emits ``seedance.video.delivered`` (resource ``seedance.generation.<id>``,
payload ``video`` = where it was delivered). The ``contact-sheet`` deployment of ``prefect.yaml``
has a trigger on that event which passes ``{{ event.payload.video }}`` as the ``video``
parameter, so each delivery starts one run of this flow.

Serve it with the triggers of ``prefect.yaml`` (one long-running process, no work pool):

    python flows/contact_sheet.py

or deploy it with the other pipelines (``prefect deploy``, ``docs/deployment.md``). Run it on one
video by hand:

    python -c "from contact_sheet import contact_sheet; contact_sheet('seedance-output/boat.mp4')"
"""

# No `from __future__ import annotations` here: Prefect builds the flow's parameter model from
# these annotations, and string annotations do not resolve when a runner loads the flow by entrypoint.

import argparse
import io
import math
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import av
import fsspec
import yaml
from PIL import Image, ImageDraw
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

__all__ = [
    "DEPLOYMENT",
    "contact_sheet",
    "deployment_triggers",
    "main",
    "render_contact_sheet",
    "sheet_path",
    "write_contact_sheet",
]

#: The deployment of ``prefect.yaml`` that this file serves.
DEPLOYMENT = "contact-sheet"
PREFECT_YAML = Path(__file__).resolve().with_name("prefect.yaml")
SUFFIX = ".contact-sheet.png"
_MARGIN = 8
_LABEL = 16


def sheet_path(video: str, output: str | None = None) -> str:
    """Where the contact sheet of ``video`` goes.

    ``output`` ending in ``.png`` is the file; another ``output`` is a folder. Without it the sheet
    goes beside the video (a local path or a writable fsspec URL such as ``s3://...``); for an
    ``http(s)`` video, which cannot be written beside, into ``./contact-sheets/``.

    Args:
        video: The video's path or URL.
        output: A ``.png`` path, a folder, or None.

    Returns:
        The sheet's path or URL.

    Example:
        >>> sheet_path("/videos/boat.mp4")
        '/videos/boat.contact-sheet.png'
        >>> sheet_path("s3://bucket/v/boat.mp4"), sheet_path("https://cdn/boat.mp4?sig=1")
        ('s3://bucket/v/boat.contact-sheet.png', 'contact-sheets/boat.contact-sheet.png')
        >>> sheet_path("/videos/boat.mp4", "sheets"), sheet_path("/videos/boat.mp4", "a.png")
        ('sheets/boat.contact-sheet.png', 'a.png')
    """
    if output and output.lower().endswith(".png"):
        return output
    name = video.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix else name
    if output:
        return f"{output.rstrip('/')}/{stem}{SUFFIX}"
    if video.startswith(("http://", "https://")):
        return f"contact-sheets/{stem}{SUFFIX}"
    if video.startswith("file://"):
        video = video[len("file://") :]
    parent = video.rsplit("/", 1)[0] if "/" in video else "."
    return f"{parent}/{stem}{SUFFIX}"


def _open_video(video: str, stack: ExitStack) -> Any:
    """A PyAV container for a local path, a ``file://`` or ``http(s)`` URL, or any fsspec URL."""
    if "://" not in video or video.startswith(("http://", "https://", "file://")):
        source = video[len("file://") :] if video.startswith("file://") else video
        return stack.enter_context(av.open(source))
    handle = stack.enter_context(fsspec.open(video, "rb"))
    return stack.enter_context(av.open(handle))


def _timestamp(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):d}:{rest:05.2f}"


def render_contact_sheet(video: str, frames: int = 8, columns: int = 4, width: int = 320) -> Image.Image:
    """Draw ``frames`` evenly spaced frames of a video on one image, each with its time.

    Args:
        video: A local path, or a ``file://``, ``http(s)`` or fsspec URL.
        frames: How many frames (at the middles of ``frames`` equal slices of the video).
        columns: Frames per row.
        width: Width of each frame on the sheet, in pixels (the height keeps the aspect ratio).

    Returns:
        The sheet (RGB).

    Raises:
        ValueError: A bad count or size, or a file with no video stream or no frame.

    Example:
        >>> import tempfile
        >>> from seedance_prefect.media.samples import make_video
        >>> clip = make_video(f"{tempfile.mkdtemp()}/clip.mp4", 320, 180, 2.0)
        >>> render_contact_sheet(str(clip), frames=6, columns=3, width=160).size
        (512, 236)
    """
    if frames < 1 or columns < 1 or width < 16:
        raise ValueError("frames and columns must be at least 1, width at least 16 px")
    thumbs: list[tuple[float, Image.Image]] = []
    with ExitStack() as stack:
        container = _open_video(video, stack)
        if not container.streams.video:
            raise ValueError(f"{video}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration = float(stream.duration * stream.time_base) if stream.duration else None
        if duration is None and container.duration:
            duration = container.duration / av.time_base
        targets = [(i + 0.5) * (duration or 0.0) / frames for i in range(frames)]
        for frame in container.decode(stream):
            if len(thumbs) == frames:
                break
            at = float(frame.time or 0.0)
            if duration is None or at + 1e-6 >= targets[len(thumbs)]:
                image = frame.to_image()
                height = max(1, round(image.height * width / image.width))
                thumbs.append((at, image.resize((width, height), Image.Resampling.LANCZOS)))
    if not thumbs:
        raise ValueError(f"{video}: no frame could be decoded")
    cell_h = thumbs[0][1].height + _LABEL
    cols = min(columns, len(thumbs))
    rows = math.ceil(len(thumbs) / cols)
    size = (_MARGIN + cols * (width + _MARGIN), _MARGIN + rows * (cell_h + _MARGIN))
    sheet = Image.new("RGB", size, "black")
    draw = ImageDraw.Draw(sheet)
    for index, (at, thumb) in enumerate(thumbs):
        x = _MARGIN + (index % cols) * (width + _MARGIN)
        y = _MARGIN + (index // cols) * (cell_h + _MARGIN)
        sheet.paste(thumb, (x, y))
        draw.text((x + 2, y + thumb.height + 2), _timestamp(at), fill="white")
    return sheet


@task(name="write_contact_sheet", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def write_contact_sheet(video: str, output: str | None, frames: int, columns: int, width: int) -> str:
    """Render the sheet and write it (a local path or an fsspec URL); return where it went."""
    target = sheet_path(video, output)
    buffer = io.BytesIO()
    render_contact_sheet(video, frames, columns, width).save(buffer, format="PNG")
    if "://" in target and not target.startswith("file://"):
        with fsspec.open(target, "wb") as handle:
            handle.write(buffer.getvalue())
    else:
        path = Path(target.removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(buffer.getvalue())
        partial.replace(path)  # whole or not at all
        target = str(path.resolve())
    return target


@flow(name="seedance-contact-sheet")
def contact_sheet(
    video: str, output: str | None = None, frames: int = 8, columns: int = 4, width: int = 320
) -> str:
    """Make a contact sheet (PNG) of a delivered video: ``frames`` frames with their times.

    Args:
        video: The delivered video: a local path, or a ``file://``, ``http(s)`` or fsspec URL
            (the ``video`` of a ``seedance.video.delivered`` event).
        output: A ``.png`` path or a folder (default: beside the video, see :func:`sheet_path`).
        frames: How many frames.
        columns: Frames per row.
        width: Width of each frame, in pixels.

    Returns:
        Where the sheet was written.
    """
    written = write_contact_sheet(video, output, frames, columns, width)
    get_run_logger().info("Contact sheet of %s: %s", video, written)
    return written


def deployment_triggers(name: str = DEPLOYMENT, prefect_yaml: Path = PREFECT_YAML) -> list[Any]:
    """The triggers of a deployment of ``prefect.yaml``, built as ``prefect deploy`` builds them.

    Example:
        >>> [trigger] = deployment_triggers()
        >>> trigger.expect, trigger.parameters
        ({'seedance.video.delivered'}, {'video': '{{ event.payload.video }}'})
    """
    from prefect.events import DeploymentTriggerTypes
    from pydantic import TypeAdapter

    deployments = yaml.safe_load(prefect_yaml.read_text(encoding="utf-8"))["deployments"]
    [spec] = [d for d in deployments if d["name"] == name]
    adapter: TypeAdapter[Any] = TypeAdapter(DeploymentTriggerTypes)
    triggers = []
    for index, trigger in enumerate(spec.get("triggers", []), start=1):
        triggers.append(adapter.validate_python({"name": f"{name}__automation_{index}", **trigger}))
    return triggers


def main(argv: list[str] | None = None) -> None:
    """Serve the flow with the triggers of its ``prefect.yaml`` deployment until interrupted."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--name", default=DEPLOYMENT, help="deployment name")
    args = parser.parse_args(argv)
    contact_sheet.serve(name=args.name, triggers=deployment_triggers(), print_starting_message=True)


if __name__ == "__main__":
    main()
