"""Report: merging results, classing cells against a baseline, exit status, escaping."""

import json
import shutil
from pathlib import Path

import pytest

from convbn_compat.__main__ import main
from convbn_compat.core.cases import CASES, UPSTREAM_CASES
from convbn_compat.report.html import render_html
from convbn_compat.report.model import ColumnKey, build_matrix, compare
from convbn_compat.report.view import build_view, row_changes

DECOMPOSED = "ConvOp-bias-Conv2d-bn-decomposed"


def results_file(
    folder, release, torch, outcomes=None, complete=True, message="", as_expected=True
):
    """A results file as a session writes it: every upstream CPU case fused unless told,
    each outcome the expected one unless ``as_expected`` is false (then fused is)."""
    outcomes = outcomes or {}
    cases = [
        {
            "id": c.id,
            "subset": c.subset,
            "device": "cpu",
            "tf32": False,
            "outcome": outcomes.get(c.id, "fused"),
            "expected_outcome": outcomes.get(c.id, "fused") if as_expected else "fused",
            "expectation_reason": "",
            "fire_count": c.expected_fires,
            "expected_count": c.expected_fires,
            "graph_rewrites": c.expected_fires,
            "max_abs_error": 1e-7,
            "seconds": 0.1,
            "message": message,
            "status": "passed",
        }
        for c in UPSTREAM_CASES
    ]
    data = {
        "schema": "convbn-compat/results",
        "schema_version": 1,
        "session": f"tests-{release}-cpu",
        "release": release,
        "flavour": "cpu",
        "install": None,
        "started": "2026-12-01T00:00:00+00:00",
        "finished": "2026-12-01T00:10:00+00:00",
        "complete": complete,
        "environment": {"torch": torch},
        "cases": cases,
    }
    path = folder / f"tests-{release}-cpu.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    results_file(folder, "2.2", "2.2.2", {DECOMPOSED: "not-fused"})
    results_file(folder, "2.4", "2.4.1")
    results_file(folder, "2.10", "2.10.0", {DECOMPOSED: "wrong-result"})
    return folder


def test_columns_are_ordered_by_release_not_by_name(results):
    matrix = build_matrix([results])
    assert [c.key.release for c in matrix.columns] == ["2.2", "2.4", "2.10"]
    assert len(matrix.cells) == 112


def test_every_change_of_a_row_with_its_direction(results):
    changes = row_changes(build_matrix([results]))
    assert [str(c) for c in changes[DECOMPOSED]] == [
        "2.4 (cpu/cpu): not-fused -> fused (fix)",
        "2.10 (cpu/cpu): fused -> wrong-result (regression)",
    ]
    assert "ConvOp-bias-Conv2d-bn-module" not in changes


def test_report_writes_three_files_and_unchanged_baseline_exits_zero(results, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(results), "-o", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {"matrix.md", "matrix.json", "matrix.html"}
    assert (
        main(
            [
                "report",
                str(results),
                "-o",
                str(tmp_path / "r2"),
                "--baseline",
                str(out / "matrix.json"),
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "r2" / "matrix.json").read_text())
    assert {c["class"] for c in data["baseline"]["cells"]} == {"unchanged"}


def test_planted_change_in_a_copied_baseline_is_caught(results, tmp_path):
    out = tmp_path / "report"
    main(["report", str(results), "-o", str(out)])
    baseline = json.loads((out / "matrix.json").read_text())
    # Plant: the baseline said 2.10 was fused (so today's wrong-result is new), and
    # 2.4 was an error (so today's fused is a fix).
    baseline["cells"][DECOMPOSED]["2.10/cpu/cpu"]["outcome"] = "fused"
    baseline["cells"][DECOMPOSED]["2.4/cpu/cpu"]["outcome"] = "error"
    copied = tmp_path / "baseline.json"
    copied.write_text(json.dumps(baseline))
    assert main(["report", str(results), "-o", str(tmp_path / "r"), "--baseline", str(copied)]) == 1
    md = (tmp_path / "r" / "matrix.md").read_text()
    assert f"**new failure** `{DECOMPOSED}` in 2.10/cpu/cpu: fused -> wrong-result" in md
    diff = json.loads((tmp_path / "r" / "matrix.json").read_text())["baseline"]["cells"]
    assert diff[0]["class"] == "new failure"  # listed first
    classes = {(c["case"], c["column"]): c["class"] for c in diff}
    assert classes[(DECOMPOSED, "2.4/cpu/cpu")] == "fixed"


def test_baseline_as_results_folder_new_and_gone_cells(results, tmp_path):
    older = tmp_path / "older"
    older.mkdir()
    shutil.copy(results / "tests-2.2-cpu.json", older)
    results_file(older, "2.3", "2.3.1")
    diff = compare(build_matrix([results]), build_matrix([older]))
    classes = {c["class"] for c in diff}
    assert {"new cell", "gone cell", "unchanged"} <= classes


def test_incomplete_run_is_reported_as_incomplete_with_missing_cells(tmp_path):
    path = results_file(tmp_path, "2.4", "2.4.1", complete=False)
    data = json.loads(path.read_text())
    data["cases"] = data["cases"][:10]
    path.write_text(json.dumps(data))
    matrix = build_matrix([path])
    assert matrix.incomplete == [str(path)]
    assert len(matrix.missing) == len([c for c in CASES if "cpu" in c.devices]) - 10
    assert "(incomplete)" in render_html(build_view(matrix))


def test_html_escapes_text_taken_from_results(tmp_path):
    results_file(
        tmp_path, "2.4", "2.4.1", {DECOMPOSED: "error"}, message="<script>alert(1)</script>"
    )
    out = tmp_path / "r"
    main(["report", str(tmp_path), "-o", str(out)])
    page = (out / "matrix.html").read_text()
    assert "<script>alert(1)</script>" not in page
    # The panel's data: JSON that cannot close its <script>, put into textContent only.
    data = page.split('id="report-data">')[1].split("</script>")[0]
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in data
    assert json.loads(data)["cells"][DECOMPOSED]["2.4/cpu/cpu"]["message"] == (
        "<script>alert(1)</script>"
    )
    assert "innerHTML" not in page


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema": "convbn-compat/results", "schema_version": 99}', "schema version 99"),
        ('{"hello": 1}', "not a convbn-compat results file"),
    ],
)
def test_malformed_results_name_the_file(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["report", str(bad), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert str(bad) in err
    assert not (tmp_path / "r").exists()  # nothing written


def test_truncated_results_file_names_the_file(tmp_path, capsys):
    whole = results_file(tmp_path, "2.4", "2.4.1")
    text = whole.read_text()
    whole.write_text(text[: len(text) // 2])  # as a killed writer without atomic rename would
    assert main(["report", str(whole), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"results file {whole} is not valid JSON (truncated or corrupt?)" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"columns": [', "not valid JSON"),
        ('{"schema": "convbn-compat/results", "schema_version": 99}', "schema version 99"),
    ],
)
def test_bad_baseline_names_the_file_and_overwrites_nothing(
    results, tmp_path, capsys, content, message
):
    out = tmp_path / "out"
    assert main(["report", str(results), "-o", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    baseline = tmp_path / "baseline.json"
    baseline.write_text(content)
    assert main(["report", str(results), "-o", str(out), "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err
    assert str(baseline) in err
    assert message in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_runs_of_one_column_merge_and_one_unfinished_run_leaves_it_incomplete(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = results_file(tmp_path / "a", "2.4", "2.4.1")
    later = results_file(tmp_path / "b", "2.4", "2.4.1", complete=False)
    data = json.loads(later.read_text())
    data["cases"] = [dict(data["cases"][0], id="Stats-ConvOp-bias-Linear-bn-module")]
    later.write_text(json.dumps(data))
    matrix = build_matrix([full, later])
    assert [str(c.key) for c in matrix.columns] == ["2.4/cpu/cpu"]
    assert matrix.columns[0].complete is False
    assert "2.4/cpu/cpu" in matrix.cells["Stats-ConvOp-bias-Linear-bn-module"]
    assert len([r for r in matrix.cells.values() if "2.4/cpu/cpu" in r]) == 113


def _listed_sessions() -> set[str]:
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("nox", reason="needs nox: pip install -e '.[dev]'")
    out = subprocess.run(
        # -t: every tag (a plain -l --json lists only the default sessions)
        [sys.executable, "-m", "nox", "-l", "--json", "-t", "matrix", "installed", "reach", "fuzz"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {s["session"] for s in json.loads(out)}


def test_every_rerun_command_names_a_session_nox_lists():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    folders = [docs / "results", docs / "fuzz", docs / "reach", docs / "benefit"]
    view = build_view(build_matrix(folders))
    named = set()
    for commands in view.commands.values():
        for command in commands.values():
            if command.startswith("nox -s "):
                named.add(command.split()[2])
    # installed (GPU) columns, CPU-wheel columns of every release, and reach's
    assert {"tests-installed", "tests-2.15-cpu", "reach-2.15-cpu"} <= named
    assert named <= _listed_sessions()


def test_the_committed_results_report_in_one_screen_led_by_the_verdict(tmp_path, capsys):
    """The committed results: the verdict first, each known cause once with where it
    breaks, and the whole answer within 40 lines."""
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    folders = [docs / "results", docs / "fuzz", docs / "reach", docs / "benefit"]
    assert main(["report", *map(str, folders), "-o", str(tmp_path / "r")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("VERDICT: every outcome as expected: ")
    assert len(lines) <= 40, len(lines)
    causes = [line for line in lines if line.startswith("  conv-args-by-keyword: ")]
    assert causes == [
        "  conv-args-by-keyword: 53 cells in 2.5-2.15 "
        "https://github.com/pytorch/pytorch/issues/196165; "
        "python -m convbn_compat repro conv-args-by-keyword --standalone -o bug.py"
    ]


def test_every_rerun_command_selects_exactly_the_cell_it_names():
    """A node id, never a -k substring: each command of the committed report selects one
    cell of the matrix's parametrisation, and it is the cell the command stands for."""
    import shlex
    from pathlib import Path

    from convbn_compat.core.cases import CASES
    from convbn_compat.core.cells import MATRIX_TEST, cell_id, matrix_cells

    docs = Path(__file__).resolve().parents[2] / "docs"
    view = build_view(build_matrix([docs / "results", docs / "fuzz", docs / "reach"]))
    params = {cell_id(c.id, d, t) for c, d, t in matrix_cells(CASES)}
    known = {c.id for c in CASES}
    checked = 0
    for row in view.rows:
        for key in row.cells:
            template = view.commands[key]["rerun"]
            if not template.startswith("nox -s tests-"):
                continue
            args = shlex.split(template.replace("{case}", row.case_id))
            (selector,) = args[args.index("--") + 1 :]
            test, _, param = selector.partition("[")
            assert test == MATRIX_TEST
            device = ColumnKey.parse(key).device
            assert param == f"{row.case_id}-{device}]"
            if row.case_id in known:  # a case this version still has: its cell is there
                assert param[:-1] in params
            checked += 1
    assert checked > 1000


def test_the_summary_leads_with_the_newest_release_and_its_broken_cases(results, tmp_path):
    view = build_view(build_matrix([results]))
    assert [s.release for s in view.releases] == ["2.10", "2.4", "2.2"]
    newest = view.releases[0]
    assert [(b.case_id, str(b.outcome)) for b in newest.broken] == [(DECOMPOSED, "wrong-result")]
    assert newest.broken[0].rerun == (
        f'nox -s tests-2.10-cpu -- "tests/test_matrix.py::test_conv_bn_eval[{DECOMPOSED}-cpu]"'
    )
    assert [str(c) for _, c in newest.changes] == [
        "2.10 (cpu/cpu): fused -> wrong-result (regression)"
    ]
    out = tmp_path / "r"
    assert main(["report", str(results), "-o", str(out)]) == 0
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# convbn-compat matrix: ")
    assert f"| `{DECOMPOSED}` | wrong-result" in summary
    assert "<details>" not in summary  # no copy of the whole matrix
    assert "`matrix` artifact" in summary


def test_the_terminal_prints_the_summary_lines(results, tmp_path, capsys):
    main(["report", str(results), "-o", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert out.startswith("VERDICT: every outcome as expected: ")
    assert "2.10 (torch 2.10.0): 1 cases wrong or failing; against the release before: " in out


def test_no_fail_on_takes_only_a_release(results, tmp_path, capsys):
    code = main(["report", str(results), "-o", str(tmp_path / "r"), "--no-fail-on", "banana"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--no-fail-on 'banana' is not a release; choose from: 2.2" in err


def _finding(folder, case_id, outcome, blame="pass", exception=None, torch="2.15.0"):
    """A fuzz file with one finding, as the generator writes it (no expectation row)."""
    data = {
        "schema": "convbn-compat/results",
        "schema_version": 1,
        "session": "fuzz-2.15-cpu",
        "kind": "fuzz",
        "release": "2.15",
        "flavour": "cpu",
        "install": None,
        "complete": True,
        "environment": {"torch": torch},
        "cases": [
            {
                "id": case_id,
                "subset": "generated",
                "device": "cpu",
                "tf32": False,
                "outcome": outcome,
                "expected_outcome": "fused",
                "fire_count": 1,
                "expected_count": 1,
                "graph_rewrites": 1,
                "max_abs_error": None,
                "seconds": 1.0,
                "message": "planted",
                "status": "found",
                "blame": blame,
                "exception": exception,
            }
        ],
    }
    path = folder / f"fuzz-{abs(hash(case_id))}.json"
    path.write_text(json.dumps(data))
    return path


def test_a_known_cause_is_never_unexpected_and_a_new_one_is(tmp_path, capsys):
    known = "Gen-ConvTranspose1d-fkw-c2x2-k1-g2-x1x2x1-bnall"  # convtranspose-groups
    new = "Gen-Conv2d-module-c1x1-k1-x1x1x1x1"  # no known cause fails a plain module call
    _finding(tmp_path, known, "error", exception="RuntimeError")
    view = build_view(build_matrix([tmp_path]))
    key = view.matrix.columns[0].key.__str__()
    assert view.causes[(known, key)] == "convtranspose-groups"
    assert not view.unexpected
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r")]) == 0
    _finding(tmp_path, new, "wrong-result")
    view = build_view(build_matrix([tmp_path]))
    assert view.unexpected == {(new, key)}
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r2")]) == 1


def test_a_failure_the_oracle_blames_on_inductor_is_not_the_pass_s(tmp_path):
    _finding(tmp_path, "Gen-Conv2d-module-c1x1-k1-x1x1x1x1-float64-freezing", "error", "not-pass")
    assert not build_view(build_matrix([tmp_path])).unexpected


def test_a_search_reads_as_causes_with_its_figures(tmp_path, capsys):
    fuzz = (
        Path(__file__).resolve().parents[2]
        / "docs"
        / "fuzz"
        / "fuzz-2.15-cpu-10min-fresh-clone.json"
    )
    run = json.loads(fuzz.read_text())
    figures, cases = run["fuzz"], run["cases"]  # the run's own, not the report's
    view = build_view(build_matrix([fuzz]))
    (search,) = view.searches
    assert search.figures["examples"] == figures["examples"]
    assert {c.cause for c in search.causes} == {
        "conv-args-by-keyword",
        "convtranspose-groups",
        "linear-3d-input",
    }
    assert all(c.known for c in search.causes)
    # One record per signature and cause: two causes can share a signature.
    assert figures["signatures"] == len({c["signature"] for c in cases})
    assert sum(c.signatures for c in search.causes) + search.not_the_pass == len(cases)
    by_id = {c.cause: c for c in search.causes}
    assert by_id["convtranspose-groups"].command == (
        "python -m convbn_compat repro convtranspose-groups --standalone -o bug.py"
    )
    assert main(["report", str(fuzz), "-o", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    examples = figures["examples"]
    assert f"fuzz, torch 2.15.0+cu132 on cpu: {examples} examples; known " in out
    assert "## Generator findings, by cause" in (tmp_path / "r" / "matrix.md").read_text()


def test_an_unexpected_cell_in_an_old_release_leads_the_terminal_and_summary(tmp_path, capsys):
    """A failure injected into 2.12, beside a newer release that is fine: the terminal's
    verdict and summary.md's first 20 lines name it, with the command that reruns it."""
    folder = tmp_path / "results"
    folder.mkdir()
    results_file(folder, "2.12", "2.12.1", {DECOMPOSED: "error"}, as_expected=False)
    results_file(folder, "2.15", "2.15.0")
    assert main(["report", str(folder), "-o", str(tmp_path / "r")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("VERDICT: 1 UNEXPECTED cells")
    assert f"UNEXPECTED {DECOMPOSED} @ 2.12/cpu/cpu" in out[1]
    head = (tmp_path / "r" / "summary.md").read_text().splitlines()[:20]
    named = [line for line in head if f"`{DECOMPOSED}` @ 2.12/cpu/cpu" in line]
    assert named, head
    assert f"test_conv_bn_eval[{DECOMPOSED}-cpu]" in named[0]
