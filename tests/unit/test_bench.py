"""The benchmark's arithmetic: medians, ratios of medians, and verdicts on the targets."""

import importlib.util
from pathlib import Path

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
    assert lines[0].endswith("| True |")
    assert lines[1].endswith("| False |")
    assert "median" not in text
