"""A generated reproducer, run with only torch, prints the outcome the suite gives."""

from __future__ import annotations

import sys

import pytest

torch = pytest.importorskip("torch")

from convbn_compat.cases import get_case, run_case  # noqa: E402
from convbn_compat.repro import repro_script, run_script  # noqa: E402


@pytest.mark.parametrize(
    "case_id",
    [
        "ConvOp-bias-Conv2d-bn-module",  # fused in every release
        "Bug196165-convkwargs-Conv2d-bn-module",  # not-fused <2.5, wrong-result after
        "MultiUserConvOp-nobias-Linear-bn-decomposed",  # not-fused <2.4, fused after
        "Stats-ConvOp-bias-ConvTranspose2d-bn-module",  # random BN state: two builders
    ],
)
def test_script_prints_the_suites_outcome(case_id, tmp_path):
    script = tmp_path / f"{case_id}.py"
    script.write_text(repro_script(case_id))
    suite = run_case(get_case(case_id)).outcome.value
    assert run_script(sys.executable, script) == suite
