"""A re-run to another target: the videos end up there, and nothing is generated again.

Issue 12 part C: "delivered" means delivered to *this* target. Against the emulator over HTTP and
the session's Prefect server, for the batch flow, the CLI's summary and the single-request flow:

- delivered earlier to another folder and still there: copied (no POST, no download);
- the earlier folder is gone, the service still serves the result: downloaded again (no POST);
- both gone (the emulator forgot every generation: ``/_emulator/reset``): the row fails naming
  ``--new``, still without a POST;
- the same target again: already there (status ``skipped``), nothing written;
- the to-do (:func:`~seedance_prefect.batch.todo.select_rows`) tells these rows apart before the run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from seedance_prefect.batch.manifest import plan_batch
from seedance_prefect.batch.todo import select_rows
from seedance_prefect.batch_flows import BatchFailed, batch_reference_to_video
from seedance_prefect.cli import main
from seedance_prefect.delivery.targets import LocalFolderTarget
from seedance_prefect.errors import DownloadError
from seedance_prefect.flows import reference_to_video
from seedance_prefect.generation.journal import Journal, JournalEntry
from tests.kit import stats

pytestmark = pytest.mark.usefixtures("prefect_server")
LIMIT_NAME = "seedance-test-retarget"


def _row(i: int) -> dict[str, Any]:
    return {
        "name": f"clip-{i}",
        "prompt": f"Retarget scene {i}",
        "duration": "4",
        "resolution": "480p",
        "seed": i,
    }


def _batch(rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    return batch_reference_to_video(
        rows, output=str(out), concurrency=3, poll_interval=2.0, limit_name=LIMIT_NAME, timeout_seconds=120
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _statuses(summary: dict[str, Any]) -> list[str]:
    return [r["status"] for r in summary["rows"]]


# ---------------------------------------------------------------------------------- the to-do


def test_select_rows_tells_already_there_from_delivered_elsewhere(tmp_path):
    plan = plan_batch([_row(0), _row(1), _row(2)], probe=False)
    journal = Journal(tmp_path / "journal")
    a = LocalFolderTarget(tmp_path / "a")
    for row in plan.rows[:2]:  # rows 0 and 1 delivered to a; row 2 never generated
        entry = JournalEntry(fingerprint=row.fingerprint)
        entry.begin_attempt().record([f"gen-{row.name}"])
        journal.save(entry)
        video = tmp_path / "work" / f"{row.name}.mp4"
        video.parent.mkdir(exist_ok=True)
        video.write_bytes(row.name.encode() * 100)
        journal.record_deliveries(
            row.fingerprint, [a.deliver(video, row.name, {}, generation_id=f"gen-{row.name}")]
        )
    (tmp_path / "a" / "clip-1.mp4").unlink()  # gone from a since

    here = select_rows(plan.rows, journal, target=a, budget_usd=2.0)  # only row 2 is paid: $1.60
    elsewhere = select_rows(plan.rows, journal, target=LocalFolderTarget(tmp_path / "b"))
    unknown = select_rows(plan.rows, journal)

    assert [r.name for r, _ in here.already_there] == ["clip-0"]
    assert [r.name for r, _ in here.to_redeliver] == ["clip-1"]
    assert [r.name for r in here.to_run] == ["clip-2"] and here.cost_usd == 1.6
    [(_, [found])] = here.already_there
    assert found["video"] == str(tmp_path / "a" / "clip-0.mp4") and found["size_bytes"] == 600
    assert [r.name for r, _ in elsewhere.to_redeliver] == ["clip-0", "clip-1"] and not elsewhere.already_there
    assert [r.name for r, _ in unknown.to_redeliver] == ["clip-0", "clip-1"]
    assert [r.name for r, _ in unknown.delivered] == ["clip-0", "clip-1"] and unknown.to_run == here.to_run


# ------------------------------------------------------------------------------------ batch flow


def test_batch_rerun_to_another_target_copies_with_no_new_generation(emulator, tmp_path):
    rows = [_row(i) for i in range(3)]
    a, b = (tmp_path / "a").resolve(), (tmp_path / "b").resolve()
    first = _batch(rows, a)
    assert _statuses(first) == ["delivered"] * 3
    before = stats(emulator)
    assert before["enqueue_calls"] == 3

    second = _batch(rows, b)

    assert _statuses(second) == ["copied"] * 3
    for row in second["rows"]:
        video = Path(row["video"])
        assert video.parent == b and video.name == f"{row['name']}.mp4"
        assert _sha(video) == _sha(a / video.name)
        sidecar = json.loads(video.with_suffix(".json").read_text())
        assert sidecar["copied_from"] == row["source"] == str(a / video.name)
        assert sidecar["generation_id"] == row["generation"] and sidecar["sha256"] == _sha(video)
    assert second["totals"] == {
        **second["totals"],
        "rows": 3,
        "delivered": 0,
        "copied": 3,
        "skipped": 0,
        "generations": 0,
        "cost_usd": 0.0,
    }
    after = stats(emulator)
    assert after["enqueue_calls"] == 3  # no POST
    assert after["result_downloads"] == before["result_downloads"]  # copied, not downloaded

    # the same target again: already there; back to the first one (the journal now names b, but a
    # still holds the same bytes under the names): already there too, nothing written
    assert _statuses(_batch(rows, b)) == ["skipped"] * 3
    back = _batch(rows, a)
    assert _statuses(back) == ["skipped"] * 3 and back["totals"]["skipped"] == 3
    assert [r["video"] for r in back["rows"]] == [str(a / f"clip-{i}.mp4") for i in range(3)]
    assert stats(emulator)["enqueue_calls"] == 3


def test_batch_rerun_downloads_again_when_the_earlier_delivery_is_gone(emulator, tmp_path):
    rows = [_row(i) for i in range(2)]
    a, b = (tmp_path / "a").resolve(), (tmp_path / "b").resolve()
    _batch(rows, a)
    shutil.rmtree(a)
    before = stats(emulator)

    again = _batch(rows, b)

    assert _statuses(again) == ["copied"] * 2 and {r["source"] for r in again["rows"]} == {"service"}
    after = stats(emulator)
    assert after["enqueue_calls"] == before["enqueue_calls"] == 2
    assert after["result_downloads"] == before["result_downloads"] + 2
    for row in again["rows"]:
        video = Path(row["video"])
        assert video.parent == b
        assert _sha(video) == after["generations"][row["generation"]]["result"]["sha256"]
        sidecar = json.loads(video.with_suffix(".json").read_text())
        assert "copied_from" not in sidecar and sidecar["probe"]["video_codec"] == "h264"  # verified again


def test_batch_row_fails_naming_new_when_copy_and_result_are_both_gone(emulator, tmp_path, capsys):
    rows = [_row(0)]
    a, b = (tmp_path / "a").resolve(), (tmp_path / "b").resolve()
    [gid] = [r["generation"] for r in _batch(rows, a)["rows"]]
    shutil.rmtree(a)
    emulator.reset()  # the service forgets every generation (and its counters)

    with pytest.raises(BatchFailed) as failed:
        _batch(rows, b)

    [row] = failed.value.summary["rows"]
    assert row["status"] == "failed" and row["generation"] == gid
    assert "--new" in row["error"] and "--run-key" in row["error"]
    assert "is gone" in row["error"] and f"no longer has generation {gid} (404)" in row["error"]
    assert failed.value.summary["totals"]["failed"] == 1
    assert not list(b.glob("*.mp4"))
    assert stats(emulator)["enqueue_calls"] == 0  # never a new POST for such a row

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(rows[0]) + "\n")
    capsys.readouterr()
    assert main(["batch", str(manifest), "--out", str(b), "--limit-name", LIMIT_NAME]) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "--new" in out
    assert "Delivered 0 of 1 rows (0 delivered, 0 copied, 0 already there, 1 failed, 0 invalid)" in out
    assert stats(emulator)["enqueue_calls"] == 0


def test_cli_summary_tells_delivered_copied_and_already_there(emulator, tmp_path, capsys):
    def manifest(name: str, *rows: int) -> str:
        path = tmp_path / name
        path.write_text("".join(json.dumps(_row(i)) + "\n" for i in rows))
        return str(path)

    a, b = tmp_path / "a", tmp_path / "b"
    common = ["--concurrency", "3", "--limit-name", LIMIT_NAME]
    assert main(["batch", manifest("first.jsonl", 0, 1), "--out", str(a), *common]) == 0
    assert main(["batch", manifest("second.jsonl", 2), "--out", str(b), *common]) == 0
    capsys.readouterr()

    assert main(["batch", manifest("all.jsonl", 0, 1, 2, 3), "--out", str(b), *common]) == 0

    captured = capsys.readouterr()
    assert "1 of 4 valid rows to generate, 3 delivered by an earlier run" in captured.err
    assert "Delivered 4 of 4 rows (1 delivered, 2 copied, 1 already there, 0 failed, 0 invalid)" in (
        captured.out
    )
    table = {line.split()[1]: line for line in captured.out.splitlines()[1:-1]}
    assert " copied " in table["clip-0"] and " copied " in table["clip-1"]
    assert " already there " in table["clip-2"] and " delivered " in table["clip-3"]
    assert sorted(p.name for p in b.glob("*.mp4")) == [f"clip-{i}.mp4" for i in range(4)]
    assert stats(emulator)["enqueue_calls"] == 4  # one per row, ever


# ---------------------------------------------------------------------------- single-request flow


def _request() -> dict[str, Any]:
    return {"prompt": "A red kite over dunes", "duration": "4", "resolution": "480p", "seed": 11}


def _single(out: Path) -> list[dict[str, Any]]:
    return reference_to_video(
        _request(), output=str(out), name="kite", poll_interval=2.0, timeout_seconds=120
    )


def test_single_flow_rerun_to_another_target_copies_then_downloads_again(emulator, tmp_path):
    a, b, c = ((tmp_path / x).resolve() for x in "abc")
    [first] = _single(a)
    downloads = stats(emulator)["result_downloads"]

    [copied] = _single(b)  # a still holds it: copied

    assert copied["generation_id"] == first["generation_id"] and copied["video"] == str(b / "kite.mp4")
    assert copied["sha256"] == first["sha256"] == _sha(b / "kite.mp4") and not copied["reused"]
    assert json.loads((b / "kite.json").read_text())["copied_from"] == str(a / "kite.mp4")
    assert stats(emulator)["result_downloads"] == downloads

    shutil.rmtree(b)
    shutil.rmtree(a)
    [again] = _single(c)  # nothing to copy from: downloaded again from the service

    assert again["generation_id"] == first["generation_id"] and _sha(c / "kite.mp4") == first["sha256"]
    assert stats(emulator)["result_downloads"] == downloads + 1
    [there] = _single(c)
    assert there["reused"] and there["video"] == str(c / "kite.mp4")
    assert stats(emulator)["enqueue_calls"] == 1


def test_single_flow_copies_when_the_service_no_longer_serves_the_result(emulator, tmp_path):
    a, b = (tmp_path / "a").resolve(), (tmp_path / "b").resolve()
    [first] = _single(a)
    emulator.reset()  # the service forgets the generation; a still holds the video

    [copied] = _single(b)

    assert copied["generation_id"] == first["generation_id"] and _sha(b / "kite.mp4") == first["sha256"]
    assert stats(emulator)["enqueue_calls"] == 0

    shutil.rmtree(a)
    shutil.rmtree(b)
    with pytest.raises(DownloadError, match="--new") as failed:
        _single(tmp_path / "c")
    assert "is gone" in str(failed.value) and "(404)" in str(failed.value)
    assert stats(emulator)["enqueue_calls"] == 0
    assert not list((tmp_path / "c").glob("*.mp4"))
