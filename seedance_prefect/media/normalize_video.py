"""Re-encode one video to a :class:`~.plan.VideoTarget` with PyAV, in-process (no ffmpeg binary).

One decode -> filter -> encode pass: threaded decoding; an FFmpeg filter graph with ``fps``
(constant frame rate; placed first when it drops frames, last when it duplicates them), ``scale``
(to the target size, before turning, so the turn works on fewer pixels), ``transpose`` /
``hflip,vflip`` (the rotation flag applied to the pixels) and ``format=yuv420p``; libx264 with the
target CRF and preset, capped by ``maxrate``; the first audio track resampled (one resampler per
input) into AAC. Frames are numbered afresh (``pts`` 0, 1, 2...) so the output is constant frame
rate whatever the source timestamps were, and the decoder's picture types are cleared so x264
chooses its own. Decoding stops at the out point; the MP4 is written with ``+faststart``.

Example:
    >>> import tempfile, pathlib
    >>> from seedance_prefect.media.samples import make_video
    >>> from seedance_prefect.media.probe import probe_path
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> src = make_video(d / "in.mov", 320, 240, 1.0, fps=12, container="mov", rotation=90)
    >>> target = VideoTarget(rotation=90, width=480, height=640, fps="24", start=0.0, end=1.0, frames=24,
    ...                      audio=False, crf=23, preset="ultrafast", max_bitrate=None,
    ...                      scale_flags="bicubic", audio_bitrate=128000)
    >>> info = probe_path(normalize_video(src, d / "out.mp4", target))
    >>> info.container, info.width, info.height, info.rotation, info.fps, info.duration
    ('mp4', 480, 640, 0, 24.0, 1.0)
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.frame import PictureType

from ..errors import SeedanceError
from .targets import VideoTarget

__all__ = ["normalize_video"]

_AUDIO_RATES = (44100, 48000)


def _video_stream(container: Any) -> Any:
    for stream in container.streams.video:
        try:
            if stream.disposition & av.stream.Disposition.attached_pic:
                continue
        except Exception:
            pass
        return stream
    raise SeedanceError("no video stream")


class _VideoPath:
    """Filter graph + encoder of the picture; counts the frames written."""

    def __init__(self, out: Any, target: VideoTarget, source_fps: float | None) -> None:
        self.target = target
        self.rate = target.rate
        self.stream = out.add_stream("libx264", rate=self.rate)
        self.stream.width, self.stream.height = target.width, target.height
        self.stream.pix_fmt = "yuv420p"
        # PyAV's default (SLICE) makes libx264 use sliced threads; the ffmpeg CLI's default (frame
        # and slice) gives x264 frame threads, which keep the cores busier on the same work.
        self.stream.codec_context.thread_type = "AUTO"
        options = {"crf": str(target.crf), "preset": target.preset}
        if target.max_bitrate:
            options |= {"maxrate": str(target.max_bitrate), "bufsize": str(2 * target.max_bitrate)}
        self.stream.options = options
        self.out = out
        self.graph: Any = None
        self.written = 0
        self.reduce = source_fps is None or source_fps >= float(self.rate)

    @property
    def done(self) -> bool:
        return self.written >= self.target.frames

    def _build(self, frame: Any) -> None:
        t = self.target
        graph = av.filter.Graph()
        time_base = frame.time_base or Fraction(1, 90000)
        node = graph.add_buffer(
            width=frame.width, height=frame.height, format=frame.format.name, time_base=time_base
        )
        turned = t.rotation in (90, 270)
        sw, sh = (t.height, t.width) if turned else (t.width, t.height)
        chain: list[tuple[str, str | None]] = []
        fps = ("fps", f"fps={self.rate.numerator}/{self.rate.denominator}")
        if self.reduce:
            chain.append(fps)
        if (frame.width, frame.height) != (sw, sh):
            chain.append(("scale", f"w={sw}:h={sh}:flags={t.scale_flags}"))
        if t.rotation == 90:
            chain.append(("transpose", "cclock"))
        elif t.rotation == 270:
            chain.append(("transpose", "clock"))
        elif t.rotation == 180:
            chain += [("hflip", None), ("vflip", None)]
        if not self.reduce:
            chain.append(fps)
        chain.append(("format", "pix_fmts=yuv420p"))
        for name, args in chain:
            nxt = graph.add(name, args) if args else graph.add(name)
            node.link_to(nxt)
            node = nxt
        node.link_to(graph.add("buffersink"))
        graph.configure()
        self.graph = graph

    def push(self, frame: Any) -> None:
        if self.graph is None:
            if frame is None:
                return
            self._build(frame)
        self.graph.push(frame)
        self._drain()

    def _drain(self) -> None:
        while not self.done:
            try:
                frame = self.graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            frame.pts, frame.time_base = self.written, Fraction(1) / self.rate
            frame.pict_type = PictureType.NONE
            self.out.mux(self.stream.encode(frame))
            self.written += 1

    def finish(self) -> None:
        if self.graph is not None and not self.done:
            self.push(None)
        self.out.mux(self.stream.encode(None))


class _AudioPath:
    """Resampler + FIFO + AAC encoder of the first audio track, cut to the video's span."""

    def __init__(self, out: Any, source: Any, target: VideoTarget) -> None:
        src_rate = source.codec_context.sample_rate or 48000
        self.rate = 44100 if src_rate <= 44100 else 48000
        channels = getattr(source.codec_context.layout, "nb_channels", 2) or 2
        self.layout = "mono" if channels == 1 else "stereo"
        self.stream = out.add_stream("aac", rate=self.rate)
        self.stream.layout = self.layout
        self.stream.bit_rate = target.audio_bitrate
        self.out = out
        self.start = target.start
        self.needed = round(target.frames / float(target.rate) * self.rate)
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self.fifo = av.AudioFifo()
        self.skip: int | None = None
        self.written = 0

    @property
    def done(self) -> bool:
        return self.written >= self.needed

    def push(self, frame: Any) -> None:
        if self.skip is None and frame is not None:
            t0 = frame.time if frame.time is not None else self.start
            lead = round((self.start - t0) * self.rate)
            self.skip = max(0, lead)
            if lead < 0:  # the track starts after the in point: keep sync with silence
                self._write(_silence(-lead, self.layout, self.rate))
        for resampled in self.resampler.resample(frame):
            self._write(resampled)
        self._drain(final=frame is None)

    def _write(self, frame: Any) -> None:
        frame.pts = None
        self.fifo.write(frame)
        while self.skip and self.fifo.samples:
            n = min(self.skip, self.fifo.samples)
            self.fifo.read(n)
            self.skip -= n

    def _drain(self, final: bool = False) -> None:
        size = self.stream.codec_context.frame_size or 1024
        while not self.done and (self.fifo.samples >= size or (final and self.fifo.samples)):
            n = min(size, self.needed - self.written, self.fifo.samples)
            frame = self.fifo.read(n)
            frame.pts, frame.time_base = self.written, Fraction(1, self.rate)
            self.out.mux(self.stream.encode(frame))
            self.written += n

    def finish(self) -> None:
        self.push(None)
        self.out.mux(self.stream.encode(None))


def _silence(samples: int, layout: str, rate: int) -> Any:
    frame = av.AudioFrame(format="fltp", layout=layout, samples=samples)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = rate
    return frame


def normalize_video(src: str | os.PathLike[str], dst: str | os.PathLike[str], target: VideoTarget) -> Path:
    """Re-encode a video to ``target`` (H.264/AAC MP4, faststart) and write it to ``dst``.

    Args:
        src: The source video (any container/codec FFmpeg decodes).
        dst: Where to write the MP4.
        target: What to make (from :func:`~.plan.plan_references`).

    Returns:
        ``dst``.

    Raises:
        SeedanceError: No frame was produced (e.g. the in point is past the last frame), or the
            source cannot be decoded.
    """
    try:
        with av.open(str(src), metadata_errors="replace") as inp:
            vin = _video_stream(inp)
            vin.thread_type = "AUTO"
            ain = inp.streams.audio[0] if target.audio and inp.streams.audio else None
            if target.start > 0 and vin.time_base:
                inp.seek(int(target.start / vin.time_base), stream=vin, backward=True)
            with av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as out:
                video = _VideoPath(out, target, float(vin.average_rate) if vin.average_rate else None)
                audio = _AudioPath(out, ain, target) if ain is not None else None
                _transcode(inp, vin, ain, video, audio, target)
                video.finish()
                if audio is not None:
                    audio.finish()
    except av.FFmpegError as exc:
        raise SeedanceError(f"could not re-encode {src}: {exc}") from exc
    if video.written == 0:
        Path(dst).unlink(missing_ok=True)
        raise SeedanceError(f"re-encoding {src} produced no frames (in point {target.start:g} s)")
    return Path(dst)


def _transcode(
    inp: Any, vin: Any, ain: Any, video: _VideoPath, audio: _AudioPath | None, target: VideoTarget
) -> None:
    early = 0.5 / float(target.rate)
    video_input_done = False
    streams = [vin] if ain is None else [vin, ain]
    for packet in inp.demux(streams):
        if packet.stream is vin:
            if video_input_done or video.done:
                video_input_done = True
            else:
                for frame in packet.decode():
                    t = frame.time
                    if t is not None and t < target.start - early:
                        continue
                    if t is not None and t >= target.end:
                        video_input_done = True
                        break
                    video.push(frame)
        elif audio is not None and not audio.done:
            for frame in packet.decode():
                audio.push(frame)
        if (video_input_done or video.done) and (audio is None or audio.done):
            break
