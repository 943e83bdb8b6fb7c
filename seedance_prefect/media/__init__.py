"""Local media helpers, usable without Prefect: probing, sample generation, reference preprocessing.

- :mod:`.probe`: what a file is, by content (Pillow, PyAV).
- :mod:`.plan`: which fixes a request's references need (no encoding; ``seedance plan``).
- :mod:`.preprocess`: fix and host every reference (:func:`prepare`), with a content-hash cache.
- :mod:`.normalize_image`, :mod:`.normalize_video`, :mod:`.normalize_audio`: the rewrites.
- :mod:`.hosting`: strategies that make local files reachable (data: URI, Oxen repository, S3).
- :mod:`.samples`: deterministic sample media (demo, tests, benchmarks).

No network (except the hosting strategies) and no Prefect here. Everything but :mod:`.probe` is
imported on first use, so ``import seedance_prefect.media`` stays light.

Example:
    >>> from seedance_prefect.media import probe_bytes, FixOptions
    >>> probe_bytes(b"hello").kind, FixOptions().video_preset
    ('unknown', 'veryfast')
"""

from __future__ import annotations

import importlib
from typing import Any

from .probe import MediaInfo, decode_check, decode_data_uri, probe_bytes, probe_path, sniff_container

_LAZY = {
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
    "probe_bytes",
    "probe_path",
    "sniff_container",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
