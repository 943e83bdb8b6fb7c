"""The API key reaches only the API origin, and never shows in a message, repr or log line."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import respx

from seedance_prefect.client import SeedanceClient
from seedance_prefect.client._auth import OriginAuth
from seedance_prefect.errors import SeedanceError
from tests.client.clientkit import BASE, GID, KEY, VIDEO, exception_text, row, url


def test_authorization_only_to_api_origin(
    client: SeedanceClient, api: respx.MockRouter, tmp_path: Path
) -> None:
    api_route = api.get(url(f"/ai/queue/{GID}")).mock(return_value=httpx.Response(200, json=row()))
    own = api.get("https://hub.test/api/repos/x/files/v.mp4").mock(
        return_value=httpx.Response(200, content=VIDEO)
    )
    other = api.get("https://cdn.test/v.mp4").mock(return_value=httpx.Response(200, content=VIDEO))
    same_host_other_port = api.get("https://hub.test:8443/v.mp4").mock(
        return_value=httpx.Response(200, content=VIDEO)
    )
    plain_http = api.get("http://hub.test/v.mp4").mock(return_value=httpx.Response(200, content=VIDEO))

    client.get(GID)
    client.download("https://hub.test/api/repos/x/files/v.mp4", tmp_path / "a.mp4")
    client.download("https://cdn.test/v.mp4", tmp_path / "b.mp4")
    client.download("https://hub.test:8443/v.mp4", tmp_path / "c.mp4")
    client.download("http://hub.test/v.mp4", tmp_path / "d.mp4")

    assert api_route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"
    assert own.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"
    for route in (other, same_host_other_port, plain_http):
        assert "Authorization" not in route.calls.last.request.headers


def test_default_header_of_a_given_http_client_is_stripped_for_other_hosts(
    api: respx.MockRouter, tmp_path: Path
) -> None:
    other = api.get("https://cdn.test/v.mp4").mock(return_value=httpx.Response(200, content=VIDEO))
    http = httpx.Client(headers={"Authorization": f"Bearer {KEY}"})
    with SeedanceClient(KEY, base_url=BASE, http_client=http) as client:
        client.download("https://cdn.test/v.mp4", tmp_path / "v.mp4")
    http.close()
    assert "Authorization" not in other.calls.last.request.headers


def test_auth_repr_and_client_repr() -> None:
    auth = OriginAuth(KEY, BASE)
    client = SeedanceClient(KEY, base_url=BASE)
    for text in (repr(auth), str(auth), repr(client), str(client), repr(vars(client).get("_policy"))):
        assert KEY not in text


def test_key_never_in_errors_or_logs(
    client: SeedanceClient, api: respx.MockRouter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    echo = {"error": {"type": "unauthenticated", "detail": f"Invalid key {KEY}"}, "echo": [f"Bearer {KEY}"]}
    api.get(url("/ai/queue/e401")).mock(return_value=httpx.Response(401, json=echo))
    api.get(url("/ai/queue/e404")).mock(return_value=httpx.Response(404, text=f"no such thing for {KEY}"))
    api.get(url("/ai/queue/e429")).mock(return_value=httpx.Response(429, headers={"Retry-After": "999"}))
    api.get(url("/ai/queue/e500")).mock(return_value=httpx.Response(500, json={"detail": KEY}))
    api.get(url("/ai/queue/conn")).mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
    api.get(url("/ai/queue/bad")).mock(return_value=httpx.Response(200, text=f"<p>{KEY}</p>"))
    api.get(url("/ai/queue/fail")).mock(
        return_value=httpx.Response(200, json=row("failed", error_message=KEY))
    )
    api.get(url("/ai/queue/slow")).mock(return_value=httpx.Response(200, json=row("processing")))
    api.post(url("/ai/queue")).mock(side_effect=httpx.ReadTimeout("read timed out"))
    api.post(url("/ai/videos/generate")).mock(
        return_value=httpx.Response(400, json={"error": {"message": KEY}})
    )
    api.get(url("/events")).mock(return_value=httpx.Response(200, text=KEY))
    api.get("https://cdn.test/short.mp4").mock(
        return_value=httpx.Response(200, content=b"x", headers={"Content-Length": "9"})
    )
    api.get("https://cdn.test/big.mp4").mock(return_value=httpx.Response(200, content=VIDEO))

    provocations = [
        lambda: client.get("e401"),
        lambda: client.get("e404"),
        lambda: client.get("e429"),
        lambda: client.get("e500"),
        lambda: client.get("conn"),
        lambda: client.get("bad"),
        lambda: client.wait("fail", poll_interval=0.01),
        lambda: client.wait("slow", timeout=0.05, poll_interval=0.01),
        lambda: client.enqueue({"prompt": "A boat"}),
        lambda: client.generate({"prompt": "A boat"}),
        lambda: client.generate({"prompt": KEY, "duration": 3}),
        lambda: list(client.events()),
        lambda: client.download("https://cdn.test/short.mp4", tmp_path / "s.mp4"),
        lambda: client.download("https://cdn.test/big.mp4", tmp_path / "b.mp4", max_bytes=10),
        lambda: client.download(row("succeeded"), tmp_path / "n.mp4"),
        lambda: client.save_b64("%%%", tmp_path / "x.mp4"),
        lambda: SeedanceClient(KEY + " x"),
    ]
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        for provoke in provocations:
            with pytest.raises(Exception) as info:
                provoke()
            errors.append(info.value)
    assert len(errors) == len(provocations)
    assert (
        sum(isinstance(e, SeedanceError) for e in errors) >= len(provocations) - 2
    )  # + ValueError/InvalidRequest
    for error in errors:
        text = exception_text(error)
        assert KEY not in text, f"key leaked by {type(error).__name__}: {text[:500]}"
    for record in caplog.records:
        assert KEY not in record.getMessage() and KEY not in str(record.args)
    assert any(r.name.startswith("seedance_prefect") for r in caplog.records)
