"""Benchmark: normalise a 15 s 1080p H.264 clip to 720p with PyAV, against the ffmpeg CLI.

The PyAV side is exactly what ``prepare()`` runs for such a clip (the planned
:class:`~seedance_prefect.references.plan.VideoTarget`: 1284x722, source frame rate kept, libx264
``veryfast`` CRF 23 with the 50 MB ``maxrate`` cap, AAC, ``+faststart``). The ffmpeg CLI runs the
same filter chain and encoder settings. Runs alternate (PyAV, CLI, PyAV, ...) and the median
wall time of each is compared; the goal is PyAV within 1.2x of the CLI.

The source is made once (cached in the work folder): the sample pattern at 1920x1080, 30 fps,
15 s with AAC sound, re-encoded like a phone clip (libx264 ``veryfast`` CRF 18: CABAC and
B-frames, so decoding costs what it does on real footage).

Usage::

    python bench/normalize.py [--runs 3] [--workdir DIR] [--json]

Without an ``ffmpeg`` on PATH the CLI side is skipped (with a note); imageio-ffmpeg is not used.
``run()`` returns the figures as a dict and ``markdown_row()`` formats them, for a ``bench/run``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av

from seedance_prefect.media.normalize_video import normalize_video
from seedance_prefect.media.probe import probe_path
from seedance_prefect.media.samples import make_video
from seedance_prefect.media.targets import VideoTarget
from seedance_prefect.references.plan import plan_references
from seedance_prefect.references.source import ReferenceInfo

GOAL = 1.2
SECONDS, FPS = 15.0, 30


def make_source(workdir: Path) -> Path:
    """The 15 s 1080p30 H.264/AAC source clip (made once per work folder)."""
    source = workdir / "source-1080p30-15s.mp4"
    if source.is_file():
        return source
    raw = make_video(workdir / "raw.mp4", 1920, 1080, SECONDS, fps=FPS, audio=True, seed=11)
    with av.open(str(raw)) as inp, av.open(str(source), "w", options={"movflags": "+faststart"}) as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vout = out.add_stream("libx264", rate=FPS)
        vout.width, vout.height, vout.pix_fmt = 1920, 1080, "yuv420p"
        vout.options = {"preset": "veryfast", "crf": "18", "profile": "high"}
        aout = out.add_stream_from_template(ain)
        for packet in inp.demux(vin, ain):
            if packet.stream is ain:
                if packet.dts is not None:
                    packet.stream = aout
                    out.mux(packet)
                continue
            for frame in packet.decode():
                frame.pict_type = av.video.frame.PictureType.NONE
                frame.pts, frame.time_base = frame.pts, frame.time_base or Fraction(1, FPS)
                out.mux(vout.encode(frame))
        out.mux(vout.encode(None))
    raw.unlink()
    return source


def target_for(source: Path) -> VideoTarget:
    """What ``prepare()`` plans for the source."""
    ref = ReferenceInfo("input_videos[0]", str(source), "path", path=source, media=probe_path(source))
    [rp] = plan_references([ref]).references
    assert isinstance(rp.target, VideoTarget)
    return rp.target


def ffmpeg_command(ffmpeg: str, source: Path, out: Path, t: VideoTarget) -> list[str]:
    """The ffmpeg CLI doing the same job as ``normalize_video`` with ``t``."""
    rate = Fraction(t.fps)
    scale = f"scale={t.width}:{t.height}:flags={t.scale_flags}"
    chain = f"fps={rate.numerator}/{rate.denominator},{scale},format=yuv420p"
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), "-t", f"{t.duration:.6f}",
        "-vf", chain, "-c:v", "libx264", "-preset", t.preset, "-crf", str(t.crf),
        "-maxrate", str(t.max_bitrate), "-bufsize", str(2 * (t.max_bitrate or 0)),
        "-c:a", "aac", "-b:a", str(t.audio_bitrate), "-ar", "44100", "-movflags", "+faststart", str(out),
    ]  # fmt: skip


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _time_pyav(source: Path, out: Path, target: VideoTarget) -> tuple[float, float]:
    cpu, start = _cpu(resource.RUSAGE_SELF), time.perf_counter()
    normalize_video(source, out, target)
    return time.perf_counter() - start, _cpu(resource.RUSAGE_SELF) - cpu


def _time_cli(cmd: list[str]) -> tuple[float, float]:
    cpu, start = _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start, _cpu(resource.RUSAGE_CHILDREN) - cpu


def _ffmpeg_version(ffmpeg: str) -> str:
    first = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.splitlines()
    return first[0].split(" Copyright")[0] if first else "ffmpeg (unknown version)"


def run(runs: int = 3, workdir: Path | None = None) -> dict[str, Any]:
    """Run the benchmark and return its figures.

    Returns:
        ``{"case", "pyav_s", "pyav_cpu_s", "ffmpeg_s", "ffmpeg_cpu_s", "ratio", "cpu_ratio", "goal",
        "ok", "note", "output", "runs"}`` (``ffmpeg_*``, the ratios and ``ok`` are None without an
        ffmpeg on PATH). Wall times decide ``ok``; CPU times are less sensitive to other load.
    """
    workdir = workdir or Path(tempfile.gettempdir()) / "seedance-bench-normalize"
    workdir.mkdir(parents=True, exist_ok=True)
    source = make_source(workdir)
    target = target_for(source)
    ffmpeg = shutil.which("ffmpeg")
    pyav, cli = [], []
    for _ in range(runs):
        pyav.append(_time_pyav(source, workdir / "out-pyav.mp4", target))
        if ffmpeg:
            cli.append(_time_cli(ffmpeg_command(ffmpeg, source, workdir / "out-ffmpeg.mp4", target)))
    out = probe_path(workdir / "out-pyav.mp4")
    result: dict[str, Any] = {
        "case": f"15 s 1080p30 H.264 -> {target.width}x{target.height} {target.preset} CRF {target.crf}",
        "pyav_s": statistics.median(t for t, _c in pyav),
        "pyav_cpu_s": statistics.median(c for _t, c in pyav),
        "ffmpeg_s": statistics.median(t for t, _c in cli) if cli else None,
        "ffmpeg_cpu_s": statistics.median(c for _t, c in cli) if cli else None,
        "goal": GOAL,
        "output": f"{out.width}x{out.height} {out.fps:g} fps {out.duration:.2f} s {out.size_bytes:,} B",
        "note": f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}); "
        + (_ffmpeg_version(ffmpeg) if ffmpeg else "skipped: no ffmpeg on PATH (install one to compare)"),
        "runs": runs,
    }
    result["compliant_reencodes"], result["compliant_identical"] = compliant_reencodes(
        workdir / "out-pyav.mp4", workdir
    )
    result["ratio"] = result["pyav_s"] / result["ffmpeg_s"] if cli else None
    result["cpu_ratio"] = result["pyav_cpu_s"] / result["ffmpeg_cpu_s"] if cli else None
    result["ok"] = result["ratio"] <= GOAL if cli else None
    return result


def compliant_reencodes(video: Path, workdir: Path) -> tuple[int, bool]:
    """Prepare a request whose video is already compliant; return (re-encodes, sent byte-identical)."""
    from seedance_prefect.media.probe import decode_data_uri
    from seedance_prefect.references import preprocess

    calls = 0
    original = preprocess._normalizer

    def counting(target: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(target)

    preprocess._normalizer = counting
    try:
        body = {"prompt": "@Video1 drifts on", "input_videos": [str(video)]}
        prepared = preprocess.prepare(body, cache_dir=workdir / "cache")
    finally:
        preprocess._normalizer = original
    return calls, decode_data_uri(prepared.request.input_videos[0])[1] == video.read_bytes()


def markdown_row(result: dict[str, Any]) -> str:
    """One markdown table row: case | PyAV | ffmpeg CLI | ratio | goal | verdict | note."""

    def secs(wall: float | None, cpu: float | None) -> str:
        return "skipped" if wall is None else f"{wall:.2f} s (cpu {cpu:.2f} s)"

    ratio = "n/a" if result["ratio"] is None else f"{result['ratio']:.2f}x (cpu {result['cpu_ratio']:.2f}x)"
    verdict = "n/a" if result["ok"] is None else ("ok" if result["ok"] else "SLOWER than goal")
    return (
        f"| {result['case']} | {secs(result['pyav_s'], result['pyav_cpu_s'])} | "
        f"{secs(result['ffmpeg_s'], result['ffmpeg_cpu_s'])} | {ratio} | <= {result['goal']}x | {verdict} | "
        f"{result['note']} |"
    )


HEADER = (
    "| case | PyAV (median) | ffmpeg CLI (median) | ratio | goal | verdict | note |\n"
    "|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each side (median is reported)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the source clip and outputs go")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="one run of each side (bench/run --quick)")
    args = parser.parse_args(argv)
    result = run(1 if args.quick else args.runs, args.workdir)
    compliant = result["compliant_reencodes"] == 0 and result["compliant_identical"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{HEADER}\n{markdown_row(result)}\n")
        print("| check | goal | measured |\n|---|---|---|")
        print(
            f"| a compliant video (the PyAV output above) prepared as a reference | re-encoded 0 times | "
            f"re-encoded {result['compliant_reencodes']} times, sent byte-identical: "
            f"{result['compliant_identical']} |"
        )
    return 0 if result["ok"] in (True, None) and compliant else 1


if __name__ == "__main__":
    sys.exit(main())
