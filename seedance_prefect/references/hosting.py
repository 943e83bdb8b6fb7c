"""Make local reference files reachable by the service, through a small strategy interface.

A :class:`Hosting` strategy turns a local file into a URI the service can read. Files are named
by the sha256 of their bytes (``<sha256>.<ext>``), so the same reference is uploaded once across
runs: each strategy checks first whether the object is already there.

- :class:`DataUriHosting` (``"data"``, the default when no repository is configured): the bytes
  inline as a base64 ``data:`` URI. The API's per-file limits keep these small; some upstream
  hosts refuse base64 *videos*, so prefer a repository or a bucket for videos in production.
- :class:`OxenRepositoryHosting` (``"oxen"``): ``PUT /api/repos/{ns}/{repo}/file/{branch}/{path}``
  (multipart ``file`` field, one commit), then the file's ``.../file/...`` URL. A ``HEAD`` first:
  an existing file is not uploaded again. The API key goes to the hub's own origin only. The
  repository must be readable by the service (a public repository).
- :class:`S3PresignedHosting` (``"s3-bucket/<block-name>"``): upload to an S3 (or MinIO) bucket
  through a prefect-aws ``S3Bucket`` block, then a presigned GET URL (default one hour). The URL
  of an object is remembered (``cache/presigned-urls.json`` in the state store,
  :mod:`seedance_prefect.state`, written with compare-and-swap) and reused while more than half of
  its validity remains, so re-runs, on this machine or on any machine sharing the store, send the
  same request (same fingerprint) and reattach to the same generation.

http(s) URLs never reach a strategy: they pass through unchanged.

Example:
    >>> import tempfile, pathlib, hashlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"; _ = p.write_bytes(b"hi")
    >>> DataUriHosting().host(p, mime="text/plain", sha256=hashlib.sha256(b"hi").hexdigest())
    'data:text/plain;base64,aGk='
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._blocks import load_block, parse_block_ref
from ..errors import HostingError
from ..limits import DEFAULT_BASE_URL
from ..media.probe import MediaInfo, probe_path
from ..settings import get_settings
from ..state import LocalStateStore, StateConflict, StateStore, resolve_state

if TYPE_CHECKING:  # httpx is imported when an upload happens: `seedance plan` stays light
    import httpx

__all__ = [
    "EXTENSIONS",
    "MIME_TYPES",
    "DataUriHosting",
    "Hosting",
    "HostingError",
    "OxenRepositoryHosting",
    "S3PresignedHosting",
    "host_reference",
    "hosting_from_spec",
    "mime_type",
    "object_name",
    "to_data_uri",
]

MIME_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
}
#: MIME type -> file extension of hosted objects.
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
}
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def mime_type(info: MediaInfo) -> str:
    """Return the MIME type of a probed file (``application/octet-stream`` when unknown).

    Example:
        >>> mime_type(MediaInfo(kind="video", container="mov", size_bytes=1))
        'video/quicktime'
    """
    return MIME_TYPES.get(info.container or "", "application/octet-stream")


def object_name(sha256: str, mime: str) -> str:
    """The content-addressed name of a hosted file: ``<sha256>.<ext>``.

    Example:
        >>> object_name("ab" * 32, "video/mp4")[-8:]
        'abab.mp4'
    """
    return f"{sha256}.{EXTENSIONS.get(mime, 'bin')}"


def to_data_uri(path: str | os.PathLike[str], mime: str) -> str:
    """Return a file's bytes as a base64 ``data:`` URI.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"; _ = p.write_bytes(b"hi")
        >>> to_data_uri(p, "text/plain")
        'data:text/plain;base64,aGk='
    """
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


def host_reference(uri: str) -> str:
    """Return what to send for one reference without preprocessing: local files inlined.

    Args:
        uri: An http(s) URL, a data: URI, a ``file://`` URI or an absolute local path.

    Returns:
        A URI the service can read (URLs and data: URIs as they are).

    Example:
        >>> host_reference("https://example.com/a.png")
        'https://example.com/a.png'
    """
    if uri.startswith(("http://", "https://", "data:")):
        return uri
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    return to_data_uri(path, mime_type(probe_path(path)))


@runtime_checkable
class Hosting(Protocol):
    """A way to make a local file reachable by the service.

    Attributes:
        name: Short name shown in fix tables and logs (``"data"``, ``"oxen:ns/repo"``...).
    """

    name: str

    def host(self, path: Path, *, mime: str, sha256: str) -> str:
        """Return a URI the service can read for ``path`` (uploading it if needed).

        Args:
            path: The local file (already compliant).
            mime: Its MIME type.
            sha256: Hex sha256 of its bytes (names the hosted object).
        """
        ...


class DataUriHosting:
    """Inline files as base64 ``data:`` URIs (no upload, nothing leaves the request).

    Args:
        max_bytes: Refuse files larger than this (None: only the API's per-file limits apply).

    Example:
        >>> DataUriHosting(max_bytes=1).name
        'data'
    """

    name = "data"

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes

    def host(self, path: Path, *, mime: str, sha256: str) -> str:
        """Return the file as a data: URI."""
        size = Path(path).stat().st_size
        if self.max_bytes is not None and size > self.max_bytes:
            raise HostingError(
                f"{path} is {size:,} bytes, over the {self.max_bytes:,} bytes allowed inline as a data: URI; "
                "host it in an Oxen repository (hosting='oxen') or a bucket (hosting='s3-bucket/<block>')"
            )
        return to_data_uri(path, mime)


def _httpx() -> Any:
    import httpx

    return httpx


def _split_repository(repository: str) -> tuple[str, str]:
    parts = [p for p in repository.strip().strip("/").split("/") if p]
    if len(parts) != 2:
        raise HostingError(f"repository must be 'namespace/name', not {repository!r}")
    return parts[0], parts[1]


class OxenRepositoryHosting:
    """Upload files to an Oxen repository and return their file URLs.

    Args:
        repository: ``"namespace/name"``; it must exist and be readable by the service.
        api_key: The Oxen API key (sent to the hub's own origin only).
        base_url: API base URL (``https://hub.oxen.ai/api``, or the emulator's).
        branch: Branch to commit to.
        folder: Folder of the repository the files go to.
        http_client: An ``httpx.Client`` to use (not closed here); default: one per call.
        timeout: Seconds per request (uploads of 50 MB need a generous value).
        retries: Tries again after 408/429/5xx answers or broken connections (PUT is idempotent).

    Example:
        >>> h = OxenRepositoryHosting("ada/refs", api_key="k", base_url="https://hub.oxen.ai/api")
        >>> h.name, h.file_url("abc.png")
        ('oxen:ada/refs', 'https://hub.oxen.ai/api/repos/ada/refs/file/main/seedance-references/abc.png')
    """

    def __init__(
        self,
        repository: str,
        *,
        api_key: Any,
        base_url: str = DEFAULT_BASE_URL,
        branch: str = "main",
        folder: str = "seedance-references",
        http_client: httpx.Client | None = None,
        timeout: float = 300.0,
        retries: int = 3,
    ) -> None:
        from ..client._http import OriginAuth, resolve_api_key, resolve_base_url

        self.namespace, self.repo = _split_repository(repository)
        self.base_url = resolve_base_url(base_url)
        self.branch, self.folder = branch.strip("/"), folder.strip("/")
        self._auth = OriginAuth(resolve_api_key(api_key), self.base_url)
        self._client = http_client
        self._timeout = timeout
        self._retries = retries
        self.name = f"oxen:{self.namespace}/{self.repo}"

    @classmethod
    def from_credentials(
        cls, credentials: Any, repository: str | None = None, **kwargs: Any
    ) -> OxenRepositoryHosting:
        """Build from an ``OxenCredentials`` block (its key, base URL and ``repository``).

        Raises:
            HostingError: No repository given and none on the block.
        """
        repo = repository or getattr(credentials, "repository", None)
        if not repo:
            raise HostingError(
                "Oxen repository hosting needs a repository (namespace/name): set it on the credentials "
                "block or pass repository="
            )
        return cls(repo, api_key=credentials.api_key, base_url=credentials.base_url, **kwargs)

    def _path(self, name: str) -> str:
        parts = [self.namespace, self.repo, self.branch, *self.folder.split("/"), name]
        q = [urllib.parse.quote(p, safe="") for p in parts if p]
        return "/".join(["repos", q[0], q[1], "file", *q[2:]])

    def file_url(self, name: str) -> str:
        """The URL of a file in the repository folder."""
        return f"{self.base_url}/{self._path(name)}"

    def _send(self, client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
        delay = 0.5
        for attempt in range(self._retries + 1):
            try:
                response = client.request(method, url, auth=self._auth, timeout=self._timeout, **kwargs)
            except _httpx().TransportError as exc:
                if attempt == self._retries:
                    raise HostingError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
            else:
                if response.status_code not in _RETRY_STATUS or attempt == self._retries:
                    return response
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
            if "files" in kwargs:  # rewind the file for the next try
                for _field, (_n, fh, _m) in kwargs["files"].items():
                    fh.seek(0)
        raise AssertionError("unreachable")

    def _exists(self, client: httpx.Client, url: str) -> bool:
        response = self._send(client, "HEAD", url)
        if response.status_code == 405:
            with client.stream("GET", url, auth=self._auth, timeout=self._timeout) as streamed:
                return streamed.status_code == 200
        return response.status_code == 200

    def host(self, path: Path, *, mime: str, sha256: str) -> str:
        """Upload the file unless the repository already has it; return its URL.

        Raises:
            HostingError: The upload was refused (the answer's text is included).
        """
        name = object_name(sha256, mime)
        url = self.file_url(name)
        client = self._client or _httpx().Client()
        try:
            if self._exists(client, url):
                return url
            with Path(path).open("rb") as fh:
                response = self._send(
                    client,
                    "PUT",
                    url,
                    files={"file": (name, fh, mime)},
                    data={"message": f"seedance reference {name}"},
                )
            if response.status_code >= 400:
                detail = self._auth.redact(response.text[:300])
                raise HostingError(
                    f"Upload of {path} to {self.name} refused: HTTP {response.status_code} {detail}"
                )
            return url
        finally:
            if self._client is None:
                client.close()


#: Key of the presigned-URL record in a state store (``~/.seedance/cache/presigned-urls.json`` by default).
RECORD_KEY = "cache/presigned-urls.json"
_RECORD_TRIES = 20


class S3PresignedHosting:
    """Upload files to an S3/MinIO bucket and return presigned GET URLs.

    Args:
        bucket: A prefect-aws ``S3Bucket`` block (or anything with ``bucket_name``,
            ``bucket_folder`` and ``credentials.get_s3_client()``).
        expires: Validity of the presigned URLs, seconds.
        folder: Key prefix (default: the block's ``bucket_folder``, then ``seedance-references``).
        record: JSON file remembering the URLs handed out, so re-runs reuse them (None: no record).
        client: A boto3 S3 client to use instead of the block's.
        store: A state store holding the record instead of ``record`` (shared by the machines that
            use it), under ``record_key``.
        record_key: The record's key in ``store``.

    Example:
        ```python
        from prefect_aws import S3Bucket
        hosting = S3PresignedHosting(S3Bucket.load("references"), expires=3600)
        ```
    """

    def __init__(
        self,
        bucket: Any = None,
        *,
        expires: int = 3600,
        folder: str | None = None,
        record: str | os.PathLike[str] | None = None,
        client: Any = None,
        bucket_name: str | None = None,
        store: StateStore | None = None,
        record_key: str = RECORD_KEY,
    ) -> None:
        self.bucket_name = bucket_name or getattr(bucket, "bucket_name", None)
        if not self.bucket_name:
            raise HostingError("S3 hosting needs a bucket (an S3Bucket block or bucket_name=)")
        default_folder = getattr(bucket, "bucket_folder", "") or "seedance-references"
        self.folder = (default_folder if folder is None else folder).strip("/")
        self.expires = expires
        self._bucket = bucket
        self._client = client
        self._store: StateStore | None = store
        self._record_key = record_key
        if store is None and record:
            self._store, self._record_key = LocalStateStore(Path(record).parent), Path(record).name
        self.name = f"s3:{self.bucket_name}"

    @property
    def client(self) -> Any:
        """The boto3 S3 client."""
        if self._client is None:
            self._client = self._bucket.credentials.get_s3_client()
        return self._client

    def key(self, name: str) -> str:
        """The object key of a hosted file."""
        return f"{self.folder}/{name}" if self.folder else name

    def _load_record(self) -> tuple[dict[str, Any], str | None]:
        """The URL record and its version (None: no record yet, or no store)."""
        if self._store is None:
            return {}, None
        found = self._store.read(self._record_key)
        if found is None:
            return {}, None
        try:
            data = json.loads(found.data)
        except ValueError:
            data = {}
        return (data if isinstance(data, dict) else {}), found.version

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket_name, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise HostingError(f"Cannot check s3://{self.bucket_name}/{key}: {exc}") from exc
        return True

    def host(self, path: Path, *, mime: str, sha256: str) -> str:
        """Upload the file unless the bucket has it; return a presigned GET URL.

        Raises:
            HostingError: The bucket refused the upload or the check.
        """
        key = self.key(object_name(sha256, mime))
        if not self._exists(key):
            self._upload(path, key, mime)
        slot = f"{self.client.meta.endpoint_url}/{self.bucket_name}/{key}"
        for _ in range(_RECORD_TRIES):
            record, version = self._load_record()
            remembered = record.get(slot)
            now = time.time()
            if isinstance(remembered, dict) and remembered.get("expires_at", 0) - now > self.expires / 2:
                return str(remembered["url"])
            url = str(
                self.client.generate_presigned_url(
                    "get_object", Params={"Bucket": self.bucket_name, "Key": key}, ExpiresIn=self.expires
                )
            )
            if self._store is None:
                return url
            record = {k: v for k, v in record.items() if isinstance(v, dict) and v.get("expires_at", 0) > now}
            record[slot] = {"url": url, "expires_at": now + self.expires}
            data = json.dumps(record, indent=1, sort_keys=True).encode()
            try:
                self._store.write(self._record_key, data, version)
                return url
            except StateConflict:
                continue  # another run (maybe on another machine) wrote first: read its URL
        return url

    def _upload(self, path: Path, key: str, mime: str) -> None:
        try:
            self.client.upload_file(str(path), self.bucket_name, key, ExtraArgs={"ContentType": mime})
        except Exception as exc:
            raise HostingError(f"Upload of {path} to s3://{self.bucket_name}/{key} failed: {exc}") from exc


def hosting_from_spec(
    spec: str | Hosting | None,
    *,
    repository: str | None = None,
    credentials: Any = None,
    state_dir: str | os.PathLike[str] | None = None,
    expires: int = 3600,
    state: str | StateStore | None = None,
) -> Hosting:
    """Choose a hosting strategy from a flow parameter.

    ``spec`` (else ``$SEEDANCE_HOSTING``): ``"data"``; ``"oxen"`` (repository from ``repository``,
    else ``$SEEDANCE_REPOSITORY``, else the credentials block's ``repository``);
    ``"s3-bucket/<block-name>"`` (a saved prefect-aws ``S3Bucket`` block); a :class:`Hosting`
    instance as it is. Nothing given: ``"oxen"`` when a repository is configured, else ``"data"``.

    Args:
        spec: The choice, as above.
        repository: Oxen repository ``namespace/name``.
        credentials: An ``OxenCredentials`` block (key and base URL for ``"oxen"``).
        state_dir: Folder of the S3 URL record when no state store is named.
        expires: Validity of presigned URLs, seconds.
        state: The state store of the S3 URL record (``cache/presigned-urls.json`` in it), the same
            as the journal's so that machines sharing it post the same request; None:
            ``$SEEDANCE_STATE`` when set, else ``<state_dir>/presigned-urls.json``.

    Returns:
        The strategy.

    Raises:
        HostingError: An unknown spec, or ``"oxen"`` without a repository or credentials.
        InvalidRequest: ``"s3-bucket/<name>"`` naming no saved block, or without the ``s3`` extra
            (the same error as the same value given as a delivery target).

    Example:
        >>> hosting_from_spec(None).name, hosting_from_spec("data").name
        ('data', 'data')
        >>> hosting_from_spec("ftp")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        seedance_prefect.errors.HostingError: Unknown hosting 'ftp': use "data", "oxen" or ...
    """
    if spec is not None and not isinstance(spec, str):
        return spec
    settings = get_settings()
    repository = repository or settings.repository or getattr(credentials, "repository", None)
    choice = (spec or settings.hosting or ("oxen" if repository else "data")).strip()
    if choice == "data":
        return DataUriHosting()
    if choice == "oxen":
        if credentials is None:
            raise HostingError("Oxen repository hosting needs the account's credentials")
        return OxenRepositoryHosting.from_credentials(credentials, repository)
    ref = parse_block_ref(choice)
    if ref and ref[0] == "s3-bucket":
        bucket = load_block(*ref, field="hosting")
        if state is not None or settings.state:
            return S3PresignedHosting(bucket, expires=expires, store=resolve_state(state))
        record = Path(state_dir) / "presigned-urls.json" if state_dir else None
        return S3PresignedHosting(bucket, expires=expires, record=record)
    raise HostingError(f'Unknown hosting {choice!r}: use "data", "oxen" or "s3-bucket/<block-name>"')
