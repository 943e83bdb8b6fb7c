"""The async queue: enqueue, rows, list filters, get, cancel, the running cap and reference inspection."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from seedance_prefect.emulator import RunningEmulator
from tests.emulator.emulatorkit import (
    MODEL,
    assert_row,
    assert_structured_error,
    inspect_mp4,
    make_client,
    mp4_bytes,
    png_bytes,
    request_body,
    wait_terminal,
    wait_until,
    wav_bytes,
)

NOT_FOUND = {
    "error": {"type": "resource_not_found", "title": "The requested resource could not be found"},
    "status": "error",
    "status_message": "resource_not_found",
}


def _enqueue(client: httpx.Client, **overrides: object) -> list[str]:
    response = client.post("/ai/queue", json=request_body(**overrides))
    assert response.status_code == 200, response.text
    return [g["generation_id"] for g in response.json()["generations"]]


def test_enqueue_answer_rows_and_result(emu: RunningEmulator, client: httpx.Client) -> None:
    response = client.post("/ai/queue", json=request_body(num_generations=2, seed=5, aspect_ratio="16:9"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"generations"} and len(body["generations"]) == 2
    for item in body["generations"]:
        assert set(item) == {"generation_id", "status"} and item["status"] == "queued"
        uuid.UUID(item["generation_id"])

    rows = [wait_terminal(client, item["generation_id"]) for item in body["generations"]]
    for row in rows:
        assert_row(row)
        assert row["status"] == "succeeded"
        assert row["enqueued_at"] <= row["started_at"] <= row["completed_at"]
        # every other enqueue parameter is echoed at top level, as sent
        assert (row["prompt"], row["seed"], row["duration"], row["resolution"], row["aspect_ratio"]) == (
            "a red fox in the snow",
            5,
            "4",
            "480p",
            "16:9",
        )
        assert "num_generations" not in row and "model" not in row
        assert row["result_url"].startswith("http://localhost:")

    # rows persist after terminal states; the default list shows active rows only
    assert client.get("/ai/queue").json() == {"count": 0, "generations": []}
    listed = client.get("/ai/queue", params={"status": "succeeded"}).json()
    assert listed["count"] == 2 == len(listed["generations"])
    for row in listed["generations"]:
        assert_row(row)

    with httpx.Client(trust_env=False, timeout=30) as anon:
        data = anon.get(rows[0]["result_url"]).content
    info = inspect_mp4(data)
    assert (info["width"], info["height"], info["frames"]) == (854, 480, 96)

    stats = emu.stats()
    assert stats["enqueue_calls"] == 1 and stats["generations_created"] == 2
    record = stats["generations"][rows[0]["generation_id"]]
    assert [h["status"] for h in record["history"]] == ["queued", "processing", "succeeded"]
    assert record["result"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["params"]["seed"] == 5
    assert stats["requests_by_route"]["POST /api/ai/queue"] == 1
    assert stats["requests_by_route"]["GET /api/ai/queue/{generation_id}"] >= 2


@pytest.mark.parametrize("value", [0, 5, -1, "2", 2.5, True])
def test_num_generations_out_of_range(emu: RunningEmulator, client: httpx.Client, value: object) -> None:
    response = client.post("/ai/queue", json=request_body(num_generations=value))
    assert_structured_error(
        response, 400, "invalid_params", "num_generations must be an integer between 1 and 4"
    )
    assert emu.stats()["generations_created"] == 0


def test_enqueue_unknown_model(client: httpx.Client) -> None:
    response = client.post("/ai/queue", json=request_body(model="bad-model-name"))
    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Model not found: bad-model-name"}}


def test_invalid_params_are_not_checked_at_enqueue_but_fail_the_generation(client: httpx.Client) -> None:
    (gid,) = _enqueue(client, duration="3")
    row = wait_terminal(client, gid)
    assert_row(row)
    assert row["status"] == "failed" and row["error_message"] == "Invalid duration"
    assert row["result_url"] is None and row["completed_at"] is not None


def test_get_and_delete_unknown_id_are_404(client: httpx.Client) -> None:
    unknown = str(uuid.uuid4())
    for response in (client.get(f"/ai/queue/{unknown}"), client.delete(f"/ai/queue/{unknown}")):
        assert response.status_code == 404
        assert response.json() == NOT_FOUND


def test_list_filters_cancel_and_running_cap(start_emulator: Callable[..., RunningEmulator]) -> None:
    emu = start_emulator(latency=30.0, max_running=1, api_key=None)
    with make_client(emu, token="any-token") as client:
        ids = _enqueue(client, num_generations=3)
        wait_until(lambda: client.get(f"/ai/queue/{ids[0]}").json()["status"] == "processing")

        everything = client.get("/ai/queue").json()
        assert everything["count"] == 3 and [r["generation_id"] for r in everything["generations"]] == ids
        assert client.get("/ai/queue", params={"status": "processing"}).json()["count"] == 1
        queued = client.get("/ai/queue", params={"status": "queued"}).json()
        assert [r["generation_id"] for r in queued["generations"]] == ids[1:]
        assert all(r["started_at"] is None for r in queued["generations"])
        for params in ({"model": "other"}, {"media_type": "image"}, {"namespace": "someone-else"}):
            assert client.get("/ai/queue", params=params).json()["count"] == 0
        assert client.get("/ai/queue", params={"model": MODEL, "media_type": "video"}).json()["count"] == 3
        assert_structured_error(client.get("/ai/queue", params={"status": "done"}), 400, "invalid_params")

        # cancel a queued one, then the processing one; the last queued one then starts
        for gid in (ids[1], ids[0]):
            response = client.delete(f"/ai/queue/{gid}")
            assert response.status_code == 200
            assert response.json() == {"status": "success", "generation_id": gid}
            row = client.get(f"/ai/queue/{gid}").json()
            assert row["status"] == "cancelled" and isinstance(row["completed_at"], int)
        wait_until(lambda: client.get(f"/ai/queue/{ids[2]}").json()["status"] == "processing")
        assert client.delete(f"/ai/queue/{ids[2]}").status_code == 200

        # cancelling a terminal generation: 200, no change
        again = client.delete(f"/ai/queue/{ids[0]}")
        assert again.status_code == 200 and client.get(f"/ai/queue/{ids[0]}").json()["status"] == "cancelled"
        stats = emu.stats()
        assert stats["deletes"] == 4 and stats["statuses"]["cancelled"] == 3
        assert stats["max_in_flight"] == 1 and stats["in_flight"] == 0


def test_max_running_caps_concurrent_processing(start_emulator: Callable[..., RunningEmulator]) -> None:
    emu = start_emulator(latency=0.3, max_running=2, api_key=None)
    with make_client(emu, token="t") as client:
        ids = _enqueue(client, num_generations=4, generate_audio=False)
        rows = [wait_terminal(client, gid) for gid in ids]
    assert all(r["status"] == "succeeded" for r in rows)
    stats = emu.stats()
    assert stats["max_in_flight"] == 2
    history = {gid: {h["status"]: h["at"] for h in stats["generations"][gid]["history"]} for gid in ids}
    first_done = min(h["succeeded"] for h in history.values())
    late_starts = [h["processing"] for h in history.values() if h["processing"] >= first_done - 1e-3]
    assert len(late_starts) == 2  # two waited in "queued" for a slot


def test_first_status_processing_like_older_docs(start_emulator: Callable[..., RunningEmulator]) -> None:
    emu = start_emulator(latency=0.3, max_running=1, first_status="processing", api_key=None)
    with make_client(emu, token="t") as client:
        response = client.post("/ai/queue", json=request_body(num_generations=2))
        assert [g["status"] for g in response.json()["generations"]] == ["processing", "processing"]
        second = response.json()["generations"][1]["generation_id"]
        assert client.get(f"/ai/queue/{second}").json()["status"] == "processing"  # still waiting for a slot
        assert wait_terminal(client, second)["status"] == "succeeded"


def test_references_are_fetched_probed_and_recorded(emu: RunningEmulator, client: httpx.Client) -> None:
    png, clip, wav = png_bytes(), mp4_bytes(2), wav_bytes(2.0)
    uploads = {}
    for name, data, ctype in (("ref.png", png, "image/png"), ("clip.mp4", clip, "video/mp4")):
        response = client.put(
            f"/repos/emulator/assets/file/main/refs/{name}", files={"file": (name, data, ctype)}
        )
        assert response.status_code == 200, response.text
        uploads[name] = f"{emu.url}/api/repos/emulator/assets/file/main/refs/{name}"
    video_via_localhost = uploads["clip.mp4"].replace("127.0.0.1", "localhost")
    body = request_body(
        input_images=[uploads["ref.png"], "https://example.com/remote.png"],
        input_videos=[video_via_localhost],
        input_audios=["data:audio/wav;base64," + base64.b64encode(wav).decode()],
        prompt="@Image1 and @Image2 dance to @Audio1 like @Video1",
    )
    (gid,) = _enqueue(client, **body)
    assert wait_terminal(client, gid)["status"] == "succeeded"

    refs = emu.stats()["generations"][gid]["references"]
    assert [(r["field"], r["index"], r["scheme"]) for r in refs] == [
        ("input_images", 0, "http"),
        ("input_images", 1, "https"),
        ("input_videos", 0, "http"),
        ("input_audios", 0, "data"),
    ]
    image, remote, video, audio = refs
    assert (
        image["fetched"] and image["bytes"] == len(png) and image["sha256"] == hashlib.sha256(png).hexdigest()
    )
    assert image["probe"] == {"format": "PNG", "width": 640, "height": 480}
    assert not remote["fetched"] and remote["bytes"] is None and "not fetched" in remote["note"]
    assert video["sha256"] == hashlib.sha256(clip).hexdigest()
    assert video["probe"]["video"]["codec"] == "h264"
    assert (video["probe"]["video"]["width"], video["probe"]["video"]["height"]) == (640, 640)
    assert abs(video["probe"]["video"]["duration"] - 2.0) < 0.05
    assert audio["bytes"] == len(wav) and audio["probe"]["format"] == "wav"
    assert abs(audio["probe"]["audio"]["duration"] - 2.0) < 0.05


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "{root}/api/repos/emulator/assets/file/main/missing.png",
            "Failed to download input_images[0]: HTTP 404",
        ),
        ("data:image/png;base64,aGVsbG8=", "Could not decode input_images[0]"),
        ("ftp://127.0.0.1/x.png", "Failed to download input_images[0]: unsupported URL scheme 'ftp'"),
    ],
)
def test_bad_reference_fails_the_generation_naming_it(
    emu: RunningEmulator, client: httpx.Client, uri: str, expected: str
) -> None:
    (gid,) = _enqueue(client, input_images=[uri.format(root=emu.url)])
    row = wait_terminal(client, gid)
    assert row["status"] == "failed" and row["error_message"].startswith(expected)


def test_reference_video_too_short_fails(emu: RunningEmulator, client: httpx.Client) -> None:
    clip = mp4_bytes(1)
    data_uri = "data:video/mp4;base64," + base64.b64encode(clip).decode()
    (gid,) = _enqueue(client, input_videos=[data_uri])
    row = wait_terminal(client, gid)
    assert row["status"] == "failed" and "2-15 s" in row["error_message"]


def test_queue_delay_keeps_generations_queued_first(start_emulator: Callable[..., RunningEmulator]) -> None:
    emu = start_emulator(latency=0.1, queue_delay=0.3, api_key=None)
    with make_client(emu, token="t") as client:
        (gid,) = _enqueue(client)
        assert client.get(f"/ai/queue/{gid}").json()["status"] == "queued"
        assert wait_terminal(client, gid)["status"] == "succeeded"
        with httpx.Client(base_url=emu.url, trust_env=False) as admin:
            assert admin.get("/_emulator/health").json() == {"status": "ok"}
            history = {
                h["status"]: h["at"]
                for h in admin.get("/_emulator/stats").json()["generations"][gid]["history"]
            }
    assert history["processing"] - history["queued"] >= 0.3
    assert history["succeeded"] - history["processing"] >= 0.1


def test_hold_keeps_finished_work_processing_until_released(
    emu: RunningEmulator, client: httpx.Client
) -> None:
    bad = httpx.post(f"{emu.url}/_emulator/hold", json={"hold": "yes"})
    assert bad.status_code == 400 and "hold" in bad.json()["error"]["title"] + bad.text
    assert httpx.post(f"{emu.url}/_emulator/hold", json={"hold": True}).json() == {"held": True}
    kept, cancelled = _enqueue(client, num_generations=2, generate_audio=False)
    latency = 0.2

    def latency_long_past() -> bool | None:
        row = client.get(f"/ai/queue/{kept}").json()
        assert row["status"] in ("queued", "processing"), row  # never finishes while held
        history = emu.stats()["generations"][kept]["history"]
        began = next((h["at"] for h in history if h["status"] == "processing"), None)
        return True if began is not None and time.time() > began + latency * 4 else None

    wait_until(latency_long_past)
    assert emu.stats()["held"] is True
    assert client.delete(f"/ai/queue/{cancelled}").status_code == 200  # a cancel still ends it
    assert wait_terminal(client, cancelled)["status"] == "cancelled"
    emu.hold(False)
    assert wait_terminal(client, kept)["status"] == "succeeded"
    assert emu.stats()["held"] is False
