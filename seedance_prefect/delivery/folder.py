"""Deliver a verified video and its JSON sidecar to an output folder.

A delivery never silently overwrites a different file: the same bytes at the same name are a no-op
(so re-runs are idempotent); different bytes get a name that carries the generation id, with a
warning. Files appear whole or not at all (temp file in the same folder, then a rename).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._files import file_sha256, write_json_atomic
from ..errors import FieldProblem, InvalidRequest

__all__ = ["DeliveredVideo", "default_name", "deliver_to_folder", "safe_name", "work_dirs"]

_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_CHARS = 100


@dataclass(frozen=True)
class DeliveredVideo:
    """Where a video was delivered.

    Attributes:
        generation_id: The generation the video came from.
        video: Path (or URL) of the delivered video.
        sidecar: Path (or URL) of its JSON sidecar.
        sha256: Checksum of the delivered bytes.
        size_bytes: Size of the delivered video.
        reused: True when the same bytes were already there (a re-run).
    """

    generation_id: str
    video: str
    sidecar: str
    sha256: str
    size_bytes: int
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the delivery as a JSON-ready dict."""
        return asdict(self)


def safe_name(name: str, *, field: str = "name") -> str:
    """Return ``name`` reduced to a safe file name, or refuse it.

    Only letters, digits, dot, dash and underscore are kept; path separators and leading dots
    cannot survive, so a name can never escape the output folder.

    Raises:
        InvalidRequest: The name holds a path (``/``, ``\\``, ``..``) or is empty once cleaned.

    Example:
        >>> safe_name("My clip #1")
        'My_clip_1'
        >>> safe_name("../../etc/passwd")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        seedance_prefect.errors.InvalidRequest: 1 problem in the request:
          - name: Invalid output name: a name, not a path...
    """
    if "/" in name or "\\" in name or ".." in name:
        raise InvalidRequest(
            [
                FieldProblem(
                    field,
                    "Invalid output name: a name, not a path",
                    limit="no '/', '\\' or '..'",
                    found=repr(name),
                    fix="Use a plain file name such as 'my-video'; choose the folder with output/deliver_to",
                )
            ]
        )
    cleaned = _NAME_OK.sub("_", name).strip("._-")[:MAX_NAME_CHARS].strip("._-")
    cleaned = re.sub(r"_{2,}", "_", cleaned)
    if not cleaned:
        raise InvalidRequest(
            [
                FieldProblem(
                    field,
                    "Invalid output name",
                    limit="letters, digits, '.', '-' and '_'",
                    found=repr(name),
                    fix="Use a plain file name such as 'my-video'",
                )
            ]
        )
    return cleaned


def default_name(prompt: str, fingerprint: str) -> str:
    """Return a readable default name: the prompt's first words plus a short fingerprint.

    Example:
        >>> default_name("@Image1 waves at the camera!", "0123456789abcdef")
        'image1-waves-at-the-camera-01234567'
    """
    words = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40].strip("-")
    return f"{words or 'video'}-{fingerprint[:8]}"


def _free_target(folder: Path, name: str, generation_id: str, sha256: str) -> tuple[Path, bool]:
    """Pick the target path: (path, reused). Same bytes already there -> reuse."""
    candidates = [name, f"{name}-{generation_id[:8]}"] + [
        f"{name}-{generation_id[:8]}-{i}" for i in range(2, 100)
    ]
    for candidate in candidates:
        target = folder / f"{candidate}.mp4"
        if not target.exists():
            return target, False
        if file_sha256(target)[0] == sha256:
            return target, True
    raise FileExistsError(f"no free name for {name!r} in {folder}")


def deliver_to_folder(
    video_path: str | Path,
    folder: str | Path,
    name: str,
    *,
    generation_id: str,
    sidecar: dict[str, Any],
    sha256: str | None = None,
    move: bool = True,
) -> DeliveredVideo:
    """Deliver a video and its sidecar into a local folder.

    Args:
        video_path: The verified video.
        folder: The output folder (created if missing).
        name: Base name (cleaned with :func:`safe_name`); ``<name>.mp4`` and ``<name>.json``.
        generation_id: The generation the video came from.
        sidecar: Metadata to write next to the video (it gains ``delivered`` and ``sha256``).
        sha256: The video's checksum if already known.
        move: Move the file (same filesystem: a rename) instead of copying it.

    Returns:
        Where the files are.

    Example:
        ```python
        delivered = deliver_to_folder("work/g1.mp4", "seedance-output", "boat",
                                      generation_id="g1", sidecar={"prompt": "a boat"})
        ```
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digest = sha256 or file_sha256(video_path)[0]
    target, reused = _free_target(folder, safe_name(name), generation_id, digest)
    if not reused:
        if move:
            try:
                os.replace(video_path, target)
            except OSError:  # another filesystem: copy to a temp name, then rename
                move = False
        if not move:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
            os.close(fd)
            try:
                shutil.copyfile(video_path, tmp)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
    elif move:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(video_path)
    size = target.stat().st_size
    sidecar_path = target.with_suffix(".json")
    sidecar = {**sidecar, "sha256": digest, "size_bytes": size, "video": target.name}
    write_json_atomic(sidecar_path, sidecar, indent=2, default=str)
    return DeliveredVideo(generation_id, str(target), str(sidecar_path), digest, size, reused)


def work_dirs(output: str | Path) -> tuple[Path, Path]:
    """Return the local ``(work, rejected)`` folders under ``output``: downloads land in the first,
    videos that fail verification are kept in the second.

    Example:
        >>> [p.name for p in work_dirs("/tmp/videos")]
        ['.seedance-work', 'rejected']
    """
    out = Path(output).resolve()
    return out / ".seedance-work", out / "rejected"
