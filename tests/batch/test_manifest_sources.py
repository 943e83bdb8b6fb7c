"""Manifests kept in storage (issue 13): relative references come from the manifest's store, local
files are refused unless allowed, so whoever writes the manifest cannot make a worker send its files.
S3 is moto in server mode (``moto_endpoint``); the flow runs against the emulator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from seedance_prefect.batch.manifest import plan_batch, read_manifest
from seedance_prefect.batch_flows import BatchFailed, batch_reference_to_video
from seedance_prefect.cli import main
from seedance_prefect.emulator import EmulatorConfig, run_emulator
from seedance_prefect.media.samples import make_image
from tests.kit import API_KEY, stats

BUCKET = "seedance-manifests"
MANIFEST = f"s3://{BUCKET}/manifests/nightly.jsonl"
BASE = {"duration": "4", "resolution": "480p", "aspect_ratio": "16:9"}


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A boto3 client on an empty bucket; the AWS environment points at moto; a fresh state dir."""
    import boto3
    import s3fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "state"))
    client = boto3.client("s3")
    if BUCKET in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    else:
        client.create_bucket(Bucket=BUCKET)
    s3fs.S3FileSystem.clear_instance_cache()
    return client


@pytest.fixture
def private(tmp_path: Path) -> Path:
    """A file of this machine that a manifest in storage names by its absolute path."""
    return make_image(tmp_path / "home" / "private-photo.png", 640, 480, format="PNG", seed=9)


def _put_manifest(s3: Any, rows: list[dict[str, Any]], key: str = "manifests/nightly.jsonl") -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body="".join(json.dumps(r) + "\n" for r in rows).encode())


def _put_reference(s3: Any, tmp_path: Path, key: str = "manifests/refs/a.png") -> bytes:
    data = make_image(tmp_path / "upload" / "a.png", 640, 480, format="PNG", seed=4).read_bytes()
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return data


def _rows(private: Path) -> list[dict[str, Any]]:
    return [
        {"name": "hosted", "prompt": "@Image1 drifts on a lake", "input_images": ["refs/a.png"], **BASE},
        {"name": "leak", "prompt": "@Image1 on a table", "input_images": [str(private)], **BASE},
        {"name": "plain", "prompt": "A harbour at dusk", **BASE},
    ]


def test_relative_references_are_fetched_from_the_manifests_store(s3, tmp_path, private):
    sent = _put_reference(s3, tmp_path)
    _put_manifest(s3, _rows(private))

    rows, base = read_manifest(MANIFEST)
    plan = plan_batch(rows, base_dir=base)

    assert base is None and rows[0].remote == {"input_images[0]": f"s3://{BUCKET}/manifests/refs/a.png"}
    [hosted, plain] = plan.rows
    local = Path(hosted.request.input_images[0])
    assert local.read_bytes() == sent and local.is_relative_to(tmp_path / "state")
    assert plain.name == "plain"
    [leak] = plan.rejected
    assert leak.line == 2 and leak.name == "leak"
    message = str(leak)
    assert message.startswith(
        f"line 2 (leak): input_images[0]: Local file named by a manifest read from {MANIFEST}"
    )
    for part in ("limit: a manifest kept in storage", f"found: {private}", "--allow-local-references"):
        assert part in message, message

    # planned again (the CLI checks before the flow does): the same file, so the same fingerprint
    again = plan_batch(read_manifest(MANIFEST)[0])
    assert again.rows[0].request.input_images[0] == str(local)
    assert again.rows[0].fingerprint == hosted.fingerprint


def test_local_references_only_when_allowed(s3, tmp_path, private):
    _put_reference(s3, tmp_path)
    _put_manifest(s3, _rows(private))

    rows, base = read_manifest(MANIFEST, allow_local_references=True)
    plan = plan_batch(rows, base_dir=base)

    assert [r.name for r in plan.rows] == ["hosted", "leak", "plain"] and not plan.rejected
    assert plan.rows[1].request.input_images == [str(private)]


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("~/private-photo.png", "Local file named by a manifest"),
        ("file:///etc/hostname", "Local file named by a manifest"),
        ("../secrets/a.png", "Path above the folder of the manifest"),
        ("refs/missing.png", "Reference not found beside the manifest"),
    ],
)
def test_what_a_manifest_in_storage_may_not_name(s3, reference, problem):
    _put_manifest(s3, [{"name": "x", "prompt": "@Image1 waves", "input_images": [reference], **BASE}])

    plan = plan_batch(read_manifest(MANIFEST)[0])

    [rejected] = plan.rejected
    assert rejected.line == 1 and problem in rejected.problems[0], rejected.problems


def test_parent_folders_with_the_permission_but_never_above_the_bucket(s3, tmp_path):
    sent = _put_reference(s3, tmp_path, key="shared/a.png")
    row = {"name": "x", "prompt": "@Image1 waves", "input_images": ["../shared/a.png"], **BASE}
    _put_manifest(s3, [row, {**row, "name": "y", "input_images": ["../../../a.png"]}])

    plan = plan_batch(read_manifest(MANIFEST, allow_local_references=True)[0])

    assert Path(plan.rows[0].request.input_images[0]).read_bytes() == sent
    assert [r.name for r in plan.rejected] == ["y"]


def test_local_manifests_keep_local_references(tmp_path, private):
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text(
        json.dumps({"prompt": "@Image1 waves", "input_images": [str(private)], **BASE})
        + "\n"
        + json.dumps({"prompt": "@Image1 again", "input_images": ["home/private-photo.png"], **BASE})
        + "\n"
    )

    plan = plan_batch(*read_manifest(manifest)[:1], base_dir=read_manifest(manifest)[1])

    assert [r.request.input_images for r in plan.rows] == [[str(private)], [str(private)]]


@pytest.fixture
def emu(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with run_emulator(EmulatorConfig(latency=0.3, max_running=8, keepalive=1.0)) as emulator:
        monkeypatch.setenv("OXEN_API_KEY", API_KEY)
        monkeypatch.setenv("OXEN_BASE_URL", emulator.base_url)
        for name in ("SEEDANCE_HOSTING", "SEEDANCE_REPOSITORY"):
            monkeypatch.delenv(name, raising=False)
        yield emulator


def _references(emu: Any) -> dict[str, list[dict[str, Any]]]:
    generations = httpx.get(f"{emu.url}/_emulator/stats").json()["generations"].values()
    return {g["params"]["prompt"]: g["references"] for g in generations}


@pytest.mark.usefixtures("prefect_server")
def test_batch_from_s3_delivers_hosted_reference_and_refuses_local_file(emu, s3, tmp_path, private):
    sent = _put_reference(s3, tmp_path)
    _put_manifest(s3, _rows(private))

    with pytest.raises(BatchFailed) as failed:
        batch_reference_to_video(MANIFEST, output=str(tmp_path / "out"), concurrency=2, poll_interval=5.0)

    rows = {r["name"]: r for r in failed.value.summary["rows"]}
    assert {n: r["status"] for n, r in rows.items()} == {
        "hosted": "delivered",
        "leak": "invalid",
        "plain": "delivered",
    }
    assert "Local file named by a manifest read from s3://" in rows["leak"]["error"]
    assert "--allow-local-references" in rows["leak"]["error"]
    assert stats(emu)["generations_created"] == 2
    [reference] = _references(emu)["@Image1 drifts on a lake"]
    assert reference["fetched"] and reference["sha256"] == hashlib.sha256(sent).hexdigest()
    assert reference["scheme"] == "data"  # sent inline: the worker fetched it from the store and hosted it


@pytest.mark.usefixtures("prefect_server")
def test_cli_allow_local_references(emu, s3, tmp_path, private):
    _put_reference(s3, tmp_path)
    _put_manifest(s3, _rows(private))
    out = tmp_path / "out"

    assert main(["batch", MANIFEST, "--out", str(out), "--concurrency", "2", "--run-key", "a"]) == 1
    assert stats(emu)["generations_created"] == 2
    code = main(
        [
            "batch",
            MANIFEST,
            "--out",
            str(out),
            "--concurrency",
            "2",
            "--run-key",
            "a",
            "--allow-local-references",
        ]
    )

    assert code == 0
    assert stats(emu)["generations_created"] == 3  # the two others were delivered before: skipped
    [reference] = _references(emu)["@Image1 on a table"]
    assert reference["sha256"] == hashlib.sha256(private.read_bytes()).hexdigest()
