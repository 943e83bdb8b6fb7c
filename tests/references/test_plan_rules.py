"""The planning rules on hand-made probes: no file is read, every boundary is exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedance_prefect import limits
from seedance_prefect.errors import InvalidRequest
from seedance_prefect.media.probe import MediaInfo
from seedance_prefect.references.fixes import FixOptions, Trim, split_trim
from seedance_prefect.references.plan import plan_fixes, plan_references, video_dimensions
from seedance_prefect.references.source import ReferenceInfo

COMPRESS_AFTER = "PNG, quality stepped down as needed"


def video(duration: float, width: int = 854, height: int = 480, **kw: object) -> MediaInfo:
    fields = {"kind": "video", "container": "mp4", "width": width, "height": height, "coded_width": width,
              "coded_height": height, "duration": duration, "fps": 24.0, "size_bytes": 1_000_000,
              "video_codec": "h264", "has_video": True}  # fmt: skip
    fields.update(kw)
    return MediaInfo(**fields)  # type: ignore[arg-type]


def audio(duration: float, **kw: object) -> MediaInfo:
    fields = {"kind": "audio", "container": "wav", "duration": duration, "sample_rate": 44100, "channels": 2,
              "size_bytes": 100_000, "audio_codec": "pcm_s16le", "has_audio": True}  # fmt: skip
    fields.update(kw)
    return MediaInfo(**fields)  # type: ignore[arg-type]


def image(width: int, height: int, **kw: object) -> MediaInfo:
    fields = {"kind": "image", "container": "jpeg", "width": width, "height": height, "coded_width": width,
              "coded_height": height, "size_bytes": 100_000, "pix_fmt": "RGB"}  # fmt: skip
    fields.update(kw)
    return MediaInfo(**fields)  # type: ignore[arg-type]


def ref(field: str, info: MediaInfo, trim: Trim | None = None) -> ReferenceInfo:
    path = Path(f"/refs/{field.replace('[', '').replace(']', '')}")
    return ReferenceInfo(
        field, str(path), "path", path=path, media=info, trim=trim, size_bytes=info.size_bytes
    )


def spans(plan) -> list[tuple[float, float] | None]:
    out = []
    for rp in plan.references:
        out.append((rp.target.start, rp.target.end) if rp.target is not None else None)
    return out


# In/out points --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.mp4#t=2,9", ("a.mp4", Trim(2.0, 9.0))),
        ("a.mp4#t=3", ("a.mp4", Trim(3.0, None))),
        ("a.mp4#t=,6.5", ("a.mp4", Trim(0.0, 6.5))),
        ("a.mp4#t=npt:1.5,4", ("a.mp4", Trim(1.5, 4.0))),
        ("a.mp4", ("a.mp4", None)),
        ("dir#t/a.mp4", ("dir#t/a.mp4", None)),
    ],
)
def test_split_trim(text, expected):
    assert split_trim(text) == expected


@pytest.mark.parametrize("text", ["a.mp4#t=9,2", "a.mp4#t=x", "a.mp4#t=", "a.mp4#t=1,1"])
def test_split_trim_refuses_malformed_points(text):
    with pytest.raises(ValueError, match="#t="):
        split_trim(text)


# Video sizes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("w", "h"),
    [(1920, 1080), (1080, 1920), (3840, 2160), (1280, 720), (854, 480), (853, 480), (640, 360),
     (480, 360), (320, 240), (4096, 1716), (641, 639), (2, 2)],
)  # fmt: skip
def test_video_dimensions_are_even_inside_the_window_with_the_aspect_kept(w, h):
    nw, nh = video_dimensions(w, h)
    assert nw % 2 == 0 and nh % 2 == 0
    assert limits.VIDEO_MIN_PIXELS <= nw * nh <= limits.VIDEO_MAX_PIXELS
    if limits.VIDEO_MIN_PIXELS <= w * h <= limits.VIDEO_MAX_PIXELS and w % 2 == 0 and h % 2 == 0:
        assert (nw, nh) == (w, h)  # compliant sizes are not touched
    else:
        assert nw / nh == pytest.approx(w / h, rel=0.02)


def test_1080p_becomes_1284x722_like_comfyui():
    assert video_dimensions(1920, 1080) == (1284, 722)


# Combined durations ---------------------------------------------------------------------------------


def test_compliant_videos_and_audio_are_not_planned():
    plan = plan_references([ref("input_videos[0]", video(5.0)), ref("input_audios[0]", audio(4.0))])
    assert plan.fixes == [] and plan.errors == []
    assert [rp.action for rp in plan.references] == ["pass", "pass"]


def test_too_long_videos_lose_the_tail_of_the_last_one_first():
    plan = plan_references([ref("input_videos[0]", video(10.0)), ref("input_videos[1]", video(8.0))])
    assert spans(plan) == [None, (0.0, 5.0)]
    [trim] = plan.fixes
    assert (trim.field, trim.what, trim.before, trim.after) == (
        "input_videos[1]",
        "trim",
        "8.0 s",
        "0.0-5.0 s (5.0 s)",
    )
    assert "tail of the last reference is cut first" in trim.why
    assert "input_videos" in plan.handled


def test_the_last_videos_keep_at_least_two_seconds_while_others_can_give():
    plan = plan_references([ref(f"input_videos[{i}]", video(10.0)) for i in range(3)])
    assert spans(plan) == [None, (0.0, 3.0), (0.0, 2.0)]
    assert sum(rp.target.duration for rp in plan.references if rp.target) + 10.0 <= 15.0


def test_in_out_points_are_honoured_and_the_others_give_time():
    plan = plan_references(
        [ref("input_videos[0]", video(12.0)), ref("input_videos[1]", video(10.0), Trim(1.0, 9.0))]
    )
    assert spans(plan) == [(0.0, 7.0), (1.0, 9.0)]
    assert {f.why for f in plan.fixes if f.field == "input_videos[1]"} == {"in/out points #t=1,9"}


def test_in_out_points_alone_too_long_is_an_error_naming_the_files():
    plan = plan_references(
        [ref("input_videos[0]", video(12.0), Trim(0, 10)), ref("input_videos[1]", video(12.0), Trim(2, 9))]
    )
    [error] = plan.errors
    assert error.field == "input_videos" and "/refs/input_videos0" in error.found and "17.0 s" in error.found


def test_in_point_past_the_end_is_an_error():
    plan = plan_references([ref("input_videos[0]", video(5.0), Trim(6.0))])
    assert [(e.field, e.message) for e in plan.errors] == [("input_videos[0]", "In point is past the end")]


def test_in_out_points_that_leave_too_little_video_are_an_error():
    plan = plan_references([ref("input_videos[0]", video(5.0), Trim(1.0, 2.5))])
    assert [(e.field, e.message) for e in plan.errors] == [
        ("input_videos", "In/out points keep too little video in total")
    ]


def test_a_one_second_video_cannot_be_fixed():
    plan = plan_references([ref("input_videos[0]", video(1.0))])
    [error] = plan.errors
    assert (error.field, error.message) == ("input_videos", "Videos too short in total")
    assert error.found == "1.0 s from /refs/input_videos0"


def test_too_long_audio_is_trimmed_from_the_last_file():
    plan = plan_references(
        [
            ref("input_audios[0]", audio(10.0)),
            ref("input_audios[1]", audio(9.0)),
            ref("input_videos[0]", video(3)),
        ]
    )
    assert spans(plan) == [None, (0.0, 5.0), None]
    assert plan.references[1].target.samples == 5 * 44100


def test_a_bigger_keep_floor_changes_who_gives():
    refs = [ref("input_videos[0]", video(8.0)), ref("input_videos[1]", video(8.0))]
    assert spans(plan_references(refs)) == [None, (0.0, 7.0)]
    assert spans(plan_references(refs, FixOptions(trim_keep_seconds=7.5))) == [(0.0, 7.5), (0.0, 7.5)]


# Per-file video rules -------------------------------------------------------------------------------


def test_video_fixes_name_before_and_after():
    info = video(
        4.0, 1080, 1920, coded_width=1920, coded_height=1080, rotation=90, variable_frame_rate=True, fps=28.5
    )
    plan = plan_references([ref("input_videos[0]", info)])
    assert [(f.what, f.before, f.after) for f in plan.fixes] == [
        ("rotate", "stored 1920x1080, rotation 90", "1080x1920 upright"),
        ("frame rate", "variable, average 28.5 fps", "28 fps constant"),
        ("scale", "1080x1920 = 2,073,600 px", "722x1284 = 927,048 px"),
    ]
    target = plan.references[0].target
    assert (target.rotation, target.width, target.height, target.fps, target.frames) == (
        90,
        722,
        1284,
        "28",
        112,
    )


def test_fast_frame_rates_come_down_to_30_only_when_re_encoding():
    assert plan_references([ref("input_videos[0]", video(4.0, fps=60.0))]).fixes == []
    plan = plan_references([ref("input_videos[0]", video(4.0, 1920, 1080, fps=60.0))])
    assert ("frame rate", "60 fps", "30 fps constant") in [(f.what, f.before, f.after) for f in plan.fixes]


def test_ntsc_rates_are_kept_exactly():
    plan = plan_references([ref("input_videos[0]", video(4.0, 1920, 1080, fps=30000 / 1001))])
    assert plan.references[0].target.fps == "30000/1001"
    assert [f.what for f in plan.fixes] == ["scale"]


def test_slow_frame_rate_is_raised_to_24():
    plan = plan_references([ref("input_videos[0]", video(4.0, fps=12.0))])
    assert [(f.what, f.after) for f in plan.fixes] == [("frame rate", "24 fps constant")]


def test_over_50_mb_in_total_caps_the_bitrate_of_the_big_ones():
    infos = [video(5.0, size_bytes=45_000_000), video(5.0, size_bytes=6_000_000)]
    plan = plan_references([ref(f"input_videos[{i}]", info) for i, info in enumerate(infos)])
    assert [rp.action for rp in plan.references] == ["encode", "pass"]
    target = plan.references[0].target
    assert target.max_bitrate * 10.0 / 8 < 0.9 * limits.VIDEO_TOTAL_MAX_BYTES
    assert "input_videos" in plan.handled


def test_odd_sides_are_only_fixed_when_re_encoding_anyway():
    assert plan_references([ref("input_videos[0]", video(4.0, 853, 481))]).fixes == []
    plan = plan_references([ref("input_videos[0]", video(4.0, 853, 481, rotation=180))])
    # 852x480 would fall under 409,600 px: round up to even instead
    assert ("scale", "853x481", "854x482") in [(f.what, f.before, f.after) for f in plan.fixes]


# Images and audio -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (image(7000, 4000), [("resize", "7000x4000", "6000x3429")]),
        (image(200, 320), [("resize", "200x320", "300x480")]),
        (image(1600, 400), [("pad", "1600x400 = 4.00", "1600x640 = 2.50")]),
        (image(300, 1000, container="png"), [("pad", "300x1000 = 0.30", "400x1000 = 0.40")]),
        (image(640, 480, container="gif", pix_fmt="P"), [("convert", "GIF", "PNG")]),
        (image(640, 480, container="heic"), [("convert", "HEIC", "JPEG")]),
        (image(640, 480, container="png", size_bytes=30_000_001),
         [("compress", "30.0 MB (30,000,001 bytes)", f"at most 30.0 MB ({COMPRESS_AFTER})")]),
        (image(640, 480), []),
    ],
)  # fmt: skip
def test_image_fixes(info, expected, monkeypatch):
    monkeypatch.setattr("seedance_prefect.references.plan.heif_available", lambda: True)
    plan = plan_references([ref("input_images[0]", info)])
    assert [(f.what, f.before, f.after) for f in plan.fixes] == expected


def test_crop_instead_of_pad():
    plan = plan_references([ref("input_images[0]", image(1600, 400))], FixOptions(image_aspect="crop"))
    assert [(f.what, f.after) for f in plan.fixes] == [("crop", "1000x400 = 2.50")]


def test_heic_without_the_extra_names_it(monkeypatch):
    monkeypatch.setattr("seedance_prefect.references.plan.heif_available", lambda: False)
    plan = plan_references([ref("input_images[0]", image(640, 480, container="heic"))])
    [error] = plan.errors
    assert (
        error.field == "input_images[0]" and "heic" in error.message and "seedance-prefect[heic]" in error.fix
    )


def test_audio_format_size_and_rate():
    info = audio(10.0, container="flac", sample_rate=96000, channels=6, size_bytes=16_000_000)
    plan = plan_references([ref("input_audios[0]", info)])
    assert [f.what for f in plan.fixes] == ["convert", "re-encode", "resample"]
    target = plan.references[0].target
    assert (target.format, target.sample_rate, target.channels) == ("wav", 48000, 2)


def test_mp3_stays_mp3_at_an_mp3_rate():
    plan = plan_references([ref("input_audios[0]", audio(20.0, container="mp3", sample_rate=44100))])
    target = plan.references[0].target
    assert (target.format, target.sample_rate, target.end) == ("mp3", 44100, 15.0)


def test_remote_references_pass_and_in_out_points_on_urls_are_refused():
    url = ReferenceInfo("input_videos[0]", "https://example.com/v.mp4", "url")
    assert plan_references([url]).references[0].action == "pass"
    bad = ReferenceInfo("input_videos[0]", "https://example.com/v.mp4#t=1,4", "url")
    assert [e.message for e in plan_references([bad]).errors] == [
        "In/out points (#t=) apply to local files and data: URIs only"
    ]


def test_plan_fixes_raises_for_unreadable_files(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(InvalidRequest) as info:
        plan_fixes({"prompt": "x", "input_videos": ["notes.mp4", "missing.mp4"]}, tmp_path)
    assert [(p.field, p.message) for p in info.value.problems] == [
        ("input_videos[0]", "Not a readable video file"),
        ("input_videos[1]", "File not found"),
    ]
    assert str(tmp_path / "notes.mp4") in info.value.problems[0].found
