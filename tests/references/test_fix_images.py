"""Images are fixed by Pillow and every result is checked by probing it."""

from __future__ import annotations

from PIL import Image, ImageOps

from seedance_prefect.media.probe import probe_path
from seedance_prefect.references.fixes import FixOptions
from seedance_prefect.references.preprocess import prepare
from tests.references.conftest import request_for
from tests.references.refkit import bright_corner, fixes, output


def _prepare(shared_cache, *names, media, **kw):
    return prepare(request_for(input_images=[media.s(n) for n in names]), cache_dir=shared_cache, **kw)


def test_exif_orientation_is_applied_to_the_pixels(media, shared_cache):
    prepared = _prepare(shared_cache, "exif6", media=media)
    out = output(prepared, "input_images[0]")
    info = probe_path(out)
    assert (info.container, info.width, info.height, info.exif_orientation) == ("jpeg", 600, 800, None)
    with Image.open(media["exif6"]) as original:
        upright = ImageOps.exif_transpose(original)
    with Image.open(out) as result:
        assert bright_corner(result) == bright_corner(upright) == "tr"
    assert fixes(prepared) == [("input_images[0]", "orient")]


def test_a_7000x4000_camera_jpeg_is_downscaled_to_6000_px(media, shared_cache):
    prepared = _prepare(shared_cache, "huge_jpeg", media=media)
    info = probe_path(output(prepared, "input_images[0]"))
    assert (info.container, info.width, info.height) == ("jpeg", 6000, 3429)
    assert info.size_bytes <= 30_000_000
    [fix] = prepared.fixes
    assert (fix.what, fix.before, fix.after) == ("resize", "7000x4000", "6000x3429")


def test_small_images_are_upscaled_to_300_px(media, shared_cache):
    info = probe_path(output(_prepare(shared_cache, "tiny", media=media), "input_images[0]"))
    assert (info.width, info.height) == (300, 480)


def test_extreme_aspect_ratios_are_padded_into_the_window(media, shared_cache):
    prepared = _prepare(shared_cache, "wide", "tall", media=media)
    wide, tall = (probe_path(output(prepared, f"input_images[{i}]")) for i in (0, 1))
    assert (wide.container, wide.width, wide.height) == ("jpeg", 1600, 640)
    assert (tall.container, tall.width, tall.height) == ("png", 400, 1000)
    with Image.open(output(prepared, "input_images[0]")) as im:
        band = im.crop((0, 0, 1600, 100)).convert("L")  # the added band is one flat colour
        assert max(band.getextrema()) - min(band.getextrema()) <= 12


def test_crop_option(media, shared_cache):
    prepared = _prepare(shared_cache, "wide", media=media, options=FixOptions(image_aspect="crop"))
    info = probe_path(output(prepared, "input_images[0]"))
    assert (info.width, info.height) == (1000, 400)


def test_gif_is_converted_to_png(media, shared_cache):
    prepared = _prepare(shared_cache, "gif", media=media)
    info = probe_path(output(prepared, "input_images[0]"))
    assert (info.container, info.width, info.height) == ("png", 400, 400)
    assert prepared.request.input_images[0].startswith("data:image/png;base64,")


def test_heic_is_converted_to_jpeg(media, shared_cache):
    prepared = _prepare(shared_cache, "heic", media=media)
    info = probe_path(output(prepared, "input_images[0]"))
    assert (info.container, info.width, info.height) == ("jpeg", 640, 480)
    assert [(f.what, f.before, f.after) for f in prepared.fixes] == [("convert", "HEIC", "JPEG")]


def test_a_png_over_30_mb_is_brought_under_the_cap(media, shared_cache):
    prepared = _prepare(shared_cache, "png_30mb_plus", media=media)
    info = probe_path(output(prepared, "input_images[0]"))
    assert info.kind == "image" and info.size_bytes <= 30_000_000 and (info.width, info.height) == (640, 480)
    assert prepared.fixes[0].what == "compress"


def test_quality_steps_down_until_the_cap_holds(media, tmp_path):
    cap = 400_000  # a noise JPEG at quality 95 is ~2 MB
    prepared = _prepare(tmp_path, "noise", media=media, options=FixOptions(image_max_bytes=cap))
    out = output(prepared, "input_images[0]")
    info = probe_path(out)
    assert info.container == "jpeg" and info.size_bytes <= cap and media["noise"].stat().st_size > cap
    assert (info.width, info.height) == (1000, 800)  # quality alone was enough here
    assert prepared.fixes[0].after.endswith("JPEG")
