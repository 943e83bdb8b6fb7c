"""Which state store a ``state`` value (a flag, a parameter, ``$SEEDANCE_STATE``) names.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> resolve_state(folder).url == folder
    True
    >>> resolve_state("s3://bucket/seedance/").url
    's3://bucket/seedance/'
    >>> resolve_state("gs://bucket/x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    seedance_prefect.errors.InvalidRequest: 1 problem in the request:
      - state: Unsupported state store (found: 'gs://bucket/x'). Fix: Use a folder ...
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .._blocks import load_block, parse_block_ref
from ..errors import FieldProblem, InvalidRequest
from ..settings import STATE_ENV, get_settings
from .base import StateStore
from .local import LocalStateStore
from .s3 import S3_EXTRA, S3StateStore

__all__ = ["FORMS", "resolve_state"]

#: The accepted forms, as error messages name them.
FORMS = 'a folder (/srv/seedance), "s3://bucket/prefix/" or "s3-bucket/<block-name>"'

#: Block types that could look like a state store but cannot hold one.
_OTHER_BLOCKS = {
    "local-file-system",
    "remote-file-system",
    "gcs-bucket",
    "azure-blob-storage-container",
    "smb",
}


def _bad(found: str, message: str = "Unsupported state store", source: str = "state") -> InvalidRequest:
    return InvalidRequest([FieldProblem(source, message, found=repr(found), fix=f"Use {FORMS}")])


def _require_boto3(found: str, source: str) -> None:
    if importlib.util.find_spec("boto3") is None:
        message = "An S3 state store needs boto3, which is not installed"
        raise InvalidRequest([FieldProblem(source, message, found=repr(found), fix=S3_EXTRA)])


def _from_text(text: str, source: str) -> StateStore:
    value = text.strip()
    if not value:
        raise _bad(text, "Empty state store", source)
    if "://" in value:
        scheme, _, rest = value.partition("://")
        if scheme.lower() == "file" and rest:
            return LocalStateStore(rest)
        if scheme.lower() != "s3" or not rest.split("/", 1)[0]:
            raise _bad(value, source=source)
        _require_boto3(value, source)
        return S3StateStore.from_url(value)
    ref = parse_block_ref(value)
    if ref and ref[0] == "s3-bucket":
        _require_boto3(value, source)
        return S3StateStore.from_block(load_block(*ref, field=source))
    if ref and ref[0] in _OTHER_BLOCKS:
        raise _bad(value, "Only an s3-bucket block can hold the shared state", source)
    return LocalStateStore(Path(value).expanduser())


def resolve_state(spec: str | os.PathLike[str] | StateStore | None = None) -> StateStore:
    """Return the state store named by ``spec``.

    Args:
        spec: A :class:`StateStore` (returned as it is); a folder (a path, ``~`` expanded, or a
            ``file://`` URL); ``"s3://bucket/prefix/"`` (boto3 from the standard AWS environment,
            ``AWS_ENDPOINT_URL`` included); ``"s3-bucket/<block-name>"`` (a saved prefect-aws
            ``S3Bucket`` block: its credentials, bucket and ``bucket_folder``). None:
            ``$SEEDANCE_STATE`` if set, else the folder ``$SEEDANCE_STATE_DIR``, else ``~/.seedance``.

    Returns:
        The store (nothing is read or written yet; an S3 client is made on first use).

    Raises:
        InvalidRequest: An empty value, another URL scheme, another block type, a block that is not
            saved, or S3 without boto3; the problem names the field ``state`` (or the variable
            ``SEEDANCE_STATE``), the accepted forms and the fix.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> resolve_state(LocalStateStore(folder)).url == folder
        True
        >>> resolve_state("local-file-system/shared")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        seedance_prefect.errors.InvalidRequest: 1 problem in the request:
          - state: Only an s3-bucket block can hold the shared state (found: 'local-file-system/shared'). ...
    """
    if isinstance(spec, StateStore):
        return spec
    if spec is None:
        settings = get_settings()
        if settings.state:
            return _from_text(settings.state, STATE_ENV)
        return LocalStateStore(settings.state_dir)
    if isinstance(spec, os.PathLike):
        return LocalStateStore(Path(spec))
    if not isinstance(spec, str):
        raise _bad(str(spec))
    return _from_text(spec, "state")
