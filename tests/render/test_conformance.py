"""Every vector of ../shared/conformance/butane runs; config and end-to-end vectors must pass, validate
vectors must report the expected paths; every config rendered is also checked by ignition-validate."""

from __future__ import annotations

import pytest

from . import ignition_validate, vectors
from .conftest import RESULTS

VECTORS = vectors.load_vectors()


def test_all_vectors_are_present():
    assert len(VECTORS) == 126
    assert len({v["name"] for v in VECTORS}) == len(VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector, tmp_path):
    RESULTS[vector["name"]] = "fail"
    try:
        outcome = vectors.run_vector(vector, tmp_path)
    except vectors.NotApplicable as exc:
        RESULTS[vector["name"]] = "n/a"
        pytest.skip(str(exc))
    for config, record in outcome.rendered:
        check_with_ignition_validate(config, record)
    RESULTS[vector["name"]] = "pass"


def check_with_ignition_validate(config: dict, record: dict | None) -> None:
    """A servable config must pass ignition-validate. Base-level (clevis) outputs that the vector itself
    records as failing must fail the same way. Either way bootserver's own check reports the same."""
    if record is None or record["rc"] == 0:
        ignition_validate.assert_valid(config)
        return
    code, theirs = ignition_validate.assert_agrees(config)
    assert code == record["rc"]
    assert sorted(where for kind, where, _ in theirs if kind == "error") == ignition_validate.error_paths(
        record["output"].splitlines())
