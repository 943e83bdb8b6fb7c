"""Small file helpers shared by the journal, the client, reference preparation and delivery."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .settings import STATE_DIR_ENV, get_settings

__all__ = ["STATE_DIR_ENV", "file_sha256", "state_dir", "write_json_atomic"]


def state_dir(name: str) -> Path:
    """Return the folder ``name`` of the package's local state: ``$SEEDANCE_STATE_DIR/<name>``, else
    ``~/.seedance/<name>`` (the journal and the reference cache live there).

    Example:
        >>> state_dir("journal").name
        'journal'
    """
    return get_settings().state_path(name)


def file_sha256(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Return ``(hex sha256, size in bytes)`` of a file, read in chunks (the one checksum helper).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
        >>> file_sha256(p)
        ('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 3)
    """
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
        return digest.hexdigest(), handle.tell()


def write_json_atomic(path: str | os.PathLike[str], data: Any, **dump_options: Any) -> None:
    """Write ``data`` as JSON to ``path`` whole or not at all: temp file in the same folder, fsync, rename.

    Args:
        path: The destination (its folder must exist).
        data: What to write.
        **dump_options: Passed to :func:`json.dump` (e.g. ``indent=2``).

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.json"
        >>> write_json_atomic(target, {"k": 1})
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('{"k": 1}', ['a.json'])
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, **dump_options)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
