"""Steps 6-7, verify and deliver: PyAV checks, safe names, sidecars and storage targets (no Prefect).

- :mod:`.verify`: the checks of a downloaded video against its request.
- :mod:`.folder`: safe names and delivery to a local folder with a JSON sidecar.
- :mod:`.targets`: where videos go (a folder, an fsspec URL, a Prefect storage block).

Example:
    >>> from seedance_prefect.delivery import safe_name
    >>> safe_name("My video!")
    'My_video'
"""

from __future__ import annotations

import warnings
from typing import Any

from .._files import file_sha256
from .folder import DeliveredVideo, default_name, deliver_to_folder, safe_name

__all__ = ["DeliveredVideo", "default_name", "deliver_to_folder", "safe_name"]


def _sha256_hex(path: Any) -> str:
    return file_sha256(path)[0]


def __getattr__(name: str) -> Any:
    # One checksum helper: seedance_prefect.client.sha256_file (a FileDigest). This hex-string twin
    # stays one release for existing imports.
    if name == "sha256_file":
        warnings.warn(
            "seedance_prefect.delivery.sha256_file is deprecated: "
            "use seedance_prefect.client.sha256_file(path).sha256",
            DeprecationWarning,
            stacklevel=2,
        )
        return _sha256_hex
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
