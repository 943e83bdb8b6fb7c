"""Codecs only, usable without Prefect and without the network: probe, normalise, make samples.

- :mod:`.probe`: what a file is, by content (Pillow, PyAV); the full decode check.
- :mod:`.normalize_image`, :mod:`.normalize_video`, :mod:`.normalize_audio`: the rewrites, each to a
  target of :mod:`.targets`.
- :mod:`.samples`: deterministic sample media (demo, tests, benchmarks).

Planning, fixing and hosting references moved up a layer, to :mod:`seedance_prefect.references`;
their old names here still work for one release (with a :class:`DeprecationWarning`).

Example:
    >>> from seedance_prefect.media import probe_bytes
    >>> probe_bytes(b"hello").kind
    'unknown'
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from .probe import (
    MediaInfo,
    decode_check,
    decode_data_uri,
    heif_available,
    probe_bytes,
    probe_path,
    sniff_container,
)

# Names that moved to seedance_prefect.references: name -> its module there.
_MOVED = {
    "AppliedFix": "fixes",
    "FixOptions": "fixes",
    "PlannedFix": "fixes",
    "Trim": "fixes",
    "split_trim": "fixes",
    "Plan": "plan",
    "plan_fixes": "plan",
    "plan_references": "plan",
    "PreparedReferences": "preprocess",
    "prepare": "preprocess",
    "DataUriHosting": "hosting",
    "Hosting": "hosting",
    "OxenRepositoryHosting": "hosting",
    "S3PresignedHosting": "hosting",
    "hosting_from_spec": "hosting",
}

__all__ = [
    "MediaInfo",
    "decode_check",
    "decode_data_uri",
    "heif_available",
    "probe_bytes",
    "probe_path",
    "sniff_container",
]


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    new = f"seedance_prefect.references.{module}"
    warnings.warn(f"seedance_prefect.media.{name} moved to {new}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(new), name)
