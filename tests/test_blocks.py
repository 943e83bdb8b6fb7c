"""One reader of ``<slug>/<name>`` block values: the same bad value gives the same error everywhere."""

from __future__ import annotations

import pytest

from seedance_prefect._blocks import load_block, parse_block_ref
from seedance_prefect.delivery.targets import resolve_target
from seedance_prefect.errors import InvalidRequest
from seedance_prefect.references.hosting import hosting_from_spec


@pytest.mark.parametrize(
    "text", ["s3-bucket", "s3-bucket/", "/videos", "s3-bucket/a/b", "S3-Bucket/x", "a b/c"]
)
def test_values_that_are_not_block_references(text: str) -> None:
    assert parse_block_ref(text) is None


def test_a_missing_block_is_the_same_bad_input_as_target_and_as_hosting(prefect_server: str) -> None:
    with pytest.raises(InvalidRequest) as as_target:
        resolve_target("s3-bucket/no-such-block-here", None)
    with pytest.raises(InvalidRequest) as as_hosting:
        hosting_from_spec("s3-bucket/no-such-block-here")
    [target_problem] = as_target.value.problems
    [hosting_problem] = as_hosting.value.problems
    assert (target_problem.field, hosting_problem.field) == ("deliver_to", "hosting")
    assert target_problem.message == hosting_problem.message == "No such saved block"
    assert target_problem.found == hosting_problem.found == "'s3-bucket/no-such-block-here'"
    assert "Save the block first" in (target_problem.fix or "")


def test_a_block_type_the_server_does_not_know_is_a_missing_block(prefect_server: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        load_block("no-such-block-type", "x", field="deliver_to")
    [problem] = caught.value.problems
    assert (problem.field, problem.message) == ("deliver_to", "No such saved block")
    assert "no-such-block-type" in (problem.fix or "")
