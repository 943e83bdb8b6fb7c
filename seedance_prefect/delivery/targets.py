"""Delivery targets: a local folder, any fsspec URL, or a saved Prefect storage block.

:func:`resolve_target` turns what the user wrote into a :class:`DeliveryTarget`:

- ``None`` or a local path: :class:`LocalFolderTarget` (temp file + rename, see
  :func:`~seedance_prefect.delivery.deliver_to_folder`);
- a URL with a scheme (``s3://bucket/prefix/``, ``memory://videos``, ``file:///data/videos``, any
  fsspec protocol): :class:`FsspecTarget`. ``s3://`` needs ``s3fs`` (``pip install
  'seedance-prefect[s3]'``) and honours the standard AWS environment (``AWS_PROFILE``,
  ``AWS_ACCESS_KEY_ID``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``...);
- ``"<block-type-slug>/<block-name>"`` for a saved block: ``local-file-system/NAME``,
  ``remote-file-system/NAME`` (its ``basepath`` URL and ``settings``) or, with prefect-aws,
  ``s3-bucket/NAME`` (:class:`S3BucketTarget`, uploads with ``S3Bucket.upload_from_path``).

Every target delivers the video and its JSON sidecar, and keeps the folder delivery's rules:

- **Whole or not at all.** Object stores (``s3``, ``gs``, ``az``...) make an object visible only
  when its upload completed (a single PUT, or the final step of a multipart upload), so the video
  is uploaded to its final key directly. Other filesystems get a hidden temporary name in the same
  folder, then a rename.
- **Verified.** The stored size is read back (HEAD / ``info``) and the stored bytes are read back
  and hashed; on any difference the stored object is deleted and :class:`DeliveryError` raised.
  S3 objects also carry the sha256 in their metadata (``x-amz-meta-sha256``).
- **Never a silent overwrite.** The same bytes under the same name are reused (a re-run costs one
  read-back, no upload); different bytes get a name with the generation id, as in folders.
- **Already there?** :meth:`DeliveryTarget.find_delivered` tells, cheaply, whether a delivery the
  journal recorded is in *this* target: its recorded location is under :attr:`DeliveryTarget.url`
  and the object there has the recorded size (from the journal, or from the sidecar beside it when
  that sidecar names the recorded sha256; with neither, the stored bytes are hashed).

Example:
    >>> target = resolve_target("memory://doctest-videos", None)
    >>> type(target).__name__, target.url
    ('FsspecTarget', 'memory:///doctest-videos')
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from .._blocks import load_block, parse_block_ref
from .._files import file_sha256
from ..errors import DeliveryError, FieldProblem, InvalidRequest
from .folder import DeliveredVideo, deliver_to_folder, safe_name

__all__ = [
    "BLOCK_TYPES",
    "DeliveryError",
    "DeliveryTarget",
    "FsspecTarget",
    "LocalFolderTarget",
    "S3BucketTarget",
    "resolve_target",
]

#: Block types a ``"<slug>/<name>"`` target may name.
BLOCK_TYPES = ("local-file-system", "remote-file-system", "s3-bucket")
#: Protocols whose PUT makes an object appear whole (no temporary name needed).
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"})
_CHUNK = 1 << 20
_MAX_CANDIDATES = 100
#: A sidecar is a few kB; more than this is not one of ours.
_MAX_SIDECAR_BYTES = 1 << 20


def _problem(found: str, message: str, fix: str) -> InvalidRequest:
    return InvalidRequest([FieldProblem("deliver_to", message, found=repr(found), fix=fix)])


class DeliveryTarget(ABC):
    """Where verified videos go. Subclasses implement :meth:`deliver`.

    Attributes:
        url: The target as a path or URL (for logs, summaries and asset keys).
    """

    url: str

    @abstractmethod
    def deliver(
        self,
        local_video: str | Path,
        name: str,
        sidecar: dict[str, Any],
        *,
        generation_id: str,
        sha256: str | None = None,
        move: bool = True,
    ) -> DeliveredVideo:
        """Deliver a local video and its sidecar under ``name`` (``<name>.mp4`` + ``<name>.json``).

        Args:
            local_video: The verified video on local disk.
            name: Base name; cleaned with :func:`~seedance_prefect.delivery.safe_name`.
            sidecar: Metadata stored next to the video (gains ``sha256``, ``size_bytes``, ``video``).
            generation_id: The generation the video came from (used in the name on a clash).
            sha256: The video's checksum if already known.
            move: Remove the local file once delivered.

        Returns:
            Where the video and the sidecar are, with their checksum and size.

        Raises:
            DeliveryError: The stored object does not match the local file.
        """

    def check(self) -> None:  # noqa: B027 - optional hook
        """Fail early (before anything is paid) when the target is clearly unusable."""

    def find_delivered(self, delivery: Mapping[str, Any]) -> DeliveredVideo | None:
        """Return a recorded delivery when this target really holds it, else None.

        Cheap on purpose (a stat or HEAD plus, at most, a read of the small sidecar): the video
        must be at its recorded location, under :attr:`url`, with the recorded size. The size is
        the journal's ``size_bytes`` when it has one, else the ``size_bytes`` of the sidecar next
        to the video when that sidecar names the recorded ``sha256``; with neither, the stored
        bytes are read and hashed. A video replaced by other bytes of the very same size, with its
        sidecar left alone, is not noticed.

        Args:
            delivery: What the journal recorded: ``generation_id``, ``video`` (path or URL),
                ``sha256`` and, when known, ``size_bytes``.

        Returns:
            The delivery as found here (``reused=True``), or None when it is elsewhere or gone.

        Example:
            >>> import tempfile, pathlib
            >>> tmp = pathlib.Path(tempfile.mkdtemp()); video = tmp / "g1.mp4"; _ = video.write_bytes(b"mp4")
            >>> d = LocalFolderTarget(tmp / "a").deliver(video, "boat", {}, generation_id="g1")
            >>> LocalFolderTarget(tmp / "a").find_delivered(d.to_dict()).reused
            True
            >>> LocalFolderTarget(tmp / "b").find_delivered(d.to_dict()) is None
            True
        """
        return None

    def asset_key(self, name: str) -> str | None:
        """Return a Prefect asset key for ``<name>.mp4`` here, or None when none fits."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class LocalFolderTarget(DeliveryTarget):
    """A folder on local disk (created when needed).

    Args:
        folder: The folder.

    Example:
        >>> import tempfile, pathlib
        >>> tmp = pathlib.Path(tempfile.mkdtemp()); video = tmp / "g1.mp4"; _ = video.write_bytes(b"mp4")
        >>> d = LocalFolderTarget(tmp / "out").deliver(video, "boat", {}, generation_id="g1")
        >>> pathlib.Path(d.video).name, d.size_bytes
        ('boat.mp4', 3)
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).expanduser().resolve()
        self.url = str(self.folder)

    def deliver(
        self,
        local_video: str | Path,
        name: str,
        sidecar: dict[str, Any],
        *,
        generation_id: str,
        sha256: str | None = None,
        move: bool = True,
    ) -> DeliveredVideo:
        """Deliver into the folder (see :func:`~seedance_prefect.delivery.deliver_to_folder`)."""
        return deliver_to_folder(
            local_video,
            self.folder,
            name,
            generation_id=generation_id,
            sidecar=sidecar,
            sha256=sha256,
            move=move,
        )

    def check(self) -> None:
        """Create the folder, or refuse a path that cannot be one."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _problem(self.url, "Cannot create the output folder", f"Check the path ({exc})") from None

    def find_delivered(self, delivery: Mapping[str, Any]) -> DeliveredVideo | None:
        """A recorded video directly in this folder, with its recorded size (see the base class)."""
        video, digest = str(delivery.get("video") or ""), str(delivery.get("sha256") or "")
        if "://" in video and not video.startswith("file://"):
            return None
        path = Path(video.removeprefix("file://"))
        if not digest or not path.is_absolute() or path.parent != self.folder:
            return None
        try:
            size = path.stat().st_size if path.is_file() else None
        except OSError:
            return None
        if size is None:
            return None
        sidecar = path.with_suffix(".json")
        expected = _recorded_size(delivery, sidecar.read_bytes)
        held = size == expected if expected is not None else file_sha256(path)[0] == digest
        if not held:
            return None
        generation_id = str(delivery.get("generation_id", ""))
        return DeliveredVideo(generation_id, str(path), str(sidecar), digest, size, reused=True)

    def asset_key(self, name: str) -> str | None:
        """``file://<folder>/<name>.mp4``."""
        return f"file://{self.folder / (safe_name(name) + '.mp4')}"


class _Store(Protocol):
    """The few object operations a delivery needs (keys are relative to the target's root)."""

    atomic_put: bool

    def size(self, key: str) -> int | None: ...
    def sha256(self, key: str) -> str: ...
    def read(self, key: str, limit: int) -> bytes: ...
    def put_file(self, local: Path, key: str, content_type: str, sha256: str | None) -> None: ...
    def move(self, src: str, dst: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def url(self, key: str) -> str: ...


def _recorded_size(delivery: Mapping[str, Any], read_sidecar: Callable[[], bytes]) -> int | None:
    """The size a recorded video must have: the journal's, or its sidecar's when that sidecar names
    the recorded sha256; None when neither tells."""
    size = delivery.get("size_bytes")
    if isinstance(size, int) and not isinstance(size, bool):
        return size
    try:
        document = json.loads(read_sidecar())
    except Exception:  # no sidecar, unreadable, not JSON: the caller hashes instead
        return None
    if not isinstance(document, dict) or document.get("sha256") != delivery.get("sha256"):
        return None
    found = document.get("size_bytes")
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def _candidates(name: str, generation_id: str) -> Iterator[str]:
    yield name
    yield f"{name}-{generation_id[:8]}"
    for i in range(2, _MAX_CANDIDATES):
        yield f"{name}-{generation_id[:8]}-{i}"


class _ObjectTarget(DeliveryTarget):
    """The delivery algorithm over a :class:`_Store` (shared by fsspec and S3Bucket targets)."""

    store: _Store

    def _put(self, local: Path, key: str, content_type: str, sha256: str | None) -> None:
        """Upload to ``key`` whole or not at all: directly on object stores, else temp + rename."""
        if self.store.atomic_put:
            self.store.put_file(local, key, content_type, sha256)
            return
        head, tail = posixpath.split(key)
        staging = posixpath.join(head, f".{tail}.{uuid.uuid4().hex[:12]}.part")
        try:
            self.store.put_file(local, staging, content_type, sha256)
            self.store.move(staging, key)
        except BaseException:
            with contextlib.suppress(Exception):
                self.store.delete(staging)
            raise

    def _verify(self, key: str, size: int, digest: str) -> None:
        stored = self.store.size(key)
        problem = None
        if stored != size:
            problem = f"stored size {stored} bytes, expected {size}"
        elif (found := self.store.sha256(key)) != digest:
            problem = f"stored sha256 {found[:16]}..., expected {digest[:16]}..."
        if problem:
            with contextlib.suppress(Exception):
                self.store.delete(key)
            raise DeliveryError(f"Delivery to {self.store.url(key)} failed verification: {problem}")

    def deliver(
        self,
        local_video: str | Path,
        name: str,
        sidecar: dict[str, Any],
        *,
        generation_id: str,
        sha256: str | None = None,
        move: bool = True,
    ) -> DeliveredVideo:
        """Upload, verify (size + sha256 read back), then write the sidecar."""
        local = Path(local_video)
        digest = sha256 or file_sha256(local)[0]
        size = local.stat().st_size
        base = safe_name(name)
        reused, key = False, None
        for candidate in _candidates(base, generation_id):
            key = f"{candidate}.mp4"
            stored = self.store.size(key)
            if stored is None:
                break
            if stored == size and self.store.sha256(key) == digest:
                reused = True
                break
        else:
            raise DeliveryError(f"No free name for {base!r} in {self.url}")
        assert key is not None
        if not reused:
            self._put(local, key, "video/mp4", digest)
            self._verify(key, size, digest)
        sidecar_key = key[: -len(".mp4")] + ".json"
        document = {**sidecar, "sha256": digest, "size_bytes": size, "video": posixpath.basename(key)}
        payload = json.dumps(document, indent=2, default=str).encode()
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.json")
        try:
            tmp.write_bytes(payload)
            self._put(tmp, sidecar_key, "application/json", None)
        finally:
            tmp.unlink(missing_ok=True)
        if self.store.size(sidecar_key) != len(payload):
            raise DeliveryError(f"Sidecar {self.store.url(sidecar_key)} was not stored whole")
        if move:
            local.unlink(missing_ok=True)
        return DeliveredVideo(
            generation_id, self.store.url(key), self.store.url(sidecar_key), digest, size, reused
        )

    def find_delivered(self, delivery: Mapping[str, Any]) -> DeliveredVideo | None:
        """A recorded video under this target's URL, with its recorded size (see the base class)."""
        video, digest = str(delivery.get("video") or ""), str(delivery.get("sha256") or "")
        prefix = self.url.rstrip("/") + "/"
        if not digest or not video.startswith(prefix) or not video.endswith(".mp4"):
            return None
        key = video[len(prefix) :]
        size = self.store.size(key)
        if size is None:
            return None
        sidecar_key = key[: -len(".mp4")] + ".json"
        expected = _recorded_size(delivery, lambda: self.store.read(sidecar_key, _MAX_SIDECAR_BYTES))
        held = size == expected if expected is not None else self.store.sha256(key) == digest
        if not held:
            return None
        return DeliveredVideo(
            str(delivery.get("generation_id", "")), video, self.store.url(sidecar_key), digest, size, True
        )

    def asset_key(self, name: str) -> str | None:
        """The video's URL."""
        return self.store.url(f"{safe_name(name)}.mp4")


class _FsspecStore:
    """:class:`_Store` over an fsspec filesystem and a root path."""

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
        self.protocol = protocols[0]
        self.atomic_put = bool(ATOMIC_PUT_PROTOCOLS.intersection(protocols))

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    def size(self, key: str) -> int | None:
        path = self._path(key)
        with contextlib.suppress(Exception):
            self.fs.invalidate_cache(path)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            raise DeliveryError(f"{self.url(key)} is a folder, not a file")
        return int(info["size"])

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(self._path(key), "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def read(self, key: str, limit: int) -> bytes:
        with self.fs.open(self._path(key), "rb") as handle:
            return bytes(handle.read(limit))

    def put_file(self, local: Path, key: str, content_type: str, sha256: str | None) -> None:
        path = self._path(key)
        parent = posixpath.dirname(path)
        if parent and not self.atomic_put:
            self.fs.makedirs(parent, exist_ok=True)
        extra: dict[str, Any] = {}
        if self.protocol in ("s3", "s3a"):
            extra["ContentType"] = content_type
            if sha256:
                extra["Metadata"] = {"sha256": sha256}
        self.fs.put_file(str(local), path, **extra)

    def move(self, src: str, dst: str) -> None:
        self.fs.mv(self._path(src), self._path(dst))

    def delete(self, key: str) -> None:
        self.fs.rm_file(self._path(key))

    def url(self, key: str) -> str:
        return str(self.fs.unstrip_protocol(self._path(key)))


class FsspecTarget(_ObjectTarget):
    """A folder or prefix on any fsspec filesystem: ``s3://bucket/prefix``, ``memory://x``, ...

    Args:
        url: The folder URL.
        fs: An fsspec filesystem to use instead of the one the URL names (e.g. a
            ``RemoteFileSystem`` block's, with its settings).
        storage_options: Options for the filesystem (ignored when ``fs`` is given).

    Example:
        >>> import tempfile, pathlib
        >>> video = pathlib.Path(tempfile.mkdtemp()) / "g1.mp4"; _ = video.write_bytes(b"mp4")
        >>> d = FsspecTarget("memory://doctest-fsspec").deliver(video, "boat", {}, generation_id="g1")
        >>> d.video, d.size_bytes
        ('memory:///doctest-fsspec/boat.mp4', 3)
    """

    def __init__(self, url: str, fs: Any = None, **storage_options: Any) -> None:
        if fs is None:
            from fsspec.core import url_to_fs

            fs, root = url_to_fs(url, **storage_options)
        else:
            root = fs._strip_protocol(url)
        self.store = _FsspecStore(fs, root)
        self.url = self.store.url("").rstrip("/")

    def check(self) -> None:
        """Refuse a missing bucket (object stores) or create the folder (other filesystems)."""
        store = self.store
        try:
            if store.atomic_put:
                bucket = store.root.split("/", 1)[0]
                if bucket and not store.fs.exists(bucket):
                    raise _problem(self.url, "The bucket does not exist", "Create it, or fix the URL")
            else:
                store.fs.makedirs(store.root or "/", exist_ok=True)
        except InvalidRequest:
            raise
        except PermissionError as exc:
            raise _problem(
                self.url, "No access to the delivery target", f"Check the credentials ({exc})"
            ) from None
        except OSError as exc:
            raise _problem(self.url, "Cannot use the delivery target", f"Check the URL ({exc})") from None


class _S3BucketStore:
    """:class:`_Store` over a prefect-aws ``S3Bucket`` block (uploads with ``upload_from_path``)."""

    atomic_put = True

    def __init__(self, block: Any) -> None:
        self.block = block
        self.client = block.credentials.get_s3_client()
        self.bucket = block.bucket_name
        self.folder = (block.bucket_folder or "").strip("/")

    def _key(self, key: str) -> str:
        return f"{self.folder}/{key}" if self.folder else key

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        for chunk in iter(lambda: body.read(_CHUNK), b""):
            digest.update(chunk)
        return digest.hexdigest()

    def read(self, key: str, limit: int) -> bytes:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=f"bytes=0-{limit - 1}")
        return bytes(body["Body"].read())

    def put_file(self, local: Path, key: str, content_type: str, sha256: str | None) -> None:
        extra: dict[str, Any] = {"ContentType": content_type}
        if sha256:
            extra["Metadata"] = {"sha256": sha256}
        self.block.upload_from_path(str(local), key, ExtraArgs=extra)

    def move(self, src: str, dst: str) -> None:  # pragma: no cover - S3 puts are atomic
        raise NotImplementedError

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}".rstrip("/")


class S3BucketTarget(_ObjectTarget):
    """A prefect-aws ``S3Bucket`` block (its bucket and ``bucket_folder``, its credentials).

    Args:
        block: The block (e.g. ``S3Bucket.load("videos")``).

    Example:
        ```python
        from prefect_aws import S3Bucket
        target = S3BucketTarget(S3Bucket.load("videos"))   # or resolve_target("s3-bucket/videos", None)
        ```
    """

    def __init__(self, block: Any) -> None:
        self.store = _S3BucketStore(block)
        self.url = self.store.url("")

    def check(self) -> None:
        """Refuse a bucket that does not exist or cannot be reached."""
        try:
            self.store.client.head_bucket(Bucket=self.store.bucket)
        except Exception as exc:
            raise _problem(
                self.url, "Cannot use the S3 bucket", f"Check the block's bucket and credentials ({exc})"
            ) from None


def _target_from_block(slug: str, name: str) -> DeliveryTarget:
    block = load_block(slug, name, field="deliver_to")
    kind = type(block).__name__
    if kind == "LocalFileSystem":
        return LocalFolderTarget(block.basepath or ".")
    if kind == "RemoteFileSystem":
        return FsspecTarget(block.basepath, fs=block.filesystem)
    if kind == "S3Bucket":
        return S3BucketTarget(block)
    raise _problem(f"{slug}/{name}", f"Unsupported block type {kind}", f"Use one of {', '.join(BLOCK_TYPES)}")


def resolve_target(deliver_to: str | None, out: str | os.PathLike[str] | None = None) -> DeliveryTarget:
    """Turn a delivery target as written by a user into a :class:`DeliveryTarget`.

    Args:
        deliver_to: A local path, an fsspec URL (``s3://bucket/prefix``) or a saved block as
            ``"<block-type-slug>/<block-name>"`` (``s3-bucket/videos``); wins over ``out``.
        out: A local output folder, used when ``deliver_to`` is not given.

    Returns:
        The target (``./seedance-output`` when neither is given).

    Raises:
        InvalidRequest: An unknown block, a block of an unsupported type, or an fsspec protocol
            whose package is not installed.

    Example:
        >>> resolve_target(None, "videos").url.endswith("videos")
        True
        >>> type(resolve_target("nightly/videos", None)).__name__  # not a block type: a local path
        'LocalFolderTarget'
    """
    if not deliver_to:
        return LocalFolderTarget(out or "seedance-output")
    text = str(deliver_to).strip()
    if "://" in text:
        try:
            return FsspecTarget(text)
        except ImportError as exc:
            raise _problem(
                text, "The storage package for this URL is not installed", f"Install it ({exc})"
            ) from None
        except ValueError as exc:
            raise _problem(text, "Unknown storage protocol", str(exc)) from None
    ref = parse_block_ref(text)
    if ref and ref[0] in BLOCK_TYPES:
        return _target_from_block(*ref)
    return LocalFolderTarget(text)
