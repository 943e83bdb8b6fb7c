"""References of a manifest kept in storage: resolved against the manifest, fetched, never local files.

A manifest read from a URL (``s3://``, ``https://``, any fsspec URL) is written by whoever can
write that object, who is not necessarily the owner of the machine that runs it. So its rows may
name only:

- **paths relative to the manifest**, resolved against the manifest's own folder
  (``refs/a.png`` in ``s3://bucket/manifests/nightly.jsonl`` is ``s3://bucket/manifests/refs/a.png``)
  and never above it (``../x.png`` is refused); they are fetched into a local cache
  (:func:`fetch_reference`) and then prepared and hosted like any local file;
- **https/http URLs** and **data: URIs**, sent as they are (the service fetches URLs).

Local files (an absolute path, ``~/...``, a ``file://`` URI, a Windows drive path) are refused
with a row problem unless the run allows them (``--allow-local-references``,
``allow_local_references=True``): otherwise whoever writes the manifest could make a worker read
its own files and send them to the API. With the permission, local files are used as named and
relative paths may also climb above the manifest's folder (not above the bucket or host).

Example:
    >>> classify_reference("refs/a.png#t=1,3", "s3://bucket/manifests/nightly.jsonl")
    ('remote', 's3://bucket/manifests/refs/a.png#t=1,3')
    >>> classify_reference("/home/me/private.png", "s3://bucket/manifests/nightly.jsonl")
    ('local', '/home/me/private.png')
    >>> classify_reference("https://example.com/a.png", "s3://bucket/m.jsonl")
    ('as-is', 'https://example.com/a.png')
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import tempfile
import urllib.parse
from pathlib import Path
from typing import Literal

from ..errors import FieldProblem

__all__ = [
    "MAX_REFERENCE_FETCH_BYTES",
    "classify_reference",
    "fetch_reference",
    "is_remote_manifest",
    "local_reference_problem",
]

#: Our choice: the largest reference fetched from a manifest's store (fixes may shrink it after).
MAX_REFERENCE_FETCH_BYTES = 512 * 1024 * 1024
ReferenceClass = Literal["remote", "local", "as-is", "outside"]
_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):")
_DRIVE_RE = re.compile(r"^[a-zA-Z]:[\\/]")
LOCAL_FIX = (
    "put the file beside the manifest in the same store and give its path relative to the manifest, "
    "or give an https URL; if you trust whoever writes the manifest, allow local files with "
    "--allow-local-references (flow parameter allow_local_references=True)"
)


def is_remote_manifest(source: str | os.PathLike[str]) -> bool:
    """Whether a manifest source is a URL (not a local path nor a ``file://`` URI).

    Example:
        >>> [is_remote_manifest(s) for s in ("s3://b/m.jsonl", "file:///m.jsonl", "m.csv")]
        [True, False, False]
    """
    text = str(source)
    return "://" in text and not text.lower().startswith("file://")


def _manifest_folder(manifest_url: str) -> tuple[str, str]:
    """Split a manifest URL into ``(scheme://host, folder path)``; the path starts with ``/``."""
    parts = urllib.parse.urlsplit(manifest_url)
    return f"{parts.scheme}://{parts.netloc}", posixpath.dirname(parts.path) or "/"


def classify_reference(
    uri: str, manifest_url: str, *, allow_local: bool = False
) -> tuple[ReferenceClass, str]:
    """Say what a reference of a manifest read from ``manifest_url`` is, and where its bytes are.

    Args:
        uri: The reference as written in the row (maybe with ``#t=in,out``).
        manifest_url: The manifest's URL.
        allow_local: Whether relative paths may climb above the manifest's folder.

    Returns:
        ``(class, value)``: ``"remote"`` and the absolute URL to fetch (fragment kept);
        ``"local"`` and the reference (a local file); ``"outside"`` and the URL it would be (a
        relative path above the manifest's folder, or above the store's root); ``"as-is"`` and the
        reference (an http(s) URL, a data: URI, another scheme: sent or checked as it is).

    Example:
        >>> classify_reference("../a.png", "s3://b/m/n.jsonl")
        ('outside', 's3://b/a.png')
        >>> classify_reference("../a.png", "s3://b/m/n.jsonl", allow_local=True)
        ('remote', 's3://b/a.png')
        >>> classify_reference("~/a.png", "https://h/m.csv")[0], classify_reference("file:///a.png", "s3://b/m")[0]
        ('local', 'local')
    """
    text = uri.strip()
    if text.startswith(("/", "~", "\\")) or _DRIVE_RE.match(text) or text[:5].lower() == "file:":
        return "local", uri
    if _SCHEME_RE.match(text):
        return "as-is", uri
    path, sep, fragment = text.partition("#t=")
    if not path:
        return "as-is", uri
    root, folder = _manifest_folder(manifest_url)
    relative = posixpath.normpath(urllib.parse.unquote(path))
    parts = relative.split("/")
    climbs = next((i for i, part in enumerate(parts) if part != ".."), len(parts))
    joined = posixpath.normpath(posixpath.join(folder, relative))
    url = root + urllib.parse.quote(joined, safe="/~@!$&'()*+,;=:") + (sep + fragment if sep else "")
    depth = len([part for part in folder.split("/") if part])
    if climbs > depth or (climbs and not allow_local):
        return "outside", url
    return "remote", url


def local_reference_problem(field: str, uri: str, manifest_url: str, outside: bool = False) -> FieldProblem:
    """The row problem of a reference a manifest kept in storage may not name.

    Example:
        >>> print(local_reference_problem("input_images[0]", "/home/me/p.png", "s3://b/m.jsonl"))
        ... # doctest: +ELLIPSIS
        input_images[0]: Local file named by a manifest read from s3://b/m.jsonl (limit: ...
    """
    if outside:
        return FieldProblem(
            field,
            f"Path above the folder of the manifest read from {manifest_url}",
            limit="relative paths stay in the manifest's folder and below it",
            found=uri,
            fix=LOCAL_FIX,
        )
    return FieldProblem(
        field,
        f"Local file named by a manifest read from {manifest_url}",
        limit="a manifest kept in storage names files beside it (relative paths) or URLs, not this "
        "machine's files",
        found=uri,
        fix=LOCAL_FIX,
    )


def fetch_reference(url: str, cache_dir: str | os.PathLike[str]) -> Path:
    """Download a reference (an fsspec URL) into a local cache; return the local file.

    The file is named by the URL and the object's version (ETag, else size and modification time),
    so a second fetch of an unchanged object reads nothing but its metadata and gives the same
    path (and so the same journal fingerprint), while a changed object gets a new file.

    Args:
        url: The reference's URL, without ``#t=``.
        cache_dir: Folder of the cache.

    Returns:
        The local copy.

    Raises:
        FileNotFoundError: No object at the URL.
        OSError: It cannot be read, or is over :data:`MAX_REFERENCE_FETCH_BYTES`.

    Example:
        >>> import fsspec, tempfile
        >>> with fsspec.open("memory://store/refs/a.txt", "wb") as f: _ = f.write(b"hello")
        >>> local = fetch_reference("memory://store/refs/a.txt", tempfile.mkdtemp())
        >>> again = fetch_reference("memory://store/refs/a.txt", local.parents[2])
        >>> local.name, local.read_bytes(), local == again
        ('a.txt', b'hello', True)
    """
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    info = fs.info(path)
    if info.get("type") == "directory":
        raise IsADirectoryError(f"{url} is a folder")
    size = info.get("size")
    if size is not None and int(size) > MAX_REFERENCE_FETCH_BYTES:
        raise OSError(f"{url} has {int(size):,} bytes (at most {MAX_REFERENCE_FETCH_BYTES:,} are fetched)")
    version = (
        str(info.get("ETag") or info.get("etag") or "")
        or f"{size}:{info.get('mtime') or info.get('LastModified')}"
    )
    key = hashlib.sha256(f"{url}\n{version}".encode()).hexdigest()[:32]
    name = posixpath.basename(urllib.parse.urlsplit(url).path) or "reference"
    target = Path(cache_dir) / "manifest-references" / key / name
    if target.is_file() and (size is None or target.stat().st_size == int(size)):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, fs.open(path, "rb") as source:
            total = 0
            while chunk := source.read(1024 * 1024):
                total += len(chunk)
                if total > MAX_REFERENCE_FETCH_BYTES:
                    raise OSError(f"{url} is over {MAX_REFERENCE_FETCH_BYTES:,} bytes")
                out.write(chunk)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
