"""Step 2, prepare references: classify, plan fixes, re-encode and host what the service would refuse.

- :mod:`.source`: one classification of a reference (URL, ``data:`` URI or local file), probed by content.
- :mod:`.plan`: which fixes each reference needs (no encoding; ``seedance plan`` shows them).
- :mod:`.fixes`: planned and applied fixes, trims, options.
- :mod:`.preprocess`: fix and host every reference (:func:`prepare`), with a content-hash cache.
- :mod:`.hosting`: make local files reachable (data: URI, Oxen repository, S3 presigned URL).

Codecs live one layer down in :mod:`seedance_prefect.media`.

Example:
    >>> from seedance_prefect.references import FixOptions
    >>> FixOptions().video_preset
    'veryfast'
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule; loaded on first use so ``seedance plan`` does not import hosting (httpx)
_LAZY = {
    "AppliedFix": "fixes",
    "FixOptions": "fixes",
    "PlannedFix": "fixes",
    "Trim": "fixes",
    "split_trim": "fixes",
    "Plan": "plan",
    "ReferencePlan": "plan",
    "plan_fixes": "plan",
    "plan_references": "plan",
    "PreparedReferences": "preprocess",
    "prepare": "preprocess",
    "DataUriHosting": "hosting",
    "Hosting": "hosting",
    "OxenRepositoryHosting": "hosting",
    "S3PresignedHosting": "hosting",
    "hosting_from_spec": "hosting",
    "ReferenceInfo": "source",
    "SourceRef": "source",
    "resolve_source": "source",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
