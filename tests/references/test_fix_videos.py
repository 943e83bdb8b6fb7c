"""Videos are re-encoded in-process by PyAV and every result is checked by probing it."""

from __future__ import annotations

import itertools

import pytest

from seedance_prefect import limits
from seedance_prefect.media.probe import decode_check, probe_path
from seedance_prefect.references.preprocess import prepare
from tests.references.conftest import request_for
from tests.references.refkit import bright_corner, first_frame, fixes, frame_times, output, top_level_boxes


def _prepare(cache, *uris, **kw):
    return prepare(request_for(input_videos=list(uris)), cache_dir=cache, **kw)


def _assert_compliant_mp4(info, path):
    assert (info.container, info.video_codec, info.pix_fmt) == ("mp4", "h264", "yuv420p")
    assert info.rotation == 0 and not info.variable_frame_rate
    assert info.width % 2 == 0 and info.height % 2 == 0
    assert limits.VIDEO_MIN_PIXELS <= info.width * info.height <= limits.VIDEO_MAX_PIXELS
    assert 24 <= info.fps <= 30
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # faststart
    assert decode_check(path) is None


def test_a_phone_video_with_a_rotation_flag_is_turned_upright(media, shared_cache):
    prepared = _prepare(shared_cache, media.s("rotated"))
    out = output(prepared, "input_videos[0]")
    info = probe_path(out)
    _assert_compliant_mp4(info, out)
    assert (info.width, info.height, info.duration, info.has_audio) == (480, 854, 2.0, True)
    assert bright_corner(first_frame(out)) == "bl"  # what the ffmpeg CLI's autorotation gives
    assert fixes(prepared) == [("input_videos[0]", "rotate")]


def test_variable_frame_rate_becomes_constant(media, shared_cache):
    assert probe_path(media["vfr"]).variable_frame_rate
    prepared = _prepare(shared_cache, media.s("vfr"))
    out = output(prepared, "input_videos[0]")
    info = probe_path(out)
    _assert_compliant_mp4(info, out)
    times = frame_times(out)
    steps = {round(b - a, 4) for a, b in itertools.pairwise(times)}
    assert steps == {round(1 / 24, 4)} and info.duration == pytest.approx(3.0, abs=1 / 24)


def test_a_1080p_20_s_clip_becomes_720p_and_15_s(media, shared_cache):
    prepared = _prepare(shared_cache, media.s("v1080_20s"))
    out = output(prepared, "input_videos[0]")
    info = probe_path(out)
    _assert_compliant_mp4(info, out)
    assert (info.width, info.height, info.fps, info.duration) == (1284, 722, 24.0, 15.0)
    assert info.has_audio and info.audio_codec == "aac"
    assert fixes(prepared) == [("input_videos[0]", "scale"), ("input_videos[0]", "trim")]
    trim = prepared.fixes[1]
    assert (trim.before, trim.after) == ("20.0 s", "0.0-15.0 s (15.0 s)")


def test_small_videos_are_scaled_up(media, shared_cache):
    out = output(_prepare(shared_cache, media.s("small")), "input_videos[0]")
    info = probe_path(out)
    _assert_compliant_mp4(info, out)
    assert (info.width, info.height) == (740, 556)


def test_webm_is_converted_to_mp4(media, shared_cache):
    prepared = _prepare(shared_cache, media.s("webm"))
    out = output(prepared, "input_videos[0]")
    _assert_compliant_mp4(probe_path(out), out)
    assert prepared.request.input_videos[0].startswith("data:video/mp4;base64,")


def test_combined_duration_is_cut_from_the_tail_of_the_last_video(media, shared_cache):
    prepared = _prepare(shared_cache, media.s("v10"), media.s("v8"))
    first, second = (probe_path(output(prepared, f"input_videos[{i}]")) for i in (0, 1))
    assert first.duration == 10.0 and second.duration == 5.0
    assert first.duration + second.duration <= limits.VIDEO_MAX_TOTAL_SECONDS
    # v10 is re-encoded only for its 12 fps source; v8 also for the trim
    assert fixes(prepared) == [
        ("input_videos[0]", "frame rate"),
        ("input_videos[1]", "frame rate"),
        ("input_videos[1]", "trim"),
    ]


def test_in_out_points_pick_the_part_to_keep(media, shared_cache):
    prepared = _prepare(shared_cache, media.s("v10") + "#t=2.5,6.5")
    out = output(prepared, "input_videos[0]")
    info = probe_path(out)
    assert info.duration == 4.0
    trim = next(f for f in prepared.fixes if f.what == "trim")
    assert (trim.why, trim.after) == ("in/out points #t=2.5,6.5", "2.5-6.5 s (4.0 s)")
    assert "#t=" not in prepared.request.input_videos[0]


def test_over_50_mb_in_total_is_re_encoded_under_the_cap(media, shared_cache):
    prepared = _prepare(shared_cache, media.s("big_a"), media.s("big_b"))
    sizes = [output(prepared, f"input_videos[{i}]").stat().st_size for i in (0, 1)]
    assert media["big_a"].stat().st_size + media["big_b"].stat().st_size >= limits.VIDEO_TOTAL_MAX_BYTES
    assert sum(sizes) < limits.VIDEO_TOTAL_MAX_BYTES
    assert fixes(prepared) == [("input_videos[0]", "re-encode"), ("input_videos[1]", "re-encode")]
