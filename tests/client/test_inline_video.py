"""InlineVideoFile: a b64_json answer decoded to disk as it streams, whatever the chunking."""

from __future__ import annotations

import base64
import json
import os

import pytest

from seedance_prefect.client.inline_video import InlineVideoFile
from seedance_prefect.errors import DownloadError

VIDEO = os.urandom(50_000)


def _feed(target, body: bytes, size: int, max_bytes=None) -> InlineVideoFile:
    with InlineVideoFile(target, max_bytes=max_bytes) as out:
        for i in range(0, len(body), size):
            out.write(body[i : i + size])
    return out


def _answer(b64: str, *, spaced: bool = False) -> bytes:
    sep = ": " if spaced else ":"
    return (
        '{"created": 1775090723, "model": "bytedance-seedance-2-0-reference-to-video", '
        f'"videos": [{{"b64_json"{sep}"{b64}"}}], "x": {{"y": [1, 2]}}}}'
    ).encode()


@pytest.mark.parametrize("chunk", [1, 3, 7, 4096, 1 << 20])
@pytest.mark.parametrize("spaced", [False, True])
def test_any_chunking_gives_the_exact_bytes(tmp_path, chunk, spaced):
    out = _feed(tmp_path / "v.mp4", _answer(base64.b64encode(VIDEO).decode(), spaced=spaced), chunk)
    assert (tmp_path / "v.mp4").read_bytes() == VIDEO
    envelope = json.loads(out.envelope)
    assert envelope["videos"] == [{"b64_json": ""}] and envelope["x"] == {"y": [1, 2]}
    assert len(out.envelope) < 300


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_json_escapes_in_the_payload(tmp_path, chunk):
    b64 = base64.encodebytes(VIDEO).decode().replace("\n", "\\n").replace("/", "\\/")
    _feed(tmp_path / "v.mp4", _answer(b64), chunk)
    assert (tmp_path / "v.mp4").read_bytes() == VIDEO


def test_a_url_answer_writes_nothing(tmp_path):
    body = b'{"created": 1, "videos": [{"url": "https://hub.oxen.ai/v.mp4"}]}'
    out = _feed(tmp_path / "v.mp4", body, 9)
    assert not out.found and json.loads(out.envelope)["videos"][0]["url"].endswith("v.mp4")
    assert list(tmp_path.iterdir()) == []


def test_size_cap_applies_to_the_decoded_video(tmp_path):
    with pytest.raises(DownloadError, match="size cap") as info:
        _feed(tmp_path / "v.mp4", _answer(base64.b64encode(VIDEO).decode()), 4096, max_bytes=10_000)
    assert info.value.transient is False
    assert list(tmp_path.iterdir()) == []


def test_answer_cut_inside_the_video_is_refused(tmp_path):
    body = _answer(base64.b64encode(VIDEO).decode())[:30_000]
    with pytest.raises(DownloadError, match="closing quote"):
        _feed(tmp_path / "v.mp4", body, 1000)
    assert list(tmp_path.iterdir()) == []


def test_invalid_base64_is_refused(tmp_path):
    with pytest.raises(DownloadError, match="not valid base64"):
        _feed(tmp_path / "v.mp4", _answer("QUJD" * 10 + "!!!!"), 16)
    assert list(tmp_path.iterdir()) == []
