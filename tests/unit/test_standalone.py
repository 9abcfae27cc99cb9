"""Standalone reproducers, without torch: at most 60 lines, torch and the standard
library alone, the model in plain code, and a draft issue beside it."""

from __future__ import annotations

import ast
import sys

import pytest

from convbn_compat.__main__ import main
from convbn_compat.core import causes
from convbn_compat.core.errors import ConfigError
from convbn_compat.tools.standalone import draft_issue, standalone_script

CAUSES = causes.load().rows


@pytest.mark.parametrize("cause", CAUSES, ids=lambda c: c.id)
def test_every_cause_has_a_short_torch_only_script(cause):
    script = standalone_script(cause.id)
    assert len(script.splitlines()) <= 60
    imported = set()
    for node in ast.walk(ast.parse(script)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported - {"torch"} <= set(sys.stdlib_module_names), imported
    assert "convbn_compat" not in script
    assert "class Model(nn.Module)" in script  # the model, in plain code
    assert "efficient_conv_bn_eval_fx_passes = flag" in script  # on, then off
    assert "sys.exit(1 if on and not off else 0)" in script


def test_the_draft_issue_has_what_a_maintainer_asks_for():
    script = standalone_script("bn-fewer-than-8-args")
    draft = draft_issue("bn-fewer-than-8-args", script)
    for heading in ("## Environment", "## Reproducer", "## Expected and actual",
                    "## Releases affected", "## Suspected code"):  # fmt: skip
        assert heading in draft
    assert "torch <2.13,>=2.5" in draft
    assert "efficient_conv_bn_eval_graph_transform_inlined" in draft
    assert "/blob/v2.15.0/torch/_inductor/fx_passes/efficient_conv_bn_eval.py" in draft
    assert "https://github.com/pytorch/pytorch/issues/169011" in draft


def test_repro_standalone_writes_the_script_and_the_draft(tmp_path, capsys):
    out = tmp_path / "bug.py"
    assert main(["repro", "convtranspose-groups", "--standalone", "-o", str(out)]) == 0
    assert out.read_text().startswith("# ConvTranspose with groups > 1")
    assert (tmp_path / "bug.md").read_text().startswith("# [Inductor] efficient_conv_bn_eval:")


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("ConvOp-bias-Conv2d-bn-module", "is a case of the suite: use repro without --standalone"),
        ("Gen-Conv2d-decomposed-c1x1-k1-x1x1x1x1", "pre-dispatch"),
        ("Gen-Conv2d-module-c1x1-k5-x1x1x2x2", "output would be empty"),
    ],
)
def test_what_a_standalone_script_cannot_hold_is_refused(case, says):
    with pytest.raises(ConfigError, match=says):
        standalone_script(case)
