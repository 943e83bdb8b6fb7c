"""Make local reference files reachable by the service.

For now one strategy: inline a local file as a ``data:`` URI (the default when no repository is
configured; the per-file limits of the API keep these small). URLs and data: URIs pass through.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"; _ = p.write_bytes(b"hi")
    >>> to_data_uri(p, "text/plain")
    'data:text/plain;base64,aGk='
"""

from __future__ import annotations

import base64
from pathlib import Path

from .probe import MediaInfo, probe_path

__all__ = ["MIME_TYPES", "host_reference", "mime_type", "to_data_uri"]

MIME_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
}


def mime_type(info: MediaInfo) -> str:
    """Return the MIME type of a probed file (``application/octet-stream`` when unknown).

    Example:
        >>> from seedance_prefect.media.probe import MediaInfo
        >>> mime_type(MediaInfo(kind="video", container="mov", size_bytes=1))
        'video/quicktime'
    """
    return MIME_TYPES.get(info.container or "", "application/octet-stream")


def to_data_uri(path: str | Path, mime: str) -> str:
    """Return a file's bytes as a base64 ``data:`` URI."""
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


def host_reference(uri: str) -> str:
    """Return what to send for one reference: URLs and data: URIs as they are, local files inlined.

    Args:
        uri: An http(s) URL, a data: URI, a ``file://`` URI or a local path (absolute).

    Returns:
        A URI the service can read.
    """
    if uri.startswith(("http://", "https://", "data:")):
        return uri
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    return to_data_uri(path, mime_type(probe_path(path)))
