"""Local media helpers: probing by content (:mod:`.probe`) and sample generation (:mod:`.samples`).

No network and no Prefect here. :mod:`.samples` is imported on demand (``from
seedance_prefect.media import samples``) since only the demo, tests and benchmarks need it.

Example:
    >>> from seedance_prefect.media import probe_bytes
    >>> probe_bytes(b"hello").kind
    'unknown'
"""

from __future__ import annotations

from .probe import MediaInfo, decode_check, decode_data_uri, probe_bytes, probe_path, sniff_container

__all__ = ["MediaInfo", "decode_check", "decode_data_uri", "probe_bytes", "probe_path", "sniff_container"]
