"""Fixtures of the reference-preprocessing tests: media made lazily once per session, servers.

``media["rotated"]`` makes the file on first use (PyAV and Pillow, deterministic), so a targeted
run makes only what it needs. Most files are small; the acceptance cases (a 1080p 20 s clip, a
7000x4000 JPEG, a 20 s WAV) are real size, encoded with ``ultrafast`` once per session.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from seedance_prefect.media.samples import make_audio, make_image, make_video
from tests.kit import API_KEY  # the key the session-end secret scan looks for
from tests.mediakit import LazyMedia, write


def _noise(path: Path, width: int, height: int) -> Path:
    rng = random.Random(5)
    Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3)).save(path, "JPEG", quality=95)
    return path


def _recipes() -> dict[str, Callable[[Path], Path]]:
    def video(w: int, h: int, s: float, fps: int = 24, **kw: Any) -> Callable[[Path], Path]:
        ext = ".mov" if kw.get("container") == "mov" else ".mp4"
        ext = ".webm" if kw.get("container") == "webm" else ext
        return lambda p: make_video(p.with_suffix(ext), w, h, s, fps=fps, **kw)

    return {
        # images
        "jpeg_ok": lambda p: make_image(p.with_suffix(".jpg"), 1024, 768, seed=1),
        "png_ok": lambda p: make_image(p.with_suffix(".png"), 640, 480, format="PNG", seed=2),
        "exif6": lambda p: make_image(p.with_suffix(".jpg"), 800, 600, exif_orientation=6, seed=3),
        "huge_jpeg": lambda p: make_image(p.with_suffix(".jpg"), 7000, 4000, seed=4),
        "tiny": lambda p: make_image(p.with_suffix(".jpg"), 200, 320, seed=5),
        "wide": lambda p: make_image(p.with_suffix(".jpg"), 1600, 400, seed=6),
        "tall": lambda p: make_image(p.with_suffix(".png"), 300, 1000, format="PNG", seed=7),
        "gif": lambda p: make_image(p.with_suffix(".gif"), 400, 400, format="GIF", seed=8),
        "heic": lambda p: make_image(p.with_suffix(".heic"), 640, 480, format="HEIC", seed=9),
        "png_30mb_plus": lambda p: make_image(
            p.with_suffix(".png"), 640, 480, format="PNG", pad_to_bytes=30_000_001
        ),
        "noise": lambda p: _noise(p.with_suffix(".jpg"), 1000, 800),
        # videos
        "v_ok": video(854, 480, 3.0),
        "rotated": video(854, 480, 2.0, container="mov", rotation=90, audio=True),
        "vfr": video(854, 480, 3.0, variable_frame_rate=True),
        "v1080_20s": video(1920, 1080, 20.0, audio=True, distinct_frames=24),
        "small": video(480, 360, 2.0),
        "webm": video(640, 640, 2.0, codec="libvpx-vp9", container="webm"),
        "v_1s": video(854, 480, 1.0),
        "v10": video(854, 480, 10.0, fps=12, seed=3),
        "v8": video(854, 480, 8.0, fps=12, seed=4),
        "big_a": video(854, 480, 2.0, pad_to_bytes=25_050_000),
        "big_b": video(854, 480, 2.0, seed=2, pad_to_bytes=25_050_000),
        # audio
        "wav20": lambda p: make_audio(p.with_suffix(".wav"), 20.0),
        "wav10": lambda p: make_audio(p.with_suffix(".wav"), 10.0, sample_rate=22050, channels=1),
        "wav8": lambda p: make_audio(p.with_suffix(".wav"), 8.0, sample_rate=22050, channels=1, seed=2),
        "mp3_ok": lambda p: make_audio(p.with_suffix(".mp3"), 3.0, format="mp3"),
        "mp3_20s": lambda p: make_audio(p.with_suffix(".mp3"), 20.0, format="mp3", channels=1),
        "flac": lambda p: make_audio(p.with_suffix(".flac"), 2.0, format="flac"),
        "wav96k": lambda p: make_audio(p.with_suffix(".wav"), 3.0, sample_rate=96000),
        "talking_clip": video(640, 480, 3.0, audio=True),
        # not media
        "text": lambda p: write(p.with_suffix(".mp4"), b"a shopping list, not a video\n" * 20),
    }


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> LazyMedia:
    """Name -> path of generated media; ``"truncated"`` is the first half of ``"v_ok"``."""
    made = LazyMedia(tmp_path_factory.mktemp("reference-media"), _recipes(), requires={"heic": "pillow_heif"})
    made.recipes["truncated"] = lambda p: write(p.with_suffix(".mp4"), _first_half(made["v_ok"]))
    return made


def _first_half(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared-reference cache shared by the tests that only look at outputs (encode once)."""
    return tmp_path_factory.mktemp("prepared-cache")


def request_for(**fields: list[str]) -> dict[str, Any]:
    """A request whose prompt refers to every attachment."""
    words = {"input_images": "Image", "input_videos": "Video", "input_audios": "Audio"}
    tags = [f"@{words[name]}{i + 1}" for name, items in fields.items() for i in range(len(items))]
    return {"prompt": "Use " + " ".join(tags), **fields}


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[Any]:
    from seedance_prefect.emulator import EmulatorConfig, run_emulator

    with run_emulator(EmulatorConfig(latency=0.2, max_running=8, keepalive=1.0)) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_session: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The session emulator, reset, with OXEN_* pointing at it."""
    emulator_session.reset()
    monkeypatch.setenv("OXEN_API_KEY", API_KEY)
    monkeypatch.setenv("OXEN_BASE_URL", emulator_session.base_url)
    for name in ("SEEDANCE_HOSTING", "SEEDANCE_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)
    return emulator_session


def emulator_stats(emu: Any) -> dict[str, Any]:
    return httpx.get(f"{emu.url}/_emulator/stats").json()


@pytest.fixture
def s3_bucket(moto_endpoint: str, request: pytest.FixtureRequest) -> Any:
    """A fresh bucket on the moto server, as a prefect-aws ``S3Bucket`` block (not saved)."""
    pytest.importorskip("prefect_aws")
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    credentials = AwsCredentials(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=moto_endpoint),
    )
    name = "refs-" + request.node.name.lower().replace("_", "-")[:40].strip("-[]")
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    credentials.get_s3_client().create_bucket(Bucket=name)
    return S3Bucket(bucket_name=name, credentials=credentials)
