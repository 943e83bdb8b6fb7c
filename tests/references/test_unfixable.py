"""What cannot be fixed is an error naming the field and the file."""

from __future__ import annotations

import pytest

from seedance_prefect.errors import InvalidRequest
from seedance_prefect.references.preprocess import prepare
from tests.references.conftest import request_for


def _problems(body, tmp_path):
    with pytest.raises(InvalidRequest) as info:
        prepare(body, cache_dir=tmp_path)
    return info.value.problems


def test_one_second_of_video_in_total(media, tmp_path):
    [problem] = _problems(request_for(input_videos=[media.s("v_1s")]), tmp_path)
    assert (problem.field, problem.message) == ("input_videos", "Videos too short in total")
    assert media.s("v_1s") in problem.found and "1.0 s" in problem.found


def test_a_file_that_is_not_media(media, tmp_path):
    [problem] = _problems(request_for(input_videos=[media.s("text")]), tmp_path)
    assert (problem.field, problem.message) == ("input_videos[0]", "Not a readable video file")
    assert media.s("text") in problem.found


def test_an_unreadable_truncated_file(media, tmp_path):
    [problem] = _problems(request_for(input_videos=[media.s("truncated")]), tmp_path)
    assert problem.field == "input_videos[0]" and media.s("truncated") in problem.found
    assert "truncated" in problem.found


def test_a_missing_file(tmp_path):
    [problem] = _problems(request_for(input_audios=[str(tmp_path / "gone.wav")], input_images=[]), tmp_path)
    assert (problem.field, problem.message, problem.found) == (
        "input_audios[0]",
        "File not found",
        str(tmp_path / "gone.wav"),
    )


def test_heic_without_the_extra(media, tmp_path, monkeypatch):
    path = media.s("heic")
    monkeypatch.setattr("seedance_prefect.references.plan.heif_available", lambda: False)
    [problem] = _problems(request_for(input_images=[path]), tmp_path)
    assert problem.field == "input_images[0]" and problem.found == path
    assert "pip install 'seedance-prefect[heic]'" in problem.fix


def test_an_image_where_a_video_is_expected(media, tmp_path):
    [problem] = _problems(request_for(input_videos=[media.s("png_ok")]), tmp_path)
    assert (problem.field, problem.message) == ("input_videos[0]", "Not a video")
    assert media.s("png_ok") in problem.found
