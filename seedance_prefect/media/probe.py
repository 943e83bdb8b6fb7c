"""Probe media by content (never by file name) with Pillow and PyAV; no network.

:func:`probe_path` and :func:`probe_bytes` return a :class:`MediaInfo` for images, videos and
audio. Nothing raises: a file that cannot be read comes back as ``kind="unknown"`` with an
``error`` sentence. Images go through Pillow first (plus ``pillow_heif`` when installed), then
PyAV reads audio and video from a file object, so FFmpeg never guesses from an extension either.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("RGB", (640, 480)).save(buf, "PNG")
    >>> info = probe_bytes(buf.getvalue(), name_hint="clip.mp4")
    >>> info.kind, info.container, info.width, info.height
    ('image', 'png', 640, 480)
"""

from __future__ import annotations

import base64
import binascii
import io
import itertools
import os
import statistics
import urllib.parse
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Literal

import av
from PIL import Image

__all__ = [
    "MediaInfo",
    "decode_check",
    "decode_data_uri",
    "heif_available",
    "probe_bytes",
    "probe_path",
    "sniff_container",
]

MediaKind = Literal["image", "video", "audio", "unknown"]

#: EXIF orientation -> counter-clockwise degrees that turn the stored picture upright
#: (the convention of PyAV's ``VideoFrame.rotation``). 2, 4, 5 and 7 are mirrored as well.
EXIF_ROTATION = {1: 0, 2: 0, 3: 180, 4: 180, 5: 90, 6: 270, 7: 270, 8: 90}

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_PILLOW_CONTAINERS = {"JPEG": "jpeg", "MPO": "jpeg", "HEIF": "heic", "TIFF": "tiff"}
_DECODER_ALIASES = {"mp3float": "mp3", "mp2float": "mp2", "libdav1d": "av1", "libvpx-vp9": "vp9"}
_FFMPEG_CONTAINERS = {"matroska,webm": "mkv", "mpegts": "ts", "mpeg": "mpg", "ogg": "ogg", "flac": "flac"}
_VFR_PACKETS = 240  # video packets looked at to tell constant from variable frame rate
_VFR_TOLERANCE = 0.1  # relative spread of frame intervals above which the rate counts as variable

_IMAGE_CONTAINERS = ("jpeg", "png", "webp", "heic", "avif")

_heif_registered: bool | None = None


@dataclass
class MediaInfo:
    """What probing a media file found.

    Attributes:
        kind: ``"image"``, ``"video"``, ``"audio"`` or ``"unknown"``.
        container: Short container/format name by content: ``"jpeg"``, ``"png"``, ``"webp"``,
            ``"heic"``, ``"mp4"``, ``"mov"`` (ftyp brand ``qt``), ``"wav"``, ``"mp3"``...
        size_bytes: Size of the file or buffer.
        width: Display width (after EXIF orientation or the video rotation).
        height: Display height.
        coded_width: Width as stored.
        coded_height: Height as stored.
        rotation: Counter-clockwise degrees to turn the stored picture upright (video display
            matrix via the first frame's ``frame.rotation``; EXIF orientation for images).
        duration: Seconds (video: the video stream; audio: the audio stream).
        fps: Average frame rate.
        variable_frame_rate: True when packet timestamps step unevenly (best effort).
        video_codec: Decoder name, e.g. ``"h264"``.
        audio_codec: Decoder name, e.g. ``"aac"``, ``"mp3"``, ``"pcm_s16le"``.
        has_audio: An audio stream is present.
        has_video: A video stream (not cover art) is present.
        pix_fmt: Pixel format (``"yuv420p"``) or Pillow mode for images (``"RGB"``).
        sample_rate: Audio sample rate in Hz.
        channels: Audio channel count.
        exif_orientation: EXIF orientation tag (1-8) of an image, if any.
        format_name: Raw format name (Pillow's ``format`` or FFmpeg's demuxer name).
        error: Why the content could not be read completely; None when it could.

    Example:
        >>> MediaInfo(kind="video", width=1280, height=720).pixels
        921600
    """

    kind: MediaKind = "unknown"
    container: str | None = None
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    coded_width: int | None = None
    coded_height: int | None = None
    rotation: int = 0
    duration: float | None = None
    fps: float | None = None
    variable_frame_rate: bool = False
    video_codec: str | None = None
    audio_codec: str | None = None
    has_audio: bool = False
    has_video: bool = False
    pix_fmt: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    exif_orientation: int | None = None
    format_name: str | None = None
    error: str | None = None

    @property
    def pixels(self) -> int | None:
        """Width times height, or None when unknown."""
        if self.width is None or self.height is None:
            return None
        return self.width * self.height

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict.

        Example:
            >>> MediaInfo(kind="audio", duration=3.0).to_dict()["duration"]
            3.0
        """
        return asdict(self)


def sniff_container(head: bytes) -> str | None:
    """Name the container of a file from its first bytes, for the formats that matter here.

    ISO-BMFF files are told apart by their ``ftyp`` major brand: ``qt`` is ``"mov"``, HEIF brands
    are ``"heic"``, AVIF ``"avif"``, 3GPP ``"3gp"``, ``M4A`` ``"m4a"``, anything else ``"mp4"``.

    Args:
        head: The first bytes of the file (64 are plenty).

    Returns:
        A short name, or None when the bytes are not recognised.

    Example:
        >>> sniff_container(b"\\x00\\x00\\x00\\x14ftypqt  \\x00\\x00\\x00\\x00qt  ")
        'mov'
        >>> sniff_container(b"RIFF\\x24\\x00\\x00\\x00WAVEfmt ")
        'wav'
    """
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "heic"
        if brand in _AVIF_BRANDS:
            return "avif"
        if brand == b"qt  ":
            return "mov"
        if brand.startswith((b"3gp", b"3g2")):
            return "3gp"
        if brand in (b"M4A ", b"M4B "):
            return "m4a"
        return "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mov"  # QuickTime files older than the ftyp box
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    mpeg_audio_sync = len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06
    if head[:3] == b"ID3" or mpeg_audio_sync:
        return "mp3"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in head[:64] else "mkv"
    return None


def _register_heif() -> bool:
    """Register pillow_heif's opener once if it is installed; tell whether HEIC opens in Pillow."""
    global _heif_registered
    if _heif_registered is None:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_registered = True
        except Exception:
            _heif_registered = False
    return _heif_registered


def _av_magic(head: bytes) -> bool:
    """True when the bytes are plainly audio/video (so Pillow's weak-signature plugins are skipped)."""
    name = sniff_container(head)
    return name is not None and name not in _IMAGE_CONTAINERS


def _probe_image(opener: Any, info: MediaInfo) -> bool:
    """Fill ``info`` from Pillow; return False when Pillow does not know the content."""
    _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(opener()) as im:
                fmt = im.format or "unknown"
                im.verify()
            with Image.open(opener()) as im:
                coded = im.size
                mode = im.mode
                orientation = im.getexif().get(0x0112)
    except Image.DecompressionBombError as exc:
        info.kind = "image"
        info.error = f"image has too many pixels to open safely: {_short(exc)}"
        return True
    except Exception as exc:  # unknown to Pillow, or truncated / corrupt image data
        if info.container in _IMAGE_CONTAINERS:
            info.kind = "image"
            info.error = f"corrupt {info.container} image: {_short(exc)}"
            return True
        return False
    info.kind = "image"
    info.format_name = fmt
    info.container = _PILLOW_CONTAINERS.get(fmt, fmt.lower())
    info.coded_width, info.coded_height = coded
    info.pix_fmt = mode
    if isinstance(orientation, int) and orientation in EXIF_ROTATION:
        info.exif_orientation = orientation
        info.rotation = EXIF_ROTATION[orientation]
    swap = info.exif_orientation in (5, 6, 7, 8)
    info.width, info.height = (coded[1], coded[0]) if swap else coded
    return True


def _container_name(fmt_name: str, head: bytes) -> str:
    sniffed = sniff_container(head)
    if "mp4" in fmt_name.split(",") or fmt_name.startswith("mov,"):
        return sniffed if sniffed in ("mov", "mp4", "3gp", "m4a") else "mp4"
    if fmt_name in _FFMPEG_CONTAINERS:
        return sniffed if fmt_name.startswith("matroska") and sniffed else _FFMPEG_CONTAINERS[fmt_name]
    return fmt_name.split(",")[0]


def _codec_name(stream: Any) -> str:
    name = stream.codec_context.name
    return _DECODER_ALIASES.get(name, name)


def _seconds(value: Any, time_base: Any) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _is_cover_art(stream: Any) -> bool:
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except Exception:
        return False


def _probe_video(container: Any, stream: Any, info: MediaInfo) -> None:
    cc = stream.codec_context
    info.video_codec = _codec_name(stream)
    info.coded_width, info.coded_height = cc.width or None, cc.height or None
    info.pix_fmt = cc.pix_fmt
    info.fps = float(stream.average_rate) if stream.average_rate else None
    info.duration = _seconds(stream.duration, stream.time_base)
    if info.duration is None and container.duration is not None:
        info.duration = container.duration / 1_000_000
    pts: list[int] = []
    end = 0
    frame = None
    need_end = info.duration is None
    for packet in container.demux(stream):
        if packet.pts is not None:
            if len(pts) < _VFR_PACKETS:
                pts.append(packet.pts)
            end = max(end, packet.pts + (packet.duration or 0))
        if frame is None and packet.size:
            frames = packet.decode()
            frame = frames[0] if frames else None
        if frame is not None and len(pts) >= _VFR_PACKETS and not need_end:
            break
    if need_end and end:
        info.duration = _seconds(end, stream.time_base)
    if frame is None:
        try:
            frame = next(iter(stream.codec_context.decode(None)), None)
        except Exception:
            frame = None
    if frame is None:
        info.error = "no video frame could be decoded"
    else:
        info.rotation = round(frame.rotation or 0) % 360
        info.pix_fmt = frame.format.name
        info.coded_width, info.coded_height = frame.width, frame.height
    if info.coded_width and info.coded_height:
        swap = info.rotation in (90, 270)
        info.width, info.height = (
            (info.coded_height, info.coded_width) if swap else (info.coded_width, info.coded_height)
        )
    pts.sort()
    if len(pts) >= _VFR_PACKETS:
        pts = pts[:-16]  # cut short mid-stream: reordered (B-frame) timestamps may still be missing
    deltas = [b - a for a, b in itertools.pairwise(pts) if b > a]
    if len(deltas) >= 2:
        middle = statistics.median(deltas)
        info.variable_frame_rate = (max(deltas) - min(deltas)) / middle > _VFR_TOLERANCE


def _probe_audio(container: Any, stream: Any, info: MediaInfo, fill_duration: bool) -> None:
    cc = stream.codec_context
    info.audio_codec = _codec_name(stream)
    info.sample_rate = cc.sample_rate or None
    layout = getattr(cc, "layout", None)
    info.channels = getattr(layout, "nb_channels", None) or getattr(cc, "channels", None) or None
    if not fill_duration:
        return
    info.duration = _seconds(stream.duration, stream.time_base)
    if info.duration is None and container.duration is not None:
        info.duration = container.duration / 1_000_000
    if info.duration is None:
        samples, rate = 0, info.sample_rate
        for frame in container.decode(stream):
            samples += frame.samples
            rate = rate or frame.sample_rate
        info.duration = samples / rate if rate else None


def _probe_av(opener: Any, head: bytes, info: MediaInfo) -> None:
    try:
        with av.open(_Unnamed(opener()), mode="r", metadata_errors="replace") as container:
            videos = [s for s in container.streams.video if not _is_cover_art(s)]
            audios = list(container.streams.audio)
            info.format_name = container.format.name
            info.container = _container_name(container.format.name, head)
            info.has_video, info.has_audio = bool(videos), bool(audios)
            if container.format.name.endswith("_pipe") or container.format.name in ("image2", "gif", "apng"):
                info.kind = "image"
                info.error = f"image content that Pillow cannot read ({container.format.name})"
                return
            if not videos and not audios:
                info.kind = "unknown"
                info.error = f"no audio or video stream in {info.container} content"
                return
            info.kind = "video" if videos else "audio"
            if audios:
                _probe_audio(container, audios[0], info, fill_duration=not videos)
            if videos:
                _probe_video(container, videos[0], info)
            end = _indexed_end([*videos, *audios])
            if end and info.size_bytes is not None and end > info.size_bytes and not info.error:
                info.error = f"truncated: the index points to byte {end:,}, the file has {info.size_bytes:,}"
    except av.FFmpegError as exc:
        if info.kind == "unknown":
            info.error = f"not a readable image, video or audio file ({_short(exc)})"
        else:
            info.error = f"corrupt {info.container} {info.kind}: {_short(exc)}"
    except Exception as exc:
        info.error = f"could not read the media: {type(exc).__name__}: {_short(exc)}"


def _indexed_end(streams: list[Any]) -> int:
    """The end of the last indexed packet of the streams (0 when the container keeps no index)."""
    end = 0
    for stream in streams:
        try:
            entries = stream.index_entries
            if len(entries):
                last = entries[len(entries) - 1]
                end = max(end, last.pos + last.size)
        except Exception:
            continue
    return end


def _short(exc: BaseException) -> str:
    text = (exc.strerror if isinstance(exc, av.FFmpegError) and exc.strerror else str(exc)).strip()
    text = text or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _probe(opener: Any, head: bytes, size: int) -> MediaInfo:
    info = MediaInfo(size_bytes=size, container=sniff_container(head))
    if size == 0:
        info.error = "empty file"
        return info
    if not _av_magic(head) and _probe_image(opener, info):
        return info
    if info.container in ("heic", "avif"):
        # HEIF/AVIF that Pillow cannot open (no pillow_heif): still an image, by its ftyp brand.
        info.kind = "image"
        return info
    _probe_av(opener, head, info)
    return info


class _Unnamed:
    """A read-only file wrapper without a ``name``: FFmpeg would pick a demuxer by the extension."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh

    def read(self, size: int = -1) -> bytes:
        return self._fh.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def seekable(self) -> bool:
        return True


def probe_bytes(data: bytes, name_hint: str | None = None) -> MediaInfo:
    """Probe media held in memory; nothing is written to disk.

    Args:
        data: The file's bytes.
        name_hint: A name for messages only; the content decides the kind, never the name.

    Returns:
        What was found; ``kind="unknown"`` with ``error`` set when the bytes are not media.

    Example:
        >>> info = probe_bytes(b"just some text", name_hint="photo.jpg")
        >>> info.kind, info.error is not None
        ('unknown', True)
    """
    data = bytes(data)
    info = _probe(lambda: io.BytesIO(data), data[:64], len(data))
    if info.error and name_hint:
        info.error = f"{name_hint}: {info.error}"
    return info


def probe_path(path: str | os.PathLike[str]) -> MediaInfo:
    """Probe a media file by its content (the extension is ignored).

    Args:
        path: The file.

    Returns:
        What was found; ``kind="unknown"`` with ``error`` set when the file is missing, unreadable
        or not media.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "notes.jpg"
        >>> _ = p.write_text("not an image")
        >>> probe_path(p).kind
        'unknown'
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            return MediaInfo(error=f"not a regular file: {p}")
        with p.open("rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        return MediaInfo(error=f"cannot read {p}: {exc.strerror or exc}")
    handles: list[IO[bytes]] = []

    def opener() -> IO[bytes]:
        fh = p.open("rb")
        handles.append(fh)
        return fh

    try:
        return _probe(opener, head, size)
    finally:
        for fh in handles:
            fh.close()


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """Decode a ``data:`` URI (RFC 2397), base64 or percent-encoded.

    Args:
        uri: ``data:[<mime>][;param=value][;base64],<data>``.

    Returns:
        ``(mime, data)``; the mime type defaults to ``"text/plain"`` as the RFC says.

    Raises:
        ValueError: The URI is not a well-formed data: URI.

    Example:
        >>> decode_data_uri("data:text/plain;base64,aGk=")
        ('text/plain', b'hi')
        >>> decode_data_uri("data:,a%20b")
        ('text/plain', b'a b')
    """
    if not isinstance(uri, str) or uri[:5].lower() != "data:":
        raise ValueError("not a data: URI (it must start with 'data:')")
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise ValueError("malformed data: URI: no ',' between the media type and the data")
    params = [part.strip() for part in header.split(";")]
    is_base64 = bool(params) and params[-1].lower() == "base64"
    if is_base64:
        params = params[:-1]
    mime = (params[0] if params and params[0] else "text/plain").lower()
    if "/" not in mime or any(c.isspace() for c in mime):
        raise ValueError(f"malformed data: URI: invalid media type {mime!r}")
    if not is_base64:
        return mime, urllib.parse.unquote_to_bytes(payload)
    text = urllib.parse.unquote(payload) if "%" in payload else payload
    text = "".join(text.split())
    text += "=" * (-len(text) % 4)
    try:
        return mime, base64.b64decode(
            text, altchars=b"-_" if ("-" in text or "_" in text) else None, validate=True
        )
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"malformed data: URI: invalid base64 data ({exc})") from None


def decode_check(path: str | os.PathLike[str]) -> str | None:
    """Decode every packet of every stream and report the first problem.

    Used to verify downloaded MP4s: a truncated or damaged file is caught here even when its
    header reads fine (decoded frame counts are compared with the container's frame counts).

    Args:
        path: The media file.

    Returns:
        An error sentence, or None when everything decoded.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "broken.mp4"
        >>> _ = p.write_bytes(b"\\x00\\x00\\x00\\x18ftypisom" + bytes(100))
        >>> decode_check(p) is not None
        True
    """
    try:
        with Path(path).open("rb") as fh, av.open(_Unnamed(fh), "r", metadata_errors="replace") as container:
            streams = [s for s in container.streams if s.type in ("video", "audio")]
            if not streams:
                return "no audio or video stream"
            decoded = {s.index: 0 for s in streams}
            for packets, packet in enumerate(container.demux(streams), start=1):
                try:
                    for frame in packet.decode():
                        if getattr(frame, "is_corrupt", False):
                            return f"corrupt frame in stream {packet.stream.index} ({packet.stream.type})"
                        decoded[packet.stream.index] += 1
                except av.FFmpegError as exc:
                    return (
                        f"decode error in stream {packet.stream.index} ({packet.stream.type}) "
                        f"at packet {packets}: {_short(exc)}"
                    )
            for s in streams:
                if decoded[s.index] == 0:
                    return f"stream {s.index} ({s.type}) has no decodable frame"
                if s.type == "video" and s.frames and decoded[s.index] < s.frames:
                    return f"truncated: decoded {decoded[s.index]} of {s.frames} video frames"
    except av.FFmpegError as exc:
        return f"not readable media: {_short(exc)}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    except Exception as exc:
        return f"decode failed: {type(exc).__name__}: {_short(exc)}"
    return None


def heif_available() -> bool:
    """True when ``pillow-heif`` is installed, so HEIC/HEIF images can be opened and converted.

    Example:
        >>> isinstance(heif_available(), bool)
        True
    """
    try:
        import pillow_heif  # noqa: F401
    except Exception:
        return False
    return True
