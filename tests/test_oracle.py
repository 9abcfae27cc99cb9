"""The generator's oracle with real torch: blame lands where the fault is.

A fault injected into the pass (its replacement function scales the output) must be
blamed on the pass; a fault that breaks the flag-off compile as well (a post-grad pass
that doubles the output) must not be. Also: a fuzz session writes a results file that
``report`` reads, and a generated example's reproducer gives the oracle's verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from convbn_compat.checks.oracle import judge, observe  # noqa: E402
from convbn_compat.core.generated import Example  # noqa: E402
from convbn_compat.core.outcomes import Blame, Outcome  # noqa: E402
from convbn_compat.core.results import load_run  # noqa: E402
from convbn_compat.tools import repro  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLAIN = Example.from_id("Gen-Conv2d-module-c2x4-k3-x1x2x6x6")


def scaled(factor: float):
    """A fault for ``faulty_pass``: every replacement's output times ``factor``."""
    return lambda out, name, args: out * factor


def _double_the_output(graph):
    """A post-grad pass (runs with the pass on and off) that doubles the first output."""
    output = next(n for n in graph.nodes if n.op == "output")
    first = output.args[0][0]
    with graph.inserting_before(output):
        doubled = graph.call_function(torch.ops.aten.mul.Tensor, (first, 2.0))
    doubled.meta.update(first.meta)  # same shape and dtype; lowering reads meta["val"]
    output.args = ((doubled, *output.args[0][1:]),)


def test_a_plain_example_is_fused_with_nothing_to_blame():
    verdict = judge(PLAIN)
    assert (verdict.outcome, verdict.blame) == (Outcome.FUSED, Blame.NONE), verdict.message
    assert (verdict.fires, verdict.fires_off) == (1, None)  # pass off runs only on failure
    assert verdict.graphs == 1


@pytest.mark.parametrize("call", ["module", "modulekw", "fpos", "fkw", "fallkw", "fmixed"])
def test_every_call_style_compiles_to_one_graph(call):
    # A graph break between the layer and its BatchNorm would keep the pass away: an
    # artefact of how the model is written, not a behaviour of the pass.
    # The pass off: some styles make it fail, and a failed compile counts no graph.
    ex = Example.from_id(f"Gen-Conv2d-{call}-c2x4-k3-s2-x1x2x6x6-bnall")
    obs = observe(ex, "cpu", pass_on=False)
    assert (obs.outcome, obs.graphs) == (Outcome.FUSED, 1), obs.message


def test_a_fault_in_the_pass_is_blamed_on_the_pass(faulty_pass):
    with faulty_pass(scaled(1.5)):
        verdict = judge(PLAIN)
    assert verdict.outcome is Outcome.WRONG_RESULT, verdict.message
    assert verdict.blame is Blame.PASS
    assert (verdict.fires, verdict.fires_off) == (1, 0)
    assert verdict.message_off == "fused"  # the flag-off compile was right


# Three chained ConvTranspose3d pairs with backward: the folded weight's gradient sums
# over every output position, and float32 rounding moves it by 3.1e-6 of its scale,
# past the allowance calibrated on outputs. The same model in float64 is right to 1e-13.
ROUNDING = "Gen-ConvTranspose3d-module-c3x1-k4x3x3-s3-d2-p1-op2x1x2-x2x3x3x7x7-eps3-momnone-user-bwd-pairs3"  # noqa: E501


def test_a_float32_miss_that_float64_does_not_show_is_the_fold_s_rounding():
    verdict = judge(Example.from_id(ROUNDING))
    assert (verdict.outcome, verdict.blame) == (Outcome.FUSED, Blame.NONE), verdict.message
    assert "the same model in float64 is fused" in verdict.message


def test_the_float64_check_excuses_no_fault_of_the_pass(monkeypatch, faulty_pass):
    from convbn_compat.checks import oracle

    monkeypatch.setattr(oracle, "FLOAT64_CHECK_BELOW", float("inf"))  # check every miss
    with faulty_pass(scaled(1.5)):
        verdict = judge(PLAIN)
    assert (verdict.outcome, verdict.blame) == (Outcome.WRONG_RESULT, Blame.PASS)
    assert "the same model in float64" not in verdict.message


def test_a_fault_that_also_breaks_the_flag_off_compile_is_not_the_pass():
    from torch._inductor import config

    with config.patch(post_grad_custom_post_pass=_double_the_output):
        verdict = judge(PLAIN)
    assert verdict.outcome is Outcome.WRONG_RESULT, verdict.message
    assert verdict.blame is Blame.NOT_PASS
    assert verdict.message_off.startswith("wrong")
    assert (verdict.fires, verdict.fires_off) == (1, 0)


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / "inductor-cache")
    return env


def test_a_fuzz_run_writes_a_results_file_that_report_reads(tmp_path):
    out = tmp_path / "fuzz-smoke.json"
    proc = subprocess.run(
        [
            *(
                sys.executable,
                "-m",
                "convbn_compat.generator.fuzz",
                "--max-examples",
                "4",
                "--seed",
                "3",
            ),
            *("--db", str(tmp_path / "db"), "--out", str(out), "--convbn-run", "fuzz-smoke"),
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "4 examples" in proc.stdout
    run = load_run(out)
    assert (run.complete, run.kind) == (True, "fuzz")
    assert run.fuzz.examples == 4
    assert sum(run.fuzz.counts.values()) == 4
    report = subprocess.run(
        [sys.executable, "-m", "convbn_compat", "report", str(out), "-o", str(tmp_path / "r")],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert report.returncode in (0, 1), report.stderr  # 1: a finding the table lacks
    matrix = json.loads((tmp_path / "r" / "matrix.json").read_text())
    assert set(matrix["cells"]) == {r.id for r in run.records}


@pytest.mark.parametrize(
    "example_id",
    [
        "Gen-Linear-module-c1x2-x1x2x1",  # the pass's fault from 2.2 on
        "Gen-Conv2d-fallkw-c1x1-k1-x1x1x1x1",  # not fused before 2.5, an error after
        PLAIN.id,
    ],
)
def test_a_generated_reproducer_gives_the_oracles_verdict(example_id, tmp_path):
    script = tmp_path / "repro.py"
    script.write_text(repro.repro_script(example_id, "cpu"))
    env = _env(tmp_path)
    env.pop("PYTHONPATH")  # standalone: only torch
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(
        line.split(":", 1)
        for line in proc.stdout.splitlines()
        if line.startswith(("OUTCOME", "BLAME"))
    )
    verdict = judge(Example.from_id(example_id))
    assert lines["OUTCOME"].split()[0] == verdict.outcome.value
    assert lines["BLAME"].strip() == verdict.blame.value
