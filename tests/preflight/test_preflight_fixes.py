"""check_request(fix=True): fixable problems become planned fixes; unfixable ones stay errors."""

from __future__ import annotations

import pytest

from seedance_prefect.errors import InvalidRequest
from seedance_prefect.preflight import check_request, validate_request


def body(**fields: list[str]) -> dict:
    words = {"input_images": "Image", "input_videos": "Video", "input_audios": "Audio"}
    tags = [f"@{words[name]}{i + 1}" for name, items in fields.items() for i in range(len(items))]
    return {"prompt": "Use " + " ".join(tags), **fields}


def test_fixable_errors_become_planned_fixes(refs):
    request = body(input_videos=[refs.s("px_1920x1080"), refs.s("rotated")], input_images=[refs.s("exif6")])
    raw = check_request(request, fix=False)
    assert not raw.ok and raw.planned == []
    assert {p.message for p in raw.errors} == {"Video resolution outside ~480p to ~720p"}
    fixed = check_request(request)
    assert fixed.ok and fixed.errors == []
    assert [(f.field, f.what) for f in fixed.planned] == [
        ("input_images[0]", "orient"),
        ("input_videos[0]", "frame rate"),  # the sample is 4 fps
        ("input_videos[0]", "scale"),
        ("input_videos[1]", "rotate"),
    ]
    assert {p.message for p in fixed.resolved} >= {
        "Video resolution outside ~480p to ~720p",
        "Video is stored sideways with a rotation flag, which the service may ignore",
    }
    assert not any(p.fixable for p in fixed.warnings)
    assert "planned fix: input_videos[0]" in str(fixed)
    assert fixed.to_dict()["planned_fixes"][0]["what"] == "orient"


def test_unfixable_problems_stay_errors(refs):
    report = check_request(body(input_videos=[refs.s("v19")]))
    assert [(p.field, p.message) for p in report.errors] == [("input_videos", "Videos too short in total")]
    assert report.planned == []


def test_validate_lets_planned_fixes_through_unless_told_not_to(refs):
    request = body(input_videos=[refs.s("v155")])
    assert validate_request(request).input_videos == [refs.s("v155")]
    with pytest.raises(InvalidRequest, match="Videos too long in total"):
        validate_request(request, fix=False)


def test_in_out_points_are_checked_with_the_plan(refs):
    ok = check_request(body(input_videos=[refs.s("v155") + "#t=0.5,10"]))
    assert ok.ok and ("trim", "0.5-10.0 s (9.5 s)") in [(f.what, f.after) for f in ok.planned]
    assert ok.request.input_videos == [refs.s("v155") + "#t=0.5,10"]
    short = check_request(body(input_videos=[refs.s("v5") + "#t=1,2"]))
    assert [p.message for p in short.errors] == ["In/out points keep too little video in total"]
    off = check_request(body(input_videos=[refs.s("v5") + "#t=1,4"]), fix=False)
    assert [p.message for p in off.errors] == ["In/out points (#t=) need reference preprocessing"]
    bad = check_request(body(input_videos=[refs.s("v5") + "#t=4,1"]))
    assert [(p.field, p.message) for p in bad.errors] == [("input_videos[0]", "Malformed in/out points")]


def test_heic_without_the_extra_names_it(refs, monkeypatch):
    path = refs.s("heic")
    monkeypatch.setattr("seedance_prefect.references.plan.heif_available", lambda: False)
    report = check_request(body(input_images=[path]))
    [problem] = report.errors
    assert problem.field == "input_images[0]" and "'heic' extra" in problem.message and problem.found == path
