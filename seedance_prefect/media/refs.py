"""References of a request as preprocessing sees them: :class:`SourceRef`, :func:`resolve_reference`.

The classification is preflight's (:func:`~seedance_prefect.reference_source.resolve_source`): an
http(s) URL (passed through, never fetched), a ``data:`` URI (decoded and probed) or a local file
(probed by content), maybe with ``#t=in,out`` in/out points. :class:`SourceRef` adds the modality
of its field.

Example:
    >>> ref = resolve_reference("input_audios[0]", "https://example.com/a.mp3")
    >>> ref.kind, ref.modality, ref.label
    ('url', 'audio', 'https://example.com/a.mp3')
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ..reference_source import ReferenceInfo, ReferenceKind, resolve_source

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
#: ``"url"``, ``"data"`` or ``"path"``: the kinds of :mod:`seedance_prefect.reference_source`.
RefKind = ReferenceKind

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


class SourceRef(ReferenceInfo):
    """One reference of a request, as classified and probed by preflight, plus its modality.

    The fields are those of :class:`~seedance_prefect.reference_source.ReferenceInfo` (``field``,
    ``uri``, ``kind``, ``path``, ``media``, ``size_bytes``, ``mime``, ``trim``, ``problem``).

    Example:
        >>> SourceRef("input_images[0]", "data:image/png;base64,AAAA", "data", size_bytes=3).label
        'data: URI (3 bytes)'
    """

    @property
    def modality(self) -> Modality:
        """``"image"``, ``"video"`` or ``"audio"``, from the field name."""
        return FIELDS[self.field.partition("[")[0]]

    @classmethod
    def of(cls, ref: ReferenceInfo) -> SourceRef:
        """The same reference as a :class:`SourceRef` (its fields shared, nothing probed again).

        Example:
            >>> SourceRef.of(ReferenceInfo("input_videos[1]", "https://e.com/v.mp4", "url")).modality
            'video'
        """
        return cls(**{f.name: getattr(ref, f.name) for f in dataclasses.fields(ref)})


def resolve_reference(field_name: str, uri: str, base_dir: str | os.PathLike[str] | None = None) -> SourceRef:
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
    return SourceRef.of(resolve_source(field_name, uri, base))


def request_refs(request: Any, base_dir: str | os.PathLike[str] | None = None) -> list[SourceRef]:
    """Resolve every reference of a request (a mapping or a ``SeedanceRequest``), in field order."""
    data: Mapping[str, Any] = request if isinstance(request, Mapping) else request.model_dump()
    refs = []
    for name in FIELDS:
        for i, uri in enumerate(data.get(name) or []):
            refs.append(resolve_reference(f"{name}[{i}]", str(uri), base_dir))
    return refs
