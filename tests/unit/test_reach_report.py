"""Reach and benefit files in the report: their own lanes, and the benefit regression rule."""

import json

import pytest

from convbn_compat.core import expectations
from convbn_compat.core.entrypoints import ENTRY_POINTS, IDS, get_entry
from convbn_compat.core.errors import ConfigError
from convbn_compat.report.html import render_html
from convbn_compat.report.markdown import render_markdown
from convbn_compat.report.model import REGRESSION_FRACTION, build_matrix
from convbn_compat.report.view import build_view
from convbn_compat.tools.benefit import summarise


def _file(folder, kind, release, torch, **extra):
    data = {
        "schema": "convbn-compat/results",
        "schema_version": 1,
        "session": f"{kind}-{release}-cpu",
        "kind": kind,
        "release": release,
        "flavour": "cpu",
        "install": None,
        "complete": True,
        "environment": {"torch": torch},
        "cases": [],
        **extra,
    }
    path = folder / f"{kind}-{release}-cpu.json"
    path.write_text(json.dumps(data))
    return path


def _reach_case(entry, outcome="fused"):
    return {
        "id": entry.id,
        "subset": "reach",
        "device": "cpu",
        "tf32": False,
        "outcome": outcome,
        "expected_outcome": "fused",
        "fire_count": entry.expected_fires,
        "expected_count": entry.expected_fires,
        "graph_rewrites": None,
        "max_abs_error": 0.0,
        "seconds": 1.0,
        "message": "",
    }


def _benefit(peak_off, peak_on):
    configs = {
        "eager": {"peak_step_bytes": peak_off, "step_s": 1.0},
        "off": {"peak_step_bytes": peak_off, "step_s": 1.0},
        "on": {"peak_step_bytes": peak_on, "step_s": 0.5},
    }
    return {
        "model": "small",
        "device": "cpu",
        "method": "resident set",
        "configs": configs,
        "summary": summarise(configs, "peak_step_bytes"),
    }


def test_entry_points_are_named_once_and_looked_up_by_name_or_id():
    assert len(set(IDS)) == len(ENTRY_POINTS)
    assert get_entry("aoti") is get_entry("Reach-aoti")
    with pytest.raises(ConfigError, match="no entry point 'jit'; entry points: default"):
        get_entry("jit")


def test_the_expectations_table_can_name_entry_points():
    table = expectations.load()
    assert table.lookup("Reach-aoti", "cpu", "2.2.2").outcome.value == "unsupported"
    assert table.lookup("Reach-default", "cpu", "2.15.0").outcome.value == "fused"


def test_reach_is_a_lane_of_its_own_and_a_wrong_entry_is_unexpected(tmp_path):
    cases = [_reach_case(e) for e in ENTRY_POINTS]
    cases[0] = _reach_case(ENTRY_POINTS[0], "wrong-result")
    _file(tmp_path, "reach", "2.4", "2.4.1", cases=cases)
    matrix = build_matrix([tmp_path])
    assert [str(c.key) for c in matrix.columns] == ["2.4/cpu/cpu/reach"]
    assert not matrix.missing  # a reach run is not held to the case table
    page = render_html(build_view(matrix))
    assert "entry points, CPU wheel on CPU" in page
    assert "nox -s reach-2.4-cpu -- --only {case}" in page
    md = render_markdown(build_view(matrix))
    assert "**1 cases with an unexpected outcome**" in md


def test_benefit_rows_flag_a_release_whose_saving_fell(tmp_path):
    _file(tmp_path, "benefit", "2.4", "2.4.1", benefit=_benefit(100, 50))  # saves 50%
    _file(tmp_path, "benefit", "2.5", "2.5.1", benefit=_benefit(100, 60))  # 40%: within
    _file(tmp_path, "benefit", "2.6", "2.6.0", benefit=_benefit(100, 80))  # 20%: fell
    matrix = build_matrix([tmp_path])
    assert [r["release"] for r in matrix.benefit] == ["2.4", "2.5", "2.6"]
    assert [bool(r["regression"]) for r in matrix.benefit] == [False, False, True]
    assert matrix.benefit[2]["regression"] == "memory saved fell from 40% (2.5) to 20%"
    assert 0.4 * (1 - REGRESSION_FRACTION) > 0.2
    md = render_markdown(build_view(matrix))
    assert "## What the pass saves" in md
    assert "| 2.6 | 2.6.0 | cpu | small | 0.0 MiB | 0.0 MiB | 0.0 MiB | 20% |" in md
    assert "1</b>benefit regressions" in render_html(build_view(matrix))


def test_summarise_compares_flag_on_with_off_and_eager():
    configs = _benefit(200, 50)["configs"]
    configs["eager"]["peak_step_bytes"] = 100
    out = summarise(configs, "peak_step_bytes")
    assert out["memory_saved_vs_off"] == 0.75
    assert out["memory_saved_vs_eager"] == 0.5
    assert out["step_time_on_over_off"] == 0.5
