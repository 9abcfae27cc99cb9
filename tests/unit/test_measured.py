"""The measured results kept in docs/results agree with expectations.toml.

A change to the expectations that no longer describes what a release was seen to do
fails here, without torch: the table cannot drift from the measurements.
"""

from pathlib import Path

import pytest

from convbn_compat.core import expectations
from convbn_compat.core.cases import UPSTREAM_CASES
from convbn_compat.core.results import load_run

RESULTS = sorted((Path(__file__).resolve().parents[2] / "docs" / "results").glob("*.json"))


def test_there_are_measured_results():
    assert RESULTS


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_measured_outcomes_are_the_expected_ones(path):
    run = load_run(path)
    assert run.data["complete"], f"{path.name} is from an interrupted run"
    table = expectations.load()
    torch_version = run.data["environment"]["torch"]
    disagreements = [
        f"{c['id']} {c['device']}{' tf32' if c['tf32'] else ''}: measured {c['outcome']}, "
        f"expected {table.lookup(c['id'], c['device'], torch_version).outcome}"
        for c in run.data["cases"]
        if c["outcome"] not in (None, "unsupported")
        and table.lookup(c["id"], c["device"], torch_version).outcome.value != c["outcome"]
    ]
    assert not disagreements, "\n".join(disagreements)


def test_every_release_measured_has_all_upstream_cpu_cases():
    # Files of one torch add up (tests-X.Y-cpu-stats.json ran only the Stats cases).
    measured: dict[str, set[str]] = {}
    for path in RESULTS:
        data = load_run(path).data
        ids = {c["id"] for c in data["cases"] if c["device"] == "cpu"}
        measured.setdefault(data["environment"]["torch"], set()).update(ids)
    for torch_version, ids in measured.items():
        missing = {c.id for c in UPSTREAM_CASES} - ids
        assert not missing, f"torch {torch_version}: no CPU result for {sorted(missing)[:3]}"
