"""The benchmark's arithmetic: medians, ratios of medians, and verdicts on the targets."""

import importlib.util
from pathlib import Path

from convbn_compat.core.outcomes import Outcome
from convbn_compat.core.record import CaseRecord
from convbn_compat.core.results import Environment, Run, load_run

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def _raw():
    return {
        "parts": {
            "suite": {
                "seconds": {
                    "project_cold": [100, 120, 110],
                    "project_warm": [30, 20, 25],
                    "upstream_cold": [200, 250, 220],
                    "upstream_warm": [90, 100, 95],
                }
            },
            "env": {
                "seconds": {
                    "uv_cold": [40, 50, 45],
                    "uv_warm": [4, 5, 6],
                    "pip_cold": [100, 110, 90],
                    "pip_warm": [60, 70, 65],
                }
            },
        }
    }


def test_ratios_are_ratios_of_medians():
    ratios = bench.summarize(_raw())["ratios"]
    assert ratios["suite_cold_ratio"] == round(110 / 220, 3)
    assert ratios["suite_warm_ratio"] == round(25 / 220, 3)
    assert ratios["suite_warm_vs_upstream_warm"] == round(25 / 95, 3)
    assert ratios["env_warm_seconds"] == 5
    assert ratios["env_warm_speedup_vs_pip"] == 13.0


def test_verdicts_say_by_how_much_a_target_is_missed():
    assert bench._verdict("suite_cold_ratio", 0.5).startswith("met")
    assert bench._verdict("suite_cold_ratio", 0.9) == "MISSED by 1.50x (target at most 0.6)"
    assert bench._verdict("env_warm_speedup_vs_pip", 4.0).startswith("MISSED")
    assert bench._verdict("env_warm_speedup_vs_pip", 13.0).startswith("met")


def _row(key, env, cold, warm, outcomes=None, warm_outcomes=None):
    outcomes = outcomes or {"fused": 146}
    return {
        "release": key,
        "torch": f"{key}.0",
        "env": env,
        "cold": cold,
        "warm": warm,
        "cold_outcomes": outcomes,
        "warm_outcomes": warm_outcomes or outcomes,
        "cold_complete": True,
        "warm_complete": True,
    }


def test_matrix_totals_run_release_by_release():
    rows = [_row("2.2", 2, 300, 150), _row("2.3", 4, 200, 100)]
    totals = bench.matrix_totals(rows)
    assert totals["cumulative"] == [452, 756]
    assert (totals["env"], totals["cold"], totals["warm"]) == (6, 500, 250)
    assert totals["per_release_cold"] == 250
    assert totals["warm_over_cold"] == 0.5


def test_matrix_record_flags_warm_outcomes_that_differ():
    rows = [
        _row("2.2", 2, 300, 150),
        _row("2.3", 2, 300, 150, {"fused": 146}, {"fused": 145, "not-fused": 1}),
    ]
    raw = {"date": "d", "machine": "m", "command": "c", "parts": {"matrix": {"rows": rows}}}
    text = bench.record_markdown(raw, bench.summarize(raw))
    assert "the whole CPU matrix (2 releases), once" in text
    lines = [line for line in text.splitlines() if line.startswith("| 2.")]
    assert "| True | not compared, not compared |" in lines[0]
    assert "| False |" in lines[1]
    assert "median" not in text


def _result(cases):
    """A run with these cells: (id, device, tf32, outcome, fire count, graph rewrites)."""
    records = [
        CaseRecord(i, "upstream", d, t, outcome=Outcome(o), fire_count=f, graph_rewrites=g)
        for i, d, t, o, f, g in cases
    ]
    return Run("bench", Environment("2.2.2"), records)


def test_matrix_rows_name_the_cells_unlike_the_committed_results():
    committed = load_run(ROOT / "docs" / "results" / "tests-2.2-cpu.json").to_json()
    cell = committed["cases"][0]
    same = (cell["id"], cell["device"], cell["tf32"], cell["outcome"], cell["fire_count"],
            cell["graph_rewrites"])  # fmt: skip
    assert bench._differs_from_committed("2.2", _result([same])) == []
    changed = (*same[:4], same[4] + 1, same[5])
    unknown = ("No-such-case", "cpu", False, "fused", 1, 1)
    assert bench._differs_from_committed("2.2", _result([changed, unknown])) == [
        f"{cell['id']}-cpu",
        "No-such-case-cpu",
    ]


def test_a_stopped_run_is_recorded_from_what_it_saved(tmp_path):
    raw = {
        "date": "d",
        "machine": "m",
        "release": "2.15",
        "torch": "2.15.0",
        "reps": 1,
        "command": "python benchmarks/bench.py --parts env,matrix",
        "requested": ["env", "matrix"],
        "parts": {"env": _raw()["parts"]["env"]},
    }
    raw["parts"]["env"]["bytes"] = {
        k: [1] for k in ("uv_cold_cache", "uv_env", "pip_env", "pip_cache")
    }
    (tmp_path / "bench-progress.json").write_text(bench.json.dumps(raw))
    (tmp_path / bench.MATRIX_PROGRESS).write_text(bench.json.dumps([_row("2.2", 2, 300, 150)]))
    record = tmp_path / "record.md"
    assert bench.main(["--scratch", str(tmp_path), "--from-progress", "--record", str(record)]) == 0
    text = record.read_text()
    assert "stopped before the end; what it had saved: env, matrix (the matrix: 1 releases" in text
    assert "| uv_warm | 5 |" in text
    assert "| 2.2 | 2.2.0 | 2 | 300 | 150 |" in text
    saved = bench.json.loads(record.with_suffix(".json").read_text())
    assert saved[0]["parts"]["matrix"]["rows"][0]["release"] == "2.2"


def test_an_interrupted_run_records_the_parts_that_ended(tmp_path, monkeypatch):
    env = {
        **_raw()["parts"]["env"],
        "bytes": {k: [1] for k in ("uv_cold_cache", "uv_env", "pip_env", "pip_cache")},
    }

    def stopped(*args):
        raise KeyboardInterrupt  # what Ctrl-C or `kill` (SIGTERM) raises mid-part

    monkeypatch.setattr(bench, "bench_env", lambda *args: env)
    monkeypatch.setattr(bench, "bench_startup", stopped)
    record = tmp_path / "record.md"
    argv = ["--parts", "env,startup", "--scratch", str(tmp_path), "--record", str(record)]
    assert bench.main(argv) == 130
    text = record.read_text()
    assert "what it had saved: env." in text
    assert "| uv_warm | 5 |" in text
