"""Helpers shared by the emulator tests: request bodies, polling with deadlines, MP4 inspection, fixtures."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeVar

import av
import httpx
from PIL import Image

from seedance_prefect.emulator import RunningEmulator
from seedance_prefect.emulator.render import RenderSpec, render_mp4

API_KEY = "test-key"
MODEL = "bytedance-seedance-2-0-reference-to-video"
TERMINAL = {"succeeded", "failed", "cancelled"}
T = TypeVar("T")

#: Keys every GenerationRow carries (contract section 3.2).
ROW_KEYS = {
    "generation_id",
    "model_name",
    "prompt",
    "media_type",
    "status",
    "result_url",
    "error_message",
    "enqueued_at",
    "started_at",
    "completed_at",
}


def make_client(emulator: RunningEmulator, token: str | None = API_KEY) -> httpx.Client:
    """An httpx client on the emulator's base URL (never through a proxy)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=emulator.base_url, headers=headers, timeout=30.0, trust_env=False)


def request_body(**overrides: Any) -> dict[str, Any]:
    """A small, fast request: 4 s at 480p."""
    body: dict[str, Any] = {
        "model": MODEL,
        "prompt": "a red fox in the snow",
        "duration": "4",
        "resolution": "480p",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def wait_until(predicate: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)  # poll interval of a deadline-bounded condition, not a wait for state


def wait_terminal(client: httpx.Client, generation_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """Poll ``GET /ai/queue/{id}`` until the row is terminal; return it."""

    def done() -> dict[str, Any] | None:
        response = client.get(f"/ai/queue/{generation_id}")
        if response.status_code == 429:
            return None
        assert response.status_code == 200, response.text
        row = response.json()
        return row if row["status"] in TERMINAL else None

    return wait_until(done, timeout)


def assert_structured_error(
    response: httpx.Response, status: int, kind: str, detail: str | None = None
) -> None:
    """Check the structured envelope of contract section 4."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "status", "status_message"}
    assert body["status"] == "error"
    assert body["status_message"] == kind
    assert body["error"]["type"] == kind
    assert isinstance(body["error"]["title"], str) and body["error"]["title"]
    if detail is not None:
        assert body["error"]["detail"] == detail


def assert_row(row: dict[str, Any]) -> None:
    """Check a GenerationRow's documented keys and types."""
    assert set(row) >= ROW_KEYS
    assert isinstance(row["generation_id"], str) and len(row["generation_id"]) == 36
    assert row["model_name"] == MODEL
    assert row["media_type"] == "video"
    assert row["status"] in {"queued", "processing", "succeeded", "failed", "cancelled"}
    assert isinstance(row["enqueued_at"], int)
    for key in ("started_at", "completed_at"):
        assert row[key] is None or isinstance(row[key], int)
    for key in ("result_url", "error_message"):
        assert row[key] is None or isinstance(row[key], str)
    assert (row["result_url"] is not None) == (row["status"] == "succeeded")
    assert (row["error_message"] is not None) == (row["status"] == "failed")


def inspect_mp4(data: bytes) -> dict[str, Any]:
    """Decode every frame and audio packet with PyAV; return what a test checks."""
    with av.open(io.BytesIO(data)) as container:
        info: dict[str, Any] = {"format": container.format.name}
        video = container.streams.video[0]
        info.update(
            codec=video.codec_context.name,
            pix_fmt=video.codec_context.pix_fmt,
            width=video.codec_context.width,
            height=video.codec_context.height,
            fps=Fraction(video.average_rate),
            duration=float(video.duration * video.time_base),
            audio=None,
        )
        if container.streams.audio:
            audio = container.streams.audio[0]
            info["audio"] = {
                "codec": audio.codec_context.name,
                "sample_rate": audio.codec_context.sample_rate,
                "duration": float(audio.duration * audio.time_base),
            }
    with av.open(io.BytesIO(data)) as container:
        info["frames"] = sum(1 for _ in container.decode(video=0))
    if info["audio"] is not None:
        with av.open(io.BytesIO(data)) as container:
            info["audio"]["samples"] = sum(frame.samples for frame in container.decode(audio=0))
    return info


def png_bytes(width: int = 640, height: int = 480) -> bytes:
    """A small PNG reference image."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()


def wav_bytes(seconds: float = 2.0, rate: int = 16000) -> bytes:
    """A silent mono WAV reference audio."""
    import struct
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack("<h", 0) * int(seconds * rate))
    return buf.getvalue()


def mp4_bytes(seconds: int = 2) -> bytes:
    """A small reference video (640x640, no audio)."""
    return render_mp4(RenderSpec(640, 640, seconds, False, "reference clip"))
