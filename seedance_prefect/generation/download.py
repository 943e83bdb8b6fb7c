"""Results to local files, without Prefect: a queue generation's video, or a synchronous generation.

- :func:`download_generation`: stream a succeeded generation's result to ``<workdir>/<id>.mp4``
  (temp file, then atomic rename) and checksum it; the row is read again when asked to (an
  expired result link is refreshed) or when it has no result link.
- :func:`generate_and_save`: call the synchronous endpoint (429 answers waited out by the one
  rate-limit loop, :func:`~seedance_prefect.generation.ratelimit.post_waiting_out_429`) and save
  its video, hosted (``url``) or inline (``b64_json``, decoded to disk while the answer arrives).

Both return a :class:`DownloadedVideo`, the record the verify and deliver steps take.

Example:
    >>> import tempfile
    >>> from seedance_prefect.client import SeedanceClient
    >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
    >>> from seedance_prefect.models import SeedanceRequest
    >>> request = SeedanceRequest(prompt="A lighthouse at night", duration=4, resolution="480p")
    >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
    ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
    ...         video = generate_and_save(client, request, tempfile.mkdtemp())
    >>> video.source, video.size_bytes > 0
    ('url', True)
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..client import SeedanceClient, sha256_file
from ..errors import NotFoundError, SeedanceError
from ..models import Generation, SeedanceRequest
from .ratelimit import RATE_LIMIT_TRIES, Log, post_waiting_out_429

__all__ = ["DownloadedVideo", "download_generation", "generate_and_save"]

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadedVideo:
    """A result file on local disk, not yet verified.

    Attributes:
        generation_id: The generation it came from (``sync-<fingerprint>-<time>`` for the
            synchronous endpoint, which gives no id).
        path: Where it is.
        sha256: Its checksum.
        size_bytes: Its size.
        source: ``"url"`` or ``"b64_json"``.
        downloaded_at: Unix time the download finished.

    Example:
        >>> DownloadedVideo("g1", "/tmp/g1.mp4", "0" * 64, 10, "url", 0.0).to_dict()["generation_id"]
        'g1'
    """

    generation_id: str
    path: str
    sha256: str
    size_bytes: int
    source: str
    downloaded_at: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def _record(generation_id: str, path: Path, source: str) -> DownloadedVideo:
    digest = sha256_file(path)
    return DownloadedVideo(generation_id, str(path), digest.sha256, digest.size, source, time.time())


def _fresh_row(client: SeedanceClient, generation: Generation) -> Generation:
    """The generation's row read again: the queue row, else the history (a queue that forgets
    terminal rows answers 404), else the row we have when it carries a result link."""
    try:
        return client.get(generation.generation_id)
    except NotFoundError:
        pass
    try:
        return client.history(generation.generation_id)
    except NotFoundError:
        if generation.result_url:
            return generation
        raise


def download_generation(
    client: SeedanceClient,
    generation: Generation,
    workdir: str | Path,
    *,
    refresh: bool = False,
) -> DownloadedVideo:
    """Stream a generation's result to ``<workdir>/<generation id>.mp4`` and checksum it.

    Args:
        client: The account's client (retries a broken or truncated download by itself).
        generation: A succeeded queue row.
        workdir: The folder the video is written to.
        refresh: Read the row again first (e.g. on a retry, whose result link may have expired).
            The row is also read again when it has no ``result_url``.

    Returns:
        The downloaded video (``source="url"``).

    Raises:
        DownloadError: No result link, a truncated download (transient) or a file over the cap.

    Example:
        >>> import tempfile
        >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
        >>> from seedance_prefect.models import SeedanceRequest
        >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
        ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
        ...         [row] = client.enqueue(SeedanceRequest(prompt="A fox in snow", duration=4))
        ...         done = client.wait(row.generation_id, poll_interval=0.1)
        ...         video = download_generation(client, done, tempfile.mkdtemp())
        >>> video.generation_id == row.generation_id, video.path.endswith(".mp4"), video.source
        (True, True, 'url')
    """
    target = Path(workdir) / f"{generation.generation_id}.mp4"
    row = generation
    if refresh or not row.result_url:
        row = _fresh_row(client, generation)
    path = client.download(row, target)
    return _record(generation.generation_id, Path(path), "url")


def generate_and_save(
    client: SeedanceClient,
    request: SeedanceRequest,
    workdir: str | Path,
    *,
    log: Log | None = None,
    rate_limit_tries: int = RATE_LIMIT_TRIES,
) -> DownloadedVideo:
    """Call the synchronous endpoint and save its video to ``<workdir>/sync-<fingerprint>-<time>.mp4``.

    Never retried on anything but 429: a lost answer of the synchronous endpoint cannot be
    recovered (it has no id), so posting again could pay twice. A 429 created nothing and is
    waited out.

    Args:
        client: The account's client.
        request: A validated request with ``num_generations=1``.
        workdir: The folder the video is written to (created if missing).
        log: Where rate-limit waits are logged.
        rate_limit_tries: Times the POST is sent while it is answered 429.

    Returns:
        The saved video: ``source="b64_json"`` for an inline answer, else ``"url"``.

    Raises:
        RateLimitedError: Every try was answered 429.
        SeedanceError: The service refused the request, the answer was lost, or it held no video.

    Example:
        >>> import tempfile
        >>> from seedance_prefect.emulator import EmulatorConfig, run_emulator
        >>> request = SeedanceRequest(prompt="Waves at dawn", duration=4, response_format="b64_json")
        >>> with run_emulator(EmulatorConfig(latency=0.2)) as emu:
        ...     with SeedanceClient(api_key="k", base_url=emu.base_url) as client:
        ...         video = generate_and_save(client, request, tempfile.mkdtemp())
        >>> video.source, video.generation_id.startswith("sync-")
        ('b64_json', True)
    """
    Path(workdir).mkdir(parents=True, exist_ok=True)
    ident = f"sync-{request.fingerprint()[:12]}-{int(time.time())}"
    inline = Path(workdir) / f"{ident}.mp4"
    # an inline (b64_json) video is decoded to disk while the answer arrives
    result = post_waiting_out_429(
        lambda: client.generate(request, save_to=inline),
        tries=rate_limit_tries,
        log=log or _LOG,
        what="generating",
    )
    if not result.videos:
        raise SeedanceError("The synchronous endpoint answered without a video")
    item = result.videos[0]
    if item.saved_to:
        return _record(ident, Path(item.saved_to), "b64_json")
    return _record(ident, Path(client.download(item, inline)), "url")
