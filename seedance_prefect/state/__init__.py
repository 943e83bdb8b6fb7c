"""Shared state with compare-and-swap: where the journal and the presigned-URL record live.

A flow run that moves to another machine must still find what earlier runs of the same request
did, or it pays twice. The journal (:mod:`seedance_prefect.generation.journal`) and the S3 hosting's
URL record (:mod:`seedance_prefect.references.hosting`) therefore live in a :class:`StateStore`:

- :class:`LocalStateStore`: a folder (the default, ``$SEEDANCE_STATE_DIR`` or ``~/.seedance``, the
  files exactly where they always were). One machine only.
- :class:`S3StateStore`: a bucket, by URL (``s3://bucket/prefix/``) or a saved ``s3-bucket/<name>``
  block. Shared by every machine that names it.
- :func:`resolve_state` turns a ``state`` value (``--state``, a flow's ``state`` parameter,
  ``$SEEDANCE_STATE``) into a store.

The interface: ``read(key) -> Versioned(data, version) | None``, ``create(key, data) -> version``,
``replace(key, data, version) -> version``, ``delete(key)``, ``list(prefix)``, ``url``, ``describe()``.

Guarantees (both stores):

- **Whole objects.** ``read`` returns the bytes of exactly one completed ``create`` or ``replace``,
  never a mix or a partial write; a crashed writer leaves the previous object (or none).
- **create is atomic.** Of any number of concurrent ``create`` calls for one key, from any number of
  threads, processes or (S3) machines, exactly one succeeds; every other raises
  :class:`StateConflict` and writes nothing.
- **replace is compare-and-swap.** It succeeds only when the object's version is still the one it
  was read with; of concurrent ``replace`` calls from one version exactly one wins, the others raise
  :class:`StateConflict` (as does a replace of a deleted object).
- **Versions are content hashes** (sha256 in a folder, the ETag on S3): writing back the very same
  bytes keeps the version, so a change A -> B -> A between a read and a replace is not seen. That is
  harmless for compare-and-swap on the value, and the journal's writes always differ anyway (leases,
  times, owners).
- **A conflict means "re-read and decide again"**, never "try the same write again". On S3 one
  caveat: boto3 retries a request whose answer was lost, so a write that did land can come back as
  a conflict (the retry finds its own object). Callers recognise their own write on the re-read:
  the journal's claims carry an owner id for this.
- ``delete`` and ``list`` are not conditional, and ``list`` is not a snapshot; it gives keys oldest
  first (modification time, then key).
- **No clocks.** The stores compare versions, never times. The journal's leases do use wall clocks
  across machines; their assumptions are in :mod:`seedance_prefect.generation.enqueue` and
  ``docs/deployment.md``.

A :class:`StateError` (the store is unreachable or refused the call) is transient: a retried task
reads the store again before it acts. Prefect is never imported here (a ``s3-bucket/<name>`` block is
loaded lazily, by :mod:`seedance_prefect._blocks`).

Example:
    >>> import tempfile
    >>> store = resolve_state(tempfile.mkdtemp())
    >>> version = store.create("journal/abc.json", b'{"fingerprint": "abc"}')
    >>> found = store.read("journal/abc.json")
    >>> found.version == version, store.list("journal/")
    (True, ['journal/abc.json'])
"""

from .base import StateConflict, StateError, StateStore, Versioned, check_key
from .local import LocalStateStore
from .resolve import FORMS, resolve_state
from .s3 import S3_EXTRA, S3StateStore

__all__ = [
    "FORMS",
    "S3_EXTRA",
    "LocalStateStore",
    "S3StateStore",
    "StateConflict",
    "StateError",
    "StateStore",
    "Versioned",
    "check_key",
    "resolve_state",
]
