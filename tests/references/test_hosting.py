"""Hosting strategies: content-addressed, uploaded once, reachable by the service."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest

from seedance_prefect.credentials import OxenCredentials
from seedance_prefect.media.probe import probe_bytes
from seedance_prefect.references.hosting import (
    DataUriHosting,
    HostingError,
    OxenRepositoryHosting,
    S3PresignedHosting,
    hosting_from_spec,
)
from seedance_prefect.references.preprocess import prepare
from tests.references.conftest import API_KEY, emulator_stats, request_for


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _puts(emu) -> int:
    return emulator_stats(emu)["uploads"]


def test_oxen_upload_is_named_by_content_and_happens_once(emulator, media):
    hosting = OxenRepositoryHosting("ada/refs", api_key=API_KEY, base_url=emulator.base_url)
    path = media["png_ok"]
    url = hosting.host(path, mime="image/png", sha256=_sha(path))
    assert url == f"{emulator.base_url}/repos/ada/refs/file/main/seedance-references/{_sha(path)}.png"
    fetched = httpx.get(url)  # no key needed to read it back: the service can fetch it
    assert fetched.status_code == 200 and fetched.content == path.read_bytes()
    assert hosting.host(path, mime="image/png", sha256=_sha(path)) == url
    assert _puts(emulator) == 1


def test_oxen_sends_the_key_only_to_its_own_origin(emulator, media):
    seen: list[tuple[str, str | None]] = []

    def record(request: httpx.Request) -> None:
        seen.append((request.url.host, request.headers.get("Authorization")))

    with httpx.Client(event_hooks={"request": [record]}) as client:
        hosting = OxenRepositoryHosting(
            "ada/refs", api_key=API_KEY, base_url=emulator.base_url, http_client=client
        )
        path = media["jpeg_ok"]
        hosting.host(path, mime="image/jpeg", sha256=_sha(path))
    assert seen and all(auth == f"Bearer {API_KEY}" for host, auth in seen if host == "127.0.0.1")
    assert hosting._auth.is_api_origin("https://other.example.com/x") is False


def test_oxen_refusal_is_a_clear_error(emulator, media, tmp_path):
    hosting = OxenRepositoryHosting(
        "ada/refs", api_key=API_KEY, base_url=emulator.base_url.replace("/api", "/nope")
    )
    path = media["png_ok"]
    with pytest.raises(HostingError, match="refused: HTTP 404"):
        hosting.host(path, mime="image/png", sha256=_sha(path))


def test_prepare_with_oxen_hosting_sends_repository_urls(emulator, media, tmp_path):
    creds = OxenCredentials(api_key=API_KEY, base_url=emulator.base_url, repository="ada/refs")
    body = request_for(input_images=[media.s("exif6"), media.s("png_ok")], input_videos=[media.s("v_ok")])
    prepared = prepare(body, cache_dir=tmp_path, hosting=hosting_from_spec(None, credentials=creds))
    uris = [*prepared.request.input_images, *prepared.request.input_videos]
    assert all(
        u.startswith(f"{emulator.base_url}/repos/ada/refs/file/main/seedance-references/") for u in uris
    )
    assert httpx.get(uris[1]).content == media["png_ok"].read_bytes()  # compliant: byte-identical
    assert probe_bytes(httpx.get(uris[0]).content).exif_orientation is None  # fixed
    again = prepare(body, cache_dir=tmp_path, hosting=hosting_from_spec("oxen", credentials=creds))
    assert again.request == prepared.request and _puts(emulator) == 3


def test_s3_presigned_url_is_fetchable_and_the_object_is_uploaded_once(s3_bucket, media, tmp_path):
    record = tmp_path / "urls.json"
    hosting = S3PresignedHosting(s3_bucket, expires=600, record=record)
    path = media["mp3_ok"]
    url = hosting.host(path, mime="audio/mpeg", sha256=_sha(path))
    assert f"/seedance-references/{_sha(path)}.mp3" in url and "Signature" in url
    assert httpx.get(url).content == path.read_bytes()
    client = s3_bucket.credentials.get_s3_client()
    head = client.head_object(Bucket=s3_bucket.bucket_name, Key=f"seedance-references/{_sha(path)}.mp3")
    assert head["ContentType"] == "audio/mpeg"
    uploads: list[str] = []
    hosting._upload = lambda *args: uploads.append(args[1])  # type: ignore[method-assign]
    assert hosting.host(path, mime="audio/mpeg", sha256=_sha(path)) == url  # same URL: same request
    assert uploads == [] and len(json.loads(record.read_text())) == 1


def test_s3_url_is_renewed_when_half_its_validity_is_gone(s3_bucket, media, tmp_path):
    record = tmp_path / "urls.json"
    hosting = S3PresignedHosting(s3_bucket, expires=600, record=record)
    path = media["png_ok"]
    first = hosting.host(path, mime="image/png", sha256=_sha(path))
    data = json.loads(record.read_text())
    for value in data.values():
        value["expires_at"] -= 400  # 200 s left of 600
    record.write_text(json.dumps(data))
    second = hosting.host(path, mime="image/png", sha256=_sha(path))
    [renewed] = json.loads(record.read_text()).values()
    assert renewed["url"] == second and renewed["expires_at"] - time.time() > 500  # a fresh URL
    assert httpx.get(first).status_code == httpx.get(second).status_code == 200


def test_hosting_choice():
    assert isinstance(hosting_from_spec(None), DataUriHosting)
    creds = OxenCredentials(api_key=API_KEY, repository="ada/refs")
    chosen = hosting_from_spec(None, credentials=creds)
    assert isinstance(chosen, OxenRepositoryHosting) and chosen.name == "oxen:ada/refs"
    assert hosting_from_spec(None, credentials=creds, repository="bob/other").name == "oxen:bob/other"
    assert isinstance(hosting_from_spec("data", credentials=creds), DataUriHosting)
    with pytest.raises(HostingError, match="needs a repository"):
        hosting_from_spec("oxen", credentials=OxenCredentials(api_key=API_KEY))
    with pytest.raises(HostingError, match="namespace/name"):
        OxenRepositoryHosting("just-a-name", api_key=API_KEY)


def test_data_uri_cap(media):
    path = media["png_ok"]
    with pytest.raises(HostingError, match="over the 10 bytes allowed inline"):
        DataUriHosting(max_bytes=10).host(path, mime="image/png", sha256=_sha(path))
