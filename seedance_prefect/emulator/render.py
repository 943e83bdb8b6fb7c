"""Deterministic MP4 rendering with PyAV (H.264 + AAC, 24 fps, ``+faststart``).

Frames are built as raw YUV 4:2:0 planes from ``bytes`` templates (no numpy): a background colour hashed
from prompt + seed + references, a moving vertical bar and a frame counter. The audio track is a stereo sine
whose pitch derives from the same hash. x264 runs single-threaded with fixed options, so one spec always
gives the same bytes.
"""

from __future__ import annotations

import array
import hashlib
import math
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import av

FPS = 24
SAMPLE_RATE = 44100
SHORT_SIDE: dict[str, int] = {"480p": 480, "720p": 720}
RATIOS: dict[str, tuple[int, int]] = {
    "21:9": (21, 9),
    "16:9": (16, 9),
    "4:3": (4, 3),
    "1:1": (1, 1),
    "3:4": (3, 4),
    "9:16": (9, 16),
}
#: 3x5 bitmap digits for the frame counter.
_DIGITS = (
    "111101101101111",
    "010110010010111",
    "111001111100111",
    "111001111001111",
    "101101111001001",
    "111100111001111",
    "111100111101111",
    "111001001001001",
    "111101111101111",
    "111101111001111",
)


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Compute the output size: short side 480/720, long side ``round(short*ratio)`` made even.

    Args:
        resolution: ``"480p"`` or ``"720p"``.
        aspect_ratio: One of ``RATIOS`` or ``"auto"``/``"adaptive"`` (rendered as 16:9).

    Returns:
        ``(width, height)``.

    Example:
        >>> frame_size("720p", "16:9"), frame_size("480p", "9:16"), frame_size("720p", "21:9")
        ((1280, 720), (480, 854), (1680, 720))
    """
    short = SHORT_SIDE[resolution]
    num, den = RATIOS.get(aspect_ratio, (16, 9))
    if num >= den:
        return _even(short * num / den), short
    return short, _even(short * den / num)


@dataclass(frozen=True)
class RenderSpec:
    """Everything that determines the rendered bytes.

    Attributes:
        width: Frame width (even).
        height: Frame height (even).
        duration: Seconds (integer).
        audio: Whether to add an AAC stereo track.
        prompt: Prompt text (drives the colours).
        seed: Seed or None (None is deterministic too).
        salt: Extra material for the colour hash (e.g. a digest of the references).
    """

    width: int
    height: int
    duration: int
    audio: bool
    prompt: str
    seed: int | None = None
    salt: str = ""

    def digest(self) -> bytes:
        """Return the hash that drives colours and pitch.

        Returns:
            32 bytes of SHA-256.

        Example:
            >>> len(RenderSpec(2, 2, 1, False, "x").digest())
            32
        """
        return hashlib.sha256(f"{self.prompt}\x00{self.seed}\x00{self.salt}".encode()).digest()


def _counter_rows(text: str, cell: int, fg: int, bg: int) -> list[bytes]:
    """Return the 5 font rows (each ``cell`` pixels tall) of ``text`` as luma segments."""
    rows = []
    for r in range(5):
        seg = bytearray()
        for ch in text:
            glyph = _DIGITS[int(ch)]
            for c in range(3):
                seg += bytes((fg if glyph[r * 3 + c] == "1" else bg,)) * cell
            seg += bytes((bg,)) * cell
        rows.append(bytes(seg))
    return rows


def _add_video_stream(out: av.container.OutputContainer, spec: RenderSpec) -> av.VideoStream:
    stream = out.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
    stream.codec_context.thread_count = 1
    stream.options = {"preset": "ultrafast", "crf": "28", "threads": "1", "g": str(2 * FPS)}
    return stream


def _add_audio_stream(out: av.container.OutputContainer) -> av.AudioStream:
    stream = out.add_stream("aac", rate=SAMPLE_RATE)
    stream.layout = "stereo"
    return stream


def _encode_video(
    out: av.container.OutputContainer, stream: av.VideoStream, spec: RenderSpec, colour: bytes
) -> None:
    probe = av.VideoFrame(spec.width, spec.height, "yuv420p")
    strides = [p.line_size for p in probe.planes]
    heights = [p.height for p in probe.planes]
    bg_y, bg_u, bg_v = 40 + colour[0] % 150, 64 + colour[1] % 128, 64 + colour[2] % 128
    fg = 235 if bg_y < 128 else 16
    u_plane = bytes((bg_u,)) * (strides[1] * heights[1])
    v_plane = bytes((bg_v,)) * (strides[2] * heights[2])
    bar = _even(max(2, spec.width // 16))
    step = max(2, spec.width // (2 * FPS))
    cell = max(2, spec.height // 60)
    bg_byte, fg_byte = bytes((bg_y,)), bytes((fg,))
    frames = spec.duration * FPS
    digits = len(str(frames))
    for index in range(frames):
        x = (index * step) % (spec.width - bar)
        row = bg_byte * x + fg_byte * bar + bg_byte * (strides[0] - x - bar)
        luma = bytearray(row * spec.height)
        for r, seg in enumerate(_counter_rows(str(index).zfill(digits), cell, fg, bg_y)):
            for dy in range(cell):
                start = (cell * (1 + r) + dy) * strides[0] + cell
                luma[start : start + len(seg)] = seg
        frame = av.VideoFrame(spec.width, spec.height, "yuv420p")
        frame.planes[0].update(luma)
        frame.planes[1].update(u_plane)
        frame.planes[2].update(v_plane)
        frame.pts = index
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def _encode_audio(
    out: av.container.OutputContainer, stream: av.AudioStream, spec: RenderSpec, colour: bytes
) -> None:
    pitch = 220 + int.from_bytes(colour[3:5], "big") % 660  # integer Hz: one second tiles seamlessly
    second = array.array(
        "f", (0.2 * math.sin(2 * math.pi * pitch * k / SAMPLE_RATE) for k in range(SAMPLE_RATE))
    )
    pcm = second.tobytes() * spec.duration
    total, chunk, pts = SAMPLE_RATE * spec.duration, 1024, 0
    while pts < total:
        count = min(chunk, total - pts)
        frame = av.AudioFrame(format="fltp", layout="stereo", samples=count)
        data = pcm[pts * 4 : (pts + count) * 4]
        for plane in frame.planes:
            plane.update(data + bytes(plane.buffer_size - len(data)))
        frame.sample_rate, frame.pts = SAMPLE_RATE, pts
        out.mux(stream.encode(frame))
        pts += count
    out.mux(stream.encode(None))


def render_mp4(spec: RenderSpec) -> bytes:
    """Render an MP4 (H.264 yuv420p + optional AAC, 24 fps, moov first).

    Args:
        spec: What to render.

    Returns:
        The MP4 bytes (deterministic for a given spec).

    Example:
        >>> data = render_mp4(RenderSpec(width=320, height=240, duration=1, audio=False, prompt="demo"))
        >>> data[4:8]
        b'ftyp'
    """
    colour = spec.digest()
    fd, path = tempfile.mkstemp(prefix="seedance-emulator-", suffix=".mp4")
    os.close(fd)
    try:
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            video = _add_video_stream(out, spec)
            audio = _add_audio_stream(out) if spec.audio else None
            _encode_video(out, video, spec, colour)
            if audio is not None:
                _encode_audio(out, audio, spec, colour)
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(path)


class RenderCache:
    """Thread-safe LRU cache of rendered MP4s; identical concurrent requests render once.

    Example:
        >>> cache = RenderCache(max_entries=2)
        >>> spec = RenderSpec(width=320, height=240, duration=1, audio=False, prompt="demo")
        >>> first, hit1 = cache.get(spec)
        >>> second, hit2 = cache.get(spec)
        >>> (hit1, hit2, first is second)
        (False, True, True)
    """

    def __init__(self, max_entries: int = 64) -> None:
        """Create an empty cache.

        Args:
            max_entries: Renders kept (least recently used ones are dropped).
        """
        self.max_entries = max_entries
        self._items: OrderedDict[RenderSpec, bytes] = OrderedDict()
        self._locks: dict[RenderSpec, threading.Lock] = {}
        self._guard = threading.Lock()
        self.renders = 0
        self.hits = 0
        self.render_seconds = 0.0

    def get(self, spec: RenderSpec) -> tuple[bytes, bool]:
        """Return the bytes for ``spec``, rendering them if needed (blocking; call from a worker thread).

        Args:
            spec: What to render.

        Returns:
            ``(mp4_bytes, cache_hit)``.
        """
        with self._guard:
            lock = self._locks.setdefault(spec, threading.Lock())
        with lock:
            with self._guard:
                if spec in self._items:
                    self._items.move_to_end(spec)
                    self.hits += 1
                    return self._items[spec], True
            started = time.perf_counter()
            data = render_mp4(spec)
            with self._guard:
                self.renders += 1
                self.render_seconds += time.perf_counter() - started
                self._items[spec] = data
                while len(self._items) > self.max_entries:
                    old, _ = self._items.popitem(last=False)
                    self._locks.pop(old, None)
            return data, False
