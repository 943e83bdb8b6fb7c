"""S3 for the storage tests: a bucket on the session's moto server (``moto_endpoint``, tests/conftest.py)."""

from __future__ import annotations

import pytest

BUCKET = "seedance-videos"


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """A boto3 S3 client on a fresh bucket, with the standard AWS environment pointing at moto."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3")
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if BUCKET in existing:
        for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    else:
        client.create_bucket(Bucket=BUCKET)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    return client
