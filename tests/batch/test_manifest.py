"""Manifests: JSONL and CSV parsing, line numbers and names of bad rows, duplicates, remote reads."""

from __future__ import annotations

import pytest

from seedance_prefect.batch import parse_manifest, plan_batch, read_manifest
from seedance_prefect.errors import InvalidRequest

GOOD = '{"prompt": "A boat", "duration": "5", "resolution": "480p"'


def test_jsonl_bad_rows_are_reported_with_line_and_name_and_the_rest_kept(tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_text(
        "\n".join(
            [
                "# nightly",
                GOOD + ', "name": "boat"}',
                "",
                '{"prompt": "A cat", "duration": "3", "name": "cat"}',
                '{"prompt": "broken"',
                '["not", "an", "object"]',
                GOOD + ', "colour": "red", "name": "painted"}',
                GOOD + ', "name": "boat"}',
                '{"prompt": "A dog", "duration": "6"}',
            ]
        )
    )
    rows, base = read_manifest(path)
    plan = plan_batch(rows, base_dir=base)

    assert [(r.line, r.name) for r in plan.rows] == [(2, "boat"), (9, plan.rows[1].name)]
    assert plan.rows[1].name.startswith("a-dog-")
    bad = {r.line: (r.name, " ".join(r.problems)) for r in plan.rejected}
    assert set(bad) == {4, 5, 6, 7, 8}
    assert bad[4] == ("cat", bad[4][1]) and "Invalid duration" in bad[4][1]
    assert "Invalid JSON" in bad[5][1] and "JSON object" in bad[6][1]
    assert bad[7][0] == "painted" and "Unknown parameter 'colour'" in bad[7][1]
    assert "Same request as line 2" in bad[8][1]
    assert plan.cost_usd == pytest.approx(2.0 + 2.4)


def test_csv_lists_types_and_line_numbers(tmp_path):
    image = tmp_path / "a.png"
    from seedance_prefect.media.samples import make_image

    make_image(image, 320, 240, seed=1)
    (tmp_path / "batch.csv").write_text(
        "name,prompt,input_images,duration,seed,generate_audio,resolution\n"
        "one,@Image1 waves,a.png|https://example.com/b.png,5,7,false,480p\n"
        '"two","A ""quoted""\nprompt",,6,,yes,720p\n'
        "three,A sea,,5,seven,,480p\n"
    )
    rows, base = read_manifest(tmp_path / "batch.csv")
    plan = plan_batch(rows, base_dir=base)

    one, two = plan.rows
    assert (one.line, two.line) == (2, 3)
    assert one.request.input_images == [str(image.resolve()), "https://example.com/b.png"]
    assert (one.request.seed, one.request.generate_audio, two.request.generate_audio) == (7, False, True)
    assert two.request.prompt == 'A "quoted"\nprompt'
    [three] = plan.rejected
    assert (three.line, three.name) == (5, "three") and "seed" in three.problems[0]


def test_rows_with_the_same_name_but_other_requests_are_refused():
    plan = plan_batch(
        [{"prompt": "A", "duration": "5", "name": "x"}, {"prompt": "B", "duration": "5", "name": "x"}]
    )
    assert [r.line for r in plan.rows] == [1]
    assert "Duplicate name 'x' (also on line 1)" in plan.rejected[0].problems[0]


def test_run_key_and_names_make_distinct_fingerprints():
    rows = [{"prompt": "A", "duration": "5", "name": "x"}, {"prompt": "A", "duration": "5", "name": "y"}]
    a, b = plan_batch(rows).rows
    assert a.fingerprint != b.fingerprint
    assert plan_batch(rows, run_key="retake").rows[0].fingerprint != a.fingerprint
    assert plan_batch(rows).rows[0].fingerprint == a.fingerprint  # stable: a re-run finds the journal


def test_manifest_from_an_fsspec_url():
    import fsspec

    fsspec.filesystem("memory").pipe_file("/manifests/m.jsonl", (GOOD + "}\n").encode())
    rows, base = read_manifest("memory://manifests/m.jsonl")
    assert base is None and rows[0].data["prompt"] == "A boat"


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "Manifest not found"), (b"\xff\xfe", "not valid UTF-8"), (b"\n# only a comment\n", "no rows")],
)
def test_unusable_manifests_are_bad_input(tmp_path, content, message):
    path = tmp_path / "m.jsonl"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidRequest, match=message):
        read_manifest(path)


def test_format_is_guessed_without_a_known_suffix():
    assert parse_manifest('{"prompt": "x"}\n')[0].data == {"prompt": "x"}
    assert parse_manifest("prompt,duration\nx,5\n")[0].data == {"prompt": "x", "duration": "5"}
