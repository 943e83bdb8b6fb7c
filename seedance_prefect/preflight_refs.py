"""Reference handling of :mod:`seedance_prefect.preflight`: URI forms, local files, probing.

A reference is an https/http URL (never fetched here), a ``data:`` URI (decoded and probed), or a
local path (absolute, relative to the request's folder, or a ``file://`` URI), checked for
existence and probed by content. Other schemes (``ftp://``, ``s3://``, ``asset://``, ``oxen://``)
are refused with a fix. :class:`ReferenceChecker` collects the problems and the
:class:`ReferenceInfo` records; :func:`media_problems` then applies the media rules of
:mod:`seedance_prefect.preflight_rules`.

Example:
    >>> checker = ReferenceChecker(Path("/tmp"), probe=False)
    >>> checker.reference("input_videos[0]", "s3://bucket/clip.mp4")[2]
    >>> [p.message for p in checker.errors]
    ['Unsupported URI scheme s3://']
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Literal

from .errors import FieldProblem
from .media.fixes import Trim, split_trim
from .media.probe import MediaInfo, decode_data_uri, probe_bytes, probe_path
from .preflight_rules import audio_rules, audio_total_rules, image_rules, video_rules, video_total_rules

__all__ = ["ReferenceChecker", "ReferenceInfo", "ReferenceKind", "media_problems"]

ReferenceKind = Literal["url", "data", "path"]

_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")
_ANY_FORM = "Give an https URL, a data: URI or a local file path"
_SCHEME_FIXES = {
    "s3": "Make the object public and give its https URL, or download it and give the local path",
    "gs": "Make the object public and give its https URL, or download it and give the local path",
    "asset": "BytePlus asset ids are not accepted by Oxen; give an https URL or a local file",
    "oxen": "Give the file's https URL: https://hub.oxen.ai/api/repos/<namespace>/<repo>/file/<branch>/<path>",
}
_MIME_CONTAINERS = {
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/png": "png",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
}


@dataclasses.dataclass
class ReferenceInfo:
    """One reference file of a request, as found by preflight.

    Attributes:
        field: Where it is, e.g. ``"input_videos[0]"``.
        uri: The reference exactly as given.
        kind: ``"url"`` (http/https, not fetched), ``"data"`` (a data: URI) or ``"path"`` (a local
            file, including ``file://`` URIs).
        path: The absolute local path, resolved against the base directory.
        media: What probing found (local files and data: URIs with ``probe=True``).
        size_bytes: Size of the local file or decoded data: URI.
        mime: The media type declared by a data: URI.
        trim: In/out points given as a ``#t=in,out`` fragment (local files and data: URIs).

    Example:
        >>> ReferenceInfo("input_images[0]", "data:image/png;base64,AAAA", "data", size_bytes=3,
        ...               mime="image/png").display()
        'data:image/png;base64,... (3 bytes)'
    """

    field: str
    uri: str
    kind: ReferenceKind
    path: Path | None = None
    media: MediaInfo | None = None
    size_bytes: int | None = None
    mime: str | None = None
    trim: Trim | None = None

    def label(self) -> str:
        """The file as named in messages: the path, or the data: URI's size.

        Example:
            >>> ReferenceInfo("input_images[0]", "x.png", "path", path=Path("/r/x.png")).label()
            '/r/x.png'
        """
        if self.kind == "path":
            return str(self.path)
        if self.kind == "data":
            return f"data: URI ({self.size_bytes:,} bytes)" if self.size_bytes is not None else "data: URI"
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


def _private_host(host: str) -> bool:
    if host in ("localhost", "") or host.endswith((".local", ".localhost", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


def _check_file(path: Path) -> tuple[int | None, str | None, str | None]:
    """Return (size, problem message, fix) for a local reference file."""
    try:
        if not path.exists():
            return None, "File not found", "Check the path (relative paths start at the request's folder)"
        if not path.is_file():
            return None, "Not a regular file", "Give the path of a media file"
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except PermissionError:
        return None, "File not readable", "Fix the file's permissions"
    except OSError as exc:
        return None, f"Cannot read the file: {exc.strerror or exc}", None
    return size, None, None


class ReferenceChecker:
    """Classify, check and probe references one by one, collecting problems.

    Attributes:
        base: Folder that relative paths start from.
        probe: Whether local files and data: URIs are probed by content.
        errors: Errors found so far.
        warnings: Warnings found so far.
        references: One :class:`ReferenceInfo` per reference in a recognised form.
    """

    def __init__(self, base: Path, probe: bool = True) -> None:
        self.base, self.probe = base, probe
        self.errors: list[FieldProblem] = []
        self.warnings: list[FieldProblem] = []
        self.references: list[ReferenceInfo] = []

    def add(self, problems: list[FieldProblem]) -> None:
        """File problems under errors or warnings by their severity."""
        for p in problems:
            (self.errors if p.severity == "error" else self.warnings).append(p)

    def reference(self, field: str, uri: str) -> tuple[str, MediaInfo | None, ReferenceKind | None]:
        """Check one reference.

        A local path or data: URI may end in ``#t=in,out`` (in/out points, seconds); a local file
        whose name really ends that way is taken as the file.

        Args:
            field: Its field, e.g. ``"input_images[0]"``.
            uri: The reference as given.

        Returns:
            ``(value to send, media info, kind)``: local paths are returned absolute (with their
            ``#t=`` fragment); ``kind`` is None for a reference in no accepted form.
        """
        if not uri.strip():
            self.add([FieldProblem(field, "Empty reference", fix=_ANY_FORM)])
            return uri, None, None
        scheme = _SCHEME_RE.match(uri)
        name = scheme.group(1).lower() if scheme else None
        if name in ("http", "https"):
            self._url(field, uri)
            return uri, None, "url"
        if name is not None and name != "file":
            self.add(
                [
                    FieldProblem(
                        field,
                        f"Unsupported URI scheme {name}://",
                        limit="https, http, data: or a local path",
                        found=uri,
                        fix=_SCHEME_FIXES.get(name, _ANY_FORM),
                    )
                ]
            )
            return uri, None, None
        try:
            plain, trim = split_trim(uri)
        except ValueError as exc:
            self.add(
                [
                    FieldProblem(
                        field, "Malformed in/out points", found=str(exc), fix="Write #t=<in>,<out> in seconds"
                    )
                ]
            )
            return uri, None, None
        if uri[:5].lower() == "data:":
            info = self._data(field, plain)
            self.references[-1].trim = trim
            return uri, info, "data"
        if trim is not None and self._local(field, uri, quiet=True) is not None:
            plain, trim = uri, None  # a file really named "...#t=..."
        path = self._local(field, plain)
        if path is None:
            return uri, None, None
        ref = ReferenceInfo(field, uri, "path", path=path, trim=trim)
        self.references.append(ref)
        ref.size_bytes, message, fix = _check_file(path)
        if message:
            self.add([FieldProblem(field, message, found=str(path), fix=fix)])
        elif self.probe:
            ref.media = probe_path(path)
        return str(path) + (str(trim) if trim else ""), ref.media, "path"

    def _local(self, field: str, text: str, quiet: bool = False) -> Path | None:
        """The absolute path of a local reference (None: a file:// URI on another host, or not a file)."""
        if text[:7].lower() == "file://":
            parts = urllib.parse.urlsplit(text)
            if parts.netloc not in ("", "localhost"):
                if not quiet:
                    self.add(
                        [
                            FieldProblem(
                                field,
                                "file:// URI on another host",
                                found=text,
                                fix="Copy the file here and give its local path",
                            )
                        ]
                    )
                return None
            text = urllib.request.url2pathname(parts.path)
        path = Path(text).expanduser()
        path = (path if path.is_absolute() else self.base / path).resolve()
        if quiet and not path.is_file():
            return None
        return path

    def _url(self, field: str, uri: str) -> None:
        self.references.append(ReferenceInfo(field, uri, "url"))
        if "#t=" in uri:
            self.add(
                [
                    FieldProblem(
                        field,
                        "In/out points (#t=) apply to local files and data: URIs only",
                        found=uri,
                        fix="Download the file and give its local path, or remove #t=",
                    )
                ]
            )
        host = urllib.parse.urlsplit(uri).hostname
        if not host:
            self.add([FieldProblem(field, "URL without a host", found=uri, fix="Give a complete https URL")])
        elif _private_host(host):
            self.add(
                [
                    FieldProblem(
                        field,
                        "URL on a local or private host: the service cannot fetch it",
                        found=host,
                        fix="Give a public https URL, or the local file path (hosted before sending)",
                        severity="warning",
                    )
                ]
            )
        if any(c.isspace() for c in uri):
            self.add(
                [
                    FieldProblem(
                        field,
                        "URL contains spaces",
                        found=uri,
                        fix="Percent-encode them (%20)",
                        severity="warning",
                    )
                ]
            )

    def _data(self, field: str, uri: str) -> MediaInfo | None:
        try:
            mime, data = decode_data_uri(uri)
        except ValueError as exc:
            self.references.append(ReferenceInfo(field, uri, "data"))
            self.add(
                [
                    FieldProblem(
                        field,
                        "Malformed data: URI",
                        found=str(exc),
                        fix="Use data:<mime>;base64,<data>, or give the local file path",
                    )
                ]
            )
            return None
        ref = ReferenceInfo(field, uri, "data", size_bytes=len(data), mime=mime)
        self.references.append(ref)
        if not self.probe:
            return None
        info = ref.media = probe_bytes(data)
        declared = _MIME_CONTAINERS.get(mime)
        if declared and info.kind != "unknown" and info.container and declared != info.container:
            self.add(
                [
                    FieldProblem(
                        field,
                        "data: URI declares another type than its content",
                        found=f"declared {mime}, content {info.container}",
                        fix="Fix the media type of the data: URI",
                        severity="warning",
                        fixable=True,
                    )
                ]
            )
        return info


def _named(problems: list[FieldProblem], label: str | None, combined: bool = False) -> list[FieldProblem]:
    """Name the file(s) in the ``found`` of unfixable errors: every refusal says which file it is about."""
    if not label:
        return problems
    named = []
    for p in problems:
        if p.severity == "error" and not p.fixable and label not in (p.found or ""):
            found = f"{p.found} from {label}" if combined else (f"{label}: {p.found}" if p.found else label)
            p = dataclasses.replace(p, found=found)
        named.append(p)
    return named


def media_problems(
    checker: ReferenceChecker,
    media: dict[str, list[tuple[str, MediaInfo | None, ReferenceKind | None]]],
) -> None:
    """Apply the per-file and combined media rules to checked references.

    Args:
        checker: Receives the problems.
        media: Per field name (``"input_images"``...), ``(field, media info, kind)`` of each
            reference as returned by :meth:`ReferenceChecker.reference`.
    """
    rules = {"input_images": image_rules, "input_videos": video_rules, "input_audios": audio_rules}
    labels = {r.field: r.label() for r in checker.references if r.kind != "url"}
    for name, items in media.items():
        for field, info, _kind in items:
            if info is not None:
                checker.add(_named(rules[name](field, info), labels.get(field)))
    for name, rule in (("input_videos", video_total_rules), ("input_audios", audio_total_rules)):
        items = media.get(name, [])
        files = ", ".join(labels[f] for f, _i, _k in items if f in labels)
        checker.add(_named(rule([(f, i) for f, i, _k in items]), files, combined=True))
    remote = [
        f for name in ("input_videos", "input_audios") for f, _i, kind in media.get(name, []) if kind == "url"
    ]
    if remote and checker.probe:
        checker.add(
            [
                FieldProblem(
                    "references",
                    "Remote references are not fetched: their durations and sizes were not checked",
                    found=", ".join(remote),
                    severity="warning",
                    fix="Keep videos at 2-15 s and under 50 MB in total, and audio at 15 s in total",
                )
            ]
        )
