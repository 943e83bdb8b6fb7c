"""Prompt rules: length, control characters, invalid UTF-8, and @Image1/@Video1/@Audio1 tags."""

from __future__ import annotations

import pytest

from seedance_prefect import limits
from seedance_prefect.preflight import check_request
from seedance_prefect.rules import prompt_rules, tag_rules

IMG = "https://example.com/{}.png"


def _prompt_problems(prompt: str) -> list[str]:
    return [p.message for p in check_request({"prompt": prompt}).errors]


def test_length_limit_both_sides():
    assert _prompt_problems("x" * limits.PROMPT_MAX_CHARS) == []
    report = check_request({"prompt": "x" * (limits.PROMPT_MAX_CHARS + 1)})
    (problem,) = report.errors
    assert (problem.field, problem.message) == ("prompt", "Prompt too long")
    assert problem.found == "8,001 characters" and problem.limit == "at most 8,000 characters"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
def test_control_characters_are_errors(char):
    report = check_request({"prompt": f"A boat{char} on a pond"})
    (problem,) = report.errors
    assert problem.message == "Prompt contains control characters"
    assert f"U+{ord(char):04X} at position 6" in problem.found


def test_tabs_newlines_and_unicode_are_fine():
    assert _prompt_problems("Line one\n\tLine two\r\nÉté 🌊 日本語 — «quotes»") == []


def test_lone_surrogates_are_invalid_utf8():
    report = check_request({"prompt": "broken emoji \ud83d here"})
    (problem,) = report.errors
    assert problem.message == "Prompt is not valid UTF-8"
    assert problem.found == "lone surrogate U+D83D at position 13"


def test_several_prompt_problems_together():
    messages = [p.message for p in prompt_rules("\x00\ud800" + "x" * limits.PROMPT_MAX_CHARS)]
    assert messages == ["Prompt too long", "Prompt contains control characters", "Prompt is not valid UTF-8"]


# Tags ------------------------------------------------------------------------------------------------


def test_tags_within_the_attachments():
    report = check_request(
        {
            "prompt": "@Image1 and @Image2 dance to @Audio1 like @Video1",
            "input_images": [IMG.format(1), IMG.format(2)],
            "input_videos": ["https://example.com/v.mp4"],
            "input_audios": ["https://example.com/a.mp3"],
        }
    )
    assert report.ok
    assert [p for p in report.warnings if p.field != "references"] == []


@pytest.mark.parametrize(
    ("prompt", "images", "message"),
    [
        ("@Image2 waves", 1, "@Image2 refers to an image that is not attached"),
        ("@Image10 waves", 9, "@Image10 refers to an image that is not attached"),
        ("@Image0 waves", 1, "@Image0 refers to no image: tags count from 1"),
        ("@Video1 moves", 1, "@Video1 refers to a video that is not attached"),
        ("@Audio1 plays", 1, "@Audio1 refers to an audio file that is not attached"),
    ],
)
def test_tags_past_the_attachments_are_errors(prompt, images, message):
    report = check_request({"prompt": prompt, "input_images": [IMG.format(i) for i in range(images)]})
    assert message in [p.message for p in report.errors if p.field == "prompt"]


def test_tag_error_details():
    problem = check_request({"prompt": "@Image3", "input_images": [IMG.format(1), IMG.format(2)]}).errors[0]
    assert problem.limit == "@Image1..@Image2"
    assert problem.found == "@Image3 with 2 images in input_images"
    assert problem.fix == "Attach the image in input_images or correct the tag"


def test_repeated_bad_tag_reported_once():
    report = check_request({"prompt": "@Image2 then @Image2 again", "input_images": [IMG.format(1)]})
    assert [p.message for p in report.errors].count("@Image2 refers to an image that is not attached") == 1


def test_unreferenced_attachments_are_warnings():
    report = check_request(
        {
            "prompt": "@Image2 only",
            "input_images": [IMG.format(1), IMG.format(2)],
            "input_videos": ["https://example.com/v.mp4"],
        }
    )
    assert report.ok
    unused = [(p.field, p.message) for p in report.warnings if p.field != "references"]
    assert unused == [
        ("input_images[0]", "Never referenced in the prompt as @Image1"),
        ("input_videos[0]", "Never referenced in the prompt as @Video1"),
    ]


def test_other_case_counts_but_is_flagged():
    problems = tag_rules("@image1 smiles", 1, 0, 0)
    assert [(p.severity, p.message) for p in problems] == [
        ("warning", "Tag @image1 is not spelled as documented")
    ]
    assert problems[0].fix == "Write @Image1"


def test_text_that_is_not_a_tag():
    assert tag_rules("email me at a@Imagery.com or @Images", 0, 0, 0) == []
