"""SeedanceRequest validation and tolerant parsing of every documented answer shape."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from seedance_prefect.limits import MODEL_ID
from seedance_prefect.models import CompletionEvent, Generation, SeedanceRequest, VideoResult


class TestRequest:
    def test_defaults_are_the_seed_documents(self):
        body = SeedanceRequest(prompt="x").to_body("sync")
        assert body == {
            "model": MODEL_ID,
            "prompt": "x",
            "resolution": "720p",
            "duration": "auto",
            "generate_audio": True,
            "aspect_ratio": "auto",
            "response_format": "url",
        }

    def test_queue_body_carries_num_generations_not_response_format(self):
        body = SeedanceRequest(prompt="x", num_generations=4, response_format="b64_json").to_body("queue")
        assert body["num_generations"] == 4 and "response_format" not in body

    def test_sync_refuses_several_generations(self):
        with pytest.raises(ValueError, match="synchronous"):
            SeedanceRequest(prompt="x", num_generations=2).to_body("sync")

    @pytest.mark.parametrize(("given", "sent"), [(4, "4"), ("15", "15"), (-1, "auto"), ("auto", "auto")])
    def test_duration_wire_format(self, given, sent):
        assert SeedanceRequest(prompt="x", duration=given).duration == sent

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("duration", "3", "Invalid duration"),
            ("duration", 16, "Invalid duration"),
            ("resolution", "1080p", "Invalid resolution"),
            ("num_generations", 0, "num_generations must be an integer between 1 and 4"),
            ("num_generations", 5, "num_generations must be an integer between 1 and 4"),
            ("prompt", "   ", "Field required"),
            ("aspect_ratio", "2:1", "Invalid aspect_ratio"),
            ("response_format", "mp4", "Invalid response_format"),
            ("model", "other-model", "Model not supported"),
            ("seed", True, "seed must be an integer"),
        ],
    )
    def test_bad_values_carry_the_api_message(self, field, value, message):
        data = {"prompt": "x", field: value}
        with pytest.raises(ValidationError, match=message):
            SeedanceRequest.model_validate(data)

    def test_edges_accepted(self):
        SeedanceRequest(prompt="x", duration="4", num_generations=1)
        SeedanceRequest(prompt="x", duration="15", num_generations=4, aspect_ratio="adaptive")

    def test_unknown_key_did_you_mean(self):
        with pytest.raises(ValidationError, match="did you mean 'resolution'"):
            SeedanceRequest.model_validate({"prompt": "x", "resolutoin": "480p"})

    def test_extra_params_pass_through_but_cannot_shadow(self):
        assert SeedanceRequest(prompt="x", extra_params={"watermark": False}).to_body()["watermark"] is False
        with pytest.raises(ValidationError, match="extra_params may not repeat"):
            SeedanceRequest(prompt="x", extra_params={"duration": "5"})

    def test_file_count_rules(self):
        SeedanceRequest(
            prompt="x", input_images=["https://a/x.png"] * 9, input_videos=["https://a/v.mp4"] * 3
        )
        with pytest.raises(ValidationError, match="Too many input files"):
            SeedanceRequest(
                prompt="x",
                input_images=["https://a/x.png"] * 9,
                input_videos=["https://a/v.mp4"] * 3,
                input_audios=["https://a/a.wav"],
            )
        with pytest.raises(ValidationError, match="Audio requires at least one image or video"):
            SeedanceRequest(prompt="x", input_audios=["https://a/a.wav"])

    def test_fingerprint_is_stable_and_keyed(self):
        a = SeedanceRequest(prompt="x", duration=8, seed=1)
        assert a.fingerprint() == SeedanceRequest(seed=1, duration="8", prompt="x").fingerprint()
        assert a.fingerprint() != SeedanceRequest(prompt="x", duration=8, seed=2).fingerprint()
        assert a.fingerprint("k") != a.fingerprint()


class TestAnswers:
    def test_video_result_url_and_b64(self):
        url = VideoResult.model_validate(
            {
                "created": 1775090723,
                "model": MODEL_ID,
                "videos": [{"url": "https://hub.oxen.ai/api/repos/a/v.mp4?x"}],
            }
        )
        assert url.videos[0].url.endswith("?x") and url.created == 1775090723
        b64 = VideoResult.model_validate({"model": MODEL_ID, "created": 1, "videos": [{"b64_json": "AAAA"}]})
        assert b64.videos[0].b64_json == "AAAA" and "AAAA" not in repr(b64)

    def test_generation_row_current_profile(self):
        row = Generation.model_validate(
            {
                "generation_id": "7c1",
                "model_name": MODEL_ID,
                "prompt": "p",
                "media_type": "video",
                "status": "succeeded",
                "result_url": "https://hub.oxen.ai/api/repos/r.mp4",
                "error_message": None,
                "enqueued_at": 1775091431,
                "started_at": 1775091432,
                "completed_at": 1775091500,
                "aspect_ratio": "16:9",
                "duration": "8",
                "seed": 4,
            }
        )
        assert (
            row.state == "succeeded"
            and row.is_terminal
            and row.extra_fields == {"aspect_ratio": "16:9", "seed": 4}
        )

    def test_generation_row_older_profile(self):
        row = Generation.model_validate(
            {
                "generation_id": "g",
                "model": MODEL_ID,
                "status": "processing",
                "duration": 10,
                "enqueued_at": "2026-04-02T00:00:00Z",
            }
        )
        assert row.model_name == MODEL_ID and row.duration == "10" and row.is_active
        assert row.enqueued_at == pytest.approx(1775088000.0)

    @pytest.mark.parametrize("status", ["expired", "weird", "timed_out"])
    def test_unknown_statuses_are_terminal_unknown(self, status):
        row = Generation(generation_id="g", status=status)
        assert row.is_terminal and row.state == "unknown"

    def test_completion_events(self):
        ok = CompletionEvent.model_validate(
            {
                "generation_id": "g",
                "status": "succeeded",
                "media_type": "video",
                "model": MODEL_ID,
                "url": "https://x/v.mp4",
            }
        )
        assert ok.to_generation().result_url == "https://x/v.mp4"
        bad = CompletionEvent.model_validate(
            {"generation_id": "g", "status": "failed", "media_type": "video", "error": "Insufficient credits"}
        )
        assert bad.to_generation().error_message == "Insufficient credits"
        assert bad.to_generation().state == "failed"
