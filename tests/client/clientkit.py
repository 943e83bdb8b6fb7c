"""Constants and small helpers shared by the client tests (imported by name: tests/client is on sys.path)."""

from __future__ import annotations

import base64
import traceback
from pathlib import Path
from typing import Any

import httpx

#: A distinctive fake key: any occurrence of it in a message, repr or log line is a leak.
KEY = "sk-oxen-TEST-9f8e7d6c5b4a3210"
BASE = "https://hub.test/api"
MODEL = "bytedance-seedance-2-0-reference-to-video"
GID = "0b6f2d7e-1111-4222-8333-944455556666"
VIDEO = bytes(range(256)) * 300  # 76,800 bytes standing in for an mp4
VIDEO_B64 = base64.b64encode(VIDEO).decode()


def url(path: str) -> str:
    """An absolute URL under the mocked API base."""
    return BASE + path


def row(status: str = "processing", gid: str = GID, **extra: Any) -> dict[str, Any]:
    """A documented GenerationRow."""
    data: dict[str, Any] = {
        "generation_id": gid,
        "model_name": MODEL,
        "prompt": "@Image1 waves",
        "media_type": "video",
        "status": status,
        "result_url": None,
        "error_message": None,
        "enqueued_at": 1775091431,
        "started_at": 1775091432 if status != "queued" else None,
        "completed_at": None,
    }
    data.update(extra)
    return data


def not_found() -> httpx.Response:
    """The documented 404 body of the queue routes."""
    return httpx.Response(
        404,
        json={
            "error": {"type": "resource_not_found", "title": "The requested resource could not be found"},
            "status": "error",
            "status_message": "resource_not_found",
        },
    )


def exception_text(exc: BaseException) -> str:
    """Everything a user could see of an exception: str, repr, the whole chain and its traceback."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), repr(getattr(seen, "body", None)), str(vars(seen))]
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return "\n".join(parts)


def part_files(folder: Path) -> list[str]:
    """Names of temporary download files left in a folder."""
    return sorted(p.name for p in folder.iterdir() if ".part-" in p.name)
