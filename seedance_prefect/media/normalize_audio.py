"""Rewrite one audio reference to an :class:`~.plan.AudioTarget` with PyAV (WAV or MP3).

The first audio track of any file FFmpeg reads (WAV, MP3, FLAC, M4A, Ogg, or a video's sound)
is decoded from its in point, resampled (a resampler of its own, so any source format, layout
and rate is accepted) to 16-bit PCM WAV or MP3 at the target rate and channel count, and cut to
an exact number of samples.

Example:
    >>> import tempfile, pathlib
    >>> from seedance_prefect.media.samples import make_audio
    >>> from seedance_prefect.media.probe import probe_path
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> src = make_audio(d / "long.flac", 3.0, format="flac", sample_rate=96000)
    >>> target = AudioTarget("wav", 48000, 2, 0.5, 2.5, 96000, 192000)
    >>> info = probe_path(normalize_audio(src, d / "cut.wav", target))
    >>> info.container, info.sample_rate, info.duration
    ('wav', 48000, 2.0)
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from ..errors import SeedanceError
from .targets import AudioTarget

__all__ = ["normalize_audio"]

_CODECS = {"wav": ("wav", "pcm_s16le"), "mp3": ("mp3", "libmp3lame")}


def normalize_audio(src: str | os.PathLike[str], dst: str | os.PathLike[str], target: AudioTarget) -> Path:
    """Rewrite audio to ``target`` and write it to ``dst``.

    Args:
        src: Any file with an audio track.
        dst: Where to write the WAV/MP3.
        target: What to make (from :func:`~.plan.plan_references`).

    Returns:
        ``dst``.

    Raises:
        SeedanceError: No audio track, nothing decoded, or a decoding error.
    """
    muxer, codec = _CODECS[target.format]
    layout = "mono" if target.channels == 1 else "stereo"
    try:
        with av.open(str(src), metadata_errors="replace") as inp:
            if not inp.streams.audio:
                raise SeedanceError(f"{src} has no audio track")
            ain = inp.streams.audio[0]
            if target.start > 0 and ain.time_base:
                inp.seek(int(target.start / ain.time_base), stream=ain, backward=True)
            with av.open(str(dst), "w", format=muxer) as out:
                aout = out.add_stream(codec, rate=target.sample_rate)
                aout.layout = layout
                if codec == "libmp3lame":
                    aout.bit_rate = target.bitrate
                formats = aout.codec_context.codec.audio_formats
                fmt = formats[0].name if formats else "s16"
                written = _copy(inp, ain, out, aout, target, fmt, layout)
    except av.FFmpegError as exc:
        raise SeedanceError(f"could not re-encode {src}: {exc}") from exc
    if written == 0:
        Path(dst).unlink(missing_ok=True)
        raise SeedanceError(f"re-encoding {src} produced no audio (in point {target.start:g} s)")
    return Path(dst)


def _copy(inp: Any, ain: Any, out: Any, aout: Any, target: AudioTarget, fmt: str, layout: str) -> int:
    resampler = av.AudioResampler(format=fmt, layout=layout, rate=target.sample_rate)
    fifo = av.AudioFifo()
    size = aout.codec_context.frame_size or 4096
    skip: int | None = None
    written = 0

    def drain(final: bool) -> None:
        nonlocal written
        while written < target.samples and (fifo.samples >= size or (final and fifo.samples)):
            frame = fifo.read(min(size, target.samples - written, fifo.samples))
            frame.pts, frame.time_base = written, Fraction(1, target.sample_rate)
            out.mux(aout.encode(frame))
            written += frame.samples

    def feed(frame: Any) -> None:
        nonlocal skip
        for resampled in resampler.resample(frame):
            resampled.pts = None
            fifo.write(resampled)
            while skip and fifo.samples:
                n = min(skip, fifo.samples)
                fifo.read(n)
                skip -= n
        drain(final=frame is None)

    for packet in inp.demux(ain):
        for frame in packet.decode():
            if skip is None:
                t0 = frame.time if frame.time is not None else 0.0
                skip = max(0, round((target.start - t0) * target.sample_rate))
            feed(frame)
        if written >= target.samples:
            break
    feed(None)
    out.mux(aout.encode(None))
    return written
