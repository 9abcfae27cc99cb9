"""The command line as a user meets it: bad input gets one line that names the problem and
what to do, with the documented exit status, and never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from convbn_compat import __main__ as cli
from convbn_compat import __version__
from convbn_compat.core.errors import Exit
from tests.unit.test_report import DECOMPOSED, results_file

ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("convbn-compat: ")
    return lines[0]


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "results"
    path.mkdir()
    results_file(path, "2.4", "2.4.1")
    return path


def edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_results_file_with_non_utf8_bytes(capsys, tmp_path):
    bad = tmp_path / "tests-2.4-cpu.json"
    bad.write_bytes(b'{"schema": "convbn-compat/results", "x": "\xff\xfe"}')
    code, _, err = run(capsys, "report", bad, "-o", tmp_path / "r")
    line = one_line_error(err)
    assert code == Exit.BAD_INPUT
    assert str(bad) in line
    assert "not UTF-8 text (byte 0xff at offset 42)" in line
    assert "regenerate or remove it" in line


def test_a_results_file_whose_environment_lacks_torch(capsys, folder, tmp_path):
    path = folder / "tests-2.4-cpu.json"
    edit(path, lambda d: d["environment"].pop("torch"))
    code, _, err = run(capsys, "report", path, "-o", tmp_path / "r")
    line = one_line_error(err)
    assert code == Exit.BAD_INPUT
    assert f"results file {path}: environment: 'torch' is missing" in line


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda c: c.update(outcome="fuzed"), "'outcome' is 'fuzed'; choose one of"),
        (lambda c: c.pop("outcome"), "'outcome' is missing"),
        (lambda c: c.update(expected_outcome="ok"), "'expected_outcome' is 'ok'"),
    ],
)
def test_an_unknown_or_missing_outcome_names_the_file_and_the_case(
    capsys, folder, tmp_path, change, says
):
    path = folder / "tests-2.4-cpu.json"
    edit(path, lambda d: change(d["cases"][7]))
    code, _, err = run(capsys, "report", folder, "-o", tmp_path / "r")
    line = one_line_error(err)
    assert code == Exit.BAD_INPUT
    assert f"results file {path}: cases[7] (" in line
    assert says in line
    assert not (tmp_path / "r").exists()


def test_a_baseline_holding_an_unknown_outcome(capsys, folder, tmp_path):
    assert run(capsys, "report", folder, "-o", tmp_path / "r")[0] == Exit.OK
    baseline = tmp_path / "r" / "matrix.json"
    edit(baseline, lambda d: d["cells"][DECOMPOSED]["2.4/cpu/cpu"].update(outcome="broken"))
    code, _, err = run(capsys, "report", folder, "-o", tmp_path / "r2", "--baseline", baseline)
    line = one_line_error(err)
    assert code == Exit.BAD_INPUT
    assert (
        f"baseline {baseline}: cell {DECOMPOSED} @ 2.4/cpu/cpu: field 'outcome' is 'broken'" in line
    )


def test_a_baseline_that_shares_no_column_with_the_run(capsys, folder, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    results_file(other, "2.10", "2.10.0")
    code, _, err = run(capsys, "report", folder, "-o", tmp_path / "r", "--baseline", other)
    line = one_line_error(err)
    assert code == Exit.BAD_INPUT
    assert "the baseline shares no column with this run (baseline: 2.10/cpu/cpu" in line
    assert not (tmp_path / "r").exists()


def test_report_output_that_is_a_file_or_under_a_missing_folder(capsys, folder, tmp_path):
    existing = tmp_path / "taken.txt"
    existing.write_text("mine")
    code, _, err = run(capsys, "report", folder, "-o", existing)
    assert code == Exit.BAD_INPUT
    assert f"-o {existing} is a file; name a folder" in one_line_error(err)
    assert existing.read_text() == "mine"
    deep = tmp_path / "missing" / "report"
    code, _, err = run(capsys, "report", folder, "-o", deep)
    assert code == Exit.BAD_INPUT
    assert f"its parent folder {deep.parent} does not exist" in one_line_error(err)


def test_repro_output_into_a_missing_folder(capsys, tmp_path):
    target = tmp_path / "nowhere" / "repro.py"
    code, _, err = run(capsys, "repro", "ConvOp-bias-Conv2d-bn-module", "-o", target)
    assert code == Exit.BAD_INPUT
    assert f"-o {target}: its folder {target.parent} does not exist" in one_line_error(err)


def test_bisect_outside_the_repository(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "bisect", "ConvOp-bias-Conv2d-bn-module", "--older", "2.2",
                       "--newer", "2.4")  # fmt: skip
    assert code == Exit.BAD_INPUT
    assert f"{tmp_path} has no noxfile.py; run it from a convbn-compat checkout" in (
        one_line_error(err)
    )


@pytest.mark.parametrize("on_path", [None, "/usr/bin/nox-elsewhere"])
def test_bisect_without_nox_to_import(capsys, monkeypatch, on_path):
    import importlib.util
    import shutil

    monkeypatch.chdir(ROOT)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "nox" else real(n, *a)
    )
    monkeypatch.setattr(shutil, "which", lambda name: on_path)
    if on_path:
        # nox on PATH but not importable: it is what runs, no traceback either way.
        from convbn_compat.tools.repro import nox_command

        assert nox_command() == ["nox"]
        return
    code, _, err = run(capsys, "bisect", "ConvOp-bias-Conv2d-bn-module", "--older", "2.2",
                       "--newer", "2.4")  # fmt: skip
    assert code == Exit.BAD_INPUT
    assert "bisect and replay need nox" in one_line_error(err)
    assert "pip install 'nox[uv]" in err


def test_table_of_a_device_the_results_lack(capsys, folder):
    code, out, err = run(capsys, "table", folder, "--device", "cuda")
    assert code == Exit.BAD_INPUT
    assert out == ""
    assert "no cuda cells in" in one_line_error(err)
    assert "choose --device cpu" in err


def test_table_says_how_its_input_was_made(capsys, folder):
    code, out, _ = run(capsys, "table", folder)
    assert code == Exit.OK
    assert "torch 2.4.1: `nox -s tests-2.4-cpu`" in out
    assert "2-core" not in out  # nothing the files do not say


def test_a_folder_with_other_files_is_read_and_the_skipped_ones_named(capsys, folder, tmp_path):
    (folder / "sensitivity-2.4.json").write_text(
        json.dumps({"schema": "convbn-compat/sensitivity", "schema_version": 1})
    )
    (folder / "notes.json").write_text("[1, 2]")
    code, out, _ = run(capsys, "report", folder, "-o", tmp_path / "r")
    assert code == Exit.OK
    assert "skipped " + str(folder / "sensitivity-2.4.json") in out
    assert "(its schema is 'convbn-compat/sensitivity')" in out
    assert "skipped " + str(folder / "notes.json") in out
    md = (tmp_path / "r" / "matrix.md").read_text()
    assert "2 files skipped" in md


def test_a_report_written_into_its_input_folder_can_run_again(capsys, folder):
    assert run(capsys, "report", folder, "-o", folder)[0] == Exit.OK
    code, out, err = run(capsys, "report", folder, "-o", folder)
    assert code == Exit.OK, err
    assert "(its schema is 'convbn-compat/matrix')" in out


def test_a_named_file_that_is_not_results_is_an_error_not_a_skip(capsys, tmp_path):
    other = tmp_path / "matrix.json"
    other.write_text(json.dumps({"schema": "convbn-compat/matrix"}))
    code, _, err = run(capsys, "report", other, "-o", tmp_path / "r")
    assert code == Exit.BAD_INPUT
    assert "is not a convbn-compat results file" in one_line_error(err)


@pytest.mark.parametrize(
    ("typed", "suggests"),
    [
        ("ConvOp-bias-Conv2d-bn-modul", "did you mean ConvOp-bias-Conv2d-bn-module"),
        ("ConvOp-bais-Conv2d-bn-module", "did you mean ConvOp-bias-Conv2d-bn-module"),
    ],
)
def test_mistyped_case_ids_get_suggestions(capsys, typed, suggests):
    code, _, err = run(capsys, "repro", typed)
    assert code == Exit.BAD_INPUT
    assert suggests in one_line_error(err)


@pytest.mark.parametrize("suffix", ["-cpu", "-cuda", "-cuda-tf32"])
def test_a_pasted_cell_suffix_is_stripped(capsys, suffix):
    code, out, _ = run(capsys, "repro", "ConvOp-bias-Conv2d-bn-decomposed" + suffix)
    assert code == Exit.OK
    assert "# Reproducer: ConvOp-bias-Conv2d-bn-decomposed on cpu" in out


def test_an_internal_error_says_so_with_its_traceback(capsys, folder, tmp_path, monkeypatch):
    import convbn_compat.report.write as report

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(report, "main_report", broken)
    code, _, err = run(capsys, "report", folder, "-o", tmp_path / "r")
    assert code == Exit.CRASH
    assert "Traceback" in err
    assert "RuntimeError: boom" in err
    assert "internal error (exit 3); this is a bug" in err


def test_usage_errors_exit_2_and_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["report", "--no-such-option"])
    assert info.value.code == Exit.BAD_INPUT
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "examples:" in out
    for code in Exit:
        assert f"  {code.value}  {code.meaning[:30]}" in out


def test_version_and_the_console_script():
    script = Path(sys.executable).parent / "convbn-compat"
    assert script.exists(), "pip install -e . installs the convbn-compat command"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"convbn-compat {__version__}"
