"""The batch flow against the emulator and the session's Prefect server: bad rows reported and
skipped, the rest delivered, the global limit respected at the service, re-runs skip, budgets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seedance_prefect.batch.budget import BudgetExceeded
from seedance_prefect.batch_flows import BatchFailed, batch_reference_to_video
from seedance_prefect.cli import main
from seedance_prefect.emulator import EmulatorConfig, run_emulator
from tests.kit import API_KEY, stats

pytestmark = pytest.mark.usefixtures("prefect_server")
LIMIT = 3
BAD = {  # line -> (name, expected problem)
    3: ("too-short", "Invalid duration"),
    8: ("typo", "Unknown parameter 'resoluton'"),
    14: ("", "Invalid JSON"),
    21: ("dup", "Duplicate name 'dup'"),
}


@pytest.fixture(scope="module")
def batch_emulator() -> Iterator[Any]:
    """An emulator that runs up to 16 generations at once, so only our limit can hold it at 3."""
    with run_emulator(EmulatorConfig(latency=0.6, max_running=16, keepalive=1.0)) as emu:
        yield emu


@pytest.fixture
def emu(batch_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    batch_emulator.reset()
    monkeypatch.setenv("OXEN_API_KEY", API_KEY)
    monkeypatch.setenv("OXEN_BASE_URL", batch_emulator.base_url)
    monkeypatch.setenv("SEEDANCE_STATE_DIR", str(tmp_path / "state"))
    return batch_emulator


def _row(i: int) -> dict[str, Any]:
    return {
        "name": f"clip-{i:02d}",
        "prompt": f"Scene {i}",
        "duration": "4",
        "resolution": "480p",
        "aspect_ratio": "16:9",
        "seed": i,
    }


def _manifest(tmp_path: Path) -> Path:
    lines = []
    for line in range(1, 25):  # 24 rows: 20 good, 4 bad
        row = _row(line)
        if line == 3:
            row.update(name="too-short", duration="3")
        elif line == 8:
            row = {**row, "name": "typo", "resoluton": "480p"}
        elif line == 14:
            lines.append('{"prompt": "unfinished"')
            continue
        elif line in (20, 21):
            row["name"] = "dup"
        lines.append(json.dumps(row))
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_batch_reports_bad_rows_delivers_the_rest_within_the_limit(emu, tmp_path):
    manifest, out = _manifest(tmp_path), tmp_path / "out"

    with pytest.raises(BatchFailed) as failed:
        batch_reference_to_video(str(manifest), output=str(out), concurrency=LIMIT, poll_interval=5.0)

    summary = failed.value.summary
    rows = {r["line"]: r for r in summary["rows"]}
    assert len(rows) == 24
    for line, (name, problem) in BAD.items():
        assert (
            rows[line]["status"] == "invalid"
            and rows[line]["name"] == name
            and problem in rows[line]["error"]
        )
    delivered = [r for r in rows.values() if r["status"] == "delivered"]
    assert len(delivered) == 20
    for r in delivered:
        video = Path(r["video"])
        assert video.name == f"{r['name']}.mp4" and video.stat().st_size > 1000
        assert json.loads(video.with_suffix(".json").read_text())["generation_id"] == r["generation"]
    st = stats(emu)
    assert st["generations_created"] == 20 and st["enqueue_calls"] == 20
    assert 2 <= st["max_in_flight"] <= LIMIT  # bounded at the service, and the work did overlap
    assert summary["totals"] == {
        **summary["totals"],
        "rows": 24,
        "delivered": 20,
        "invalid": 4,
        "generations": 20,
        "seconds": 80.0,
        "cost_usd": 32.0,
    }

    # the same manifest again: delivered rows are skipped, nothing is enqueued or paid again
    with pytest.raises(BatchFailed) as again:
        batch_reference_to_video(str(manifest), output=str(out), concurrency=LIMIT, poll_interval=5.0)
    totals = again.value.summary["totals"]
    assert (totals["skipped"], totals["delivered"], totals["invalid"]) == (20, 0, 4)
    assert stats(emu)["enqueue_calls"] == 20


def test_summary_table_artifact_and_limit_created(emu, tmp_path):
    from prefect import get_client

    from seedance_prefect.media.samples import make_image

    image = make_image(tmp_path / "ref.png", 640, 480, seed=3)
    rows = [_row(i) for i in range(3)] + [
        {**_row(3), "prompt": "@Image1 waves", "input_images": [str(image)]}
    ]
    state = batch_reference_to_video(
        rows,
        output=str(tmp_path / "o"),
        concurrency=2,
        poll_interval=5.0,
        limit_name="seedance-test-artifact",
        return_state=True,
    )
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()
        table = next(a for a in artifact if a.key == "seedance-batch-inline")
        data = json.loads(table.data) if isinstance(table.data, str) else table.data
        assert [r["status"] for r in data] == ["delivered"] * 4 and "4 delivered" in table.description
        assert client.read_global_concurrency_limit_by_name("seedance-test-artifact").limit == 2
    st = stats(emu)
    assert st["max_in_flight"] <= 2
    [with_ref] = [g for g in st["generations"].values() if g["params"]["prompt"] == "@Image1 waves"]
    assert with_ref["references"][0]["fetched"] and with_ref["references"][0]["probe"]["width"] == 640


def test_budget_refuses_to_start(emu, tmp_path):
    rows = [_row(i) for i in range(5)]  # 5 x 4 s x $0.40 = $8.00
    with pytest.raises(BudgetExceeded, match=r"\$8.00 is over the budget of \$5.00"):
        batch_reference_to_video(rows, output=str(tmp_path / "o"), budget_usd=5.0)
    assert stats(emu)["enqueue_calls"] == 0


def test_cli_batch_exit_codes_and_table(emu, tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "name,prompt,duration,resolution,aspect_ratio\na,A lake,4,480p,16:9\nb,A hill,4,480p,16:9\n"
    )
    assert main(["batch", str(manifest), "--out", str(tmp_path / "o"), "--concurrency", "2"]) == 0
    out = capsys.readouterr().out
    assert "Delivered 2 of 2 rows" in out and str(tmp_path / "o" / "a.mp4") in out

    manifest.write_text(manifest.read_text() + "c,A cliff,99,480p,16:9\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "o"), "--concurrency", "2"]) == 1
    captured = capsys.readouterr()
    assert "line 4 (c): duration: Invalid duration" in captured.err
    assert "Delivered 2 of 3 rows (0 delivered, 0 copied, 2 already there, 0 failed, 1 invalid)" in (
        captured.out
    )

    assert main(["batch", str(manifest), "--budget-usd", "0.5", "--run-key", "other"]) == 2
    assert "over the budget" in capsys.readouterr().err
    assert stats(emu)["enqueue_calls"] == 2


def test_a_row_with_a_local_reference_is_recorded_as_delivered_under_its_enqueued_key(emu, tmp_path):
    from seedance_prefect.generation.journal import Journal
    from seedance_prefect.media.samples import make_image

    make_image(tmp_path / "ref.png", 640, 480)
    manifest = tmp_path / "refs.jsonl"
    row = {**_row(1), "prompt": "@Image1 waves", "input_images": ["ref.png"]}
    manifest.write_text(json.dumps(row) + "\n")
    batch_reference_to_video(str(manifest), output=str(tmp_path / "out"), concurrency=LIMIT)
    journal = Journal(tmp_path / "state" / "journal")
    entries = [journal.load(p.stem) for p in (tmp_path / "state" / "journal").glob("*.json")]
    [entry] = [e for e in entries if e is not None and e.generation_ids]
    # the row has a local reference, so the key the generation was enqueued under (the prepared
    # request's fingerprint) differs from the row's; the delivery must be recorded there
    assert set(entry.deliveries) == set(entry.generation_ids)
    assert stats(emu)["enqueue_calls"] == 1
