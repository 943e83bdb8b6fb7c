"""Reference checks of :mod:`seedance_prefect.preflight`: URLs, data: URI types, media rules.

:func:`~seedance_prefect.references.source.resolve_source` classifies each reference (an
https/http URL, a ``data:`` URI, a local file; in/out points; other schemes such as ``ftp://``,
``s3://``, ``asset://``, ``oxen://`` refused with a fix). :class:`ReferenceChecker` collects its
problems and :class:`ReferenceInfo` records, and adds the checks only preflight makes: URLs the
service could not fetch, data: URIs that declare another type than their content.
:func:`media_problems` then applies the media rules of :mod:`seedance_prefect.rules`.

Example:
    >>> checker = ReferenceChecker(Path("/tmp"), probe=False)
    >>> checker.reference("input_videos[0]", "s3://bucket/clip.mp4")[2]
    >>> [p.message for p in checker.errors]
    ['Unsupported URI scheme s3://']
"""

from __future__ import annotations

import dataclasses
import ipaddress
import urllib.parse
from pathlib import Path

from ..errors import FieldProblem
from ..media.probe import MediaInfo
from ..references.source import ReferenceInfo, ReferenceKind, resolve_source
from ..rules import audio_rules, audio_total_rules, image_rules, video_rules, video_total_rules

__all__ = ["ReferenceChecker", "ReferenceInfo", "ReferenceKind", "media_problems"]

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


def _private_host(host: str) -> bool:
    if host in ("localhost", "") or host.endswith((".local", ".localhost", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


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

        Example:
            >>> checker = ReferenceChecker(Path("/tmp"), probe=False)
            >>> checker.reference("input_videos[0]", "clips/a.mp4#t=2,9")
            ('/tmp/clips/a.mp4#t=2,9', None, 'path')
        """
        ref = resolve_source(field, uri, self.base, self.probe)
        if ref.kind is not None:
            self.references.append(ref)
        if ref.problem is not None:
            self.add([ref.problem])
        if ref.kind == "url":
            self._url(field, uri)
        elif ref.kind == "data" and ref.media is not None:
            self._declared_type(ref, ref.media)
        if ref.kind == "path":
            return str(ref.path) + (str(ref.trim) if ref.trim else ""), ref.media, "path"
        return uri, ref.media, ref.kind

    def _url(self, field: str, uri: str) -> None:
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

    def _declared_type(self, ref: ReferenceInfo, info: MediaInfo) -> None:
        """Warn when a data: URI declares another type than its content."""
        declared = _MIME_CONTAINERS.get(ref.mime or "")
        if declared and info.kind != "unknown" and info.container and declared != info.container:
            self.add(
                [
                    FieldProblem(
                        ref.field,
                        "data: URI declares another type than its content",
                        found=f"declared {ref.mime}, content {info.container}",
                        fix="Fix the media type of the data: URI",
                        severity="warning",
                        fixable=True,
                    )
                ]
            )


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
    labels = {r.field: r.label for r in checker.references if r.kind != "url"}
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
