"""The interface every state store implements, its value type and its two errors.

A store maps keys (``/``-separated relative paths such as ``journal/<fingerprint>.json``) to bytes,
each with an opaque version. Writes are conditional: :meth:`StateStore.create` succeeds only when the
key does not exist, :meth:`StateStore.replace` only when the object still has the version it was read
with; otherwise they raise :class:`StateConflict` and write nothing. The guarantees are in
:mod:`seedance_prefect.state`.

Example:
    >>> check_key("journal/abc.json")
    'journal/abc.json'
    >>> check_key("../etc/passwd")
    Traceback (most recent call last):
    ...
    ValueError: not a state key: '../etc/passwd'
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from ..errors import StateConflict, StateError

__all__ = ["StateConflict", "StateError", "StateStore", "Versioned", "check_key"]


@dataclass(frozen=True)
class Versioned:
    """An object read from a store, with the version that a later :meth:`StateStore.replace` names.

    Attributes:
        data: The bytes, exactly as written by one create or replace (never a mix of two writes).
        version: Opaque; equal versions mean equal bytes (sha256 in a folder, the ETag on S3).
    """

    data: bytes
    version: str


def check_key(key: str) -> str:
    """Return ``key`` when it is a relative ``/``-separated path without ``.``, ``..`` or empty parts.

    Raises:
        ValueError: Anything else (an absolute path, a way out of the store, a backslash).
    """
    parts = key.split("/")
    if not key or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a state key: {key!r}")
    return key


class StateStore(abc.ABC):
    """Keys to bytes with compare-and-swap writes; see :mod:`seedance_prefect.state` for the guarantees.

    Implementations: :class:`~seedance_prefect.state.local.LocalStateStore` (a folder) and
    :class:`~seedance_prefect.state.s3.S3StateStore` (a bucket, by URL or ``s3-bucket`` block).
    """

    #: Where the store is, as the user would write it (a folder or ``s3://bucket/prefix/``).
    url: str

    @abc.abstractmethod
    def read(self, key: str) -> Versioned | None:
        """Return the object and its version, or None when the key does not exist."""

    @abc.abstractmethod
    def create(self, key: str, data: bytes) -> str:
        """Write a new object; return its version.

        Raises:
            StateConflict: The key exists (nothing written).
        """

    @abc.abstractmethod
    def replace(self, key: str, data: bytes, version: str) -> str:
        """Overwrite an object only if its version is still ``version``; return the new version.

        Raises:
            StateConflict: The object changed or was deleted since ``version`` was read (nothing written).
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (unconditionally; a missing key is not an error)."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Return the keys that start with ``prefix``, oldest first (modification time, then key).

        Not a snapshot: a key written while the listing runs may be missing.
        """

    def write(self, key: str, data: bytes, version: str | None) -> str:
        """:meth:`create` when ``version`` is None, else :meth:`replace`; return the new version.

        Raises:
            StateConflict: The conditional write lost.
        """
        return self.create(key, data) if version is None else self.replace(key, data, version)

    def describe(self) -> str:
        """One line naming the store, for messages and logs."""
        return f"{type(self).__name__} at {self.url}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
