"""Prefect tasks, blocks and flows for ByteDance Seedance 2.0 reference-to-video on the Oxen.ai API.

The light part (models, errors, client, preflight) imports without Prefect, so the ``seedance``
command starts fast. Prefect-backed names (the ``OxenCredentials`` and ``SeedanceJob`` blocks, the
tasks and flows) load on first use.

Example:
    >>> import seedance_prefect
    >>> seedance_prefect.MODEL_ID
    'bytedance-seedance-2-0-reference-to-video'
"""

from __future__ import annotations

import importlib
from typing import Any

from . import _compat
from ._version import __version__
from .errors import (
    ApiError,
    AuthenticationError,
    DownloadError,
    FieldProblem,
    GenerationCancelled,
    GenerationFailed,
    GenerationTimeout,
    InvalidRequest,
    NotFoundError,
    RateLimitedError,
    SeedanceConnectionError,
    SeedanceError,
    ServerError,
    VerificationFailed,
    is_transient,
)
from .limits import MODEL_ID
from .models import CompletionEvent, Generation, SeedanceRequest, VideoItem, VideoResult

_compat.install()  # old module paths (seedance_prefect.generation.journal, ...) keep working for one release

# Names loaded lazily (they import Prefect or heavier modules): name -> module.
_LAZY = {
    "SeedanceClient": "seedance_prefect.client",
    "AsyncSeedanceClient": "seedance_prefect.client",
    "OxenCredentials": "seedance_prefect.credentials",
    "SeedanceJob": "seedance_prefect.jobs",
}

__all__ = [
    "MODEL_ID",
    "ApiError",
    "AuthenticationError",
    "CompletionEvent",
    "DownloadError",
    "FieldProblem",
    "Generation",
    "GenerationCancelled",
    "GenerationFailed",
    "GenerationTimeout",
    "InvalidRequest",
    "NotFoundError",
    "RateLimitedError",
    "SeedanceConnectionError",
    "SeedanceError",
    "SeedanceRequest",
    "ServerError",
    "VerificationFailed",
    "VideoItem",
    "VideoResult",
    "__version__",
    "is_transient",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'seedance_prefect' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
