"""The one reader of ``"<block-type-slug>/<block-name>"`` values (``s3-bucket/videos``).

Delivery targets (``--deliver-to``) and reference hosting (``--hosting``) both accept a saved Prefect
block by slug and name; both parse and load it here, so the same bad value gets the same error: an
:class:`~seedance_prefect.errors.InvalidRequest` naming the field, raised before anything is paid.
Prefect is imported only when a block is actually loaded.

Example:
    >>> parse_block_ref("s3-bucket/videos"), parse_block_ref("./videos"), parse_block_ref("a/b/c")
    (('s3-bucket', 'videos'), None, None)
"""

from __future__ import annotations

import re
from typing import Any

from .errors import FieldProblem, InvalidRequest

__all__ = ["load_block", "parse_block_ref"]

_BLOCK_REF = re.compile(r"^([a-z0-9][a-z0-9-]*)/([A-Za-z0-9][A-Za-z0-9_-]*)$")
_EXTRAS = {"s3-bucket": "pip install 'seedance-prefect[s3]' (prefect-aws)"}


def parse_block_ref(text: str) -> tuple[str, str] | None:
    """Return ``(slug, name)`` when ``text`` has the form of a block reference, else None."""
    match = _BLOCK_REF.match(text.strip())
    return (match.group(1), match.group(2)) if match else None


def load_block(slug: str, name: str, *, field: str) -> Any:
    """Load the saved block ``slug/name``; a missing block or block type is bad input of ``field``.

    Raises:
        InvalidRequest: No block of that name is saved, or its block type is not registered (the
            fix names the extra to install).

    Example:
        ```python
        bucket = load_block("s3-bucket", "videos", field="deliver_to")
        ```
    """
    from prefect.blocks.core import Block

    found = repr(f"{slug}/{name}")
    try:
        return Block.load(f"{slug}/{name}")
    except ValueError as exc:
        problem = FieldProblem(field, "No such saved block", found=found, fix=f"Save the block first ({exc})")
    except KeyError:
        fix = _EXTRAS.get(slug, f"Register the block type {slug!r} with the Prefect server")
        problem = FieldProblem(field, "Unknown block type", found=found, fix=fix)
    raise InvalidRequest([problem])
