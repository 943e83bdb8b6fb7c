"""Delivery targets: S3 through an fsspec URL and an S3Bucket block (moto server), other blocks,
verification, whole-or-nothing uploads and never overwriting a different object."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from seedance_prefect.delivery.targets import (
    DeliveryError,
    FsspecTarget,
    LocalFolderTarget,
    S3BucketTarget,
    resolve_target,
)
from seedance_prefect.errors import InvalidRequest
from tests.delivery.conftest import BUCKET


def _video(tmp_path: Path, data: bytes, name: str = "g1.mp4") -> Path:
    path = tmp_path / "work" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _get(s3: object, key: str) -> tuple[bytes, dict]:
    obj = s3.get_object(Bucket=BUCKET, Key=key)  # type: ignore[attr-defined]
    return obj["Body"].read(), obj


def test_fsspec_url_delivers_video_and_sidecar_to_s3(s3, tmp_path):
    data = os.urandom(300_000)
    video = _video(tmp_path, data)
    target = resolve_target(f"s3://{BUCKET}/nightly/", None)
    assert isinstance(target, FsspecTarget)
    target.check()

    d = target.deliver(video, "boat", {"prompt": "a boat"}, generation_id="gen-1234abcd")

    assert d.video == f"s3://{BUCKET}/nightly/boat.mp4"
    body, obj = _get(s3, "nightly/boat.mp4")
    assert body == data and hashlib.sha256(body).hexdigest() == d.sha256
    assert obj["Metadata"]["sha256"] == d.sha256 and obj["ContentType"] == "video/mp4"
    sidecar = json.loads(_get(s3, "nightly/boat.json")[0])
    assert sidecar == {"prompt": "a boat", "sha256": d.sha256, "size_bytes": len(data), "video": "boat.mp4"}
    assert not video.exists()  # moved: the local work file is gone once delivered


def test_s3_rerun_reuses_same_bytes_and_never_overwrites_other_bytes(s3, tmp_path):
    target = resolve_target(f"s3://{BUCKET}/v", None)
    first = target.deliver(_video(tmp_path, b"A" * 1000), "clip", {}, generation_id="gen-aaaaaaaa")
    again = target.deliver(_video(tmp_path, b"A" * 1000), "clip", {}, generation_id="gen-aaaaaaaa")
    other = target.deliver(_video(tmp_path, b"B" * 1000), "clip", {}, generation_id="gen-bbbbbbbb")

    assert again.reused and again.video == first.video
    assert other.video == f"s3://{BUCKET}/v/clip-gen-bbbb.mp4" and not other.reused
    assert _get(s3, "v/clip.mp4")[0] == b"A" * 1000
    assert _get(s3, "v/clip-gen-bbbb.mp4")[0] == b"B" * 1000


def test_missing_bucket_is_refused_before_anything_is_paid(s3):
    with pytest.raises(InvalidRequest, match="bucket does not exist"):
        resolve_target("s3://no-such-bucket-here/videos", None).check()


def test_s3bucket_block_given_by_name(prefect_server, s3, tmp_path):
    from prefect_aws import AwsCredentials, S3Bucket

    S3Bucket(bucket_name=BUCKET, bucket_folder="blocks/out", credentials=AwsCredentials()).save(
        "test-videos", overwrite=True
    )
    data = os.urandom(50_000)
    target = resolve_target("s3-bucket/test-videos", None)
    assert isinstance(target, S3BucketTarget)
    target.check()

    d = target.deliver(_video(tmp_path, data), "lake", {"k": 1}, generation_id="gen-5678")

    assert d.video == f"s3://{BUCKET}/blocks/out/lake.mp4" and d.size_bytes == len(data)
    body, obj = _get(s3, "blocks/out/lake.mp4")
    assert body == data and obj["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads(_get(s3, "blocks/out/lake.json")[0])["sha256"] == d.sha256


def test_filesystem_blocks_by_name(prefect_server, tmp_path):
    from prefect.filesystems import LocalFileSystem, RemoteFileSystem

    LocalFileSystem(basepath=str(tmp_path / "local-block")).save("test-local", overwrite=True)
    RemoteFileSystem(basepath="memory://remote-block/videos").save("test-remote", overwrite=True)

    local = resolve_target("local-file-system/test-local", None)
    remote = resolve_target("remote-file-system/test-remote", None)

    assert isinstance(local, LocalFolderTarget) and local.folder == (tmp_path / "local-block").resolve()
    d = remote.deliver(_video(tmp_path, b"xyz"), "r", {}, generation_id="g")
    assert d.video == "memory:///remote-block/videos/r.mp4"
    import fsspec

    assert fsspec.filesystem("memory").cat_file("/remote-block/videos/r.mp4") == b"xyz"


def test_unknown_block_is_bad_input(prefect_server):
    with pytest.raises(InvalidRequest, match="No such saved block"):
        resolve_target("s3-bucket/does-not-exist", None)


def test_corrupted_upload_is_deleted_and_fails(tmp_path, monkeypatch):
    target = FsspecTarget("memory://corrupt-test")
    real_put = target.store.fs.put_file

    def corrupting_put(lpath, rpath, **kwargs):
        real_put(lpath, rpath, **kwargs)
        target.store.fs.pipe_file(rpath, b"flipped bits")

    monkeypatch.setattr(target.store.fs, "put_file", corrupting_put)
    with pytest.raises(DeliveryError, match="failed verification"):
        target.deliver(_video(tmp_path, b"the real video"), "v", {}, generation_id="g")
    assert target.store.fs.find("/corrupt-test") == []  # nothing wrong left behind


def test_interrupted_upload_leaves_nothing_visible(tmp_path, monkeypatch):
    target = FsspecTarget("memory://interrupted-test")
    real_put = target.store.fs.put_file

    def half_then_fail(lpath, rpath, **kwargs):
        target.store.fs.pipe_file(rpath, Path(lpath).read_bytes()[:3])
        raise ConnectionError("connection reset")

    monkeypatch.setattr(target.store.fs, "put_file", half_then_fail)
    with pytest.raises(ConnectionError):
        target.deliver(_video(tmp_path, b"0123456789"), "v", {}, generation_id="g")
    monkeypatch.setattr(target.store.fs, "put_file", real_put)
    assert target.store.fs.find("/interrupted-test") == []  # no final object, no partial temp file


def test_flow_delivers_to_s3_url(prefect_server, emulator, s3, tmp_path):
    from seedance_prefect.flows import reference_to_video

    [d] = reference_to_video(
        {"prompt": "A kite over dunes", "resolution": "480p", "duration": "4", "aspect_ratio": "16:9"},
        output=str(tmp_path / "local"),
        deliver_to=f"s3://{BUCKET}/flow/",
        poll_interval=2.0,
    )

    assert d["video"].startswith(f"s3://{BUCKET}/flow/") and d["video"].endswith(".mp4")
    key = d["video"].removeprefix(f"s3://{BUCKET}/")
    body, _ = _get(s3, key)
    assert hashlib.sha256(body).hexdigest() == d["sha256"] and body[4:8] == b"ftyp"
    sidecar = json.loads(_get(s3, key[:-4] + ".json")[0])
    assert sidecar["generation_id"] == d["generation_id"] and sidecar["probe"]["width"] > 0
    assert not list((tmp_path / "local").glob("*.mp4"))  # nothing delivered locally
