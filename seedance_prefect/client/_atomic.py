"""Results written to disk: where (:func:`download_url`, :func:`target_path`) and how (:class:`AtomicFile`).

Also the base64 decoding of ``b64_json`` answers, slice by slice (:func:`iter_b64_chunks`).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

from ..errors import DownloadError
from ._config import DEFAULT_PORTS

__all__ = [
    "B64_SLICE",
    "AtomicFile",
    "b64_text",
    "download_url",
    "iter_b64_chunks",
    "save_b64_file",
    "target_path",
]

logger = logging.getLogger("seedance_prefect.client")


def download_url(source: Any, base_url: str) -> str:
    """Return the URL to download from a ``Generation``, ``VideoItem``, ``CompletionEvent`` or string.

    Relative URLs are resolved against the API origin.

    Raises:
        DownloadError: There is no URL (e.g. a generation that has not succeeded), permanent.

    Example:
        >>> from seedance_prefect.models import Generation
        >>> done = Generation(generation_id="g1", status="succeeded", result_url="/repos/x/v.mp4")
        >>> download_url(done, "https://hub.oxen.ai/api")
        'https://hub.oxen.ai/repos/x/v.mp4'
        >>> download_url(Generation(generation_id="g1", status="processing"), "https://hub.oxen.ai/api")
        Traceback (most recent call last):
        ...
        seedance_prefect.errors.DownloadError: Generation g1 (status processing) has no result URL to download
    """
    if isinstance(source, (str, httpx.URL)):
        url = str(source)
    else:
        videos = getattr(source, "videos", None)
        item = videos[0] if videos else source
        url = getattr(item, "result_url", None) or getattr(item, "url", None) or ""
        if not url:
            what = type(source).__name__
            ident = getattr(source, "generation_id", None)
            status = getattr(source, "status", None)
            detail = f" {ident} (status {status})" if ident else ""
            raise DownloadError(f"{what}{detail} has no result URL to download", transient=False)
    resolved = httpx.URL(base_url).join(url)
    if resolved.scheme not in DEFAULT_PORTS:
        raise DownloadError(f"Cannot download from a {resolved.scheme!r} URL", transient=False)
    return str(resolved)


def target_path(path: str | os.PathLike[str], source: Any, url: str | None = None) -> Path:
    """Return the file to write: ``path``, or a name inside it when ``path`` is a directory.

    ``path`` is a directory when it exists as one or is a string ending with a slash (``"renders/"``,
    created if missing). The name is then ``<generation_id>.mp4`` for a generation, else the URL's
    last path segment, else ``video.mp4``.

    Example:
        >>> target_path("renders/", None, "https://cdn.example.com/a/b.mp4?sig=1").as_posix()
        'renders/b.mp4'
    """
    target = Path(path)
    as_dir = isinstance(path, str) and path.endswith(("/", os.sep))
    if not (as_dir or target.is_dir()):
        return target
    ident = getattr(source, "generation_id", None)
    name = f"{ident}.mp4" if ident else Path(httpx.URL(url).path).name if url else ""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "video.mp4"
    return target / name


class AtomicFile:
    """A file written under a temporary name and renamed into place only when complete.

    The temporary file ``<name>.part-<random>`` lives beside the destination (same filesystem, so
    ``os.replace`` is atomic). On success the data is fsynced, then renamed; on any failure the
    temporary file is removed and nothing is left behind. An httpx error while writing (a broken or
    undecodable transfer) is raised as a transient :class:`DownloadError`. Parent folders are created.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with AtomicFile(folder / "v.mp4", max_bytes=10) as out:
        ...     out.write(b"abc")
        >>> (folder / "v.mp4").read_bytes(), sorted(p.name for p in folder.iterdir())
        (b'abc', ['v.mp4'])
    """

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int | None, label: str = "") -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.label = label or str(self.path)
        self.size = 0
        self.temp_path = self.path.with_name(f"{self.path.name}.part-{secrets.token_hex(6)}")
        self._file: Any = None

    def __enter__(self) -> AtomicFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.temp_path, "xb")  # closed in __exit__
        return self

    def check_size(self, size: int, what: str = "Result") -> None:
        """Refuse ``size`` bytes when over the cap (permanent :class:`DownloadError`)."""
        if self.max_bytes is not None and size > self.max_bytes:
            raise DownloadError(
                f"{what} {self.label} is over the size cap: {size} > {self.max_bytes} bytes "
                "(raise download_max_bytes / max_bytes to accept it)",
                transient=False,
            )

    def write(self, data: bytes) -> None:
        """Append ``data``, enforcing the size cap."""
        self.check_size(self.size + len(data))
        self._file.write(data)
        self.size += len(data)

    def expect(self, response: httpx.Response) -> int | None:
        """Check a response's ``Content-Length`` against the cap before reading; return it."""
        try:
            expected = int(response.headers["Content-Length"])
        except (KeyError, ValueError):
            return None
        self.check_size(expected)
        return expected

    def check_complete(self, response: httpx.Response, expected: int | None) -> None:
        """Compare the bytes received with ``Content-Length`` (transient error when short)."""
        received = response.num_bytes_downloaded
        if expected is not None and received != expected:
            raise DownloadError(
                f"Download of {self.label} was truncated: received {received} of {expected} bytes",
                transient=True,
            )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        try:
            if exc is None:
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            if exc is None:
                os.replace(self.temp_path, self.path)
                _fsync_dir(self.path.parent)
                logger.debug("Wrote %s (%d bytes)", self.path, self.size)
        finally:
            if self.temp_path.exists():
                self.temp_path.unlink()
        if isinstance(exc, httpx.RequestError):
            raise DownloadError(
                f"Download of {self.label} broke after {self.size} bytes: {type(exc).__name__}: {exc}",
                transient=True,
            ) from exc
        return False


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


#: Base64 is decoded in slices of this many characters (a multiple of 4: 4 MiB of text, 3 MiB of video).
B64_SLICE = 4 * 1024 * 1024


def b64_text(source: Any) -> str:
    """Return the base64 text of a ``VideoItem`` (``b64_json``), a ``VideoResult`` (first video) or a str.

    Raises:
        DownloadError: The source holds no ``b64_json`` (permanent).

    Example:
        >>> from seedance_prefect.models import VideoItem
        >>> b64_text(VideoItem(b64_json="aGk=")), b64_text("aGk=")
        ('aGk=', 'aGk=')
    """
    if isinstance(source, str):
        return source
    videos = getattr(source, "videos", None)
    if videos:
        source = videos[0]
    text = getattr(source, "b64_json", None)
    if not text:
        raise DownloadError(f"{type(source).__name__} has no b64_json data to save", transient=False)
    return str(text)


def iter_b64_chunks(text: str, slice_chars: int = B64_SLICE) -> Iterator[bytes]:
    """Decode base64 ``text`` slice by slice, never holding a second full copy of the data.

    A ``data:...;base64,`` prefix is skipped; whitespace (line-wrapped base64) and missing padding
    are accepted.

    Raises:
        DownloadError: The text is not base64 (permanent).

    Example:
        >>> b"".join(iter_b64_chunks("data:video/mp4;base64,aGVsbG8gd29y\\nbGQ", slice_chars=4))
        b'hello world'
    """
    if slice_chars <= 0 or slice_chars % 4:
        raise ValueError("slice_chars must be a positive multiple of 4")
    start = text.index(",", 0, 200) + 1 if text.startswith("data:") and "," in text[:200] else 0
    if re.search(r"\s", text):
        text, start = re.sub(r"\s+", "", text[start:]), 0
    end = len(text)
    for offset in range(start, end, slice_chars):
        piece = text[offset : min(offset + slice_chars, end)]
        if offset + slice_chars >= end and len(piece) % 4:
            piece += "=" * (-len(piece) % 4)
        try:
            yield base64.b64decode(piece, validate=True)
        except ValueError as exc:
            message = f"Invalid base64 video data near character {offset}: {exc}"
            raise DownloadError(message, transient=False) from None


def save_b64_file(text: str, path: Path, max_bytes: int | None) -> Path:
    """Decode base64 ``text`` into ``path`` atomically (the body of ``save_b64`` in both twins).

    Raises:
        DownloadError: The text is not base64, or decodes to more than ``max_bytes`` (nothing is kept).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "v.mp4"
        >>> save_b64_file("aGVsbG8=", target, max_bytes=None).read_bytes()
        b'hello'
    """
    with AtomicFile(path, max_bytes=max_bytes, label="base64 video") as out:
        for chunk in iter_b64_chunks(text):
            out.write(chunk)
    return path
