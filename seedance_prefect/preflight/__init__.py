"""Step 1, validate: every documented limit checked locally, all problems together, no network.

- :mod:`.check`: :func:`check_request` -> :class:`PreflightReport`, :func:`validate_request`,
  :func:`load_request_file`.
- :mod:`.references`: the checks of each reference (URL form, size, probed media).
- :mod:`.fixes`: problems that reference preprocessing will fix become planned fixes.

The pure limit checks shared with reference planning live one layer down, in :mod:`seedance_prefect.rules`.

Example:
    >>> from seedance_prefect.preflight import check_request
    >>> check_request({"prompt": "a boat"}).ok
    True
"""

from .check import (
    MAX_REQUEST_FILE_BYTES,
    PreflightReport,
    ReferenceInfo,
    check_request,
    load_request_file,
    validate_request,
)

__all__ = [
    "MAX_REQUEST_FILE_BYTES",
    "PreflightReport",
    "ReferenceInfo",
    "check_request",
    "load_request_file",
    "validate_request",
]
