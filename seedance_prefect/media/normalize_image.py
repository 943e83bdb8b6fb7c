"""Rewrite one image to an :class:`~.plan.ImageTarget` with Pillow (no subprocess, no network).

Order: EXIF orientation applied (``ImageOps.exif_transpose``), modes made encodable (CMYK/16-bit
to RGB, palette with transparency to RGBA), aspect fixed (padded with the image's mean colour,
or centre-cropped), resized with Lanczos, then saved as JPEG/PNG/WebP. When the file would exceed
the byte cap, quality steps down (95, 90 ... 50; PNG images switch to JPEG, or WebP if they have
transparency), then the size shrinks by 15 % per step. The ICC profile is kept; EXIF is dropped.

Example:
    >>> import tempfile, pathlib
    >>> from seedance_prefect.media.samples import make_image
    >>> from seedance_prefect.media.probe import probe_path
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> src = make_image(d / "side.jpg", 400, 320, exif_orientation=6)
    >>> target = ImageTarget(True, None, None, 320, 400, "JPEG", 30_000_000, 95)
    >>> info = probe_path(normalize_image(src, d / "up.jpg", target))
    >>> info.width, info.height, info.exif_orientation
    (320, 400, None)
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps, ImageStat

from ..errors import SeedanceError
from .probe import heif_available
from .targets import ImageTarget

__all__ = ["encode_image", "normalize_image"]

_QUALITIES = (95, 90, 85, 80, 75, 70, 60, 50)
_SHRINK = 0.85


def _open(src: Path) -> Image.Image:
    if heif_available():
        import pillow_heif

        pillow_heif.register_heif_opener()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im = Image.open(src)
        im.load()
    return im


def _encodable(im: Image.Image) -> Image.Image:
    """Convert modes the encoders cannot take (CMYK, 16-bit, float, palette) to RGB(A)."""
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGB", "RGBA", "L", "LA"):
        return im
    if im.mode in ("PA", "RGBa", "La"):
        return im.convert("RGBA")
    if im.mode.startswith("I;16"):
        return im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    return im.convert("L") if im.mode in ("I", "F", "1") else im.convert("RGB")


def _aspect(im: Image.Image, target: ImageTarget) -> Image.Image:
    if target.canvas is None:
        return im
    cw, ch = target.canvas
    if target.aspect_mode == "crop":
        left, top = (im.width - cw) // 2, (im.height - ch) // 2
        return im.crop((left, top, left + cw, top + ch))
    mean = tuple(int(v) for v in ImageStat.Stat(im).mean)
    fill: tuple[int, ...] | int = mean[0] if len(mean) == 1 else mean
    if im.mode in ("RGBA", "LA"):
        fill = (*mean[:-1], 0) if len(mean) > 2 else (mean[0], 0)
    canvas = Image.new(im.mode, (cw, ch), fill)
    canvas.paste(im, ((cw - im.width) // 2, (ch - im.height) // 2))
    return canvas


def encode_image(im: Image.Image, fmt: str, quality: int, icc: bytes | None = None) -> bytes:
    """Encode a Pillow image as JPEG, PNG or WebP bytes.

    Args:
        im: The image (JPEG gets RGB or L; transparency is flattened on white).
        fmt: ``"JPEG"``, ``"PNG"`` or ``"WEBP"``.
        quality: JPEG/WebP quality (ignored for PNG).
        icc: ICC profile to embed.

    Returns:
        The encoded bytes.

    Example:
        >>> encode_image(Image.new("RGB", (8, 8)), "PNG", 95)[:4]
        b'\\x89PNG'
    """
    buf = io.BytesIO()
    options: dict[str, object] = {"icc_profile": icc} if icc else {}
    if fmt == "JPEG":
        if im.mode not in ("RGB", "L"):
            flat = Image.new("RGB", im.size, (255, 255, 255))
            flat.paste(im.convert("RGBA"), mask=im.convert("RGBA").getchannel("A"))
            im = flat
        im.save(buf, "JPEG", quality=quality, optimize=True, **options)
    elif fmt == "WEBP":
        im.save(buf, "WEBP", quality=quality, method=4, **options)
    else:
        im.save(buf, "PNG", compress_level=6, **options)
    return buf.getvalue()


def normalize_image(src: str | os.PathLike[str], dst: str | os.PathLike[str], target: ImageTarget) -> Path:
    """Rewrite an image to ``target`` and write it to ``dst``.

    Args:
        src: The source image (any format Pillow reads, HEIC with ``pillow-heif``).
        dst: Where to write the result (written whole; parent folders must exist).
        target: What to make (from :func:`~.plan.plan_references`).

    Returns:
        ``dst``.

    Raises:
        SeedanceError: The image cannot be brought under the byte cap without going below 300 px.
    """
    im = _open(Path(src))
    icc = im.info.get("icc_profile")
    if target.orient:
        im = ImageOps.exif_transpose(im)
    im = _aspect(_encodable(im), target)
    if im.size != (target.width, target.height):
        im = im.resize((target.width, target.height), Image.Resampling.LANCZOS)
    data = _fit(im, target, icc)
    Path(dst).write_bytes(data)
    return Path(dst)


def _fit(im: Image.Image, target: ImageTarget, icc: bytes | None) -> bytes:
    """Encode within the byte cap: the target format, then lower quality, then smaller sizes."""
    fmt = target.format
    data = encode_image(im, fmt, target.quality, icc)
    if len(data) <= target.max_bytes:
        return data
    if fmt == "PNG":
        fmt = "WEBP" if im.mode in ("RGBA", "LA") else "JPEG"
    while True:
        for quality in (q for q in _QUALITIES if q <= target.quality):
            data = encode_image(im, fmt, quality, icc)
            if len(data) <= target.max_bytes:
                return data
        size = (round(im.width * _SHRINK), round(im.height * _SHRINK))
        if min(size) < 300:
            raise SeedanceError(
                f"could not encode the image under {target.max_bytes:,} bytes without going below 300 px"
            )
        im = im.resize(size, Image.Resampling.LANCZOS)
