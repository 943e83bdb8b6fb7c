"""Reference media in preflight: real files on both sides of every documented limit, by content."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from seedance_prefect.preflight import PreflightReport, check_request, validate_request


def check(**fields: list[str]) -> PreflightReport:
    """Check a request whose prompt refers to every attachment (so no tag warnings).

    ``fix=False``: these tests look at the rules themselves, before preprocessing turns the
    fixable problems into planned fixes (see test_preflight_fixes.py).
    """
    words = {"input_images": "Image", "input_videos": "Video", "input_audios": "Audio"}
    tags = [f"@{words[name]}{i + 1}" for name, items in fields.items() for i in range(len(items))]
    return check_request({"prompt": "Use " + " ".join(tags), **fields}, fix=False)


def errors(report: PreflightReport) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in report.errors]


def warnings(report: PreflightReport) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in report.warnings]


# Images ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["jpeg", "png", "webp"])
def test_supported_images(refs, name):
    report = check(input_images=[refs.s(name)])
    assert report.ok and errors(report) == []
    assert report.references[0].media.kind == "image"


def test_unsupported_image_formats_are_fixable_errors(refs):
    pytest.importorskip("pillow_heif")
    report = check(input_images=[refs.s("gif"), refs.s("heic")])
    problems = [p for p in report.errors if p.message == "Unsupported image format"]
    assert [(p.field, p.found, p.fixable) for p in problems] == [
        ("input_images[0]", "gif", True),
        ("input_images[1]", "heic", True),
    ]


def test_image_size_limit_both_sides(refs):
    assert check(input_images=[refs.s("img_30mb")]).ok
    report = check(input_images=[refs.s("img_30mb_plus")])
    assert errors(report) == [("input_images[0]", "Image too large")]
    problem = report.errors[0]
    assert problem.found == "30.0 MB (30,000,001 bytes)" and problem.fixable
    assert problem.limit == "at most 30.0 MB each"


def test_upstream_image_limits_are_warnings(refs):
    report = check(input_images=[refs.s("small"), refs.s("wide")])
    assert report.ok
    got = {(p.field, p.message.split(" (")[0]) for p in report.warnings}
    assert ("input_images[0]", "Image sides outside the upstream limits") in got
    assert ("input_images[1]", "Image aspect ratio outside the upstream limits") in got
    aspect = next(p for p in report.warnings if "aspect" in p.message)
    assert aspect.found == "1600x400 = 4.00"


def test_exif_rotated_image_uses_display_dimensions(refs):
    report = check(input_images=[refs.s("exif6")])
    assert report.ok
    media = report.references[0].media
    assert (media.width, media.height, media.rotation) == (600, 800, 270)
    assert any("EXIF orientation" in p.message and p.fixable for p in report.warnings)


# Videos ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["v2", "mov"])
def test_supported_videos(refs, name):
    report = check(input_videos=[refs.s(name)])
    assert report.ok and report.warnings == [], report.warnings


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["v2"], []),
        (["v19"], ["Videos too short in total"]),
        (["v15"], []),
        (["v155"], ["Videos too long in total"]),
        (["v5", "v5", "v5"], []),
        (["v5", "v5", "v55"], ["Videos too long in total"]),
    ],
)
def test_combined_video_duration_both_sides(refs, names, expected):
    report = check(input_videos=[refs.s(n) for n in names])
    assert [m for f, m in errors(report)] == expected
    if expected:
        assert report.errors[0].field == "input_videos"


def test_video_duration_messages_have_units(refs):
    short = check(input_videos=[refs.s("v19")]).errors[0]
    # unfixable: the found names the file(s)
    found = f"1.9 s from {refs.s('v19')}"
    assert (short.found, short.limit, short.fixable) == (found, "2-15 s combined", False)
    long = check(input_videos=[refs.s("v5"), refs.s("v5"), refs.s("v55")]).errors[0]
    assert (long.found, long.fixable) == ("15.5 s", True)


def test_video_total_size_both_sides(refs):
    assert check(input_videos=[refs.s("v_24_95mb"), refs.s("v_24_95mb")]).ok  # 49.9 MB
    report = check(input_videos=[refs.s("v_24_95mb"), refs.s("v_25_05mb")])  # exactly 50 MB
    assert errors(report) == [("input_videos", "Videos too large in total")]
    assert report.errors[0].found == "50.0 MB (50,000,000 bytes)" and report.errors[0].fixable


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("px_640x640", True),
        ("px_638x640", False),
        ("px_1112x834", True),
        ("px_1114x834", False),
        ("px_1920x1080", False),
    ],
)
def test_video_pixel_window_both_sides(refs, name, ok):
    report = check(input_videos=[refs.s(name)])
    assert report.ok is ok
    if not ok:
        (problem,) = report.errors
        assert problem.message == "Video resolution outside ~480p to ~720p" and problem.fixable
        assert "409,600-927,408 px" in problem.limit


def test_pixel_message_shows_the_count(refs):
    problem = check(input_videos=[refs.s("px_1920x1080")]).errors[0]
    assert problem.found == "1920x1080 = 2,073,600 px"


def test_unsupported_video_container(refs):
    report = check(input_videos=[refs.s("webm")])
    assert errors(report) == [("input_videos[0]", "Unsupported video container")]
    assert report.errors[0].found == "webm" and report.errors[0].fixable


def test_rotated_and_vfr_videos_are_fixable_warnings(refs):
    report = check(input_videos=[refs.s("rotated"), refs.s("vfr")])
    assert report.ok
    by_field = {p.field: p for p in report.warnings if p.fixable}
    assert "rotation 90 degrees" in by_field["input_videos[0]"].found
    assert by_field["input_videos[1]"].message == "Variable frame rate"
    assert report.references[0].media.width == 480  # display dimensions


def test_low_frame_rate_is_an_upstream_warning(refs):
    report = check(input_videos=[refs.s("v5")])
    assert report.ok and any("Frame rate" in p.message for p in report.warnings)


# Audio ----------------------------------------------------------------------------------------------


def test_supported_audio(refs):
    report = check(input_videos=[refs.s("v2")], input_audios=[refs.s("a5"), refs.s("mp3")])
    assert report.ok, report.errors


@pytest.mark.parametrize(
    ("names", "ok"),
    [(["a5", "a5", "a5"], True), (["a5", "a5", "a55"], False)],
)
def test_combined_audio_duration_both_sides(refs, names, ok):
    report = check(input_videos=[refs.s("v2")], input_audios=[refs.s(n) for n in names])
    assert report.ok is ok
    if not ok:
        assert errors(report) == [("input_audios", "Audio too long in total")]
        assert report.errors[0].found == "15.5 s" and report.errors[0].fixable


def test_audio_size_limit_both_sides(refs):
    assert check(input_videos=[refs.s("v2")], input_audios=[refs.s("a_15mb")]).ok
    report = check(input_videos=[refs.s("v2")], input_audios=[refs.s("a_15mb_plus")])
    assert errors(report) == [("input_audios[0]", "Audio file too large")]
    assert report.errors[0].found == "15.0 MB (15,000,002 bytes)"


def test_unsupported_audio_format(refs):
    report = check(input_videos=[refs.s("v2")], input_audios=[refs.s("flac")])
    assert errors(report) == [("input_audios[0]", "Unsupported audio format")]


def test_video_given_as_audio_is_fixable(refs):
    report = check(input_videos=[refs.s("v2")], input_audios=[refs.s("mov")])
    assert errors(report) == [("input_audios[0]", "A video where audio is expected")]
    assert report.errors[0].fixable


# By content, never by name -------------------------------------------------------------------------


def test_png_named_mp4_is_an_image(refs):
    assert check(input_images=[refs.s("png_named_mp4")]).ok
    report = check(input_videos=[refs.s("png_named_mp4")])
    assert errors(report) == [("input_videos[0]", "Not a video")]
    assert report.errors[0].fix == "Move it to input_images"


def test_text_named_jpg_is_refused(refs):
    report = check(input_images=[refs.s("text_named_jpg")])
    assert errors(report) == [("input_images[0]", "Not a readable image file")]


def test_audio_given_as_image(refs):
    report = check(input_images=[refs.s("a5")])
    assert errors(report) == [("input_images[0]", "Not an image")]
    assert report.errors[0].fix == "Move it to input_audios"


# URI forms -----------------------------------------------------------------------------------------


def test_relative_paths_start_at_base_dir(refs):
    base = refs["png"].parent
    request = validate_request({"prompt": "@Image1", "input_images": [refs["png"].name]}, base_dir=base)
    assert request.input_images == [str(refs["png"])]
    assert Path(request.input_images[0]).is_absolute()


def test_file_uri_is_a_local_path(refs):
    report = check(input_images=[refs["png"].as_uri()])
    assert report.ok and report.references[0].kind == "path"
    assert report.request.input_images == [str(refs["png"])]


def test_file_uri_on_another_host_is_refused():
    report = check(input_images=["file://server/share/a.png"])
    assert errors(report) == [("input_images[0]", "file:// URI on another host")]


def test_home_relative_path(refs, monkeypatch):
    monkeypatch.setenv("HOME", str(refs["png"].parent))
    assert check(input_images=["~/" + refs["png"].name]).ok


@pytest.mark.parametrize(
    ("uri", "fix_text"),
    [
        ("ftp://example.com/a.png", "https URL"),
        ("s3://bucket/a.png", "public"),
        ("asset://asset-123", "BytePlus"),
        ("oxen://ns/repo/a.png", "hub.oxen.ai"),
        ("gs://bucket/a.png", "public"),
    ],
)
def test_unsupported_schemes(uri, fix_text):
    report = check(input_images=[uri])
    (problem,) = report.errors
    assert problem.field == "input_images[0]" and problem.message.startswith("Unsupported URI scheme")
    assert fix_text in problem.fix


def test_http_and_https_urls_are_not_fetched():
    report = check(input_images=["https://example.com/a.png", "http://example.com/b.png"])
    assert report.ok and [r.kind for r in report.references] == ["url", "url"]
    assert all(r.media is None for r in report.references)


def test_remote_videos_and_audio_get_one_warning():
    report = check(input_videos=["https://example.com/v.mp4"], input_audios=["https://example.com/a.mp3"])
    assert report.ok
    remote = [p for p in report.warnings if p.field == "references"]
    assert len(remote) == 1 and remote[0].found == "input_videos[0], input_audios[0]"


@pytest.mark.parametrize(
    ("uri", "message", "severity"),
    [
        ("https:///a.png", "URL without a host", "error"),
        ("http://localhost:8000/a.png", "URL on a local or private host", "warning"),
        ("http://192.168.1.20/a.png", "URL on a local or private host", "warning"),
        ("https://example.com/my photo.png", "URL contains spaces", "warning"),
        ("", "Empty reference", "error"),
    ],
)
def test_url_problems(uri, message, severity):
    report = check(input_images=[uri])
    found = [p for p in (*report.errors, *report.warnings) if p.message.startswith(message)]
    assert found and found[0].severity == severity


def test_missing_file_and_directory(tmp_path):
    body = {"prompt": "@Image1 @Image2", "input_images": ["nope.png", "."]}
    report = check_request(body, base_dir=tmp_path)
    assert errors(report) == [
        ("input_images[0]", "File not found"),
        ("input_images[1]", "Not a regular file"),
    ]
    assert report.errors[0].found == str(tmp_path / "nope.png")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path, refs):
    path = tmp_path / "locked.png"
    path.write_bytes(refs["png"].read_bytes())
    path.chmod(0)
    try:
        assert errors(check(input_images=[str(path)])) == [("input_images[0]", "File not readable")]
    finally:
        path.chmod(0o600)


def test_probe_false_only_checks_existence(refs, tmp_path):
    report = check_request(
        {"prompt": "@Image1 @Image2", "input_images": [refs.s("text_named_jpg"), str(tmp_path / "gone.png")]},
        probe=False,
    )
    assert errors(report) == [("input_images[1]", "File not found")]
    assert report.references[0].media is None and report.references[0].size_bytes


# data: URIs ----------------------------------------------------------------------------------------


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def test_data_uris_are_probed(refs):
    report = check(
        input_images=[_data_uri(refs["png"], "image/png")], input_videos=[_data_uri(refs["v2"], "video/mp4")]
    )
    assert report.ok, report.errors
    assert [r.media.kind for r in report.references] == ["image", "video"]
    assert report.references[1].size_bytes == refs["v2"].stat().st_size


def test_data_uri_limits_apply(refs):
    report = check(input_videos=[_data_uri(refs["v19"], "video/mp4")])
    assert errors(report) == [("input_videos", "Videos too short in total")]


def test_data_uri_with_wrong_mime_warns(refs):
    report = check(input_images=[_data_uri(refs["jpeg"], "image/png")])
    assert report.ok
    assert warnings(report)[0] == ("input_images[0]", "data: URI declares another type than its content")


def test_malformed_data_uri():
    report = check(input_images=["data:image/png;base64,@@@"])
    assert errors(report) == [("input_images[0]", "Malformed data: URI")]
    assert report.references[0].display() == "data:?;base64,... (malformed)"


def test_data_uri_with_text_content():
    uri = "data:image/jpeg;base64," + base64.b64encode(b"not a jpeg at all").decode()
    assert errors(check(input_images=[uri])) == [("input_images[0]", "Not a readable image file")]


# What would be sent --------------------------------------------------------------------------------


def test_body_shortens_local_files_and_data_uris(refs):
    uri = _data_uri(refs["jpeg"], "image/jpeg")
    report = check(
        input_images=[refs.s("png"), uri, "https://example.com/c.png"], input_videos=[refs.s("v2")]
    )
    body = report.body()
    size = refs["png"].stat().st_size
    assert body["input_images"][0] == f"<local file: {refs['png']}, {size:,} bytes; hosted before sending>"
    assert body["input_images"][1] == f"data:image/jpeg;base64,... ({refs['jpeg'].stat().st_size:,} bytes)"
    assert body["input_images"][2] == "https://example.com/c.png"
    assert len(str(body)) < 2000
    assert report.request.input_images[1] == uri  # the request itself keeps the real data
    data = report.to_dict()
    assert data["references"][1]["uri"].startswith("data:image/jpeg;base64,...")
    assert data["references"][0]["media"]["container"] == "png"
