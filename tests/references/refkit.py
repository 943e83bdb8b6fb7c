"""Helpers of the reference tests: outputs of a preparation, picture corners, MP4 box order."""

from __future__ import annotations

import struct
from pathlib import Path

import av
from PIL import Image, ImageStat

from seedance_prefect.references.preprocess import PreparedReferences


def output(prepared: PreparedReferences, field: str) -> Path:
    """The local file prepared for a field."""
    [record] = [r for r in prepared.references if r.field == field]
    assert record.output is not None, f"{field} has no local output"
    return Path(record.output)


def fixes(prepared: PreparedReferences, field: str | None = None) -> list[tuple[str, str]]:
    """(field, what) of the applied fixes."""
    return [(f.field, f.what) for f in prepared.fixes if field is None or f.field == field]


def bright_corner(im: Image.Image) -> str:
    """Which corner holds the white marker of :func:`~seedance_prefect.media.samples.pattern`."""
    w, h = im.size
    b = max(4, min(w, h) // 12)
    boxes = {"tl": (0, 0, b, b), "tr": (w - b, 0, w, b), "bl": (0, h - b, b, h), "br": (w - b, h - b, w, h)}
    return max(boxes, key=lambda k: sum(ImageStat.Stat(im.convert("RGB").crop(boxes[k])).mean))


def first_frame(path: Path) -> Image.Image:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_image()


def top_level_boxes(path: Path) -> list[str]:
    """The top-level ISO-BMFF box types, in file order (``moov`` before ``mdat`` = faststart)."""
    boxes = []
    data = path.read_bytes()
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        pos += size
    return boxes


def frame_times(path: Path) -> list[float]:
    """Presentation times of every video frame."""
    with av.open(str(path)) as container:
        return sorted(float(f.time) for f in container.decode(video=0))
