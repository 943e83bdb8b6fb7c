"""A state store in an S3 bucket (AWS S3, MinIO, or any service with S3 conditional writes).

One object per key under a prefix, written with S3's conditional writes through boto3:

- create: ``PutObject`` with ``If-None-Match: *`` (the service refuses it when the key exists);
- replace: ``PutObject`` with ``If-Match: <ETag>`` (refused when the object changed);
- a refusal, ``412 PreconditionFailed`` or ``409 ConditionalRequestConflict`` (two conditional writes
  of one key in flight at once), is a :class:`~seedance_prefect.errors.StateConflict`;
- the version is the ETag (the MD5 of the bytes for a plain ``PutObject``).

The client is boto3's own (``boto3.client("s3")``), so the standard AWS environment applies
(``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``...), or the client of a saved prefect-aws
``S3Bucket`` block (:meth:`S3StateStore.from_block`). boto3 comes with the ``s3`` extra.

The service must enforce both conditions: AWS S3 does (since 2024), as do recent MinIO releases and
moto; a service that ignores ``If-None-Match`` would let two machines both win a claim.

Example:
    >>> store = S3StateStore.from_url("s3://my-bucket/seedance/state")
    >>> store.bucket, store.prefix, store.url
    ('my-bucket', 'seedance/state/', 's3://my-bucket/seedance/state/')
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..errors import FieldProblem, InvalidRequest
from .base import StateConflict, StateError, StateStore, Versioned, check_key

__all__ = ["S3_EXTRA", "S3StateStore"]

#: How to install boto3.
S3_EXTRA = "pip install 'seedance-prefect[s3]'"

_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


_LOADER: Any = None
_LOADER_LOCK = threading.Lock()


def _boto3_client() -> Any:
    """``boto3.client("s3")`` from the environment, in a session of its own (sessions are not
    thread-safe) that shares botocore's model loader with the others: 13 ms instead of 70 ms."""
    global _LOADER
    try:
        import boto3
        import botocore.session
    except ImportError:
        problem = FieldProblem(
            "state", "An S3 state store needs boto3", found="boto3 is not installed", fix=S3_EXTRA
        )
        raise InvalidRequest([problem]) from None
    core = botocore.session.get_session()
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = core.get_component("data_loader")
        else:
            core.register_component("data_loader", _LOADER)
    return boto3.session.Session(botocore_session=core).client("s3")


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code or str(status or "")


class S3StateStore(StateStore):
    """Keys as objects under ``s3://<bucket>/<prefix>``, written with conditional ``PutObject``.

    Args:
        bucket: The bucket (it must exist).
        prefix: Key prefix (``""`` or a folder; a trailing ``/`` is added).
        client: A boto3 S3 client; default: ``boto3.client("s3")`` from the environment, made on
            first use.
        client_factory: Makes the client on first use instead (e.g. a block's ``get_s3_client``).

    Example:
        >>> S3StateStore("b", "a/b").url
        's3://b/a/b/'
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 state store needs a bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self._client = client
        self._factory = client_factory or _boto3_client
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, client: Any = None) -> S3StateStore:
        """A store from ``s3://bucket/prefix/``.

        Raises:
            ValueError: Not an ``s3://`` URL with a bucket.
        """
        scheme, _, rest = url.partition("://")
        bucket, _, prefix = rest.partition("/")
        if scheme.lower() != "s3" or not bucket:
            raise ValueError(f"not an s3://bucket/prefix/ URL: {url!r}")
        return cls(bucket, prefix, client=client)

    @classmethod
    def from_block(cls, block: Any) -> S3StateStore:
        """A store in a prefect-aws ``S3Bucket`` block's bucket, under its ``bucket_folder``.

        The block's own credentials make the client (``block.credentials.get_s3_client()``; AWS or
        MinIO credentials, with their endpoint).
        """
        return cls(
            str(block.bucket_name),
            str(getattr(block, "bucket_folder", "") or ""),
            client_factory=lambda: block.credentials.get_s3_client(),
        )

    @property
    def client(self) -> Any:
        """The boto3 S3 client (made on first use; boto3 clients are thread-safe)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
        return self._client

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, what: str, key: str, exc: Exception) -> StateError:
        return StateError(f"Cannot {what} {self.url}{key}: {exc}")

    def read(self, key: str) -> Versioned | None:
        """``GetObject``: the bytes and their ETag, or None."""
        client, name = self.client, self._key(key)
        try:
            answer = client.get_object(Bucket=self.bucket, Key=name)
            data = answer["Body"].read()
        except Exception as exc:
            if _code(exc) in _MISSING_CODES:
                return None
            raise self._fail("read", key, exc) from exc
        return Versioned(data, str(answer["ETag"]))

    def _put(self, key: str, data: bytes, what: str, **condition: str) -> str:
        client, name = self.client, self._key(key)
        try:
            answer = client.put_object(Bucket=self.bucket, Key=name, Body=data, **condition)
        except Exception as exc:
            code = _code(exc)
            if code in _CONFLICT_CODES:
                raise StateConflict(f"{key} {what} ({code})") from None
            if code in _MISSING_CODES and "IfMatch" in condition:
                raise StateConflict(f"{key} was deleted since it was read") from None
            raise self._fail("write", key, exc) from exc
        return str(answer["ETag"])

    def create(self, key: str, data: bytes) -> str:
        """``PutObject`` with ``If-None-Match: *``.

        Raises:
            StateConflict: The key exists.
        """
        return self._put(key, data, "exists already", IfNoneMatch="*")

    def replace(self, key: str, data: bytes, version: str) -> str:
        """``PutObject`` with ``If-Match: <version>``.

        Raises:
            StateConflict: The object changed or was deleted.
        """
        return self._put(key, data, "changed since it was read", IfMatch=version)

    def delete(self, key: str) -> None:
        """``DeleteObject`` (a missing key is not an error)."""
        client, name = self.client, self._key(key)
        try:
            client.delete_object(Bucket=self.bucket, Key=name)
        except Exception as exc:
            if _code(exc) not in _MISSING_CODES:
                raise self._fail("delete", key, exc) from exc

    def list(self, prefix: str = "") -> list[str]:
        """``ListObjectsV2``: the keys under ``prefix``, oldest first (``LastModified``, then key)."""
        found: list[tuple[Any, str]] = []
        client = self.client
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found.append((item["LastModified"], str(item["Key"])[len(self.prefix) :]))
        except Exception as exc:
            raise self._fail("list", prefix, exc) from exc
        return [key for _, key in sorted(found)]

    def describe(self) -> str:
        """One line naming the store."""
        return f"S3 bucket {self.bucket!r} under {self.prefix or '/'} (shared by every machine that uses it)"
