"""Compliant references go byte-identical with no re-encode; prepared outputs are cached by content."""

from __future__ import annotations

import base64

import pytest

from seedance_prefect.errors import InvalidRequest
from seedance_prefect.media.probe import decode_data_uri
from seedance_prefect.references import preprocess
from seedance_prefect.references.fixes import FixOptions
from seedance_prefect.references.preprocess import prepare
from tests.references.conftest import request_for


def _forbid_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("a compliant reference was re-encoded")

    monkeypatch.setattr(preprocess, "_normalizer", lambda target: refuse)


def test_compliant_local_files_reach_the_service_byte_identical(media, tmp_path, monkeypatch):
    _forbid_encoding(monkeypatch)
    names = {"input_images": ["jpeg_ok", "png_ok"], "input_videos": ["v_ok"], "input_audios": ["mp3_ok"]}
    body = request_for(**{field: [media.s(n) for n in items] for field, items in names.items()})
    prepared = prepare(body, cache_dir=tmp_path)
    assert prepared.fixes == []
    for field, items in names.items():
        for uri, name in zip(getattr(prepared.request, field), items, strict=True):
            assert decode_data_uri(uri)[1] == media[name].read_bytes()
    assert [r.action for r in prepared.references] == ["pass"] * 4
    assert not list(tmp_path.rglob("*.mp4"))  # nothing was written to the cache
    assert {row["what"] for row in prepared.table()} == {"none"}


def test_compliant_data_uris_and_urls_are_sent_exactly_as_given(media, tmp_path, monkeypatch):
    _forbid_encoding(monkeypatch)
    data = "data:image/png;base64," + base64.b64encode(media["png_ok"].read_bytes()).decode()
    body = request_for(input_images=[data, "https://example.com/a.png"], input_videos=["https://e.com/v.mp4"])
    prepared = prepare(body, cache_dir=tmp_path)
    assert prepared.request.input_images == [data, "https://example.com/a.png"]
    assert prepared.request.input_videos == ["https://e.com/v.mp4"]


def test_a_data_uri_with_the_wrong_type_is_relabelled_not_re_encoded(media, tmp_path, monkeypatch):
    _forbid_encoding(monkeypatch)
    raw = media["png_ok"].read_bytes()
    body = request_for(input_images=["data:image/jpeg;base64," + base64.b64encode(raw).decode()])
    prepared = prepare(body, cache_dir=tmp_path)
    assert decode_data_uri(prepared.request.input_images[0]) == ("image/png", raw)
    assert [(f.what, f.before, f.after) for f in prepared.fixes] == [
        ("media type", "image/jpeg", "image/png")
    ]


def test_a_data_uri_that_needs_a_fix_is_fixed(media, tmp_path):
    data = "data:video/mp4;base64," + base64.b64encode(media["rotated"].read_bytes()).decode()
    prepared = prepare(request_for(input_videos=[data]), cache_dir=tmp_path)
    assert [f.what for f in prepared.fixes] == ["rotate"]
    assert prepared.references[0].source.startswith("data: URI (")
    assert decode_data_uri(prepared.request.input_videos[0])[0] == "video/mp4"


def test_a_re_run_uses_the_cache_instead_of_encoding(media, tmp_path, monkeypatch):
    body = request_for(input_videos=[media.s("rotated")], input_images=[media.s("exif6")])
    first = prepare(body, cache_dir=tmp_path)
    assert [f.cached for f in first.fixes] == [False, False]
    _forbid_encoding(monkeypatch)
    second = prepare(body, cache_dir=tmp_path)
    assert second.request == first.request  # same bytes: same request, same fingerprint
    assert [(f.what, f.after, f.cached) for f in second.fixes] == [
        (f.what, f.after, True) for f in first.fixes
    ]


def test_the_cache_key_covers_the_fix_options(media, tmp_path):
    body = request_for(input_images=[media.s("wide")])
    pad = prepare(body, cache_dir=tmp_path)
    crop = prepare(body, cache_dir=tmp_path, options=FixOptions(image_aspect="crop"))
    assert not crop.fixes[0].cached and crop.request != pad.request


def test_with_preprocessing_off_files_are_only_hosted(media, tmp_path, monkeypatch):
    _forbid_encoding(monkeypatch)
    prepared = prepare(request_for(input_videos=[media.s("rotated")]), cache_dir=tmp_path, fix=False)
    assert decode_data_uri(prepared.request.input_videos[0])[1] == media["rotated"].read_bytes()
    with pytest.raises(InvalidRequest, match="need reference preprocessing"):
        prepare(request_for(input_videos=[media.s("v10") + "#t=1,5"]), cache_dir=tmp_path, fix=False)
