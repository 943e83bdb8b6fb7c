"""The S3 hosting's URL record in a shared state store: a second machine reuses the first one's
presigned URL, so both post the same body and compute the same request fingerprint.

Each "machine" has its own boto3 client with its own access key (moto accepts any), so the URLs they
would sign differ (``X-Amz-Credential``) unless the record is shared.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import boto3
import httpx

from seedance_prefect.models import SeedanceRequest
from seedance_prefect.references.hosting import RECORD_KEY, S3PresignedHosting
from seedance_prefect.state import LocalStateStore, S3StateStore, StateStore
from tests.state.conftest import BUCKET

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


def _machine(endpoint: str, name: str, store: StateStore) -> S3PresignedHosting:
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=f"key-of-{name}",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    return S3PresignedHosting(bucket_name=BUCKET, client=client, expires=600, store=store)


def _fingerprint(url: str) -> str:
    return SeedanceRequest(prompt="@Image1 waves", input_images=[url], duration="4").fingerprint()


def _file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "ref.png"
    path.write_bytes(PNG)
    return path, hashlib.sha256(PNG).hexdigest()


def test_a_second_machine_reuses_the_url_and_so_the_fingerprint(aws_env: str, tmp_path: Path) -> None:
    path, sha = _file(tmp_path)
    shared = S3StateStore(BUCKET, "state")

    url_a = _machine(aws_env, "a", shared).host(path, mime="image/png", sha256=sha)
    url_b = _machine(aws_env, "b", S3StateStore(BUCKET, "state")).host(path, mime="image/png", sha256=sha)

    assert url_b == url_a and _fingerprint(url_b) == _fingerprint(url_a)
    assert httpx.get(url_a).content == PNG
    assert shared.list("cache/") == [RECORD_KEY]
    # each machine on its own record: two URLs, two fingerprints (two paid generations)
    own = [
        _machine(aws_env, name, LocalStateStore(tmp_path / name)).host(path, mime="image/png", sha256=sha)
        for name in ("c", "d")
    ]
    assert own[0] != own[1] and _fingerprint(own[0]) != _fingerprint(own[1])


def test_machines_hosting_at_once_agree_on_one_url(aws_env: str, tmp_path: Path) -> None:
    path, sha = _file(tmp_path)
    machines = [_machine(aws_env, f"m{i}", S3StateStore(BUCKET, "state")) for i in range(6)]
    for m in machines:
        m.client.list_buckets()  # clients ready before the race
    barrier, urls = threading.Barrier(len(machines)), [""] * len(machines)

    def host(i: int) -> None:
        barrier.wait(30)
        urls[i] = machines[i].host(path, mime="image/png", sha256=sha)

    threads = [threading.Thread(target=host, args=(i,)) for i in range(len(machines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert len(set(urls)) == 1 and urls[0], urls
