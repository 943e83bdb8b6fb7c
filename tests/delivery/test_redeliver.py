"""Delivering again without a new generation: is it already in this target (folders, S3 by URL and
by block), copying an earlier delivery (checked by sha256), the order copy -> download again -> fail
naming --new, and whether the service still serves a result (the emulator over HTTP)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from seedance_prefect.client import SeedanceClient
from seedance_prefect.delivery.folder import DeliveredVideo
from seedance_prefect.delivery.redeliver import copy_delivery, redeliver, succeeded_generation
from seedance_prefect.delivery.targets import LocalFolderTarget, S3BucketTarget, resolve_target
from seedance_prefect.errors import DownloadError, GenerationFailed, ServerError
from seedance_prefect.models import SeedanceRequest
from tests.delivery.conftest import BUCKET
from tests.kit import API_KEY, set_faults


def _video(tmp_path: Path, data: bytes, name: str = "g1.mp4") -> Path:
    path = tmp_path / "work" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _recorded(d: DeliveredVideo) -> dict[str, Any]:
    """What the journal keeps of a delivery (Journal.record_deliveries): no size."""
    return {"generation_id": d.generation_id, "video": d.video, "sha256": d.sha256}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------- already there?


def test_folder_holds_its_own_delivery_and_not_another_folders(tmp_path):
    data = os.urandom(5000)
    first = LocalFolderTarget(tmp_path / "a").deliver(_video(tmp_path, data), "boat", {}, generation_id="g1")

    found = LocalFolderTarget(tmp_path / "a").find_delivered(_recorded(first))
    assert found is not None and found.reused
    assert (found.video, found.sha256, found.size_bytes) == (first.video, _sha(data), 5000)
    assert found.sidecar == str(tmp_path / "a" / "boat.json")
    assert LocalFolderTarget(tmp_path / "b").find_delivered(_recorded(first)) is None
    # the same folder written another way is the same folder
    assert LocalFolderTarget(tmp_path / "x" / ".." / "a").find_delivered(_recorded(first)) is not None


def test_folder_delivery_that_changed_or_went_is_not_there(tmp_path):
    target = LocalFolderTarget(tmp_path / "a")
    first = target.deliver(_video(tmp_path, b"A" * 4000), "boat", {}, generation_id="g1")
    video, sidecar = Path(first.video), Path(first.sidecar)

    video.write_bytes(b"A" * 3999)  # other size than the sidecar's: not there (no hashing needed)
    assert target.find_delivered(_recorded(first)) is None

    sidecar.unlink()  # no size known: the bytes are hashed
    video.write_bytes(b"A" * 4000)
    assert target.find_delivered(_recorded(first)) is not None
    video.write_bytes(b"B" * 4000)
    assert target.find_delivered(_recorded(first)) is None

    # a size in the journal wins over hashing
    assert target.find_delivered({**_recorded(first), "size_bytes": 4000}) is not None
    assert target.find_delivered({**_recorded(first), "size_bytes": 4001}) is None

    video.unlink()
    assert target.find_delivered({**_recorded(first), "size_bytes": 4000}) is None


def test_sidecar_of_other_bytes_does_not_vouch_for_the_size(tmp_path):
    target = LocalFolderTarget(tmp_path / "a")
    first = target.deliver(_video(tmp_path, b"A" * 4000), "boat", {}, generation_id="g1")
    Path(first.video).write_bytes(b"B" * 4000)  # same size, other bytes...
    doc = json.loads(Path(first.sidecar).read_text())
    Path(first.sidecar).write_text(json.dumps({**doc, "sha256": _sha(b"B" * 4000)}))  # ...and its sidecar
    # the sidecar names another sha256 than the journal: the bytes are hashed, and differ
    assert target.find_delivered(_recorded(first)) is None


def test_s3_prefix_holds_its_own_delivery_by_url_and_by_block(s3, tmp_path):
    from prefect_aws import AwsCredentials, S3Bucket

    data = os.urandom(20_000)
    first = resolve_target(f"s3://{BUCKET}/a/", None).deliver(
        _video(tmp_path, data), "boat", {}, generation_id="g1"
    )
    assert first.video == f"s3://{BUCKET}/a/boat.mp4"

    found = resolve_target(f"s3://{BUCKET}/a", None).find_delivered(_recorded(first))
    assert found is not None and (found.size_bytes, found.sha256) == (20_000, _sha(data))
    assert resolve_target(f"s3://{BUCKET}/b", None).find_delivered(_recorded(first)) is None
    block = S3BucketTarget(S3Bucket(bucket_name=BUCKET, bucket_folder="a", credentials=AwsCredentials()))
    assert block.find_delivered(_recorded(first)) is not None  # the same place, named by a block

    s3.delete_object(Bucket=BUCKET, Key="a/boat.mp4")  # type: ignore[attr-defined]
    assert resolve_target(f"s3://{BUCKET}/a", None).find_delivered(_recorded(first)) is None
    assert block.find_delivered(_recorded(first)) is None


# ----------------------------------------------------------------------------------------- copy


def test_copy_from_a_folder_to_s3_and_back_keeps_bytes_and_sidecar(s3, tmp_path):
    data = os.urandom(30_000)
    first = LocalFolderTarget(tmp_path / "a").deliver(
        _video(tmp_path, data), "boat", {"prompt": "a boat", "probe": {"width": 854}}, generation_id="g1"
    )

    on_s3 = copy_delivery(
        _recorded(first), resolve_target(f"s3://{BUCKET}/c", None), "boat", workdir=tmp_path
    )

    body = s3.get_object(Bucket=BUCKET, Key="c/boat.mp4")["Body"].read()  # type: ignore[attr-defined]
    assert body == data and on_s3.sha256 == _sha(data) and not on_s3.reused
    sidecar = json.loads(s3.get_object(Bucket=BUCKET, Key="c/boat.json")["Body"].read())  # type: ignore[attr-defined]
    assert sidecar["copied_from"] == first.video
    assert (sidecar["prompt"], sidecar["probe"], sidecar["generation_id"]) == ("a boat", {"width": 854}, "g1")
    assert (sidecar["video"], sidecar["size_bytes"]) == ("boat.mp4", 30_000)

    back = copy_delivery(_recorded(on_s3), LocalFolderTarget(tmp_path / "d"), "boat", workdir=tmp_path)
    assert Path(back.video).read_bytes() == data
    assert json.loads(Path(back.sidecar).read_text())["copied_from"] == on_s3.video
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".copy-")]  # nothing left in transit


def test_copy_refuses_an_earlier_delivery_with_other_bytes(tmp_path):
    first = LocalFolderTarget(tmp_path / "a").deliver(
        _video(tmp_path, b"A" * 100), "boat", {}, generation_id="g1"
    )
    Path(first.video).write_bytes(b"B" * 100)

    with pytest.raises(DownloadError, match="has other bytes now") as refused:
        copy_delivery(_recorded(first), LocalFolderTarget(tmp_path / "b"), "boat", workdir=tmp_path)
    assert not refused.value.transient
    assert not (tmp_path / "b" / "boat.mp4").exists()


@pytest.mark.parametrize(
    ("location", "reason"),
    [("{tmp}/gone/boat.mp4", "is gone"), ("nosuchprotocol://bucket/boat.mp4", "cannot be read here")],
)
def test_copy_of_an_unreadable_earlier_delivery_says_why(tmp_path, location, reason):
    recorded = {"generation_id": "g1", "video": location.format(tmp=tmp_path), "sha256": "0" * 64}
    with pytest.raises(DownloadError, match=reason):
        copy_delivery(recorded, LocalFolderTarget(tmp_path / "b"), "boat", workdir=tmp_path)


# ---------------------------------------------------------------------------------- the order


def _never() -> DeliveredVideo:
    raise AssertionError("downloaded again although a copy was possible")


def _delivers(
    target: LocalFolderTarget, tmp_path: Path, data: bytes, calls: list[str]
) -> Callable[[], DeliveredVideo]:
    def again() -> DeliveredVideo:
        calls.append("download")
        return target.deliver(_video(tmp_path, data, "again.mp4"), "boat", {}, generation_id="g1")

    return again


def test_already_there_then_copied_without_downloading(tmp_path):
    data = os.urandom(2000)
    first = LocalFolderTarget(tmp_path / "a").deliver(_video(tmp_path, data), "boat", {}, generation_id="g1")

    there = redeliver(
        _recorded(first), LocalFolderTarget(tmp_path / "a"), "boat", workdir=tmp_path, download_again=_never
    )
    copied = redeliver(
        _recorded(first), LocalFolderTarget(tmp_path / "b"), "boat", workdir=tmp_path, download_again=_never
    )

    assert (there.how, there.delivered.video) == ("already there", first.video)
    assert (copied.how, copied.source) == ("copied", first.video)
    assert (tmp_path / "b" / "boat.mp4").read_bytes() == data
    # the journal now points at b; a still has the same bytes under the name: already there
    back = redeliver(_recorded(copied.delivered), LocalFolderTarget(tmp_path / "a"), "boat", workdir=tmp_path)
    assert back.how == "already there" and back.delivered.video == first.video


def test_gone_earlier_delivery_is_downloaded_again(tmp_path):
    data = os.urandom(2000)
    first = LocalFolderTarget(tmp_path / "a").deliver(_video(tmp_path, data), "boat", {}, generation_id="g1")
    Path(first.video).unlink()
    target, calls = LocalFolderTarget(tmp_path / "b"), []

    again = redeliver(
        _recorded(first),
        target,
        "boat",
        workdir=tmp_path,
        download_again=_delivers(target, tmp_path, data, calls),
    )

    assert (again.how, again.source, calls) == ("downloaded again", "service", ["download"])
    assert Path(again.delivered.video).read_bytes() == data


def test_nothing_left_fails_naming_new_and_both_reasons(tmp_path):
    first = LocalFolderTarget(tmp_path / "a").deliver(
        _video(tmp_path, b"A" * 100), "boat", {}, generation_id="g1"
    )
    Path(first.video).unlink()

    def service_forgot() -> DeliveredVideo:
        raise DownloadError("the service no longer has generation g1 (404)", transient=False)

    with pytest.raises(DownloadError) as failed:
        redeliver(
            _recorded(first),
            LocalFolderTarget(tmp_path / "b"),
            "boat",
            workdir=tmp_path,
            download_again=service_forgot,
        )
    message = str(failed.value)
    assert message.startswith("Generation g1 cannot be delivered again without a new generation")
    assert "--new" in message and "is gone" in message and "no longer has generation g1 (404)" in message
    assert not failed.value.transient
    assert not list((tmp_path / "b").glob("*.mp4"))


def test_transient_service_error_is_passed_on_not_turned_into_new(tmp_path):
    first = LocalFolderTarget(tmp_path / "a").deliver(
        _video(tmp_path, b"A" * 100), "boat", {}, generation_id="g1"
    )
    Path(first.video).unlink()

    def busy() -> DeliveredVideo:
        raise ServerError(503, "unavailable")

    with pytest.raises(ServerError):
        redeliver(
            _recorded(first), LocalFolderTarget(tmp_path / "b"), "boat", workdir=tmp_path, download_again=busy
        )


# ------------------------------------------------------------- does the service still serve it?


def test_succeeded_generation_tells_served_forgotten_and_failed(emulator):
    request = SeedanceRequest(prompt="A kite on a beach", duration=4, resolution="480p")
    with SeedanceClient(api_key=API_KEY, base_url=emulator.base_url) as client:
        [row] = client.enqueue(request)
        client.wait(row.generation_id, poll_interval=0.1)
        served = succeeded_generation(client, row.generation_id)
        assert served.status == "succeeded" and served.result_url

        set_faults(emulator, "fail=1")
        [bad] = client.enqueue(request)
        with pytest.raises(GenerationFailed):
            client.wait(bad.generation_id, poll_interval=0.1)
        with pytest.raises(DownloadError, match="is failed on the service") as failed:
            succeeded_generation(client, bad.generation_id)
        assert not failed.value.transient

        emulator.reset()  # the service forgets every generation
        with pytest.raises(DownloadError, match=r"no longer has generation .* \(404\)"):
            succeeded_generation(client, row.generation_id)
