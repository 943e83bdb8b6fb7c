"""Peak RSS growth while the client saves a 45 MB result, by ``url`` and by inline ``b64_json``.

A tiny server in its own process serves the video (``GET /big.mp4``) and a synchronous answer
holding it base64-encoded (``POST /api/ai/videos/generate``). Each measurement runs in a fresh
child process, so ``ru_maxrss`` (peak RSS, monotonic per process) starts clean: growth = peak after
the save - peak before it. Goal (issue 7): under 32 MB and under 1.6 x the video size.

Run: ``python bench/memory.py [--quick]`` (prints markdown rows), or through ``bench/run``.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import socket
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SIZE = 45 * 1024 * 1024
CHUNK = 1 << 20


def _serve(folder: str, port_queue: Any) -> None:
    video = Path(folder) / "big.mp4"
    answer = Path(folder) / "answer.json"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send_file(self, path: Path, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with open(path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    self.wfile.write(chunk)

        def do_GET(self) -> None:
            self._send_file(video, "video/mp4")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._send_file(answer, "application/json")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def _prepare(folder: Path) -> None:
    (folder / "big.mp4").write_bytes(os.urandom(SIZE))
    with open(folder / "answer.json", "wb") as out, open(folder / "big.mp4", "rb") as video:
        out.write(b'{"created": 1775090723, "model": "bytedance-seedance-2-0-reference-to-video", ')
        out.write(b'"videos": [{"b64_json": "')
        while chunk := video.read(3 * CHUNK):  # a multiple of 3: no padding inside
            out.write(base64.b64encode(chunk))
        out.write(b'"}]}')


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _measure(mode: str, base_url: str, target: str, result: Any) -> None:
    """In a fresh process: peak RSS above the starting RSS while one save runs (sampled every 2 ms)."""
    import threading

    from seedance_prefect.client import SeedanceClient

    body = {"prompt": "memory bench", "duration": "4", "response_format": "b64_json"}
    with SeedanceClient("bench-memory", base_url=base_url) as client:
        start, peak, done = _rss(), [0], threading.Event()

        def sample() -> None:
            while not done.wait(0.002):
                peak[0] = max(peak[0], _rss())

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            if mode == "url":
                client.download(f"{base_url.rsplit('/api', 1)[0]}/big.mp4", target)
            elif mode == "b64_json":
                client.generate(body, save_to=target)
            else:  # the naive way, for the baseline: parse the whole answer, then decode it
                client.save_b64(client.generate(body).videos[0], target)
        finally:
            done.set()
            sampler.join()
    result.put(max(peak[0], _rss()) - start)


def _child(ctx: Any, mode: str, base_url: str, folder: Path) -> int:
    results: Any = ctx.Queue()
    child = ctx.Process(target=_measure, args=(mode, base_url, str(folder / f"out-{mode}.mp4"), results))
    child.start()
    growth = results.get(timeout=300)
    child.join(60)
    return int(growth)


def main(quick: bool = False) -> list[dict[str, Any]]:
    """Measure both modes; return rows (metric, goal, measured, baseline, ok)."""
    ctx = multiprocessing.get_context("fork")  # bench/run loads this file by path: spawn cannot re-import it
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _prepare(folder)
        ports: Any = ctx.Queue()
        server = ctx.Process(target=_serve, args=(str(folder), ports), daemon=True)
        server.start()
        try:
            base_url = f"http://127.0.0.1:{ports.get(timeout=30)}/api"
            growth = {mode: _child(ctx, mode, base_url, folder) for mode in ("url", "b64_json", "naive")}
            for mode in ("url", "b64_json"):
                same = (folder / f"out-{mode}.mp4").read_bytes() == (folder / "big.mp4").read_bytes()
                rows.append(
                    {
                        "metric": f"peak RSS growth saving a 45 MB result by {mode}",
                        "goal": "< 32 MB and < 1.6 x size",
                        "measured": f"{growth[mode] / 1e6:.1f} MB{'' if same else ' (WRONG BYTES)'}",
                        "baseline": (
                            f"parse the JSON, then decode: {growth['naive'] / 1e6:.0f} MB"
                            if mode == "b64_json"
                            else "-"
                        ),
                        "ok": same and growth[mode] < 32e6 and growth[mode] < 1.6 * SIZE,
                    }
                )
        finally:
            server.terminate()
    return rows


if __name__ == "__main__":
    socket.setdefaulttimeout(60)
    rows = main(quick="--quick" in sys.argv)
    print("| metric | goal | measured | baseline | ok |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['metric']} | {row['goal']} | {row['measured']} | {row['baseline']} | {row['ok']} |")
