"""Bad input, of every kind a reader of results meets: each exits 2 with one line that
names the file (or the argument), the field and what to do, and never a traceback.

The records go through the record's own checks (``CaseRecord.from_json``) and the
header through the results file's (``core.results.load_run``): nothing here is checked
by hand.
"""

from __future__ import annotations

import json

import pytest

from convbn_compat.__main__ import main
from convbn_compat.core.errors import Exit

from .test_report import DECOMPOSED, results_file


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _case(data, index=7):
    return data["cases"][index]


BAD_RESULTS = [
    # (what, change, the words that must be in the message)
    ("complete is a word", lambda d: d.update(complete="no"), "'complete' is 'no'"),
    ("complete is missing", lambda d: d.pop("complete"), "lacks 'complete'"),
    ("cases is not a list", lambda d: d.update(cases={}), "'cases' is {}; it must be a list"),
    ("cases is missing", lambda d: d.pop("cases"), "lacks 'cases'"),
    ("environment is missing", lambda d: d.pop("environment"), "lacks 'environment'"),
    ("environment without torch", lambda d: d["environment"].pop("torch"), "lacks 'torch'"),
    (
        "torch is not a version",
        lambda d: d["environment"].update(torch="latest"),
        "not a torch version",
    ),
    ("torch is a number", lambda d: d["environment"].update(torch=2.4), "'torch' is 2.4"),
    ("schema from the future", lambda d: d.update(schema_version=99), "schema version 99"),
    ("schema version is a word", lambda d: d.update(schema_version="1"), "'schema_version' is '1'"),
    (
        "an unknown release",
        lambda d: d.update(release="9.9"),
        "release '9.9' is not in the release table",
    ),
    ("an unknown flavour", lambda d: d.update(flavour="rocm"), "'flavour' is 'rocm'"),
    ("an unknown kind", lambda d: d.update(kind="bench"), "'kind' is 'bench'"),
    (
        "fire count is a word",
        lambda d: _case(d).update(fire_count="lots"),
        "'fire_count' is 'lots'",
    ),
    ("fire count is a float", lambda d: _case(d).update(fire_count=1.5), "'fire_count' is 1.5"),
    ("fire count is a bool", lambda d: _case(d).update(fire_count=True), "'fire_count' is True"),
    (
        "tf32 on a CPU record",
        lambda d: _case(d).update(tf32=True),
        "'tf32' is true on a CPU record",
    ),
    ("tf32 is a word", lambda d: _case(d).update(tf32="yes"), "'tf32' is 'yes'"),
    ("an unknown device", lambda d: _case(d).update(device="tpu"), "'device' is 'tpu'"),
    ("an unknown outcome", lambda d: _case(d).update(outcome="fuzed"), "'outcome' is 'fuzed'"),
    ("outcome missing", lambda d: _case(d).pop("outcome"), "'outcome' is missing"),
    (
        "an unknown expectation",
        lambda d: _case(d).update(expected_outcome="ok"),
        "'expected_outcome' is 'ok'",
    ),
    (
        "expected outcome missing",
        lambda d: _case(d).pop("expected_outcome"),
        "'expected_outcome' is missing",
    ),
    ("an unknown status", lambda d: _case(d).update(status="green"), "'status' is 'green'"),
    ("an unknown blame", lambda d: _case(d).update(blame="them"), "'blame' is 'them'"),
    ("id missing", lambda d: _case(d).pop("id"), "'id' is missing"),
    ("id is null", lambda d: _case(d).update(id=None), "'id' is null"),
    ("subset missing", lambda d: _case(d).pop("subset"), "'subset' is missing"),
    ("device missing", lambda d: _case(d).pop("device"), "'device' is missing"),
    ("seconds is a word", lambda d: _case(d).update(seconds="fast"), "'seconds' is 'fast'"),
    (
        "max abs error is a word",
        lambda d: _case(d).update(max_abs_error="0"),
        "'max_abs_error' is '0'",
    ),
    ("message is a number", lambda d: _case(d).update(message=3), "'message' is 3"),
    ("warnings is a string", lambda d: _case(d).update(warnings="w"), "'warnings' is 'w'"),
    ("warnings hold a number", lambda d: _case(d).update(warnings=[1]), "'warnings[0]' is 1"),
    ("shrunk is a word", lambda d: _case(d).update(shrunk="yes"), "'shrunk' is 'yes'"),
    ("a case is a list", lambda d: d["cases"].__setitem__(7, []), "it must be a JSON object"),
    ("a case is null", lambda d: d["cases"].__setitem__(7, None), "it must be a JSON object"),
]


@pytest.mark.parametrize(("what", "change", "says"), BAD_RESULTS, ids=[b[0] for b in BAD_RESULTS])
@pytest.mark.parametrize("command", ["report", "table"])
def test_a_bad_results_file_exits_2_naming_the_file_and_the_field(
    capsys, tmp_path, what, change, says, command
):
    folder = tmp_path / "results"
    folder.mkdir()
    path = results_file(folder, "2.4", "2.4.1")
    _edit(path, change)
    args = [command, folder, *(["-o", tmp_path / "r"] if command == "report" else [])]
    code, _, err = _run(capsys, *args)
    line = _one_line(err)
    assert code == Exit.BAD_INPUT, err
    assert str(path) in line
    assert says in line


BAD_BASELINES = [
    (
        "cell with an unknown outcome",
        lambda d: d["cells"][DECOMPOSED]["2.4/cpu/cpu"].update(outcome="x"),
        "'outcome' is 'x'",
    ),
    (
        "cell without fire count",
        lambda d: d["cells"][DECOMPOSED]["2.4/cpu/cpu"].pop("fire_count"),
        "'fire_count' is missing (null is allowed",
    ),
    (
        "cell with a word for fire count",
        lambda d: d["cells"][DECOMPOSED]["2.4/cpu/cpu"].update(fire_count="x"),
        "'fire_count' is 'x'",
    ),
    ("columns missing", lambda d: d.pop("columns"), "is a matrix missing or mangling 'columns'"),
    ("cells missing", lambda d: d.pop("cells"), "is a matrix missing or mangling 'cells'"),
    ("a column without release", lambda d: d["columns"][0].pop("release"), "'release'"),
    (
        "a cell keyed by a mangled column",
        lambda d: d["cells"][DECOMPOSED].update({"2.4": {}}),
        "not a column key",
    ),
    ("schema from the future", lambda d: d.update(schema_version=99), "schema version 99"),
]


@pytest.mark.parametrize(
    ("what", "change", "says"), BAD_BASELINES, ids=[b[0] for b in BAD_BASELINES]
)
def test_a_bad_baseline_exits_2_naming_it(capsys, tmp_path, what, change, says):
    folder = tmp_path / "results"
    folder.mkdir()
    results_file(folder, "2.4", "2.4.1")
    assert _run(capsys, "report", folder, "-o", tmp_path / "r")[0] == Exit.OK
    baseline = tmp_path / "r" / "matrix.json"
    _edit(baseline, change)
    code, _, err = _run(capsys, "report", folder, "-o", tmp_path / "r2", "--baseline", baseline)
    line = _one_line(err)
    assert code == Exit.BAD_INPUT
    assert str(baseline) in line
    assert says in line


BAD_ARGUMENTS = [
    (["report", "{results}", "-o", "{tmp}/r", "--no-fail-on", "banana"], "--no-fail-on 'banana'"),
    (["report", "{tmp}/nowhere"], "no results file or folder at"),
    (["report", "{results}", "-o", "{tmp}/missing/r"], "its parent folder"),
    (
        ["report", "{results}", "--baseline", "{tmp}/nowhere.json", "-o", "{tmp}/r"],
        "no results file or folder",
    ),
    (["repro", "ConvOp-bias-Conv2d-bn-module", "--tf32"], "--tf32 is for CUDA cells"),
    (["repro", "Config-float16-Conv2d-bn-module"], "runs on cuda, not cpu"),
    (["repro", "NoSuchCase"], "no case 'NoSuchCase'"),
    (["repro", "ConvOp-bias-Conv2d-bn-module", "--release", "9.9"], "unknown release '9.9'"),
    (["repro", "Gen-Conv2d-module-c1x1-k5-x1x1x2x2"], "output would be empty"),
    (["repro", "Gen-Conv2d-nope-c1x1-k1-x1x1x2x2"], "unknown call style 'nope'"),
    (["repro", "ConvOp-bias-Conv2d-bn-module", "-o", "{tmp}"], "is a folder"),
    (["table", "{results}", "-o", "{tmp}/missing/t.md"], "does not exist"),
    (["propose", "{tmp}/nowhere.json"], "cannot read results file"),
    (["propose", "{results}/tests-2.4-cpu.json"], "is not a fuzz run's results"),
    (["propose", "{results}/tests-2.4-cpu.json", "--releases", "2.4"], "not a fuzz run"),
]


@pytest.mark.parametrize(
    ("argv", "says"),
    BAD_ARGUMENTS,
    ids=[" ".join(a[:2]) + f" {i}" for i, (a, _) in enumerate(BAD_ARGUMENTS)],
)
def test_a_bad_argument_exits_2_with_one_line(capsys, tmp_path, argv, says):
    folder = tmp_path / "results"
    folder.mkdir()
    results_file(folder, "2.4", "2.4.1")
    args = [a.format(results=folder, tmp=tmp_path) for a in argv]
    code, _, err = _run(capsys, *args)
    line = _one_line(err)
    assert code == Exit.BAD_INPUT
    assert says in line


def test_unexpected_cells_exit_1_and_say_so(capsys, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    results_file(folder, "2.4", "2.4.1", {DECOMPOSED: "error"}, as_expected=False)
    code, out, _ = _run(capsys, "report", folder, "-o", tmp_path / "r")
    assert code == Exit.FINDINGS
    lines = out.splitlines()
    # The verdict leads, then the cell with the command that reruns exactly it.
    assert lines[0] == "VERDICT: 1 UNEXPECTED cells in 1 cases (exit 1)"
    assert lines[1].startswith(f"  UNEXPECTED {DECOMPOSED} @ 2.4/cpu/cpu: error (expected fused)")
    assert f"test_conv_bn_eval[{DECOMPOSED}-cpu]" in lines[1]
    # Reported only, for a release named in --no-fail-on.
    code, out, _ = _run(capsys, "report", folder, "-o", tmp_path / "r2", "--no-fail-on", "2.4")
    assert code == Exit.OK
    assert out.startswith("VERDICT: 1 UNEXPECTED cells, all in releases of --no-fail-on 2.4")
