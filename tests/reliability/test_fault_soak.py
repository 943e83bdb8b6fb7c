"""Fault soak: 100 generations through the batch flow while the emulator misbehaves on purpose.

Faults (per eligible request, seeded): 20% 5xx, 10% 429 + Retry-After, 5% connection resets,
5% enqueue answers lost after the generations were created, 5% failed generations, 5% truncated
result downloads. The promises checked: every row ends delivered or failed with its reason; no
row has more than one generation that did not fail (nothing paid twice); every delivered file
decodes fully and is byte-identical to what the service rendered.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seedance_prefect.batch_flows import BatchFailed, batch_reference_to_video
from seedance_prefect.emulator import EmulatorConfig, run_emulator
from seedance_prefect.media.probe import decode_check
from tests.kit import API_KEY

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]
ROWS = 100
FAULTS = "5xx=0.2,429=0.1,reset=0.05,drop_enqueue=0.05,fail=0.05,truncate=0.05"


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    config = EmulatorConfig(latency=0.3, max_running=32, keepalive=1.0, faults=FAULTS, seed=7)
    with run_emulator(config) as emu:
        monkeypatch.setenv("OXEN_API_KEY", API_KEY)
        monkeypatch.setenv("OXEN_BASE_URL", emu.base_url)
        monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "state"))
        yield emu


def test_fault_soak(faulty, tmp_path):
    rows = [
        {
            "name": f"soak-{i:03d}",
            "prompt": f"Soak scene {i}",
            "duration": "4",
            "resolution": "480p",
            "generate_audio": i % 2 == 0,
            "seed": i,
        }
        for i in range(ROWS)
    ]
    out = tmp_path / "out"
    try:
        summary = batch_reference_to_video(rows, output=str(out), concurrency=10, poll_interval=2.0)
    except BatchFailed as exc:
        summary = exc.summary
    by_name = {r["name"]: r for r in summary["rows"]}
    assert len(by_name) == ROWS

    stats = faulty.stats()
    injected = stats["faults"]
    for kind in ("5xx", "429", "reset", "drop_enqueue", "fail", "truncate"):
        assert injected[kind] > 0, f"no {kind} fault was injected: the soak proves nothing about it"

    # every row ends delivered or failed with its reason
    statuses = Counter(r["status"] for r in summary["rows"])
    assert set(statuses) <= {"delivered", "failed"}, statuses
    for row in summary["rows"]:
        if row["status"] == "failed":
            assert row["error"], row
    assert statuses["delivered"] >= ROWS * 0.8, statuses

    # nothing paid twice: per row, at most one generation that did not fail
    alive = Counter(
        g["params"]["prompt"]
        for g in stats["generations"].values()
        if g["status"] not in ("failed", "cancelled")
    )
    assert max(alive.values()) == 1, [p for p, n in alive.items() if n > 1]

    # every delivered file decodes fully and is what the service rendered
    for row in summary["rows"]:
        if row["status"] != "delivered":
            continue
        video = Path(row["video"])
        rendered = stats["generations"][row["generation"]]["result"]["sha256"]
        assert hashlib.sha256(video.read_bytes()).hexdigest() == rendered, row
        assert decode_check(video) is None, row
