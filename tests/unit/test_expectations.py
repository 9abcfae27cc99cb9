from pathlib import Path

import pytest

from convbn_compat.core import expectations as exp
from convbn_compat.core.cases import CASES, EXTENDED_CASES, FOUND_CASES, UPSTREAM_CASES, get_case
from convbn_compat.core.outcomes import Outcome
from convbn_compat.core.releases import ConfigError
from convbn_compat.core.results import load_run


def _write(tmp_path, body):
    path = tmp_path / "expectations.toml"
    path.write_text(body)
    return path


ROW = """
[[expect]]
releases = "<2.4"
cases = "*-decomposed"
outcome = "not-fused"
reason = "no aten patterns"
"""


def test_case_list_is_upstreams_product_plus_extended():
    assert len(UPSTREAM_CASES) == 112
    assert {c.subset for c in UPSTREAM_CASES} == {"upstream"}
    assert {c.subset for c in EXTENDED_CASES} == {"extended"}
    assert len({c.id for c in CASES}) == len(CASES)
    assert CASES[0].id == "ConvOp-bias-Linear-bn-module"
    assert EXTENDED_CASES[-1].id.startswith("Bug")
    # The generator's findings come last, each its own minimal example.
    assert CASES[len(UPSTREAM_CASES) + len(EXTENDED_CASES) :] == FOUND_CASES
    assert {c.subset for c in FOUND_CASES} == {"found"}
    assert get_case("MultiUserConvOp-nobias-ConvTranspose3d-syncbn-decomposed").expected_fires == 3


def test_unknown_case_suggests_close_ids():
    with pytest.raises(ConfigError, match="did you mean ConvOp-bias-Conv2d-bn-module"):
        get_case("ConvOp-bias-Conv2d-bn")


def test_lookup_by_release_pattern_and_device(tmp_path):
    table = exp.load(_write(tmp_path, ROW))
    hit = table.lookup("ConvOp-bias-Conv2d-bn-decomposed", "cpu", "2.2.2+cu121")
    assert hit.outcome is Outcome.NOT_FUSED
    assert hit.reason == "no aten patterns"
    assert (
        table.lookup("ConvOp-bias-Conv2d-bn-decomposed", "cpu", "2.4.1+cpu").outcome
        is Outcome.FUSED
    )
    assert table.lookup("ConvOp-bias-Conv2d-bn-module", "cpu", "2.2.2").outcome is Outcome.FUSED
    # A nightly counts as its release.
    assert (
        table.lookup("ConvOp-bias-Conv2d-bn-decomposed", "cuda", "2.3.0.dev20240301").outcome
        is Outcome.NOT_FUSED
    )


def test_overlapping_rows_are_an_error(tmp_path):
    path = _write(tmp_path, ROW + ROW.replace("*-decomposed", "ConvOp-*"))
    with pytest.raises(ConfigError, match="#2: 'releases', 'cases' and 'devices' overlap row #1"):
        exp.load(path)
    # Rows made in code are not checked at load: lookup still refuses to choose.
    row = exp.load(_write(tmp_path, ROW)).rows[0]
    table = exp.Expectations([row, row])
    with pytest.raises(ConfigError, match="2 rows name ConvOp-bias-Conv2d-bn-decomposed"):
        table.lookup("ConvOp-bias-Conv2d-bn-decomposed", "cpu", "2.2.2")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("not-fused", "fuzed"), "unknown outcome 'fuzed'; choose one of: fused, not-fused"),
        (("*-decomposed", "*-nothing"), "pattern '\\*-nothing' matches no case id"),
        (("<2.4", "less than 2.4"), "is no specifier"),
        (('reason = "no aten patterns"', 'reason = ""'), "'reason' is empty"),
        (('outcome = "not-fused"', 'outcome = "fused"'), "'fused', the default"),
        (("cases =", "case ="), "'case' is no key; did you mean 'cases'"),
    ],
)
def test_bad_rows_name_the_file_and_the_problem(tmp_path, edit, message):
    path = _write(tmp_path, ROW.replace(*edit))
    with pytest.raises(ConfigError, match=message) as info:
        exp.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text", ['expect = "not-fused"', "expect = [1, 2]"])
def test_a_table_that_is_not_rows_is_named(tmp_path, text):
    path = tmp_path / "expectations.toml"
    path.write_text(text + "\n")
    with pytest.raises(
        ConfigError, match=r"'expect' must be an array of tables, written \[\[expect\]\]"
    ):
        exp.load(path)


def test_shipped_expectations_load_and_every_row_has_a_reason():
    table = exp.load()
    assert table.rows
    for row in table.rows:
        assert len(row.reason) > 40, f"{row.cases}: say the verified cause"


COMMITTED = sorted(
    p
    for folder in ("docs/results", "docs/fuzz", "docs/reach")
    for p in (Path(__file__).resolve().parents[2] / folder).glob("*.json")
)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_results_record_what_the_table_expects(path):
    """Every committed file agrees with today's table: each cell's recorded expectation
    is the table's, and no matrix cell ended other than expected (a strict xfail or a
    pass), so the report's words about them are today's words."""
    run = load_run(path)
    table = exp.load()
    wrong = []
    for record in run.records:
        expected = table.lookup(record.id, record.device, run.torch).outcome
        if record.expected_outcome is not expected:
            wrong.append(f"{record.id}: recorded {record.expected_outcome}, table {expected}")
        elif run.kind in ("tests", "reach") and record.outcome not in (None, expected):
            wrong.append(f"{record.id}: {record.outcome}, expected {expected}")
    assert not wrong, f"re-record {path.name} or fix the table: " + "; ".join(wrong[:5])
