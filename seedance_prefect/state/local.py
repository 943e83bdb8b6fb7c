"""A state store in a local folder: one file per key, exactly where the files always were.

``<folder>/journal/<fingerprint>.json`` and the flow-run markers ``<folder>/journal/runs/<run>/<fp>``
are the keys ``journal/<fingerprint>.json`` and ``journal/runs/<run>/<fp>`` of the store at
``~/.seedance`` (or ``$SEEDANCE_STATE_DIR``), so journals written by earlier versions keep working.

- :meth:`LocalStateStore.create`: the bytes go to a temporary file (fsync), which is then hard-linked
  to the key's path: ``os.link`` fails when the path exists, so of any number of racing creates
  exactly one wins, and a reader never sees a half-written file. On a file system without hard links
  the check and the rename happen under the key's lock instead.
- :meth:`LocalStateStore.replace`: under an exclusive ``fcntl`` lock of the key (``.<name>.lock``
  beside it, across the threads and processes of this machine), the current bytes are hashed and
  compared with the version; then a temporary file (fsync) is renamed over the path.
- The version is the sha256 of the bytes. Files whose names start with ``.`` (locks, temporary
  files) are not keys.

Example:
    >>> import tempfile
    >>> store = LocalStateStore(tempfile.mkdtemp())
    >>> v1 = store.create("journal/a.json", b"{}")
    >>> store.create("journal/a.json", b"{}")
    Traceback (most recent call last):
    ...
    seedance_prefect.errors.StateConflict: journal/a.json exists already
    >>> v2 = store.replace("journal/a.json", b'{"k": 1}', v1)
    >>> store.read("journal/a.json").data, store.list("journal/")
    (b'{"k": 1}', ['journal/a.json'])
    >>> store.replace("journal/a.json", b"{}", v1)  # v1 is no longer the current version
    Traceback (most recent call last):
    ...
    seedance_prefect.errors.StateConflict: journal/a.json changed since it was read
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .base import StateConflict, StateStore, Versioned, check_key

__all__ = ["LocalStateStore"]

#: Errors of ``os.link`` that mean "no hard links here", not "the path exists".
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStateStore(StateStore):
    """Keys as files under a folder (the default store: ``~/.seedance``).

    Args:
        root: The folder (created on the first write).

    Example:
        >>> import tempfile
        >>> store = LocalStateStore(tempfile.mkdtemp())
        >>> store.read("missing.json") is None, store.list()
        (True, [])
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.url = str(self.root)

    def path(self, key: str) -> Path:
        """The file of a key."""
        return self.root / check_key(key)

    def describe(self) -> str:
        """One line naming the store."""
        return f"local folder {self.root} (this machine only)"

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{path.name}.lock", "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _temp(self, path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp

    def read(self, key: str) -> Versioned | None:
        """Return the bytes of a key and their sha256, or None."""
        try:
            data = self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return Versioned(data, _version(data))

    def create(self, key: str, data: bytes) -> str:
        """Write a new file (temporary file, then ``os.link``).

        Raises:
            StateConflict: The file exists.
        """
        path = self.path(key)
        tmp = self._temp(path, data)
        try:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise StateConflict(f"{key} exists already") from None
            except OSError as exc:
                if exc.errno not in _NO_LINKS:
                    raise
                with self._locked(path):  # no hard links: check and rename under the key's lock
                    if path.exists():
                        raise StateConflict(f"{key} exists already") from None
                    os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return _version(data)

    def replace(self, key: str, data: bytes, version: str) -> str:
        """Overwrite a file if its sha256 is still ``version`` (under the key's lock).

        Raises:
            StateConflict: The file changed or was removed.
        """
        path = self.path(key)
        with self._locked(path):
            current = self.read(key)
            if current is None or current.version != version:
                raise StateConflict(f"{key} changed since it was read")
            tmp = self._temp(path, data)
            try:
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        return _version(data)

    def delete(self, key: str) -> None:
        """Remove a file (under the key's lock, so that it does not race a replace)."""
        path = self.path(key)
        if not path.parent.is_dir():
            return
        with self._locked(path), contextlib.suppress(FileNotFoundError):
            path.unlink()

    def list(self, prefix: str = "") -> list[str]:
        """Return the keys under ``prefix``, oldest first (mtime in ns, then key)."""
        folder = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        found: list[tuple[int, str]] = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):
                        found.append((full.stat().st_mtime_ns, key))
        return [key for _, key in sorted(found)]
