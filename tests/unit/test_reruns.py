"""Reruns lose nothing: a run of part of a session writes into the session's file, and
the report takes a cell two files hold from the later run, whatever the files' names."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from convbn_compat.core.errors import ConfigError
from convbn_compat.core.outcomes import Outcome
from convbn_compat.core.record import CaseRecord, Status
from convbn_compat.core.results import ResultsWriter, Selection, load_run
from convbn_compat.report.model import build_matrix

ENV = {"torch": "2.15.0", "torch_git": "abc"}
HEADER = {"session": "tests-2.15-cpu", "release": "2.15", "flavour": "cpu", "install": None}
CELLS = [(f"case-{i}", "cpu", False) for i in range(5)]


def _record(case_id, outcome=Outcome.FUSED):
    return CaseRecord(
        case_id, "upstream", "cpu", outcome=outcome, expected_outcome=Outcome.FUSED,
        status=Status.PASSED if outcome is Outcome.FUSED else Status.FAILED,
    )  # fmt: skip


def _run(path, ids, *, interrupted=False, outcome=Outcome.FUSED, env=ENV):
    selection = Selection(args=[], selected=len(ids), full=len(ids) == len(CELLS))
    writer = ResultsWriter(path, HEADER, env, selection=selection, expected_cells=set(CELLS))
    for case_id in ids:
        writer.add(_record(case_id, outcome))
    writer.finish(complete=not interrupted, exitstatus=2 if interrupted else 0)
    return load_run(path)


def test_a_partial_rerun_replaces_only_what_it_ran(tmp_path):
    path = tmp_path / "tests-2.15-cpu.json"
    full = _run(path, [c[0] for c in CELLS])
    assert full.complete
    assert len(full.records) == 5
    again = _run(path, ["case-2"], outcome=Outcome.WRONG_RESULT)
    assert len(again.records) == 5, "the rerun took cells away"
    assert again.complete
    by_id = {r.id: r for r in again.records}
    assert by_id["case-2"].outcome is Outcome.WRONG_RESULT
    assert by_id["case-2"].run == "r2"
    assert {r.run for r in again.records if r.id != "case-2"} == {"r1"}
    assert [r.id for r in again.runs] == ["r1", "r2"]
    assert again.runs[1].selection.selected == 1


def test_an_interrupted_rerun_keeps_the_rest_and_says_so(tmp_path):
    path = tmp_path / "tests-2.15-cpu.json"
    _run(path, [c[0] for c in CELLS])
    stopped = _run(path, ["case-0", "case-1"], interrupted=True)
    assert len(stopped.records) == 5
    assert stopped.complete, "every cell is still in the file"
    assert stopped.runs[-1].interrupted


def test_an_interrupted_first_run_is_incomplete(tmp_path):
    run = _run(tmp_path / "tests-2.15-cpu.json", ["case-0"], interrupted=True)
    assert not run.complete


def test_a_run_of_another_torch_build_keeps_the_old_file_aside(tmp_path, capsys):
    path = tmp_path / "tests-2.15-cpu.json"
    _run(path, [c[0] for c in CELLS])
    other = _run(path, ["case-0"], env={"torch": "2.15.0", "torch_git": "def"})
    assert len(other.records) == 1
    assert [r.id for r in other.runs] == ["r1"]
    (kept,) = path.parent.glob(path.name + ".replaced-*")
    assert len(load_run(kept).records) == 5
    assert "kept as" in capsys.readouterr().err
    _run(path, ["case-1"], env={"torch": "2.15.0", "torch_git": "ghi"})
    assert len(list(path.parent.glob(path.name + ".replaced-*"))) == 2, "one aside overwrote"


def test_a_run_on_other_gpus_does_not_write_over_this_one(tmp_path):
    path = tmp_path / "tests-2.15-cpu.json"
    _run(path, [c[0] for c in CELLS])
    elsewhere = {**ENV, "gpus": [{"name": "NVIDIA H100", "capability": "9.0"}]}
    assert len(_run(path, ["case-0"], env=elsewhere).records) == 1
    assert list(path.parent.glob(path.name + ".replaced-*"))


def test_a_rerun_killed_before_its_end_leaves_the_file_incomplete(tmp_path):
    path = tmp_path / "tests-2.15-cpu.json"
    _run(path, [c[0] for c in CELLS])
    selection = Selection(args=[], selected=1, full=False)
    writer = ResultsWriter(path, HEADER, ENV, selection=selection, expected_cells=set(CELLS))
    writer.add(_record("case-1"))  # ... and the process dies here: no finish()
    run = load_run(path)
    assert not run.complete
    assert run.runs[-1].finished is None
    assert len(run.records) == 5
    writer._lock.release()


def test_a_second_run_of_one_file_at_once_is_refused(tmp_path):
    path = tmp_path / "tests-2.15-cpu.json"
    first = ResultsWriter(path, HEADER, ENV, expected_cells=set(CELLS))
    with pytest.raises(ConfigError, match="another run is writing"):
        ResultsWriter(path, HEADER, ENV, expected_cells=set(CELLS))
    with pytest.raises(ConfigError, match="another run is writing"):
        ResultsWriter.check(path)  # what a run asks before it runs anything
    first.finish(complete=False, exitstatus=2)
    ResultsWriter(path, HEADER, ENV, expected_cells=set(CELLS)).finish(False, 2)


def test_a_full_run_drops_cells_of_cases_that_are_gone(tmp_path):
    path = tmp_path / "tests-2.15-cpu.json"
    writer = ResultsWriter(path, HEADER, ENV, expected_cells=set(CELLS))
    writer.add(_record("case-removed-since"))
    writer.finish(complete=True, exitstatus=0)
    run = _run(path, [c[0] for c in CELLS])
    assert {r.id for r in run.records} == {c[0] for c in CELLS}


def test_a_version_1_file_s_cells_belong_to_its_one_run(tmp_path):
    path = tmp_path / "tests-2.15-cpu.json"
    _run(path, [c[0] for c in CELLS])
    data = json.loads(path.read_text())
    data["schema_version"] = 1
    del data["runs"]
    for case in data["cases"]:
        del case["run"]
    path.write_text(json.dumps(data))
    again = _run(path, ["case-0"])
    assert {r.run for r in again.records} == {"r1", "r2"}
    assert all(again.run_of(r) is not None for r in again.records)


@pytest.mark.parametrize("names", [("a.json", "b.json"), ("b.json", "a.json")])
def test_the_report_takes_the_later_run_whatever_the_names(tmp_path, names):
    early, late = (tmp_path / "results" / n for n in names)
    early.parent.mkdir()
    _run(early, [c[0] for c in CELLS])
    data = json.loads(early.read_text())
    later = "2099-01-01T00:00:00+00:00"
    for entry in data["runs"]:
        entry["started"] = later
    for case in data["cases"]:
        case["outcome"], case["status"] = "wrong-result", "failed"
    late.write_text(json.dumps(data))
    matrix = build_matrix([tmp_path / "results"])
    (row,) = {k: v for k, v in matrix.cells.items() if k == "case-3"}.values()
    (record,) = row.values()
    assert record.outcome is Outcome.WRONG_RESULT
    assert any(str(late) in line and str(early) in line for line in matrix.superseded)


def test_the_same_cell_from_the_same_moment_with_two_outcomes_is_refused(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    one = folder / "a.json"
    _run(one, [c[0] for c in CELLS])
    data = json.loads(one.read_text())
    data["cases"][0]["outcome"] = "error"
    (folder / "b.json").write_text(json.dumps(data))
    with pytest.raises(Exception, match="remove one of the files"):
        build_matrix([folder])


def test_a_rerun_of_a_copied_file_still_merges(tmp_path):
    """The file is the unit CI keeps: a copy moved elsewhere reads and merges alike."""
    path = tmp_path / "tests-2.15-cpu.json"
    _run(path, [c[0] for c in CELLS])
    copy = tmp_path / "kept" / path.name
    copy.parent.mkdir()
    shutil.copy(path, copy)
    again = _run(copy, ["case-4"])
    assert len(again.records) == 5
    assert dataclasses.asdict(again.runs[0])["id"] == "r1"
