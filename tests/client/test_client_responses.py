"""Every documented answer shape and error envelope, mapped by the sync client (respx)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from seedance_prefect.client import SeedanceClient
from seedance_prefect.errors import (
    ApiError,
    AuthenticationError,
    InvalidRequest,
    NotFoundError,
    RateLimitedError,
    ServerError,
)
from seedance_prefect.models import SeedanceRequest
from tests.client.clientkit import GID, MODEL, VIDEO_B64, not_found, row, url


def body_of(route: respx.Route) -> dict:
    return json.loads(route.calls.last.request.content)


def test_generate_url(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.post(url("/ai/videos/generate")).mock(
        return_value=httpx.Response(
            200,
            json={
                "created": 1775090723,
                "model": MODEL,
                "videos": [{"url": "https://hub.test/api/repos/x/video.mp4?sig=1"}],
            },
        )
    )
    request = SeedanceRequest(prompt="@Image1 waves", input_images=["https://example.com/a.png"], duration=8)
    result = client.generate(request)
    assert result.videos[0].url == "https://hub.test/api/repos/x/video.mp4?sig=1"
    assert result.created == 1775090723
    assert body_of(route) == request.to_body("sync")
    timeout = route.calls.last.request.extensions["timeout"]
    assert timeout["read"] == 900.0 and timeout["connect"] == 60.0


def test_generate_b64_and_custom_timeout(api: respx.MockRouter) -> None:
    route = api.post(url("/ai/videos/generate")).mock(
        return_value=httpx.Response(
            200,
            json={
                "model": MODEL,
                "created": 1,
                "videos": [{"b64_json": VIDEO_B64}],
            },
        )
    )
    with SeedanceClient("k", base_url="https://hub.test/api", generate_timeout=1200) as client:
        result = client.generate({"prompt": "A boat", "response_format": "b64_json"})
    assert result.videos[0].b64_json == VIDEO_B64
    assert body_of(route)["response_format"] == "b64_json"
    assert "num_generations" not in body_of(route)
    assert route.calls.last.request.extensions["timeout"]["read"] == 1200


def test_invalid_mapping_is_refused_before_sending(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.post(url("/ai/videos/generate"))
    with pytest.raises(InvalidRequest) as info:
        client.generate({"prompt": "", "duration": 3, "durations": 5})
    assert not route.called
    assert len(info.value.problems) >= 1


def test_sync_refuses_several_generations(client: SeedanceClient, api: respx.MockRouter) -> None:
    with pytest.raises(InvalidRequest, match="num_generations"):
        client.generate({"prompt": "A boat", "num_generations": 2})


@pytest.mark.parametrize("count", [1, 2, 3, 4])
@pytest.mark.parametrize("status", ["queued", "processing"])
def test_enqueue(client: SeedanceClient, api: respx.MockRouter, count: int, status: str) -> None:
    rows = [{"generation_id": f"g{i}", "status": status} for i in range(count)]
    route = api.post(url("/ai/queue")).mock(return_value=httpx.Response(200, json={"generations": rows}))
    result = client.enqueue({"prompt": "A boat", "num_generations": count, "duration": 5})
    assert [g.generation_id for g in result] == [f"g{i}" for i in range(count)]
    assert all(g.status == status and g.is_active for g in result)
    body = body_of(route)
    assert body["num_generations"] == count and body["duration"] == "5" and "response_format" not in body


def test_enqueue_without_generations_is_an_invalid_response(
    client: SeedanceClient, api: respx.MockRouter
) -> None:
    api.post(url("/ai/queue")).mock(return_value=httpx.Response(200, json={"generations": []}))
    with pytest.raises(ApiError) as info:
        client.enqueue({"prompt": "A boat"})
    assert info.value.error_type == "invalid_response" and not info.value.transient


def test_list(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/ai/queue")).mock(
        return_value=httpx.Response(
            200,
            json={
                "count": 2,
                "generations": [row(gid="a"), row("queued", gid="b", aspect_ratio="16:9")],
            },
        )
    )
    rows = client.list(model=MODEL, status="processing")
    assert [g.generation_id for g in rows] == ["a", "b"]
    assert rows[1].extra_fields == {"aspect_ratio": "16:9"}
    assert dict(route.calls.last.request.url.params) == {"model": MODEL, "status": "processing"}


def test_list_empty_and_namespace(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/ai/queue")).mock(
        return_value=httpx.Response(200, json={"count": 0, "generations": []})
    )
    assert client.list(namespace="my-org") == []
    assert dict(route.calls.last.request.url.params) == {"namespace": "my-org"}


def test_get_row_with_unknown_fields_and_int_duration(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/queue/{GID}")).mock(
        return_value=httpx.Response(
            200,
            json=row(
                "succeeded",
                duration=10,
                seed=7,
                result_url="https://hub.test/api/repos/x/v.mp4",
                completed_at=1775091500,
                surprise={"nested": True},
            ),
        )
    )
    generation = client.get(GID)
    assert generation.duration == "10"
    assert generation.result_url == "https://hub.test/api/repos/x/v.mp4"
    assert generation.extra_fields == {"seed": 7, "surprise": {"nested": True}}
    assert generation.state == "succeeded"


def test_cancel(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.delete(url(f"/ai/queue/{GID}")).mock(
        return_value=httpx.Response(200, json={"status": "success", "generation_id": GID})
    )
    result = client.cancel(GID)
    assert (result.status, result.generation_id) == ("success", GID)
    assert route.calls.last.request.method == "DELETE"


def test_model_info(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url(f"/ai/models/{MODEL}")).mock(
        return_value=httpx.Response(
            200,
            json={
                "id": MODEL,
                "object": "model",
                "endpoint": "/videos/generate",
                "capabilities": {"output": ["video"]},
            },
        )
    )
    assert client.model_info()["endpoint"] == "/videos/generate"


def test_404_resource_not_found(client: SeedanceClient, api: respx.MockRouter) -> None:
    route = api.get(url("/ai/queue/nope")).mock(return_value=not_found())
    with pytest.raises(NotFoundError) as info:
        client.get("nope")
    err = info.value
    assert route.call_count == 1  # 4xx is not retried
    assert (err.status_code, err.error_type) == (404, "resource_not_found")
    assert err.detail == "The requested resource could not be found"
    assert err.method == "GET" and err.url == url("/ai/queue/nope")
    assert err.body["status_message"] == "resource_not_found"
    title = "The requested resource could not be found"
    assert str(err) == f"GET {url('/ai/queue/nope')} answered 404 resource_not_found: {title}"


def test_simple_envelope_model_not_found(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url("/ai/models/x")).mock(
        return_value=httpx.Response(404, json={"error": {"message": "Model not found: x"}})
    )
    with pytest.raises(NotFoundError) as info:
        client.model_info("x")
    assert info.value.detail == "Model not found: x" and info.value.error_type is None


def test_structured_400_invalid_params(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.post(url("/ai/videos/generate")).mock(
        return_value=httpx.Response(
            400,
            json={
                "error": {
                    "type": "invalid_params",
                    "title": "Invalid parameters supplied, please check your request",
                    "detail": "Invalid duration",
                },
                "status": "error",
                "status_message": "invalid_params",
            },
        )
    )
    with pytest.raises(ApiError) as info:
        client.generate({"prompt": "A boat"})
    err = info.value
    assert type(err) is ApiError and (err.error_type, err.detail) == ("invalid_params", "Invalid duration")
    assert not err.transient


def test_nested_detail_only(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.post(url("/ai/queue")).mock(
        return_value=httpx.Response(415, json={"error": {"detail": ":unsupported_media_type"}})
    )
    with pytest.raises(ApiError, match=":unsupported_media_type"):
        client.enqueue({"prompt": "A boat"})


def test_401_unauthenticated(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url("/ai/queue")).mock(
        return_value=httpx.Response(
            401,
            json={
                "error": {"type": "unauthenticated", "title": "Unauthenticated"},
                "status": "error",
                "status_message": "unauthenticated",
            },
        )
    )
    with pytest.raises(AuthenticationError) as info:
        client.list()
    assert info.value.error_type == "unauthenticated" and not info.value.transient


def test_fastapi_detail_and_html_bodies(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.post(url("/ai/queue")).mock(
        return_value=httpx.Response(
            422,
            json={
                "detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}],
            },
        )
    )
    with pytest.raises(ApiError) as info:
        client.enqueue({"prompt": "A boat"})
    assert info.value.detail == "body.prompt: Field required"

    api.post(url("/ai/videos/generate")).mock(
        return_value=httpx.Response(502, text="<html><body><h1>502 Bad Gateway</h1></body></html>")
    )
    with pytest.raises(ServerError) as info:
        client.generate({"prompt": "A boat"})
    assert info.value.detail == "502 Bad Gateway" and info.value.transient


def test_empty_error_body_uses_reason_phrase(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.post(url("/ai/queue")).mock(return_value=httpx.Response(403))
    with pytest.raises(ApiError) as info:
        client.enqueue({"prompt": "A boat"})
    assert info.value.status_code == 403 and info.value.detail == "Forbidden"


@pytest.mark.parametrize("code", [500, 503])
def test_5xx(code: int, api: respx.MockRouter) -> None:
    api.get(url("/ai/queue")).mock(
        return_value=httpx.Response(
            code,
            json={
                "error": {"type": "unknown_error", "title": "Something went wrong"},
                "status": "error",
            },
        )
    )
    with (
        SeedanceClient("k", base_url="https://hub.test/api", max_retries=0) as client,
        pytest.raises(ServerError) as info,
    ):
        client.list()
    assert info.value.status_code == code and info.value.transient
    assert info.value.error_type == "unknown_error"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), (None, None)],
)
def test_429_retry_after(api: respx.MockRouter, header: str | None, expected: float | None) -> None:
    headers = {"Retry-After": header} if header else {}
    api.get(url("/ai/queue")).mock(
        return_value=httpx.Response(429, headers=headers, json={"error": {"message": "Rate limit exceeded"}})
    )
    with (
        SeedanceClient("k", base_url="https://hub.test/api", max_retries=0) as client,
        pytest.raises(RateLimitedError) as info,
    ):
        client.list()
    assert info.value.retry_after == expected and info.value.detail == "Rate limit exceeded"
    assert info.value.transient


def test_success_with_non_json_body(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url("/ai/queue/g1")).mock(return_value=httpx.Response(200, text="<html>maintenance</html>"))
    with pytest.raises(ApiError) as info:
        client.get("g1")
    assert info.value.error_type == "invalid_response" and "maintenance" in str(info.value)


def test_success_with_wrong_shape(client: SeedanceClient, api: respx.MockRouter) -> None:
    api.get(url("/ai/queue/g1")).mock(return_value=httpx.Response(200, json={"status": "processing"}))
    with pytest.raises(ApiError, match="generation_id"):
        client.get("g1")
