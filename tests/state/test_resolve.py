"""``resolve_state``: which store a ``state`` value names, and the errors of bad values."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from seedance_prefect.errors import InvalidRequest
from seedance_prefect.state import LocalStateStore, S3StateStore, resolve_state
from tests.state.conftest import BUCKET


def test_default_is_the_state_dir_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEEDANCE_STATE", raising=False)
    monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "dir"))
    store = resolve_state(None)
    assert isinstance(store, LocalStateStore) and store.root == tmp_path / "dir"

    monkeypatch.delenv("SEEDANCE_STATE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_state().root == tmp_path / "home" / ".seedance"  # type: ignore[attr-defined]


def test_the_state_variable_wins_over_the_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "dir"))
    monkeypatch.setenv("SEEDANCE_STATE", "s3://shared-bucket/seedance")
    store = resolve_state(None)
    assert isinstance(store, S3StateStore) and store.url == "s3://shared-bucket/seedance/"
    assert resolve_state(str(tmp_path / "explicit")).url == str(tmp_path / "explicit")  # a value wins


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("s3://bucket", "s3://bucket/"),
        ("s3://bucket/a/b/", "s3://bucket/a/b/"),
        ("S3://bucket/p", "s3://bucket/p/"),
    ],
)
def test_s3_urls(spec: str, expected: str) -> None:
    assert resolve_state(spec).url == expected


def test_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_state("~/shared").url == str(tmp_path / "shared")
    assert resolve_state(f"file://{tmp_path}/x").url == f"{tmp_path}/x"
    assert resolve_state(tmp_path / "p").url == str(tmp_path / "p")
    assert resolve_state("relative/state").url == "relative/state"  # a relative folder, not a block
    store = LocalStateStore(tmp_path)
    assert resolve_state(store) is store


@pytest.mark.parametrize(
    "spec", ["", "   ", "gs://bucket/x", "s3://", "s3:///prefix", "remote-file-system/shared"]
)
def test_bad_values_name_the_field_the_forms_and_the_fix(spec: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        resolve_state(spec)
    [problem] = caught.value.problems
    assert problem.field == "state"
    assert problem.fix is not None and "s3://bucket/prefix/" in problem.fix and "s3-bucket/" in problem.fix


def test_a_bad_variable_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEDANCE_STATE", "ftp://host/state")
    with pytest.raises(InvalidRequest) as caught:
        resolve_state(None)
    assert caught.value.fields == ["SEEDANCE_STATE"]


def test_s3_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if it were not installed
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(InvalidRequest) as caught:
        resolve_state("s3://bucket/state/")
    [problem] = caught.value.problems
    assert problem.field == "state" and problem.fix == "pip install 'seedance-prefect[s3]'"


def test_an_s3_bucket_block_gives_its_client_bucket_and_folder(aws_env: str) -> None:
    from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket

    credentials = AwsCredentials(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=aws_env),
    )
    block = S3Bucket(bucket_name=BUCKET, credentials=credentials, bucket_folder="team/seedance")
    store = S3StateStore.from_block(block)
    assert store.url == f"s3://{BUCKET}/team/seedance/"

    store.create("journal/fp.json", b"{}")
    assert store.client.get_object(Bucket=BUCKET, Key="team/seedance/journal/fp.json")["Body"].read() == b"{}"


def test_a_saved_s3_bucket_block_by_name(aws_env: str, prefect_server: str) -> None:
    from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket

    credentials = AwsCredentials(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=aws_env),
    )
    S3Bucket(bucket_name=BUCKET, credentials=credentials, bucket_folder="saved").save(
        "seedance-state-test", overwrite=True
    )
    store = resolve_state("s3-bucket/seedance-state-test")
    assert isinstance(store, S3StateStore) and store.url == f"s3://{BUCKET}/saved/"
    version = store.create("k", b"v")
    assert store.read("k").version == version  # type: ignore[union-attr]

    with pytest.raises(InvalidRequest) as caught:
        resolve_state("s3-bucket/no-such-block")
    assert caught.value.fields == ["state"]


@pytest.mark.parametrize("command", ["generate", "batch"])
def test_the_cli_refuses_a_bad_state_before_anything_runs(
    command: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    from seedance_prefect.cli.main import main

    monkeypatch.setenv("OXEN_API_KEY", "sk-test-not-used")
    request = tmp_path / "request.json"
    request.write_text('{"prompt": "A kite", "duration": "4"}')
    manifest = tmp_path / "rows.jsonl"
    manifest.write_text('{"prompt": "A kite", "duration": "4"}\n')
    target = str(request if command == "generate" else manifest)

    assert main([command, target, "--state", "gs://bucket/state"]) == 2
    err = capsys.readouterr().err
    assert "state: Unsupported state store" in err and "s3://bucket/prefix/" in err
