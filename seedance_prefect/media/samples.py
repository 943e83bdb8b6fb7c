"""Generate small, deterministic sample media for the demo, the tests and the benchmarks.

Everything is made locally with Pillow and PyAV (libx264 ``ultrafast``, AAC, libmp3lame), from a
seed, so the same call gives the same picture and tone. ``pad_to_bytes`` grows a file to an exact
size without changing what it shows or plays (a private PNG chunk, an MP4 ``free`` box, a WAV
``JUNK`` chunk), so size limits can be tested without slow encodes.

Example:
    >>> import tempfile, pathlib
    >>> from seedance_prefect.media.probe import probe_path
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> probe_path(make_image(d / "a.png", 320, 240, format="PNG")).container
    'png'
"""

from __future__ import annotations

import array
import math
import os
import random
import struct
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageChops, ImageDraw

__all__ = ["make_audio", "make_image", "make_video", "pattern"]

_VIDEO_FORMATS = {"mp4": "mp4", "mov": "mov", "mkv": "matroska", "webm": "webm", "avi": "avi"}
_AUDIO_CODECS = {
    "wav": ("wav", "pcm_s16le"),
    "mp3": ("mp3", "libmp3lame"),
    "flac": ("flac", "flac"),
    "m4a": ("ipod", "aac"),
    "ogg": ("ogg", "libopus"),
}


def pattern(width: int, height: int, seed: int = 0) -> Image.Image:
    """Draw a deterministic RGB test picture: gradients, seeded blocks and a top-left marker.

    The white square in the top-left corner shows which way up the picture is, so rotation
    handling can be checked on decoded frames.

    Args:
        width: Width in pixels.
        height: Height in pixels.
        seed: Picks the block colours.

    Returns:
        A Pillow RGB image.

    Example:
        >>> pattern(64, 32).size
        (64, 32)
    """
    rng = random.Random(seed)
    horizontal = Image.linear_gradient("L").rotate(90).resize((width, height))
    vertical = Image.linear_gradient("L").resize((width, height))
    flat = Image.new("L", (width, height), rng.randrange(40, 200))
    im = Image.merge("RGB", (horizontal, vertical, flat))
    draw = ImageDraw.Draw(im)
    cell = max(8, min(width, height) // 6)
    for _ in range(6):
        x, y = rng.randrange(0, max(1, width - cell)), rng.randrange(0, max(1, height - cell))
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rectangle((x, y, x + cell, y + cell), fill=colour)
    mark = max(4, min(width, height) // 10)
    draw.rectangle((0, 0, mark, mark), fill=(255, 255, 255))
    return im


def _prepare(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _pad_png(path: Path, total: int) -> None:
    """Insert a private ancillary chunk before IEND so the file is exactly ``total`` bytes."""
    data = path.read_bytes()
    if len(data) + 12 > total:
        raise ValueError(f"pad_to_bytes={total} is smaller than the image ({len(data)} bytes) plus a chunk")
    body = bytes(total - len(data) - 12)
    chunk_type = b"paDd"  # ancillary, private, safe to copy: every decoder skips it
    crc = struct.pack(">I", zlib.crc32(chunk_type + body))
    chunk = struct.pack(">I", len(body)) + chunk_type + body + crc
    iend = data.rindex(b"IEND") - 4
    path.write_bytes(data[:iend] + chunk + data[iend:])


def _pad_iso_bmff(path: Path, total: int) -> None:
    """Append a top-level ``free`` box so the MP4/MOV is exactly ``total`` bytes."""
    size = path.stat().st_size
    if size + 8 > total:
        raise ValueError(f"pad_to_bytes={total} is smaller than the video ({size} bytes) plus a box")
    box = total - size
    if box > 0xFFFFFFFF:
        raise ValueError("pad_to_bytes adds more than 4 GB")
    with path.open("ab") as fh:
        fh.write(struct.pack(">I", box) + b"free")
        _write_zeros(fh, box - 8)


def _pad_wav(path: Path, total: int) -> None:
    """Append a ``JUNK`` chunk (and fix the RIFF size) so the WAV is exactly ``total`` bytes."""
    size = path.stat().st_size
    extra = total - size
    if extra < 8 or extra % 2:
        raise ValueError(f"pad_to_bytes={total} must exceed the WAV ({size} bytes) by an even number >= 8")
    with path.open("r+b") as fh:
        fh.seek(0, os.SEEK_END)
        fh.write(b"JUNK" + struct.pack("<I", extra - 8))
        _write_zeros(fh, extra - 8)
        fh.seek(4)
        fh.write(struct.pack("<I", total - 8))


def _write_zeros(fh: Any, count: int) -> None:
    block = bytes(1 << 20)
    while count > 0:
        n = min(count, len(block))
        fh.write(block[:n])
        count -= n


def make_image(
    path: str | os.PathLike[str],
    width: int = 1024,
    height: int = 768,
    *,
    format: str = "JPEG",
    exif_orientation: int | None = None,
    seed: int = 0,
    pad_to_bytes: int | None = None,
) -> Path:
    """Write a deterministic test image.

    Args:
        path: Where to write (parent folders are created). The extension is not used.
        width: Stored width in pixels.
        height: Stored height in pixels.
        format: A Pillow format name: ``"JPEG"``, ``"PNG"``, ``"WEBP"``, ``"GIF"``, ``"BMP"``,
            ``"TIFF"``, ``"AVIF"`` or ``"HEIF"``/``"HEIC"`` (needs pillow-heif).
        exif_orientation: EXIF orientation tag (1-8) to store, e.g. 6 for a phone portrait.
        seed: Picks the colours.
        pad_to_bytes: PNG only: grow the file to exactly this many bytes with a private chunk.

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib
        >>> p = make_image(pathlib.Path(tempfile.mkdtemp()) / "x.jpg", 64, 48, exif_orientation=6)
        >>> p.stat().st_size > 0
        True
    """
    p = _prepare(path)
    fmt = format.upper()
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt in ("HEIC", "HEIF"):
        import pillow_heif

        pillow_heif.register_heif_opener()
        fmt = "HEIF"
    if pad_to_bytes is not None and fmt != "PNG":
        raise ValueError("pad_to_bytes is supported for PNG images only")
    im = pattern(width, height, seed)
    options: dict[str, Any] = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = int(exif_orientation)
        options["exif"] = exif.tobytes()
    if fmt in ("JPEG", "WEBP", "HEIF", "AVIF"):
        options["quality"] = 85
    if fmt == "PNG":
        options["compress_level"] = 1
    if fmt == "GIF":
        im = im.convert("P")
    im.save(p, fmt, **options)
    if pad_to_bytes is not None:
        _pad_png(p, pad_to_bytes)
    return p


def _tone(seconds: float, sample_rate: int, channels: int, seed: int) -> bytes:
    """Interleaved signed 16-bit samples of a seeded sine tone (integer Hz: one second repeats)."""
    freq = 220 + 55 * (seed % 8)
    step = 2 * math.pi * freq / sample_rate
    second = array.array("h", (int(6000 * math.sin(step * i)) for i in range(sample_rate)))
    total = round(seconds * sample_rate)
    mono = (second * (total // sample_rate + 1))[:total]
    if channels == 1:
        return mono.tobytes()
    stereo = array.array("h", bytes(2 * total * channels))
    for c in range(channels):
        stereo[c::channels] = mono
    return stereo.tobytes()


def _audio_frames(pcm: bytes, sample_rate: int, channels: int, chunk: int = 4096) -> list[av.AudioFrame]:
    """Cut interleaved s16 samples into PyAV frames with running pts."""
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    frames = []
    step = chunk * 2 * channels
    for n, start in enumerate(range(0, len(pcm), step)):
        piece = pcm[start : start + step]
        frame = av.AudioFrame(format="s16", layout=layout, samples=len(piece) // (2 * channels))
        frame.planes[0].update(piece)
        frame.sample_rate = sample_rate
        frame.pts = n * chunk
        frame.time_base = Fraction(1, sample_rate)
        frames.append(frame)
    return frames


def _encode_audio(container: Any, stream: Any, frames: list[av.AudioFrame]) -> None:
    resampler = None
    formats = stream.codec_context.codec.audio_formats
    target = formats[0].name if formats else "s16"
    if target != "s16":
        resampler = av.AudioResampler(format=target, layout=stream.layout, rate=stream.rate)
    for frame in [*frames, None]:
        todo = [frame] if resampler is None or frame is None else resampler.resample(frame)
        for item in todo:
            for packet in stream.encode(item):
                container.mux(packet)


def make_audio(
    path: str | os.PathLike[str],
    seconds: float = 3.0,
    *,
    format: str = "wav",
    sample_rate: int = 44100,
    channels: int = 2,
    seed: int = 0,
    pad_to_bytes: int | None = None,
) -> Path:
    """Write a deterministic sine-tone audio file.

    Args:
        path: Where to write (parent folders are created). The extension is not used.
        seconds: Length of the tone.
        format: ``"wav"`` (PCM s16le) or ``"mp3"`` (libmp3lame); also ``"flac"``, ``"m4a"`` (AAC)
            and ``"ogg"`` (Opus) for tests of refused formats.
        sample_rate: Samples per second.
        channels: 1 or 2.
        seed: Picks the pitch.
        pad_to_bytes: WAV only: grow the file to exactly this many bytes with a ``JUNK`` chunk
            (the duration does not change).

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib
        >>> from seedance_prefect.media.probe import probe_path
        >>> p = make_audio(pathlib.Path(tempfile.mkdtemp()) / "t.wav", 0.5)
        >>> probe_path(p).duration
        0.5
    """
    p = _prepare(path)
    fmt = format.lower()
    if fmt not in _AUDIO_CODECS:
        raise ValueError(f"unsupported audio format {format!r}; use one of {', '.join(_AUDIO_CODECS)}")
    if pad_to_bytes is not None and fmt != "wav":
        raise ValueError("pad_to_bytes is supported for WAV audio only")
    if fmt == "ogg":
        sample_rate = 48000  # Opus runs at 48 kHz
    muxer, codec = _AUDIO_CODECS[fmt]
    with av.open(str(p), "w", format=muxer) as container:
        stream = container.add_stream(codec, rate=sample_rate)
        stream.layout = "mono" if channels == 1 else "stereo"
        if codec == "libmp3lame":
            stream.bit_rate = 128_000
        pcm = _tone(seconds, sample_rate, channels, seed)
        _encode_audio(container, stream, _audio_frames(pcm, sample_rate, channels))
    if pad_to_bytes is not None:
        _pad_wav(p, pad_to_bytes)
    return p


def make_video(
    path: str | os.PathLike[str],
    width: int = 1280,
    height: int = 720,
    seconds: float = 4.0,
    *,
    fps: int = 24,
    codec: str = "libx264",
    container: str = "mp4",
    audio: bool = False,
    rotation: int | None = None,
    variable_frame_rate: bool = False,
    seed: int = 0,
    pix_fmt: str = "yuv420p",
    pad_to_bytes: int | None = None,
    distinct_frames: int | None = None,
) -> Path:
    """Write a deterministic test video: the :func:`pattern` picture sliding sideways.

    Args:
        path: Where to write (parent folders are created). The extension is not used.
        width: Stored width (even for yuv420p).
        height: Stored height (even for yuv420p).
        seconds: Length; ``round(seconds * fps)`` frames are written.
        fps: Frame rate (the average one when ``variable_frame_rate``).
        codec: Encoder: ``"libx264"`` (preset ultrafast), ``"libx265"``, ``"mpeg4"``...
        container: ``"mp4"`` or ``"mov"`` (ftyp brand ``qt``); also ``"mkv"``, ``"webm"``, ``"avi"``.
        audio: Add an AAC sine-tone track of the same length.
        rotation: Counter-clockwise display rotation in degrees (90, 180, 270), written as the
            display-matrix side data that phones use; the frames stay as stored.
        variable_frame_rate: Alternate short and long frame intervals (0.5x and 1.5x).
        seed: Picks the colours.
        pix_fmt: Pixel format of the encoded frames.
        pad_to_bytes: MP4/MOV only: grow the file to exactly this many bytes with a ``free`` box.
        distinct_frames: Draw only this many different pictures and cycle through them (much
            faster for long high-resolution clips; None: every frame is drawn).

    Returns:
        The path written.

    Raises:
        ValueError: Odd dimensions with a 4:2:0 pixel format, or an unknown container.

    Example:
        >>> import tempfile, pathlib
        >>> from seedance_prefect.media.probe import probe_path
        >>> p = make_video(pathlib.Path(tempfile.mkdtemp()) / "v.mov", 64, 48, 0.5, fps=8, container="mov")
        >>> info = probe_path(p)
        >>> info.container, info.duration
        ('mov', 0.5)
    """
    if container not in _VIDEO_FORMATS:
        raise ValueError(f"unsupported container {container!r}; use one of {', '.join(_VIDEO_FORMATS)}")
    if pix_fmt.endswith("420p") and (width % 2 or height % 2):
        raise ValueError(f"{width}x{height}: {pix_fmt} needs even width and height")
    if pad_to_bytes is not None and container not in ("mp4", "mov"):
        raise ValueError("pad_to_bytes is supported for MP4/MOV only")
    p = _prepare(path)
    count = max(1, round(seconds * fps))
    options = {"movflags": "+faststart"} if container in ("mp4", "mov") else {}
    with av.open(str(p), "w", format=_VIDEO_FORMATS[container], options=options) as out:
        vstream = out.add_stream(codec, rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, pix_fmt
        if codec in ("libx264", "libx265", "h264"):
            vstream.options = {"preset": "ultrafast", "crf": "28"}
        if codec == "libx265":
            vstream.options = {**vstream.options, "x265-params": "log-level=error"}
        if variable_frame_rate:
            vstream.codec_context.time_base = Fraction(1, fps * 4)
        if rotation:
            vstream.set_display_rotation(rotation)
        astream = None
        tone: list[av.AudioFrame] = []
        if audio:
            astream = out.add_stream("aac", rate=44100)
            astream.layout = "stereo"
            tone = _audio_frames(_tone(count / fps, 44100, 2, seed), 44100, 2)
        base = pattern(width, height, seed)
        cycle = min(count, distinct_frames or count)
        step = max(1, width // max(cycle, 1))
        drawn: dict[int, av.VideoFrame] = {}
        pts = 0
        for i in range(count):
            if i % cycle not in drawn or distinct_frames is None:
                picture = av.VideoFrame.from_image(ImageChops.offset(base, (i % cycle) * step, 0))
                drawn[i % cycle] = picture.reformat(format=pix_fmt) if distinct_frames else picture
            frame = drawn[i % cycle]
            if variable_frame_rate:
                frame.pts, frame.time_base = pts, vstream.codec_context.time_base
                pts += 2 if i % 2 == 0 else 6  # 0.5x and 1.5x of 4 ticks per frame
            else:
                frame.pts = i
            for packet in vstream.encode(frame):
                out.mux(packet)
        for packet in vstream.encode():
            out.mux(packet)
        if astream is not None:
            _encode_audio(out, astream, tone)
    if pad_to_bytes is not None:
        _pad_iso_bmff(p, pad_to_bytes)
    return p
