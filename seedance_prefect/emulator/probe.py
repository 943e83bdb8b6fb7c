"""Reference inspection: fetch ``input_*`` media like the service would, probe it, check documented limits.

- ``data:`` URIs are decoded.
- ``http(s)`` URLs are fetched only when the host is loopback (``127.0.0.1``, ``localhost``, ``::1``): the
  emulator's own uploads or a test server. Other hosts are recorded as not fetched; the network is not used.
- Any other scheme, a failed download or undecodable media fails the generation with a message naming the
  reference (e.g. ``Failed to download input_images[0]: HTTP 404``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import av
import httpx
from PIL import Image, UnidentifiedImageError

from seedance_prefect.emulator.params import REFERENCE_FIELDS

LOOPBACK_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "localhost", "::1"})
MB = 1024 * 1024
IMAGE_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP"})
AUDIO_FORMATS: frozenset[str] = frozenset({"mp3", "wav"})
MAX_IMAGE_BYTES = 30 * MB
MAX_VIDEO_TOTAL_BYTES = 50 * MB
MAX_AUDIO_BYTES = 15 * MB
VIDEO_TOTAL_SECONDS = (2.0, 15.0)
AUDIO_TOTAL_SECONDS = 15.0
#: Tolerance on combined durations (container rounding).
DURATION_SLACK = 0.05


class ReferenceProblem(Exception):
    """A reference could not be fetched, decoded or violates a limit; ``str(exc)`` names it."""


@dataclass
class ReferenceReport:
    """What the emulator learnt about one reference (recorded in ``/_emulator/stats``).

    Attributes:
        field: Request field (``input_images`` ...).
        index: 0-based index within the field.
        scheme: ``data``, ``http``, ``https`` or other.
        host: URL host (None for data URIs).
        fetched: Whether bytes were obtained.
        bytes: Size in bytes (None if not fetched).
        sha256: Hex digest of the bytes (None if not fetched).
        probe: Format and dimensions / durations.
        note: Why it was not fetched, if so.
    """

    field: str
    index: int
    scheme: str
    host: str | None = None
    fetched: bool = False
    bytes: int | None = None
    sha256: str | None = None
    probe: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    @property
    def label(self) -> str:
        """Return ``field[index]``, the name used in error messages."""
        return f"{self.field}[{self.index}]"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict.

        Returns:
            The report as a dict.

        Example:
            >>> ReferenceReport("input_images", 0, "https", note="x").to_dict()["field"]
            'input_images'
        """
        return {
            "field": self.field,
            "index": self.index,
            "scheme": self.scheme,
            "host": self.host,
            "fetched": self.fetched,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "probe": self.probe,
            "note": self.note,
        }


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """Decode a ``data:`` URI.

    Args:
        uri: ``data:[<mediatype>][;base64],<data>``.

    Returns:
        ``(media_type, payload)``.

    Raises:
        ValueError: Malformed URI or base64.

    Example:
        >>> decode_data_uri("data:text/plain;base64,aGk=")
        ('text/plain', b'hi')
    """
    header, sep, data = uri[5:].partition(",")
    if not sep:
        raise ValueError("malformed data URI (no comma)")
    parts = header.split(";")
    media_type = parts[0] or "text/plain"
    if "base64" in (p.strip().lower() for p in parts[1:]):
        try:
            return media_type, base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("malformed base64 payload") from None
    return media_type, unquote_to_bytes(data)


def probe_image(data: bytes) -> dict[str, Any]:
    """Probe an image with Pillow.

    Args:
        data: Image bytes.

    Returns:
        ``{"format", "width", "height"}``.

    Raises:
        ValueError: Not an image Pillow can read.

    Example:
        >>> buf = io.BytesIO(); Image.new("RGB", (4, 2)).save(buf, "PNG")
        >>> probe_image(buf.getvalue())
        {'format': 'PNG', 'width': 4, 'height': 2}
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            return {"format": img.format, "width": img.width, "height": img.height}
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"not a readable image ({exc.__class__.__name__})") from None


def probe_media(data: bytes) -> dict[str, Any]:
    """Probe audio/video bytes with PyAV.

    Args:
        data: Container bytes.

    Returns:
        ``{"format", "duration", "video": {...} | None, "audio": {...} | None}``.

    Raises:
        ValueError: PyAV cannot open the data.
    """
    try:
        with av.open(io.BytesIO(data)) as container:
            info: dict[str, Any] = {
                "format": container.format.name,
                "duration": container.duration / 1_000_000 if container.duration else None,
                "video": None,
                "audio": None,
            }
            if container.streams.video:
                vs = container.streams.video[0]
                info["video"] = {
                    "codec": vs.codec_context.name,
                    "width": vs.codec_context.width,
                    "height": vs.codec_context.height,
                    "duration": float(vs.duration * vs.time_base) if vs.duration else info["duration"],
                    "fps": float(vs.average_rate) if vs.average_rate else None,
                }
            if container.streams.audio:
                aus = container.streams.audio[0]
                info["audio"] = {
                    "codec": aus.codec_context.name,
                    "sample_rate": aus.codec_context.sample_rate,
                    "duration": float(aus.duration * aus.time_base) if aus.duration else info["duration"],
                }
            return info
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise ValueError(f"not readable media ({exc.__class__.__name__})") from None


async def _fetch(client: httpx.AsyncClient | None, report: ReferenceReport, uri: str) -> bytes | None:
    parts = urlsplit(uri)
    report.scheme = parts.scheme.lower() or "none"
    if report.scheme == "data":
        try:
            return decode_data_uri(uri)[1]
        except ValueError as exc:
            raise ReferenceProblem(f"Could not decode {report.label}: {exc}") from None
    if report.scheme not in ("http", "https"):
        raise ReferenceProblem(f"Failed to download {report.label}: unsupported URL scheme '{report.scheme}'")
    report.host = parts.hostname
    if (parts.hostname or "").lower() not in LOOPBACK_HOSTS:
        report.note = "remote host not fetched (offline emulator)"
        return None
    assert client is not None  # made whenever a reference is fetched over HTTP
    try:
        response = await client.get(uri)
    except httpx.HTTPError as exc:
        raise ReferenceProblem(f"Failed to download {report.label}: {exc.__class__.__name__}") from None
    if response.status_code != 200:
        raise ReferenceProblem(f"Failed to download {report.label}: HTTP {response.status_code}")
    return response.content


def _check_one(report: ReferenceReport, modality: str, data: bytes) -> None:
    label = report.label
    try:
        report.probe = probe_image(data) if modality == "image" else probe_media(data)
    except ValueError as exc:
        raise ReferenceProblem(f"Could not decode {label}: {exc}") from None
    probe = report.probe
    if modality == "image":
        if probe["format"] not in IMAGE_FORMATS:
            raise ReferenceProblem(
                f"Unsupported format for {label}: {probe['format']} (use JPEG, PNG or WebP)"
            )
        if len(data) > MAX_IMAGE_BYTES:
            raise ReferenceProblem(f"{label} is larger than 30 MB")
    elif modality == "video":
        if probe["video"] is None or "mp4" not in probe["format"]:
            raise ReferenceProblem(f"Unsupported format for {label}: expected an MP4 or MOV video")
    else:
        if probe["audio"] is None or probe["format"] not in AUDIO_FORMATS:
            raise ReferenceProblem(f"Unsupported format for {label}: expected MP3 or WAV audio")
        if len(data) > MAX_AUDIO_BYTES:
            raise ReferenceProblem(f"{label} is larger than 15 MB")


def _check_totals(reports: Sequence[ReferenceReport]) -> None:
    videos = [r for r in reports if REFERENCE_FIELDS[r.field] == "video"]
    audios = [r for r in reports if REFERENCE_FIELDS[r.field] == "audio"]
    if videos and all(r.fetched for r in videos):
        if sum(r.bytes or 0 for r in videos) >= MAX_VIDEO_TOTAL_BYTES:
            raise ReferenceProblem("Reference videos exceed 50 MB in total")
        seconds = sum(r.probe["video"]["duration"] or 0.0 for r in videos)
        low, high = VIDEO_TOTAL_SECONDS
        if not low - DURATION_SLACK <= seconds <= high + DURATION_SLACK:
            raise ReferenceProblem(f"Combined reference video duration must be 2-15 s (got {seconds:.2f} s)")
    if audios and all(r.fetched for r in audios):
        seconds = sum(r.probe["audio"]["duration"] or 0.0 for r in audios)
        if seconds > AUDIO_TOTAL_SECONDS + DURATION_SLACK:
            raise ReferenceProblem(
                f"Combined reference audio duration must be at most 15 s (got {seconds:.2f} s)"
            )


async def inspect_references(
    references: Sequence[tuple[str, str]], *, timeout: float = 30.0
) -> tuple[list[ReferenceReport], str | None]:
    """Fetch, probe and check every reference.

    Args:
        references: ``(field, uri)`` pairs in request order.
        timeout: HTTP timeout for loopback downloads.

    Returns:
        ``(reports, error)``: one report per reference, and the failure message or None.

    Example:
        >>> import asyncio
        >>> reports, error = asyncio.run(inspect_references([("input_images", "https://example.com/a.png")]))
        >>> reports[0].fetched, error
        (False, None)
    """

    reports: list[ReferenceReport] = []
    indexes: dict[str, int] = {}
    # A client (and its SSL context, ~10 ms of CPU) only when some reference is fetched over HTTP.
    fetches = any(urlsplit(uri).scheme.lower() in ("http", "https") for _, uri in references)
    http = httpx.AsyncClient(timeout=timeout, follow_redirects=True, trust_env=False) if fetches else None
    async with http or contextlib.nullcontext() as client:
        for name, uri in references:
            report = ReferenceReport(field=name, index=indexes.get(name, 0), scheme="")
            indexes[name] = report.index + 1
            reports.append(report)
            try:
                data = await _fetch(client, report, uri)
                if data is None:
                    continue
                report.fetched, report.bytes = True, len(data)
                report.sha256 = hashlib.sha256(data).hexdigest()
                await asyncio.to_thread(_check_one, report, REFERENCE_FIELDS[name], data)
            except ReferenceProblem as exc:
                return reports, str(exc)
    try:
        _check_totals(reports)
    except ReferenceProblem as exc:
        return reports, str(exc)
    return reports, None
