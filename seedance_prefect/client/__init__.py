"""Access to the Oxen.ai API over HTTP, with no Prefect: the clients, event streams and waiting.

- :mod:`._client`: :class:`SeedanceClient` and :class:`AsyncSeedanceClient`, twins on one sans-I/O base.
- :mod:`._http`: transport-free pieces (auth scoped to the API origin, retries, wait decisions, files).
- :mod:`.events`: the ``media_generation_completed`` SSE stream.
- :mod:`.completion`: one shared completion stream per account plus slow polls (:class:`CompletionHub`).
- :mod:`.inline_video`: a ``b64_json`` answer streamed to disk.

Example:
    >>> from seedance_prefect.client import SeedanceClient
    >>> SeedanceClient.__name__
    'SeedanceClient'
"""

from ._client import DEFAULT_DOWNLOAD_MAX_BYTES, AsyncSeedanceClient, FileDigest, SeedanceClient, sha256_file

__all__ = ["DEFAULT_DOWNLOAD_MAX_BYTES", "AsyncSeedanceClient", "FileDigest", "SeedanceClient", "sha256_file"]
