"""probe_path / probe_bytes / decode_data_uri / decode_check: by content, never by name, never raising."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from seedance_prefect.media.probe import (
    MediaInfo,
    decode_check,
    decode_data_uri,
    probe_bytes,
    probe_path,
    sniff_container,
)


@pytest.mark.parametrize(
    ("name", "container"), [("jpeg", "jpeg"), ("png", "png"), ("webp", "webp"), ("gif", "gif")]
)
def test_images(media, name, container):
    info = probe_path(media[name])
    assert (info.kind, info.container, info.error) == ("image", container, None)
    assert info.size_bytes == media[name].stat().st_size
    assert info.duration is None and not info.has_video


def test_image_dimensions(media):
    info = probe_path(media["jpeg"])
    assert (info.width, info.height, info.coded_width, info.coded_height) == (640, 480, 640, 480)
    assert info.rotation == 0 and info.exif_orientation is None and info.pix_fmt == "RGB"


def test_exif_rotated_jpeg_reports_display_dimensions(media):
    info = probe_path(media["exif6"])
    assert info.exif_orientation == 6
    assert info.rotation == 270
    assert (info.coded_width, info.coded_height) == (400, 300)
    assert (info.width, info.height) == (300, 400)


def test_mp4(media):
    info = probe_path(media["mp4"])
    assert (info.kind, info.container, info.video_codec, info.pix_fmt) == ("video", "mp4", "h264", "yuv420p")
    assert (info.width, info.height) == (320, 240)
    assert info.duration == pytest.approx(1.0)
    assert info.fps == pytest.approx(12.0)
    assert info.has_video and not info.has_audio and not info.variable_frame_rate
    assert info.error is None


def test_mov_is_told_from_mp4_by_ftyp_brand_and_has_audio(media):
    info = probe_path(media["mov"])
    assert (info.kind, info.container) == ("video", "mov")
    assert media["mov"].read_bytes()[8:12] == b"qt  "
    assert info.has_audio and info.audio_codec == "aac" and info.sample_rate == 44100 and info.channels == 2
    assert info.duration == pytest.approx(1.0)


def test_rotated_video_swaps_display_dimensions(media):
    info = probe_path(media["rotated"])
    assert info.rotation == 90
    assert (info.coded_width, info.coded_height) == (320, 240)
    assert (info.width, info.height) == (240, 320)


def test_variable_frame_rate_is_detected(media):
    assert probe_path(media["vfr"]).variable_frame_rate is True
    assert probe_path(media["mp4"]).variable_frame_rate is False


def test_other_video_container(media):
    info = probe_path(media["webm"])
    assert (info.kind, info.container, info.video_codec) == ("video", "webm", "vp9")


def test_wav(media):
    info = probe_path(media["wav"])
    assert (info.kind, info.container, info.audio_codec) == ("audio", "wav", "pcm_s16le")
    assert info.duration == pytest.approx(1.5)
    assert (info.sample_rate, info.channels) == (44100, 2)
    assert info.has_audio and not info.has_video and info.width is None


def test_mp3(media):
    info = probe_path(media["mp3"])
    assert (info.kind, info.container, info.audio_codec) == ("audio", "mp3", "mp3")
    assert info.duration == pytest.approx(1.5, abs=0.03)
    assert (info.sample_rate, info.channels) == (22050, 1)


@pytest.mark.parametrize(("name", "container"), [("flac", "flac"), ("m4a", "m4a")])
def test_other_audio_formats(media, name, container):
    info = probe_path(media[name])
    assert (info.kind, info.container) == ("audio", container)


def test_png_named_mp4_is_an_image(media):
    info = probe_path(media["png_as_mp4"])
    assert (info.kind, info.container) == ("image", "png")


def test_text_named_jpg_is_unknown(media):
    info = probe_path(media["text"])
    assert info.kind == "unknown" and info.error


@pytest.mark.parametrize("name", ["empty", "truncated"])
def test_empty_and_corrupt_files_report_an_error(media, name):
    info = probe_path(media[name])
    assert info.error
    assert info.kind in ("unknown", "video")


def test_truncated_png_is_an_image_with_an_error(media):
    info = probe_path(media["broken_png"])
    assert info.kind == "image" and info.container == "png" and info.error


def test_missing_file_and_directory(tmp_path):
    assert "cannot read" in (probe_path(tmp_path / "nope.mp4").error or "")
    assert "not a regular file" in (probe_path(tmp_path).error or "")


def test_probe_bytes_matches_probe_path(media):
    for name in ("jpeg", "mov", "wav", "mp3", "png_as_mp4"):
        from_path, from_bytes = probe_path(media[name]), probe_bytes(media[name].read_bytes(), "x.bin")
        assert from_bytes.to_dict() == from_path.to_dict(), name


def test_probe_bytes_garbage_never_raises():
    for data in (
        b"",
        b"\x00" * 10,
        b"RIFF\x00\x00\x00\x00WAVE",
        b"\x00\x00\x00\x18ftypisom" + bytes(40),
        b"\xff\xd8\xff\xe0garbage",
        b"\x89PNG\r\n\x1a\nbroken",
    ):
        info = probe_bytes(data, name_hint="blob")
        assert info.error, data
        assert info.kind in ("unknown", "image", "video", "audio")


def test_heic_brand_is_an_image():
    fake = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    assert sniff_container(fake) == "heic"
    info = probe_bytes(fake)
    assert (info.kind, info.container) == ("image", "heic")


def test_real_heic_opens_through_pillow_heif(tmp_path):
    pytest.importorskip("pillow_heif")
    from seedance_prefect.media.samples import make_image

    info = probe_path(make_image(tmp_path / "x.jpg", 64, 48, format="HEIC"))
    assert (info.kind, info.container, info.width, info.height) == ("image", "heic", 64, 48)


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"\x00\x00\x00\x14ftypqt  ", "mov"),
        (b"\x00\x00\x00\x14ftypisom", "mp4"),
        (b"\x00\x00\x00\x14ftypavif", "avif"),
        (b"\x00\x00\x00\x14ftyp3gp4", "3gp"),
        (b"\x00\x00\x00\x14ftypM4A ", "m4a"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "webp"),
        (b"ID3\x04", "mp3"),
        (b"\xff\xfb\x90\x00", "mp3"),
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"OggS", "ogg"),
        (b"fLaC", "flac"),
        (b"\x1a\x45\xdf\xa3webm", "webm"),
        (b"hello", None),
    ],
)
def test_sniff_container(head, name):
    assert sniff_container(head) == name


def test_to_dict_is_json_ready(media):
    data = probe_path(media["mov"]).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) >= {
        "kind",
        "container",
        "size_bytes",
        "width",
        "height",
        "rotation",
        "duration",
        "fps",
        "variable_frame_rate",
        "video_codec",
        "audio_codec",
        "has_audio",
        "has_video",
        "pix_fmt",
        "sample_rate",
        "channels",
        "exif_orientation",
        "error",
    }
    assert MediaInfo().pixels is None


# data: URIs -------------------------------------------------------------------------------------


def test_data_uri_base64_round_trip(media):
    raw = media["png"].read_bytes()
    mime, data = decode_data_uri("data:image/png;base64," + base64.b64encode(raw).decode())
    assert (mime, data) == ("image/png", raw)
    assert probe_bytes(data).container == "png"


def test_data_uri_variants():
    assert decode_data_uri("data:,hello%20world") == ("text/plain", b"hello world")
    assert decode_data_uri("DATA:Audio/WAV;base64,aGk") == ("audio/wav", b"hi")  # case, missing padding
    # parameters, whitespace
    assert decode_data_uri("data:image/png;name=a.png;base64,aG k=\n") == ("image/png", b"hi")
    assert decode_data_uri("data:text/plain;base64," + urllib.parse.quote("aGk=")) == ("text/plain", b"hi")
    assert decode_data_uri("data:application/octet-stream;base64,-_8=")[1] == b"\xfb\xff"  # urlsafe alphabet


@pytest.mark.parametrize(
    ("uri", "text"),
    [
        ("https://example.com/a.png", "not a data: URI"),
        ("data:image/png;base64", "no ','"),
        ("data:image/png;base64,@@@@", "invalid base64"),
        ("data:not a type;base64,aGk=", "invalid media type"),
    ],
)
def test_malformed_data_uris(uri, text):
    with pytest.raises(ValueError, match=text):
        decode_data_uri(uri)


# decode_check -----------------------------------------------------------------------------------


def test_decode_check_good_files(media):
    for name in ("mp4", "mov", "wav", "mp3"):
        assert decode_check(media[name]) is None, name


@pytest.mark.parametrize("name", ["truncated", "text", "empty"])
def test_decode_check_bad_files(media, name):
    assert isinstance(decode_check(media[name]), str)


def test_decode_check_missing_file(tmp_path):
    assert "cannot read" in (decode_check(tmp_path / "nope.mp4") or "")
