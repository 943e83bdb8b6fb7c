"""Access to the Oxen.ai API over HTTP, with no Prefect: the clients, event streams and waiting.

- :mod:`._client`: :class:`SeedanceClient` and :class:`AsyncSeedanceClient`, twins on one sans-I/O base.
- transport-free pieces the twins share, one concern each: :mod:`._config` (key, base URL, user
  agent, SSL context), :mod:`._auth` (auth scoped to the API origin), :mod:`._calls` (requests and
  answers), :mod:`._errors` (error mapping), :mod:`._retry` (retries), :mod:`._wait` (the decisions
  of every wait, polling or event-driven) and :mod:`._atomic` (files written atomically);
  :mod:`._http` re-exports them under their former single name.
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
