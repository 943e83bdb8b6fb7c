"""load_request_file: a JSON request file is hostile input until proven otherwise."""

from __future__ import annotations

import json

import pytest

from seedance_prefect.errors import InvalidRequest
from seedance_prefect.preflight import MAX_REQUEST_FILE_BYTES, check_request, load_request_file


def _problem(path) -> object:
    with pytest.raises(InvalidRequest) as info:
        load_request_file(path)
    (problem,) = info.value.problems
    assert problem.field == str(path)
    return problem


def test_reads_object_and_base_dir(tmp_path):
    path = tmp_path / "sub" / "req.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"prompt": "Été 🌊", "duration": "5"}), encoding="utf-8")
    body, base = load_request_file(path)
    assert body == {"prompt": "Été 🌊", "duration": "5"}
    assert base == path.parent.resolve()


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"prompt": "x"}')
    assert load_request_file(path)[0] == {"prompt": "x"}


def test_relative_references_resolve_against_the_file(tmp_path, refs):
    folder = refs["png"].parent
    path = tmp_path / "req.json"
    path.write_text(json.dumps({"prompt": "@Image1", "input_images": [str(refs["png"])]}))
    body, base = load_request_file(path)
    assert check_request(body, base_dir=base).ok
    moved = folder / "req.json"
    moved.write_text(json.dumps({"prompt": "@Image1", "input_images": [refs["png"].name]}))
    body, base = load_request_file(moved)
    assert check_request(body, base_dir=base).ok


def test_missing_file(tmp_path):
    assert _problem(tmp_path / "nope.json").message == "Request file not found"


def test_directory(tmp_path):
    assert _problem(tmp_path).message == "Not a regular file"


def test_invalid_json_has_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "prompt": "x",\n  "duration" "5"\n}')
    problem = _problem(path)
    assert problem.message == "Invalid JSON"
    assert problem.found.startswith("line 3, column 14:")


@pytest.mark.parametrize(
    ("content", "found"),
    [
        ("[1, 2]", "a JSON list"),
        ('"prompt"', "a JSON str"),
        ("null", "a JSON NoneType"),
        ("42", "a JSON int"),
    ],
)
def test_top_level_must_be_an_object(tmp_path, content, found):
    path = tmp_path / "list.json"
    path.write_text(content)
    problem = _problem(path)
    assert problem.message == "The request file must hold a JSON object" and problem.found == found


def test_too_large_file_is_refused_without_reading(tmp_path):
    path = tmp_path / "huge.json"
    with path.open("wb") as fh:
        fh.truncate(MAX_REQUEST_FILE_BYTES + 1)
    problem = _problem(path)
    assert problem.message == "Request file too large" and problem.limit == "at most 10.0 MB"


def test_file_at_the_limit_is_read(tmp_path):
    path = tmp_path / "padded.json"
    text = '{"prompt": "x"}'
    path.write_text(text + " " * (MAX_REQUEST_FILE_BYTES - len(text)))
    assert load_request_file(path)[0] == {"prompt": "x"}


def test_invalid_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{\n "prompt": "caf\xe9"}'.encode("latin-1"))
    problem = _problem(path)
    assert problem.message == "Request file is not valid UTF-8"
    assert problem.found == "byte 0xe9 at line 2, column 16"


def test_duplicate_keys(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"prompt": "a", "prompt": "b"}')
    problem = _problem(path)
    assert problem.message == "Duplicate key in the request file" and problem.found == "'prompt'"


def test_nan_is_refused(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text('{"prompt": "x", "seed": NaN}')
    assert _problem(path).message == "Invalid JSON"


def test_deep_nesting_is_refused(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"prompt": "x", "extra_params": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert _problem(path).message in ("JSON nested too deeply", "Invalid JSON")


def test_lone_surrogate_escape_reaches_the_prompt_rule(tmp_path):
    path = tmp_path / "surrogate.json"
    path.write_text('{"prompt": "bad \\ud800 text"}')
    body, base = load_request_file(path)
    report = check_request(body, base_dir=base)
    assert [p.message for p in report.errors] == ["Prompt is not valid UTF-8"]
