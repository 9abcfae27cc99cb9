"""The measured results kept in docs/results agree with expectations.toml.

A change to the expectations that no longer describes what a release was seen to do
fails here, without torch: the table cannot drift from the measurements.
"""

from pathlib import Path

import pytest

from convbn_compat.core import expectations
from convbn_compat.core.cases import UPSTREAM_CASES
from convbn_compat.core.outcomes import Outcome
from convbn_compat.core.results import load_run

RESULTS = sorted((Path(__file__).resolve().parents[2] / "docs" / "results").glob("*.json"))


def test_there_are_measured_results():
    assert RESULTS


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_measured_outcomes_are_the_expected_ones(path):
    run = load_run(path)
    assert run.complete, f"{path.name} is from an interrupted run"
    table = expectations.load()
    disagreements = [
        f"{c.id} {c.column_device}: measured {c.outcome}, "
        f"expected {table.lookup(c.id, c.device, run.torch).outcome}"
        for c in run.records
        if c.outcome not in (None, Outcome.UNSUPPORTED)
        and table.lookup(c.id, c.device, run.torch).outcome is not c.outcome
    ]
    assert not disagreements, "\n".join(disagreements)


def test_every_release_measured_has_all_upstream_cpu_cases():
    # Files of one torch add up (tests-X.Y-cpu-stats.json ran only the Stats cases).
    measured: dict[str, set[str]] = {}
    for path in RESULTS:
        run = load_run(path)
        ids = {c.id for c in run.records if c.device == "cpu"}
        measured.setdefault(run.torch, set()).update(ids)
    for torch_version, ids in measured.items():
        missing = {c.id for c in UPSTREAM_CASES} - ids
        assert not missing, f"torch {torch_version}: no CPU result for {sorted(missing)[:3]}"
