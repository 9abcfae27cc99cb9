"""The known causes, as data: each row well formed, its representative case a case of
the matrix that fails in its range, and every committed finding blamed on the pass
recognised by one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from convbn_compat.core import causes, expectations
from convbn_compat.core.cases import get_case
from convbn_compat.core.errors import ConfigError
from convbn_compat.core.outcomes import Blame
from convbn_compat.core.results import load_run

DOCS = Path(__file__).resolve().parents[2] / "docs"
TABLE = causes.load()


@pytest.mark.parametrize("cause", TABLE.rows, ids=lambda c: c.id)
def test_each_cause_has_a_representative_case_failing_in_its_range(cause):
    case = get_case(cause.case)
    table = expectations.load()
    failing = [
        v
        for v in ("2.2.2", "2.5.1", "2.11.0", "2.15.0")
        if cause.in_range(v) and table.lookup(case.id, "cpu", v).outcome.is_failure
    ]
    assert failing, f"{cause.case} fails in no release of {cause.releases}"


def test_every_committed_finding_blamed_on_the_pass_has_a_known_cause():
    files = sorted((DOCS / "fuzz").glob("*.json"))
    assert files
    unknown = []
    for path in files:
        run = load_run(path)
        for record in run.records:
            if record.blame is Blame.PASS and TABLE.recognise(record, run.torch) is None:
                unknown.append(f"{path.name}: {record.id}")
    assert not unknown, unknown


def test_a_cause_outside_its_releases_is_not_recognised():
    bn = TABLE.by_id["bn-fewer-than-8-args"]
    assert bn.in_range("2.12.1")
    assert not bn.in_range("2.13.0")  # fixed by pytorch#169126


BASE = {"id": "x", "title": "t", "releases": ">=2.2", "case": "c"}


@pytest.mark.parametrize(
    ("row", "says"),
    [
        (BASE, "a crash state or features"),
        ({**BASE, "releases": "bad", "when": {"layer": []}}, "releases"),
        ({**BASE, "when": {"colour": []}}, "'when.colour' is no feature"),
        ({k: v for k, v in BASE.items() if k != "case"}, "'case' is missing"),
        ({**BASE, "crash": {"exception": "E"}}, "'crash.function' is missing"),
    ],
)
def test_a_bad_cause_row_is_refused_with_what_to_do(tmp_path, row, says):
    lines = [f"{k} = {_toml(v)}" for k, v in row.items()]
    (tmp_path / "causes.toml").write_text("[[cause]]\n" + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=says):
        causes.load(tmp_path / "causes.toml")


def _toml(value) -> str:
    import json

    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)
