"""Models, auth, repository uploads, result signatures, unknown extra fields and wire profile B."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import pytest

from seedance_prefect.emulator import RunningEmulator
from tests.emulator.emulatorkit import (
    API_KEY,
    MODEL,
    assert_structured_error,
    inspect_mp4,
    make_client,
    png_bytes,
    request_body,
    wait_terminal,
)

MODEL_KEYS = {
    "id",
    "object",
    "created",
    "owned_by",
    "display_name",
    "description",
    "summary",
    "model_type",
    "endpoint",
    "capabilities",
    "pricing",
    "fine_tuning",
    "deployments",
    "developer",
    "source_model",
    "image_url",
    "released_at",
    "request_schema",
}


def test_get_model(client: httpx.Client) -> None:
    response = client.get(f"/ai/models/{MODEL}")
    assert response.status_code == 200
    model = response.json()
    assert set(model) == MODEL_KEYS
    assert (model["id"], model["object"], model["endpoint"]) == (MODEL, "model", "/videos/generate")
    assert isinstance(model["created"], int)
    assert model["capabilities"] == {"input": ["text", "image", "video", "audio"], "output": ["video"]}
    assert model["pricing"]["method"] == "per_video_output_second"
    assert model["pricing"]["cost_per_second"] == 0.4
    schema = model["request_schema"]
    assert schema["required"] == ["prompt"]
    assert schema["properties"]["duration"]["enum"][:2] == ["auto", "4"]
    assert schema["properties"]["aspect_ratio"]["default"] == "auto"


def test_list_and_search_models(client: httpx.Client) -> None:
    listing = client.get("/ai/models").json()
    assert listing["object"] == "list" and [m["id"] for m in listing["data"]] == [MODEL]
    assert client.get("/ai/models", params={"developer_name": "nobody"}).json()["data"] == []
    assert [
        m["id"] for m in client.get("/ai/models/search", params={"search": "seedance"}).json()["data"]
    ] == [MODEL]


def test_unknown_model_is_a_simple_404(client: httpx.Client) -> None:
    response = client.get("/ai/models/bad-model-name")
    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Model not found: bad-model-name"}}


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer wrong-secret-token"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/ai/queue"), ("POST", "/ai/queue"), ("DELETE", "/ai/queue/x"), ("GET", f"/ai/models/{MODEL}")],
)
def test_bad_or_missing_bearer_is_401(
    emu: RunningEmulator, header: str | None, method: str, path: str
) -> None:
    headers = {} if header is None else {"Authorization": header}
    with httpx.Client(base_url=emu.base_url, trust_env=False, timeout=10) as anon:
        response = anon.request(
            method, path, headers=headers, json=request_body() if method == "POST" else None
        )
    assert_structured_error(response, 401, "unauthenticated")
    assert "wrong-secret-token" not in response.text
    assert emu.stats()["generations_created"] == 0


def test_any_token_is_accepted_without_api_key(start_emulator: Callable[..., RunningEmulator]) -> None:
    emu = start_emulator(api_key=None)
    with make_client(emu, token="whatever") as client:
        assert client.get("/ai/queue").status_code == 200
    with make_client(emu, token=None) as client:
        assert client.get("/ai/queue").status_code == 401


def test_upload_then_download_without_auth(emu: RunningEmulator, client: httpx.Client) -> None:
    png = png_bytes(32, 16)
    path = "/repos/alice/assets/file/main/images/cat.png"
    response = client.put(path, files={"file": ("cat.png", png, "image/png")}, data={"message": "add cat"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success" and isinstance(body["status_message"], str)
    commit = body["commit"]
    assert isinstance(commit["id"], str) and commit["id"] and commit["message"] == "add cat"
    assert {"author", "email", "parent_ids", "timestamp"} <= set(commit)

    with httpx.Client(base_url=emu.base_url, trust_env=False) as anon:
        download = anon.get(path)
        assert download.status_code == 200 and download.content == png
        assert download.headers["content-type"] == "image/png"
        assert anon.put(path, files={"file": ("cat.png", png)}).status_code == 401  # uploads need auth
        assert_structured_error(anon.get("/repos/alice/assets/file/main/nope.png"), 404, "resource_not_found")
    second = client.put(path, files={"file": ("cat.png", png, "image/png")}).json()["commit"]
    assert second["parent_ids"] == [commit["id"]]
    assert_structured_error(client.put(path, content=b"raw bytes"), 400, "invalid_params")
    assert emu.stats()["uploads"] == 1


def test_result_urls_need_their_signature(client: httpx.Client) -> None:
    url = client.post("/ai/videos/generate", json=request_body()).json()["videos"][0]["url"]
    bare = url.split("?")[0]
    with httpx.Client(trust_env=False) as anon:
        assert_structured_error(anon.get(bare), 403, "forbidden")
        assert_structured_error(anon.get(bare + "?sig=0000"), 403, "forbidden")
        assert_structured_error(anon.get(bare.replace("video.mp4", "other.mp4")), 404, "resource_not_found")
        assert anon.get(url).status_code == 200


def test_unknown_routes_answer_json(client: httpx.Client) -> None:
    assert_structured_error(client.get("/ai/nothing-here"), 404, "resource_not_found")
    assert client.patch("/ai/queue").status_code == 405


def test_extra_fields_are_added_everywhere(start_emulator: Callable[..., RunningEmulator]) -> None:
    emu = start_emulator(extra_fields=True, api_key=API_KEY)
    with make_client(emu) as client:
        enqueued = client.post("/ai/queue", json=request_body()).json()
        assert "x_emulator" in enqueued and all("x_emulator" in g for g in enqueued["generations"])
        row = wait_terminal(client, enqueued["generations"][0]["generation_id"])
        assert "x_emulator" in row and row["status"] == "succeeded"
        listing = client.get("/ai/queue", params={"status": "succeeded"}).json()
        assert "x_emulator" in listing and "x_emulator" in listing["generations"][0]
        model = client.get(f"/ai/models/{MODEL}").json()
        assert "x_emulator" in model and "x_emulator" in model["pricing"]
        assert "x_emulator" not in model["request_schema"]["properties"]
        error = client.get("/ai/queue/unknown").json()
        assert "x_emulator" in error and "x_emulator" in error["error"]
        sync = client.post("/ai/videos/generate", json=request_body()).json()
        assert "x_emulator" in sync and "x_emulator" in sync["videos"][0]


def test_profile_b_echo_schema_and_limits(start_emulator: Callable[..., RunningEmulator]) -> None:
    emu = start_emulator(profile="B", api_key=None)
    with make_client(emu, token="t") as client:
        schema = client.get(f"/ai/models/{MODEL}").json()["request_schema"]["properties"]
        assert schema["duration"]["type"] == "integer" and schema["duration"]["default"] == -1
        assert (
            schema["aspect_ratio"]["default"] == "adaptive" and schema["generate_audio"]["default"] is False
        )

        body = request_body(duration="auto", aspect_ratio="auto", num_generations=1)
        gid = client.post("/ai/queue", json=body).json()["generations"][0]["generation_id"]
        row = wait_terminal(client, gid)
        assert (row["duration"], row["aspect_ratio"]) == (-1, "adaptive")
        with httpx.Client(trust_env=False) as anon:
            info = inspect_mp4(anon.get(row["result_url"]).content)
        assert info["audio"] is None  # generate_audio defaults to false in profile B
        assert abs(info["duration"] - 5.0) <= 1 / 24  # auto_duration

        gid = client.post("/ai/queue", json=request_body(duration=4)).json()["generations"][0][
            "generation_id"
        ]
        assert wait_terminal(client, gid)["duration"] == 4

        urls = [f"https://example.com/{i}" for i in range(16)]
        # 8 images + 1 face image (faces count within their type) + 3 videos + 1 audio = 13 references
        thirteen = request_body(
            input_images=urls[:8],
            input_face_images=urls[8:9],
            input_videos=urls[9:12],
            input_audios=urls[12:13],
        )
        thirteen.update(response_format="b64_json")
        ok = client.post("/ai/videos/generate", json=thirteen)
        assert ok.status_code == 200, ok.text  # 13 references are fine with the 15-file limit of profile B
        assert base64.b64decode(ok.json()["videos"][0]["b64_json"])[4:8] == b"ftyp"
        too_many = request_body(input_images=urls[:9], input_videos=urls[9:12], input_audios=urls[12:16])
        assert_structured_error(client.post("/ai/videos/generate", json=too_many), 400, "invalid_params")
        assert (
            client.post("/ai/videos/generate", json=too_many).json()["error"]["detail"]
            == "Too many input files"
        )
