"""References of a request, classified and probed by content: :class:`SourceRef`.

A reference is an http(s) URL (passed through, never fetched), a ``data:`` URI (decoded and
probed) or a local file (probed by content), maybe with ``#t=in,out`` in/out points.

Example:
    >>> ref = resolve_reference("input_audios[0]", "https://example.com/a.mp3")
    >>> ref.kind, ref.modality, ref.label
    ('url', 'audio', 'https://example.com/a.mp3')
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .fixes import Trim, split_trim
from .probe import MediaInfo, decode_data_uri, probe_bytes, probe_path

__all__ = [
    "FIELDS",
    "Modality",
    "RefKind",
    "SourceRef",
    "heif_available",
    "request_refs",
    "resolve_reference",
]

Modality = Literal["image", "video", "audio"]
RefKind = Literal["url", "data", "path"]

#: Request field -> modality.
FIELDS: dict[str, Modality] = {"input_images": "image", "input_videos": "video", "input_audios": "audio"}


def heif_available() -> bool:
    """True when ``pillow-heif`` is installed, so HEIC/HEIF images can be opened and converted.

    Example:
        >>> isinstance(heif_available(), bool)
        True
    """
    try:
        import pillow_heif  # noqa: F401
    except Exception:
        return False
    return True


@dataclass
class SourceRef:
    """One reference of a request, classified and (for local files and data: URIs) probed.

    Attributes:
        field: ``"input_videos[0]"``...
        uri: The reference as given (with its ``#t=`` fragment, if any).
        kind: ``"url"`` (passed through), ``"data"`` or ``"path"``.
        path: The absolute local path.
        media: What probing found (None for URLs, missing files, or malformed data: URIs).
        trim: In/out points from a ``#t=`` fragment.
        mime: The media type a data: URI declares.
        size_bytes: Size of the file or decoded data.
        problem: Why the reference could not be read (missing file, malformed URI...).

    Example:
        >>> SourceRef("input_images[0]", "data:image/png;base64,AAAA", "data", size_bytes=3).label
        'data: URI (3 bytes)'
    """

    field: str
    uri: str
    kind: RefKind
    path: Path | None = None
    media: MediaInfo | None = None
    trim: Trim | None = None
    mime: str | None = None
    size_bytes: int | None = None
    problem: str | None = None

    @property
    def modality(self) -> Modality:
        """``"image"``, ``"video"`` or ``"audio"``, from the field name."""
        return FIELDS[self.field.partition("[")[0]]

    @property
    def label(self) -> str:
        """The file as shown to users: the path, or the data: URI's size."""
        if self.kind == "path":
            return str(self.path)
        if self.kind == "data":
            size = f"{self.size_bytes:,} bytes" if self.size_bytes is not None else "malformed"
            return f"data: URI ({size})"
        return self.uri


def _local_path(text: str, base: Path) -> Path:
    if text[:7].lower() == "file://":
        parts = urllib.parse.urlsplit(text)
        text = urllib.request.url2pathname(parts.path)
    path = Path(text).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def resolve_reference(field_name: str, uri: str, base_dir: str | os.PathLike[str] | None = None) -> SourceRef:
    """Classify one reference, split off its in/out points and probe it by content (no network).

    A local path ending in ``#t=...`` that exists under that exact name is taken as the file.

    Args:
        field_name: ``"input_images[0]"``...
        uri: https/http URL (not fetched), ``data:`` URI, local path or ``file://`` URI.
        base_dir: Folder relative paths start from (default: the working directory).

    Returns:
        The reference; ``problem`` says why it could not be read.

    Example:
        >>> ref = resolve_reference("input_videos[0]", "https://example.com/v.mp4")
        >>> ref.kind, ref.media
        ('url', None)
    """
    base = Path(base_dir).resolve() if base_dir else Path.cwd()
    head = uri[:8].lower()
    if head.startswith(("http://", "https://")):
        return SourceRef(field_name, uri, "url")
    try:
        plain, trim = split_trim(uri)
    except ValueError as exc:
        return SourceRef(field_name, uri, "data" if head.startswith("data:") else "path", problem=str(exc))
    if head.startswith("data:"):
        try:
            mime, data = decode_data_uri(plain)
        except ValueError as exc:
            return SourceRef(field_name, uri, "data", trim=trim, problem=str(exc))
        info = probe_bytes(data)
        return SourceRef(field_name, uri, "data", media=info, trim=trim, mime=mime, size_bytes=len(data))
    path = _local_path(plain, base)
    if trim is not None and _local_path(uri, base).is_file():
        path, trim = _local_path(uri, base), None
    if not path.is_file():
        problem = "File not found" if not path.exists() else "Not a regular file"
        return SourceRef(field_name, uri, "path", path=path, trim=trim, problem=problem)
    info = probe_path(path)
    return SourceRef(field_name, uri, "path", path=path, media=info, trim=trim, size_bytes=info.size_bytes)


def request_refs(request: Any, base_dir: str | os.PathLike[str] | None = None) -> list[SourceRef]:
    """Resolve every reference of a request (a mapping or a ``SeedanceRequest``), in field order."""
    data: Mapping[str, Any] = request if isinstance(request, Mapping) else request.model_dump()
    refs = []
    for name in FIELDS:
        for i, uri in enumerate(data.get(name) or []):
            refs.append(resolve_reference(f"{name}[{i}]", str(uri), base_dir))
    return refs
