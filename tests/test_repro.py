"""A generated reproducer, run with only torch, gives the outcome the suite gives.

The script carries the suite's runner verbatim (``repro``), so the two can only differ
if the embedding breaks: a module missing from the script, an installed convbn_compat
shadowing the embedded one, an argument lost on the way. Checked on every upstream case
against the suite's committed results for the installed release, and on a few cases of
the other kinds against a run of the suite's runner in this process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from convbn_compat.core.cases import get_case  # noqa: E402
from convbn_compat.suite.runner import run_case  # noqa: E402
from convbn_compat.tools.repro import repro_script, run_script  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "case_id",
    [
        "Bug196165-convkwargs-Conv2d-bn-module",  # not-fused <2.5, wrong-result after
        "Stats-ConvOp-bias-ConvTranspose2d-bn-module",  # random BN state
        "Gen-Linear-module-c1x2-x1x2x1",  # a generated example: the oracle's blame too
    ],
)
def test_script_prints_the_suites_outcome(case_id, tmp_path):
    script = tmp_path / f"{case_id}.py"
    script.write_text(repro_script(case_id))
    suite = run_case(get_case(case_id)).outcome.value
    assert run_script(sys.executable, script) == suite
