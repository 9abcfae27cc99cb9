"""The bad-input suite (issue #30): every category of bad input, against every command
that reads it. ``report`` and ``table`` read results folders and files, ``triage`` and
``propose`` one fuzz run's file (``propose`` refuses before it builds any environment).

Each input exits 2 with one line on stderr that names the file (or the argument) and
the field, and no traceback anywhere; an input that is legitimate but flagged exits as
the README's table says. The inputs are data (``FILE_EDITS``, ``TABLE_EDITS``, ...), and
``test_the_suite_holds_at_least_150_inputs`` counts them, (input, command) runs, so that
the suite cannot shrink unnoticed.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from convbn_compat.__main__ import main
from convbn_compat.core import causes, expectations
from convbn_compat.core.errors import Exit
from convbn_compat.tools import propose

from .test_report import DECOMPOSED, results_file

ROOT = Path(__file__).resolve().parents[2]
BASES = {
    "tests": ROOT / "docs/results/tests-2.4-cpu.json",
    "fuzz": ROOT / "docs/fuzz/fuzz-2.15-cpu-10min-fresh-clone.json",
    "benefit": ROOT / "docs/benefit/benefit-2.4-cpu.json",
    "reach": ROOT / "docs/reach/reach-2.4-cpu.json",
}
"""Committed files of each kind, copied and edited into each bad input."""
COMMANDS = ("report", "table", "triage", "propose")
MAX_LINE = 1000
"""No refusal is longer than this, whatever the input holds (a megabyte-long key)."""


# -- running a command, and what every refusal must be ---------------------------


@pytest.fixture(autouse=True)
def _no_environment_is_built(monkeypatch):
    """``propose`` runs from the checkout (past its noxfile check); it must refuse bad
    input before it replays anything in a release's environment."""
    monkeypatch.chdir(ROOT)

    def replay(*args, **kwargs):
        pytest.fail("propose went on to build environments for bad input")

    monkeypatch.setattr(propose, "replay", replay)


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _refused(capsys, argv, *says) -> str:
    """Run ``argv``: exit 2, one line on stderr holding every one of ``says``, and no
    traceback in either stream."""
    code, out, err = _run(capsys, *argv)
    assert "Traceback" not in out + err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err[:2000]
    line = lines[0]
    assert code == Exit.BAD_INPUT, line
    assert len(line) <= MAX_LINE, line[:MAX_LINE]
    for word in says:
        assert str(word) in line, line
    return line


def _argv(command: str, path: Path, tmp_path: Path) -> list:
    if command == "report":
        return ["report", path, "-o", tmp_path / "report"]
    return [command, path]


# -- building bad files ----------------------------------------------------------


class Raw(str):
    """A value written as it is, not as a JSON string: ``Raw("NaN")``."""


def _dump(data: object) -> str:
    """JSON text with each ``Raw`` value written bare."""

    def mark(value):
        if isinstance(value, Raw):
            return f"@@RAW@@{value}@@RAW@@"
        if isinstance(value, dict):
            return {mark(k): mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(data), indent=1)
    return re.sub(r'"@@RAW@@(.*?)@@RAW@@"', lambda m: json.loads(f'"{m[1]}"'), text)


def _case(data: dict, index: int = 7) -> dict:
    return data["cases"][index]


def _set(path: str, value) -> Callable[[dict], None]:
    """An edit that puts ``value`` at ``path`` (``fuzz.causes.0.links``; ``-`` deletes)."""

    def edit(data: dict) -> None:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key = int(last) if isinstance(node, list) else last
        if value == "-":
            del node[key]
        else:
            node[key] = value

    return edit


def _both(*edits: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        for one in edits:
            one(data)

    return edit


def _repeat_case(data: dict) -> None:
    data["cases"].append(dict(data["cases"][3]))


def _nested(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


@dataclass(frozen=True)
class FileEdit:
    """One bad results file: a committed file of ``base``'s kind, edited."""

    what: str
    base: str
    edit: Callable[[dict], None] | None = None
    """A change to the parsed document (the file is written back from it)."""
    text: Callable[[str], str | bytes] | None = None
    """A change to the file's text (for what a document cannot hold)."""
    says: tuple[str, ...] = ()
    """Words the line holds besides the file's path: the field, what it holds."""


def _e(what, base, edit, *says) -> FileEdit:
    return FileEdit(what, base, edit=edit, says=says)


def _t(what, base, text, *says) -> FileEdit:
    return FileEdit(what, base, text=text, says=says)


BIG = 1_000_000
FILE_EDITS = [
    # 1. One cell twice in one file.
    _e("a tests file holds one cell twice", "tests", _repeat_case, "cases[", "repeats cases[3]"),
    _e("a fuzz file holds one cell twice", "fuzz", _repeat_case, "repeats cases[3]"),
    # 2. Numbers JSON cannot hold, anywhere.
    _e("NaN in a case field", "tests", lambda d: _case(d).update(max_abs_error=Raw("NaN")),
       "cases[7].max_abs_error", "NaN"),
    _e("Infinity in a fuzz figure", "fuzz", _set("fuzz.elapsed_s", Raw("Infinity")),
       "fuzz.elapsed_s", "Infinity"),
    _e("-Infinity in a fuzz count", "fuzz", _set("fuzz.counts.fused", Raw("-Infinity")),
       "fuzz.counts.fused", "-Infinity"),
    _e("-Infinity in a benefit summary", "benefit",
       _set("benefit.summary.memory_saved_vs_off", Raw("-Infinity")),
       "benefit.summary.memory_saved_vs_off", "-Infinity"),
    _e("NaN in a benefit measurement", "benefit", _set("benefit.configs.on.step_s", Raw("NaN")),
       "benefit.configs.on.step_s", "NaN"),
    _e("NaN in a benefit step list", "benefit",
       _set("benefit.configs.on.step_s_all.2", Raw("NaN")), "benefit.configs.on.step_s_all[2]"),
    _e("1e999 (infinity) in a case's seconds", "tests",
       lambda d: _case(d).update(seconds=Raw("1e999")), "cases[7].seconds", "1e999"),
    _e("-1e999 in a benefit ratio", "benefit",
       _set("benefit.summary.step_time_on_over_off", Raw("-1e999")),
       "benefit.summary.step_time_on_over_off"),
    _e("NaN as the environment's cudnn", "tests", _set("environment.cudnn", Raw("NaN")),
       "environment.cudnn"),
    _e("NaN in a reach case", "reach", lambda d: _case(d, 0).update(fire_count=Raw("NaN")),
       "cases[0].fire_count"),
    # 3. Sections of the wrong shape.
    _e("fuzz is a list", "fuzz", _set("fuzz", []), "'fuzz' is []"),
    _e("fuzz is a string", "fuzz", _set("fuzz", "done"), "'fuzz' is 'done'"),
    _e("fuzz is null", "fuzz", _set("fuzz", None), "'fuzz' is null"),
    _e("fuzz counts is a list", "fuzz", _set("fuzz.counts", [1, 2]), "fuzz.counts"),
    _e("a fuzz count is a word", "fuzz", _set("fuzz.counts.error", "many"), "fuzz.counts.error"),
    _e("fuzz triage is a list", "fuzz", _set("fuzz.triage", []), "fuzz.triage"),
    _e("a fuzz triage entry is a number", "fuzz", _set("fuzz.triage.linear-3d-input", 3),
       "fuzz.triage.linear-3d-input"),
    _e("a fuzz triage entry lacks its representative", "fuzz",
       _set("fuzz.triage.linear-3d-input.representative", "-"), "representative"),
    _e("a fuzz triage entry's when is a list", "fuzz",
       _set("fuzz.triage.linear-3d-input.when", ["Linear"]), "fuzz.triage.linear-3d-input.when"),
    _e("fuzz causes is an object", "fuzz", _set("fuzz.causes", {}), "fuzz.causes"),
    _e("a fuzz cause is a string", "fuzz", _set("fuzz.causes.0", "x"), "fuzz.causes[0]"),
    _e("a fuzz cause's links is a string", "fuzz",
       _set("fuzz.causes.0.links", "https://github.com/pytorch/pytorch/issues/1"),
       "fuzz.causes[0].links"),
    _e("a fuzz cause's examples is a word", "fuzz", _set("fuzz.causes.0.examples", "lots"),
       "fuzz.causes[0].examples"),
    _e("fuzz workers is a fraction", "fuzz", _set("fuzz.workers", 1.5), "fuzz.workers"),
    _e("benefit is a list", "benefit", _set("benefit", []), "'benefit' is []"),
    _e("benefit configs is a list", "benefit", _set("benefit.configs", []), "benefit.configs"),
    _e("a benefit config is a number", "benefit", _set("benefit.configs.on", 1),
       "benefit.configs.on"),
    _e("benefit summary is a list", "benefit", _set("benefit.summary", [0.4]), "benefit.summary"),
    _e("a benefit summary value is a word", "benefit",
       _set("benefit.summary.memory_saved_vs_off", "40%"), "benefit.summary.memory_saved_vs_off"),
    _e("benefit input is a string", "benefit", _set("benefit.input", "8x3x56x56"),
       "benefit.input"),
    _e("benefit step list is a number", "benefit", _set("benefit.configs.on.step_s_all", 0.05),
       "benefit.configs.on.step_s_all"),
    _e("benefit figures is a list", "benefit", _set("benefit.pr_figures_gb", [1.0]),
       "benefit.pr_figures_gb"),
    _e("benefit lacks its model", "benefit", _set("benefit.model", "-"), "'model' is missing"),
    _e("environment is a list", "tests", _set("environment", []), "'environment' is []"),
    _e("environment is a string", "fuzz", _set("environment", "2.15.0"), "'environment'"),
    _e("environment gpus is an object", "tests", _set("environment.gpus", {}),
       "environment.gpus"),
    _e("a gpu is a string", "tests", _set("environment.gpus", ["H100"]),
       "environment.gpus[0]"),
    _e("a gpu's name is a number", "tests",
       _set("environment.gpus", [{"name": 100, "capability": "9.0"}]),
       "environment.gpus[0].name"),
    _e("environment cpu count is a word", "reach", _set("environment.cpu_count", "two"),
       "environment.cpu_count"),
    _e("install is a list", "tests", _set("install", ["uv"]), "'install'"),
    _e("install is a string", "fuzz", _set("install", "uv"), "'install'"),
    _e("install commands is a string", "tests", _set("install.commands", "pip install torch"),
       "install.commands"),
    _e("install compile_bytecode is a word", "fuzz", _set("install.compile_bytecode", "yes"),
       "install.compile_bytecode"),
    _e("runs is an object", "tests", _set("runs", {}), "'runs' is {}"),
    _e("a run is a string", "tests", _set("runs.0", "r1"), "runs[0]"),
    _e("a run's id is a number", "fuzz", _set("runs.0.id", 1), "runs[0].id"),
    _e("a run's start is a number", "tests", _set("runs.0.started", 20261126), "runs[0].started"),
    _e("a run's cells is a word", "reach", _set("runs.0.cells", "nine"), "runs[0].cells"),
    _e("a run lacks its id", "tests", _set("runs.0.id", "-"), "runs[0]", "'id' is missing"),
    _e("a selection is a string", "tests", _set("runs.0.selection", "all"),
       "runs[0].selection"),
    _e("a selection's args is a string", "tests",
       _set("runs.0.selection", {"args": "tests/", "selected": 1, "full": False}),
       "runs[0].selection.args"),
    _e("a selection's count is a word", "tests",
       _set("runs.0.selection", {"args": [], "selected": "all", "full": True}),
       "runs[0].selection.selected"),
    _e("a selection lacks full", "tests",
       _set("runs.0.selection", {"args": [], "selected": 132}), "'full' is missing"),
    # 4. A run marked complete that holds no cases.
    _e("a complete tests run with no cases", "tests", _set("cases", []),
       "marked complete with no cases"),
    _e("a complete reach run with no cases", "reach", _set("cases", []),
       "marked complete with no cases"),
    _e("a complete benefit run without its section", "benefit", _set("benefit", "-"),
       "without its 'benefit' section"),
    # 7. What a parser meets: huge, deep, broken, foreign.
    _e("a 5,000-digit integer", "tests", lambda d: _case(d).update(fire_count=Raw("1" * 5000)),
       "cases[7].fire_count", "5000-digit"),
    _e("a 30-digit integer", "fuzz", _set("fuzz.examples", Raw("9" * 30)), "fuzz.examples"),
    _e("a 5,000-digit fraction", "benefit",
       _set("benefit.configs.on.step_s", Raw("9" * 5000 + ".0")), "benefit.configs.on.step_s"),
    _t("a file that is one 5,000-digit integer", "tests", lambda _: "7" * 5000, "5000-digit"),
    _t("100,000 levels of nested arrays", "tests", lambda _: "[" * 100_000 + "]" * 100_000,
       "nests 100000 levels"),
    _e("100,000 levels of nested arrays in a field", "fuzz",
       _set("fuzz.counts", _nested(100_000)), "levels deep", "past 64"),
    _e("65 levels of nested arrays in a field", "tests",
       lambda d: _case(d).update(warnings=_nested(62)), "nests 65 levels deep"),
    _e("a megabyte-long key", "tests", lambda d: d.update({"k" * BIG: 1}), "kkkk"),
    _e("a megabyte-long release", "tests", _set("release", "2" * BIG), "release"),
    _e("a megabyte-long torch version", "fuzz", _set("environment.torch", "2." + "1" * BIG),
       "environment.torch"),
    _e("a megabyte-long outcome", "tests", lambda d: _case(d).update(outcome="x" * BIG),
       "cases[7]", "outcome"),
    _e("a megabyte-long case id, twice", "tests",
       lambda d: d["cases"].extend([{**d["cases"][0], "id": "C" * BIG}] * 2), "repeats"),
    _t("bytes that are not UTF-8", "tests", lambda t: t.encode().replace(b'"cpu"', b'"cp\xe9"', 1),
       "not UTF-8", "byte 0xe9"),
    _t("a UTF-16 file", "fuzz", lambda t: t.encode("utf-16"), "not UTF-8"),
    _t("a byte order mark", "tests", lambda t: "\ufeff" + t, "not valid JSON"),
    _e("a lone surrogate in a message", "tests",
       lambda d: _case(d).update(message=Raw('"\\ud800"')), "cases[7].message", "surrogate"),
    _e("a lone surrogate in a key", "fuzz", _set("fuzz.counts", {Raw('"\\udfff"'): 1}),
       "fuzz.counts", "surrogate"),
    _t("an empty file", "tests", lambda _: "", "not valid JSON"),
    _t("a file of blanks", "reach", lambda _: "  \n\n ", "not valid JSON"),
    _t("truncated JSON", "tests", lambda t: t[: len(t) // 2], "not valid JSON", "line"),
    _t("JSON and then more", "fuzz", lambda t: t + "{}", "not valid JSON", "Extra data"),
    _t("a key twice in one object", "tests",
       lambda t: t.replace('"complete": true,', '"complete": true, "complete": false,', 1),
       "the top level", "'complete' twice"),
    _t("a JSON array at the top level", "fuzz", lambda t: f"[{t}]",
       "not a convbn-compat results file", "schema"),
    _t("a string at the top level", "tests", lambda _: '"results"',
       "not a convbn-compat results file"),
    _t("null at the top level", "tests", lambda _: "null", "not a convbn-compat results file"),
    _e("another document's schema", "tests", _set("schema", "convbn-compat/matrix"),
       "its schema is 'convbn-compat/matrix'"),
    _e("no schema", "fuzz", _set("schema", "-"), "not a convbn-compat results file"),
    _e("a schema from the future", "tests", _set("schema_version", 99), "schema version 99",
       "upgrade"),
    _e("a schema from the future, in a fuzz file", "fuzz", _set("schema_version", 3),
       "schema version 3"),
    _e("schema version is a bool", "tests", _set("schema_version", True),
       "'schema_version' is True"),
    _e("schema version is a word", "fuzz", _set("schema_version", "2"),
       "'schema_version' is '2'"),
    _e("schema version is 0", "reach", _set("schema_version", 0), "'schema_version' is 0"),
    _e("schema version is missing", "benefit", _set("schema_version", "-"),
       "'schema_version' is missing"),
    # 8. What the schema cannot say.
    _e("a release that is not its torch", "fuzz", _set("release", "2.4"),
       "release '2.4' but environment.torch is 2.15.0"),
    _e("nightly with a release torch", "tests", _set("release", "nightly"),
       "release 'nightly' but environment.torch is 2.4.1"),
    _e("an unknown release", "reach", _set("release", "9.9"), "release '9.9'"),
    _e("an unknown kind", "fuzz", _set("kind", "search"), "'kind' is 'search'"),
    _e("a fuzz section in a tests file", "tests", _set("fuzz", {"examples": 3}),
       "a 'fuzz' section in a file of kind 'tests'"),
    _e("a benefit section in a fuzz file", "fuzz",
       _set("benefit", {"model": "small", "device": "cpu", "configs": {}}),
       "a 'benefit' section in a file of kind 'fuzz'"),
    _e("a case names a run the file lacks", "tests", lambda d: _case(d).update(run="r9"),
       "cases[7]", "names run 'r9'"),
    _e("two runs share an id", "fuzz", lambda d: d["runs"].append(dict(d["runs"][0])),
       "two runs share an id"),
    _e("a fire count of -5", "tests", lambda d: _case(d).update(fire_count=-5),
       "cases[7]", "'fire_count' is -5"),
    _e("a search of -1 examples", "fuzz", _set("fuzz.examples", -1), "'examples' is -1"),
    _e("a benefit fire count of -1", "benefit", _set("benefit.configs.on.fire_count", -1),
       "benefit.configs.on.fire_count"),
    _e("a negative cpu count", "tests", _set("environment.cpu_count", -2),
       "environment.cpu_count"),
    _e("a negative exit status", "fuzz", _set("pytest_exitstatus", -1), "pytest_exitstatus"),
    _e("tf32 on a CPU record", "fuzz", lambda d: _case(d, 0).update(tf32=True),
       "'tf32' is true on a CPU record"),
    _e("a start that is not a time", "tests", _set("started", "yesterday"), "'started'"),
    _e("a start that is no date", "tests", _set("started", "2026-13-45T99:99:99+00:00"),
       "started", "2026-13-45"),
    _e("a run's start that is not a time", "fuzz", _set("runs.0.started", "yesterday"),
       "runs[0].started", "yesterday"),
    _e("a run's end that is no date", "reach", _set("runs.0.finished", "2026-02-30T00:00:00"),
       "runs[0].finished", "2026-02-30"),
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("bad", FILE_EDITS, ids=[f"{b.base}: {b.what}" for b in FILE_EDITS])
def test_a_bad_results_file_exits_2_naming_the_file_and_the_field(
    capsys, tmp_path, bad: FileEdit, command: str
):
    path = tmp_path / BASES[bad.base].name
    original = BASES[bad.base].read_text(encoding="utf-8")
    if bad.edit is not None:
        data = json.loads(original)
        bad.edit(data)
        written: str | bytes = _dump(data)
    else:
        written = bad.text(original)
    if isinstance(written, str):
        written = written.encode("utf-8", "surrogatepass")
    path.write_bytes(written)
    _refused(capsys, _argv(command, path, tmp_path), path, *bad.says)
    assert not (tmp_path / "report").exists(), "a refused report wrote its folder"


NOT_SEARCHES = ("tests", "reach", "benefit")


@pytest.mark.parametrize("base", NOT_SEARCHES)
@pytest.mark.parametrize("command", ["triage", "propose"])
def test_triage_and_propose_refuse_a_run_that_is_not_a_search(capsys, tmp_path, base, command):
    path = Path(shutil.copy(BASES[base], tmp_path))
    _refused(capsys, [command, path], path, f"its kind is '{base}'", "not a fuzz run")


NOT_MATRIX = ("fuzz", "reach", "benefit")


@pytest.mark.parametrize("base", NOT_MATRIX)
def test_table_refuses_a_file_that_holds_no_matrix_cells(capsys, tmp_path, base):
    path = Path(shutil.copy(BASES[base], tmp_path))
    _refused(capsys, ["table", path], path, f"they hold {base} results", "no matrix cells")


# -- 1. Two files that hold one cell ---------------------------------------------


def _column_file(folder: Path, name: str, started: str, outcome: str = "fused") -> Path:
    """A tests-2.4-cpu results file named ``name``, whose run started at ``started``,
    with ``outcome`` (as expected) for DECOMPOSED."""
    path = results_file(folder, "2.4", "2.4.1", {DECOMPOSED: outcome})
    data = json.loads(path.read_text())
    data["started"] = started
    path.unlink()
    target = folder / name
    target.write_text(json.dumps(data))
    return target


LATER_BY_NAME = {"the later run's file named first": "a.json", "named last": "z.json"}
COLUMN = "2.4/cpu/cpu"


@pytest.mark.parametrize("command", ["report", "table"])
@pytest.mark.parametrize("later_name", LATER_BY_NAME.values(), ids=list(LATER_BY_NAME))
def test_a_cell_two_files_hold_comes_from_the_later_run_whatever_the_names(
    capsys, tmp_path, command, later_name
):
    folder = tmp_path / "results"
    folder.mkdir()
    earlier_name = "z.json" if later_name == "a.json" else "a.json"
    later = _column_file(folder, later_name, "2026-12-02T00:00:00+00:00", "wrong-result")
    earlier = _column_file(folder, earlier_name, "2026-12-01T00:00:00+00:00")
    code, out, err = _run(capsys, *_argv(command, folder, tmp_path))
    assert (code, err) == (Exit.OK, "")
    if command == "table":
        row = next(line for line in out.splitlines() if f"`{DECOMPOSED}`" in line)
        assert "✗" in row
        return
    data = json.loads((tmp_path / "report/matrix.json").read_text())
    assert data["cells"][DECOMPOSED][COLUMN]["outcome"] == "wrong-result"
    named = [s for s in data["superseded"] if s.startswith(f"{DECOMPOSED} in {COLUMN}")]
    assert named == [
        f"{DECOMPOSED} in {COLUMN}: {later} (run of 2026-12-02T00:00:00+00:00) over "
        f"{earlier} (run of 2026-12-01T00:00:00+00:00)"
    ]
    assert f"- {named[0]}" in (tmp_path / "report/matrix.md").read_text()


@pytest.mark.parametrize("command", ["report", "table"])
def test_runs_are_ordered_by_the_moment_they_started_not_by_the_text(capsys, tmp_path, command):
    """23:30 at -01:00 is 00:30 UTC: later than 00:00 UTC, though its text sorts first."""
    folder = tmp_path / "results"
    folder.mkdir()
    _column_file(folder, "a.json", "2026-12-01T23:30:00-01:00", "wrong-result")
    _column_file(folder, "b.json", "2026-12-02T00:00:00+00:00")
    code, out, err = _run(capsys, *_argv(command, folder, tmp_path))
    assert (code, err) == (Exit.OK, "")
    if command == "table":
        assert "✗" in next(line for line in out.splitlines() if f"`{DECOMPOSED}`" in line)
    else:
        data = json.loads((tmp_path / "report/matrix.json").read_text())
        assert data["cells"][DECOMPOSED][COLUMN]["outcome"] == "wrong-result"


SAME_MOMENT = {
    "the same second": ("2026-12-01T00:00:00+00:00", "2026-12-01T00:00:00+00:00"),
    "the same moment at two offsets": ("2026-12-01T01:00:00+01:00", "2026-12-01T00:00:00Z"),
}


@pytest.mark.parametrize("command", ["report", "table"])
@pytest.mark.parametrize("moments", SAME_MOMENT.values(), ids=list(SAME_MOMENT))
def test_two_outcomes_of_one_cell_from_one_moment_exit_2(capsys, tmp_path, command, moments):
    folder = tmp_path / "results"
    folder.mkdir()
    one = _column_file(folder, "one.json", moments[0], "wrong-result")
    other = _column_file(folder, "other.json", moments[1])
    _refused(capsys, _argv(command, folder, tmp_path), one, other, DECOMPOSED, "runs[].started")


@pytest.mark.parametrize("command", ["report", "table"])
def test_one_cell_from_one_moment_with_one_outcome_is_read_once(capsys, tmp_path, command):
    folder = tmp_path / "results"
    folder.mkdir()
    _column_file(folder, "one.json", "2026-12-01T00:00:00+00:00")
    _column_file(folder, "copy.json", "2026-12-01T00:00:00+00:00")
    code, _, err = _run(capsys, *_argv(command, folder, tmp_path))
    assert (code, err) == (Exit.OK, "")


# -- 2. What the report writes is strict JSON ------------------------------------


def _strict(text: str) -> object:
    def refuse(name):
        raise AssertionError(f"{name} in the report's JSON: a browser's JSON.parse refuses it")

    return json.loads(text, parse_constant=refuse)


def test_the_report_writes_json_a_browser_parses(capsys, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    for base in BASES.values():
        shutil.copy(base, folder)
    code, _, err = _run(capsys, "report", folder, "-o", tmp_path / "report")
    assert code in (Exit.OK, Exit.FINDINGS), err
    _strict((tmp_path / "report/matrix.json").read_text(encoding="utf-8"))
    page = (tmp_path / "report/matrix.html").read_text(encoding="utf-8")
    embedded = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page)
    assert embedded, "the page embeds its data"
    _strict(embedded[1])


# -- 4. Baselines, and empty arguments -------------------------------------------


def _baseline_matrix(tmp_path: Path, capsys) -> Path:
    folder = tmp_path / "results"
    folder.mkdir(exist_ok=True)
    results_file(folder, "2.4", "2.4.1")
    assert _run(capsys, "report", folder, "-o", tmp_path / "old")[0] == Exit.OK
    return tmp_path / "old/matrix.json"


def _matrix_edit(change: Callable[[dict], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        data = json.loads(text)
        change(data)
        return _dump(data)

    return edit


BAD_BASELINES = {
    "a matrix with no columns": (
        _matrix_edit(lambda d: d.update(columns=[], cells={})),
        "no columns",
    ),
    "garbage": (lambda _: "this is not JSON", "not valid JSON"),
    "an empty file": (lambda _: "", "not valid JSON"),
    "another program's document": (
        lambda _: json.dumps({"schema": "coverage/data", "files": {}}),
        "its schema is 'coverage/data'",
    ),
    "a JSON array": (lambda _: "[1, 2]", "neither a report's matrix.json nor a results file"),
    "a matrix whose schema version is a bool": (
        _matrix_edit(lambda d: d.update(schema_version=True)),
        "schema version True",
    ),
    "a matrix whose schema version is a word": (
        _matrix_edit(lambda d: d.update(schema_version="2")),
        "schema version '2'",
    ),
    "a matrix with columns as an object": (
        _matrix_edit(lambda d: d.update(columns={"2.4": {}})),
        "'columns'",
    ),
    "a matrix with cells as a list": (_matrix_edit(lambda d: d.update(cells=[])), "'cells'"),
    "a matrix cell of NaN fires": (
        _matrix_edit(lambda d: d["cells"][DECOMPOSED][COLUMN].update(fire_count=Raw("NaN"))),
        f"cells.{DECOMPOSED}.{COLUMN}.fire_count",
    ),
    "a results file from the future": (
        lambda _: BASES["tests"].read_text().replace('"schema_version": 2', '"schema_version": 99'),
        "schema version 99",
    ),
    "a complete results file with no cases": (
        lambda _: _dump({**json.loads(BASES["tests"].read_text()), "cases": []}),
        "marked complete with no cases",
    ),
}


@pytest.mark.parametrize("what", list(BAD_BASELINES))
def test_a_bad_baseline_exits_2_naming_it(capsys, tmp_path, what):
    edit, says = BAD_BASELINES[what]
    baseline = _baseline_matrix(tmp_path, capsys)
    baseline.write_text(edit(baseline.read_text()), encoding="utf-8")
    argv = ["report", tmp_path / "results", "-o", tmp_path / "new", "--baseline", baseline]
    _refused(capsys, argv, baseline, says)
    assert not (tmp_path / "new").exists()


EMPTY_ARGUMENTS = {
    "report -o ''": (["report", "{results}", "-o", ""], "-o is empty or '.'"),
    "table -o ''": (["table", "{results}", "-o", ""], "-o is empty or '.'"),
    "propose -o ''": (["propose", "{fuzz}", "-o", ""], "-o is empty or '.'"),
    # argparse reads '' as the path '.': the current folder, here the checkout's root.
    "report --baseline ''": (
        ["report", "{results}", "-o", "{tmp}/r", "--baseline", ""],
        ". holds no results files",
    ),
    "report ''": (["report", "", "-o", "{tmp}/r"], ". holds no results files"),
    "table ''": (["table", ""], ". holds no results files"),
    "triage ''": (["triage", ""], "cannot read results file .: Is a directory"),
    "propose ''": (["propose", ""], "cannot read results file .: Is a directory"),
}


@pytest.mark.parametrize("what", list(EMPTY_ARGUMENTS))
def test_an_empty_argument_exits_2_naming_it(capsys, tmp_path, what):
    argv, says = EMPTY_ARGUMENTS[what]
    folder = tmp_path / "results"
    folder.mkdir()
    results_file(folder, "2.4", "2.4.1")
    fuzz = shutil.copy(BASES["fuzz"], tmp_path)
    argv = [a.format(results=folder, fuzz=fuzz, tmp=tmp_path) for a in argv]
    _refused(capsys, argv, says)


# -- 5. Output that cannot be written --------------------------------------------


def _read_only_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def _dangling_link(tmp_path: Path) -> Path:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    return link


def _full_disk(monkeypatch) -> None:
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("mine\n")
    return path


ROOT_WRITES_ANYWHERE = sys.platform == "win32" or os.geteuid() == 0
SYSFS = Path("/sys")


@dataclass(frozen=True)
class Output:
    """One -o that cannot be written: ``where(tmp_path)`` gives the -o (after
    ``prepare(monkeypatch)``, where the fault is the machine's)."""

    what: str
    command: str
    where: Callable[[Path], Path]
    says: tuple[str, ...]
    prepare: Callable | None = None
    skip: str = ""


def _o(what, command, where, *says, prepare=None, skip="") -> Output:
    return Output(what, command, where, says, prepare, skip)


OUTPUTS = [
    *(
        _o("a folder it may not write", command,
           lambda t, name=name: _read_only_folder(t) / name, "cannot write", "Permission denied",
           skip="root writes anywhere" if ROOT_WRITES_ANYWHERE else "")
        for command, name in (("report", "report"), ("table", "t.md"))
    ),
    *(
        _o("a read-only file system", command, lambda _, name=name: SYSFS / name,
           "cannot write", skip="" if SYSFS.is_dir() else "no /sys here")
        for command, name in (("report", "convbn-report"), ("table", "convbn-table.md"))
    ),
    *(
        _o("a link to nothing", command, _dangling_link, "is a link to", "does not exist")
        for command in ("report", "table", "propose")
    ),
    *(
        _o("a full disk", command, lambda t, name=name: t / name, "no space left",
           prepare=_full_disk)
        for command, name in (("report", "report"), ("table", "t.md"))
    ),
    _o("a file where the folder goes", "report", _a_file, "is a file"),
    _o("a folder where the file goes", "table", lambda t: t, "is a folder"),
    _o("a folder where the file goes", "propose", lambda t: t, "is a folder"),
    *(
        _o("a file above it", command, lambda t: _a_file(t) / "inside", "is a file, not a folder")
        for command in ("report", "table", "propose")
    ),
]  # fmt: skip


@pytest.mark.parametrize("out", OUTPUTS, ids=[f"{o.command} -o {o.what}" for o in OUTPUTS])
def test_output_that_cannot_be_written_exits_2_naming_it(capsys, tmp_path, monkeypatch, out):
    if out.skip:
        pytest.skip(out.skip)
    folder = tmp_path / "results"
    folder.mkdir()
    results_file(folder, "2.4", "2.4.1")
    target = out.where(tmp_path)
    given = folder
    if out.command == "propose":
        given = shutil.copy(BASES["fuzz"], tmp_path / "given.json")
    if out.prepare:
        out.prepare(monkeypatch)
    _refused(capsys, [out.command, given, "-o", target], target, *out.says)


# -- 6. Hand-edited tables -------------------------------------------------------


@dataclass(frozen=True)
class TableEdit:
    what: str
    module: object
    """``causes`` or ``expectations``: whose DEFAULT_FILE the edit replaces."""
    edit: Callable[[str], str | bytes]
    says: tuple[str, ...]


def _sub(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, f"the table no longer holds {old!r}: update this edit"
        return text.replace(old, new, 1)

    return edit


def _first_row_again(header: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        first = text.index(header)
        return text + "\n" + text[first : text.index(header, first + 1)]

    return edit


FIRST_CAUSE = '[[cause]]\nid = "convtranspose-groups"'
TABLE_EDITS = [
    TableEdit("an unquoted release", causes, _sub('releases = ">=2.2"', "releases = 2.5"),
              ("[[cause]] #1", "'releases'")),
    TableEdit("a release range that is no range", causes,
              _sub('releases = ">=2.2"', 'releases = "banana"'), ("'releases'", "banana")),
    TableEdit("links as one string", causes,
              _sub('links = ["https://github.com/pytorch/pytorch/issues/180995"]',
                   'links = "https://github.com/pytorch/pytorch/issues/180995"'),
              ("[[cause]] #1", "'links'")),
    TableEdit("when as a string", causes,
              _sub('when = { transposed = [true], grouped = [true], outcome = ["error", '
                   '"wrong-result"] }', 'when = "transposed"'), ("'when'",)),
    TableEdit("a when value that is no list", causes,
              _sub("input_rank = [3]", "input_rank = 3"), ("'when.input_rank'",)),
    TableEdit("a when naming no feature", causes,
              _sub("transposed = [true], grouped", "colour = [true], grouped"), ("colour",)),
    TableEdit("a when value of another kind", causes,
              _sub('layer = ["Linear"]', 'layer = ["Conv9d"]'), ("Conv9d",)),
    TableEdit("a crash line that is no regex", causes,
              _sub(r"line = 'assert len\(bn_node\.args\) == 8'", "line = 'assert len(bn_node'"),
              ("'crash.line'",)),
    TableEdit("two rows of one id", causes, _first_row_again("[[cause]]"),
              ("convtranspose-groups",)),
    TableEdit("a row without a title", causes,
              _sub('title = "ConvTranspose with groups', 'about = "ConvTranspose with groups'),
              ("[[cause]] #1",)),
    TableEdit("broken TOML", causes, lambda t: t + "\n[[cause]\n", ("at line 62",)),
    TableEdit("bytes that are not UTF-8", causes,
              lambda t: t.encode().replace(b"ConvTranspose", b"Conv\xe9", 1),
              ("can't decode byte 0xe9",)),
    TableEdit("an unquoted release", expectations, _sub('releases = "<2.4"', "releases = 2.4"),
              ("[[expect]] #1", "'releases'")),
    TableEdit("links as one string", expectations,
              _sub('links = ["https://github.com/pytorch/pytorch/pull/123680"]',
                   'links = "https://github.com/pytorch/pytorch/pull/123680"'),
              ("[[expect]] #1", "'links'")),
    TableEdit("a case pattern that matches no case", expectations,
              _sub('cases = "Bug169011-*"', 'cases = "NoSuchCase-*"'), ("NoSuchCase-*",)),
    TableEdit("cases as a number", expectations, _sub('cases = "Bug169011-*"', "cases = 5"),
              ("'cases'",)),
    TableEdit("an outcome of no kind", expectations,
              _sub('outcome = "not-fused"', 'outcome = "fuzed"'), ("'outcome'", "fuzed")),
    TableEdit("a device of no kind", expectations,
              _sub('outcome = "not-fused"', 'devices = ["tpu"]\noutcome = "not-fused"'),
              ("'devices'", "tpu")),
    TableEdit("overlapping rows", expectations, _first_row_again("[[expect]]"),
              ("overlap",)),
    TableEdit("a row without its reason", expectations,
              _sub('reason = """Before 2.4', 'why = """Before 2.4'), ("[[expect]] #1",)),
    TableEdit("broken TOML", expectations, lambda t: t.replace("[[expect]]", "[[expect]", 1),
              ("at line 12",)),
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "bad", TABLE_EDITS, ids=[f"{b.module.DEFAULT_FILE.name}: {b.what}" for b in TABLE_EDITS]
)
def test_a_hand_edited_table_exits_2_naming_its_file_row_and_key(
    capsys, tmp_path, monkeypatch, bad: TableEdit, command: str
):
    table = tmp_path / bad.module.DEFAULT_FILE.name
    edited = bad.edit(bad.module.DEFAULT_FILE.read_text(encoding="utf-8"))
    table.write_bytes(edited if isinstance(edited, bytes) else edited.encode())
    monkeypatch.setattr(bad.module, "DEFAULT_FILE", table)
    given = BASES["fuzz" if command in ("triage", "propose") else "tests"]
    _refused(capsys, _argv(command, given, tmp_path), table, *bad.says)


def test_a_table_that_is_gone_exits_2_naming_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(causes, "DEFAULT_FILE", tmp_path / "causes.toml")
    _refused(capsys, ["triage", BASES["fuzz"]], tmp_path / "causes.toml")


# -- the suite's size ------------------------------------------------------------


def suite() -> dict[str, set[str]]:
    """Every (input, command) run of this suite, by command."""
    runs = [(f"{b.base}: {b.what}", c) for b in FILE_EDITS for c in COMMANDS]
    runs += [(f"a {base} run", c) for base in NOT_SEARCHES for c in ("triage", "propose")]
    runs += [(f"a {base} run", "table") for base in NOT_MATRIX]
    runs += [(f"{name}: two files", c) for name in LATER_BY_NAME for c in ("report", "table")]
    runs += [("two files, offsets", c) for c in ("report", "table")]
    runs += [(f"{name}: one moment", c) for name in SAME_MOMENT for c in ("report", "table")]
    runs += [("one moment, one outcome", c) for c in ("report", "table")]
    runs += [(f"baseline: {what}", "report") for what in BAD_BASELINES]
    runs += [(what, what.split()[0]) for what in EMPTY_ARGUMENTS]
    runs += [(f"-o {o.what}", o.command) for o in OUTPUTS]
    runs += [(f"{t.module.DEFAULT_FILE.name}: {t.what}", c) for t in TABLE_EDITS for c in COMMANDS]
    runs += [("causes.toml: gone", "triage")]
    by_command: dict[str, set[str]] = {c: set() for c in COMMANDS}
    for what, command in runs:
        by_command[command].add(what)
    return by_command


def test_the_suite_holds_at_least_150_inputs():
    by_command = suite()
    assert sum(len(inputs) for inputs in by_command.values()) >= 150
    assert all(len(inputs) >= 40 for inputs in by_command.values()), {
        c: len(i) for c, i in by_command.items()
    }
