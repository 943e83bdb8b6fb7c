"""One reference of a request, classified once for preflight and preprocessing: :func:`resolve_source`.

A reference is an https/http URL (never fetched), a ``data:`` URI (decoded and probed) or a local
file (an absolute path, a path relative to the request's folder, ``~/...`` or a ``file://`` URI;
checked and probed by content). Local files and data: URIs may end in ``#t=in,out`` in/out points
(seconds); a local file whose name really ends that way is taken as that file. Anything else (an
empty string, another scheme such as ``s3://``, a ``file://`` URI on another host, malformed in/out
points) is in no accepted form: ``kind`` is None and ``problem`` says what to give instead.

Preflight (:class:`~seedance_prefect.preflight.references.ReferenceChecker`) adds its checks of
URLs and of the type a data: URI declares; preprocessing (:mod:`.plan`, :mod:`.preprocess`) uses the
same :class:`ReferenceInfo` and its :attr:`~ReferenceInfo.modality`. No network here. ``SourceRef``
and ``RefKind`` are the older names of :class:`ReferenceInfo` and :data:`ReferenceKind`.

Example:
    >>> ref = resolve_source("input_videos[0]", "clip.mp4#t=2,9", Path("/videos"))
    >>> ref.kind, str(ref.path), str(ref.trim), ref.problem.message
    ('path', '/videos/clip.mp4', '#t=2,9', 'File not found')
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ..errors import FieldProblem
from ..media.probe import MediaInfo, decode_data_uri, probe_bytes, probe_path
from .fixes import Trim, split_trim

__all__ = [
    "FIELDS",
    "Modality",
    "RefKind",
    "ReferenceInfo",
    "ReferenceKind",
    "SourceRef",
    "request_refs",
    "resolve_reference",
    "resolve_source",
]

ReferenceKind = Literal["url", "data", "path"]
Modality = Literal["image", "video", "audio"]

#: Request field -> modality.
FIELDS: dict[str, Modality] = {"input_images": "image", "input_videos": "video", "input_audios": "audio"}

_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")
_ANY_FORM = "Give an https URL, a data: URI or a local file path"
_SCHEME_FIXES = {
    "s3": "Make the object public and give its https URL, or download it and give the local path",
    "gs": "Make the object public and give its https URL, or download it and give the local path",
    "asset": "BytePlus asset ids are not accepted by Oxen; give an https URL or a local file",
    "oxen": "Give the file's https URL: https://hub.oxen.ai/api/repos/<namespace>/<repo>/file/<branch>/<path>",
}


@dataclasses.dataclass
class ReferenceInfo:
    """One reference of a request: what it is, where its bytes are, and what probing found.

    Attributes:
        field: Where it is, e.g. ``"input_videos[0]"``.
        uri: The reference exactly as given (with its ``#t=`` fragment, if any).
        kind: ``"url"`` (http/https, not fetched), ``"data"`` (a data: URI) or ``"path"`` (a local
            file, including ``file://`` URIs); None for a reference in no accepted form.
        path: The absolute local path, resolved against the base directory.
        media: What probing found (local files and data: URIs, when probed).
        size_bytes: Size of the local file or decoded data: URI.
        mime: The media type declared by a data: URI.
        trim: In/out points given as a ``#t=in,out`` fragment (local files and data: URIs).
        problem: Why the reference cannot be used (an error naming the field, with a fix).

    Example:
        >>> ReferenceInfo("input_images[0]", "data:image/png;base64,AAAA", "data", size_bytes=3,
        ...               mime="image/png").display()
        'data:image/png;base64,... (3 bytes)'
    """

    field: str
    uri: str
    kind: ReferenceKind | None
    _: dataclasses.KW_ONLY
    path: Path | None = None
    media: MediaInfo | None = None
    size_bytes: int | None = None
    mime: str | None = None
    trim: Trim | None = None
    problem: FieldProblem | None = None

    @property
    def modality(self) -> Modality:
        """``"image"``, ``"video"`` or ``"audio"``, from the field name.

        Example:
            >>> ReferenceInfo("input_videos[1]", "https://e.com/v.mp4", "url").modality
            'video'
        """
        return FIELDS[self.field.partition("[")[0]]

    @property
    def label(self) -> str:
        """The file as named in messages: the path, or the data: URI's size (else the URI).

        Example:
            >>> ReferenceInfo("input_images[0]", "x.png", "path", path=Path("/r/x.png")).label
            '/r/x.png'
        """
        if self.kind == "path" and self.path is not None:
            return str(self.path)
        if self.kind == "data":
            size = f"{self.size_bytes:,} bytes" if self.size_bytes is not None else "malformed"
            return f"data: URI ({size})"
        return self.uri

    def display(self) -> str:
        """The reference shortened for printing: never megabytes of base64."""
        if self.kind == "path":
            size = f", {self.size_bytes:,} bytes" if self.size_bytes is not None else ""
            return f"<local file: {self.path}{size}; hosted before sending>"
        if self.kind == "data":
            size = f"{self.size_bytes:,} bytes" if self.size_bytes is not None else "malformed"
            return f"data:{self.mime or '?'};base64,... ({size})"
        return self.uri

    def to_dict(self) -> dict[str, Any]:
        """Return the reference as a JSON-ready dict (data: URIs shortened)."""
        return {
            "field": self.field,
            "uri": self.display() if self.kind == "data" else self.uri,
            "kind": self.kind,
            "path": str(self.path) if self.path else None,
            "size_bytes": self.size_bytes,
            "mime": self.mime,
            "trim": str(self.trim) if self.trim else None,
            "media": self.media.to_dict() if self.media else None,
        }


def resolve_source(field: str, uri: str, base: Path, probe: bool = True) -> ReferenceInfo:
    """Classify one reference, split off its in/out points, check its file and probe it (no network).

    Args:
        field: Its field, e.g. ``"input_images[0]"``.
        uri: The reference as given.
        base: Absolute folder that relative paths start from.
        probe: Probe local files and data: URIs by content (False: only decode and check the file).

    Returns:
        The reference; ``problem`` says why it cannot be used, and ``kind`` is None when it is in
        no accepted form.

    Example:
        >>> resolve_source("input_images[0]", "https://example.com/a.png", Path("/tmp")).kind
        'url'
        >>> ref = resolve_source("input_images[1]", "s3://bucket/a.png", Path("/tmp"))
        >>> ref.kind, ref.problem.message
        (None, 'Unsupported URI scheme s3://')
        >>> ref = resolve_source("input_images[2]", "data:image/png;base64,AAAA#t=1,2", Path("/tmp"))
        >>> ref.kind, ref.mime, ref.size_bytes, str(ref.trim), ref.media.kind
        ('data', 'image/png', 3, '#t=1,2', 'unknown')
    """
    if not uri.strip():
        return ReferenceInfo(field, uri, None, problem=FieldProblem(field, "Empty reference", fix=_ANY_FORM))
    scheme = _SCHEME_RE.match(uri)
    name = scheme.group(1).lower() if scheme else None
    if name in ("http", "https"):
        return ReferenceInfo(field, uri, "url")
    if name is not None and name != "file":
        problem = FieldProblem(
            field,
            f"Unsupported URI scheme {name}://",
            limit="https, http, data: or a local path",
            found=uri,
            fix=_SCHEME_FIXES.get(name, _ANY_FORM),
        )
        return ReferenceInfo(field, uri, None, problem=problem)
    try:
        plain, trim = split_trim(uri)
    except ValueError as exc:
        problem = FieldProblem(
            field, "Malformed in/out points", found=str(exc), fix="Write #t=<in>,<out> in seconds"
        )
        return ReferenceInfo(field, uri, None, problem=problem)
    if uri[:5].lower() == "data:":
        return _data(ReferenceInfo(field, uri, "data", trim=trim), plain, probe)
    return _file(ReferenceInfo(field, uri, "path", trim=trim), plain, base, probe)


def _data(ref: ReferenceInfo, plain: str, probe: bool) -> ReferenceInfo:
    """Decode a data: URI (without its fragment) and probe its bytes."""
    try:
        mime, data = decode_data_uri(plain)
    except ValueError as exc:
        ref.problem = FieldProblem(
            ref.field,
            "Malformed data: URI",
            found=str(exc),
            fix="Use data:<mime>;base64,<data>, or give the local file path",
        )
        return ref
    ref.mime, ref.size_bytes = mime, len(data)
    if probe:
        ref.media = probe_bytes(data)
    return ref


def _file(ref: ReferenceInfo, plain: str, base: Path, probe: bool) -> ReferenceInfo:
    """Find, check and probe a local file (``plain``: the reference without its fragment)."""
    path = _local_path(plain, base)
    whole = _local_path(ref.uri, base) if ref.trim is not None else None
    if whole is not None and whole.is_file():
        path, ref.trim = whole, None  # a file really named "...#t=..."
    if path is None:
        ref.kind = None
        fix = "Copy the file here and give its local path"
        ref.problem = FieldProblem(ref.field, "file:// URI on another host", found=plain, fix=fix)
        return ref
    ref.path = path
    ref.size_bytes, ref.problem = _check_file(ref.field, path)
    if probe and ref.problem is None:
        ref.media = probe_path(path)
    return ref


def _local_path(text: str, base: Path) -> Path | None:
    """The absolute path a local reference names (None: a ``file://`` URI on another host)."""
    if text[:7].lower() == "file://":
        parts = urllib.parse.urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            return None
        text = urllib.request.url2pathname(parts.path)
    path = Path(text).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def _check_file(field: str, path: Path) -> tuple[int | None, FieldProblem | None]:
    """Return (size, problem) for a local reference file: it must exist, be a file and be readable."""

    def problem(message: str, fix: str | None) -> tuple[None, FieldProblem]:
        return None, FieldProblem(field, message, found=str(path), fix=fix)

    try:
        if not path.exists():
            return problem("File not found", "Check the path (relative paths start at the request's folder)")
        if not path.is_file():
            return problem("Not a regular file", "Give the path of a media file")
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except PermissionError:
        return problem("File not readable", "Fix the file's permissions")
    except OSError as exc:
        return problem(f"Cannot read the file: {exc.strerror or exc}", None)
    return size, None


def resolve_reference(
    field_name: str, uri: str, base_dir: str | os.PathLike[str] | None = None
) -> ReferenceInfo:
    """Classify one reference, split off its in/out points and probe it by content (no network).

    A local path ending in ``#t=...`` that exists under that exact name is taken as the file.

    Args:
        field_name: ``"input_images[0]"``...
        uri: https/http URL (not fetched), ``data:`` URI, local path or ``file://`` URI.
        base_dir: Folder relative paths start from (default: the working directory).

    Returns:
        The reference; ``problem`` says why it cannot be used (the error preflight reports).

    Example:
        >>> ref = resolve_reference("input_videos[0]", "https://example.com/v.mp4")
        >>> ref.kind, ref.media
        ('url', None)
    """
    base = Path(base_dir).resolve() if base_dir else Path.cwd()
    return resolve_source(field_name, uri, base)


def request_refs(request: Any, base_dir: str | os.PathLike[str] | None = None) -> list[ReferenceInfo]:
    """Resolve every reference of a request (a mapping or a ``SeedanceRequest``), in field order."""
    data: Mapping[str, Any] = request if isinstance(request, Mapping) else request.model_dump()
    refs = []
    for name in FIELDS:
        for i, uri in enumerate(data.get(name) or []):
            refs.append(resolve_reference(f"{name}[{i}]", str(uri), base_dir))
    return refs


#: Older names of :class:`ReferenceInfo` and :data:`ReferenceKind` (kept for existing imports).
SourceRef = ReferenceInfo
RefKind = ReferenceKind
