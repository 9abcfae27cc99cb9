"""Triage against a real fault planted in the installed pass.

The fault: the pass's replacement functions scale their output by 1.5 when the
BatchNorm's eps is not the default. No row of ``causes.toml`` describes it. Judged by
the real oracle, its failures in three different models (a Conv2d module, a functional
Linear, a Conv1d called by keyword; eps 1e-3 and 0.1) must come out as ONE new cause,
whose fingerprint delta debugging finds, whose standalone reproducer shows the bug, and
whose proposed row recognises all three. A known bug judged in the same run stays its
known cause, and the run exits 4 (a new cause).
"""

from __future__ import annotations

import contextlib
import runpy

import pytest

torch = pytest.importorskip("torch")

from convbn_compat.checks.oracle import judge  # noqa: E402
from convbn_compat.core import causes  # noqa: E402
from convbn_compat.core.errors import Exit  # noqa: E402
from convbn_compat.core.generated import Example  # noqa: E402
from convbn_compat.core.record import CaseRecord  # noqa: E402
from convbn_compat.core.results import ResultsWriter  # noqa: E402
from convbn_compat.generator.fuzz import Fuzzer, _summary, write_results  # noqa: E402
from convbn_compat.tools.standalone import standalone_script  # noqa: E402

FAULTY = [
    "Gen-Conv2d-module-c2x4-k3-x1x2x6x6-eps3",
    "Gen-Linear-fpos-c2x2-x2x2-eps1-bnall",
    "Gen-Conv1d-modulekw-c1x2-k1-x1x1x3-eps1",
]
KNOWN = "Gen-Linear-module-c1x2-x1x2x1"  # linear-3d-input, every release


def eps_fault(out, name, args):
    """Scale the output by 1.5 where the BatchNorm's eps is not the default: the
    module replacement gets the BatchNorm, the aten one its eps as argument 4."""
    eps = args[0].eps if name == "efficient_conv_bn_eval" else args[4]
    return out * 1.5 if eps != 1e-5 else out


@pytest.fixture(scope="module")
def triaged(tmp_path_factory, faulty_pass):
    tmp = tmp_path_factory.mktemp("triage")
    lines: list[str] = []
    with faulty_pass(eps_fault):
        fuzzer = Fuzzer(
            "cpu", 0, 600, None, None, judge, lines.append, torch_version=torch.__version__
        )
        fuzzer.run_examples([Example.from_id(i) for i in [*FAULTY, KNOWN]])
    writer = ResultsWriter(tmp / "fuzz.json", {"session": "triage-faults", "kind": "fuzz"})
    write_results(fuzzer, writer, complete=True)
    status = _summary(writer.doc, tmp / "fuzz.json")
    # What the file holds: the document's own JSON.
    return writer.doc.to_json(), status, tmp, lines


def test_a_fault_no_row_knows_is_one_new_cause_and_a_known_bug_stays_known(triaged):
    data, status, _, lines = triaged
    assert status == Exit.NEW_CAUSE
    blamed = {c["first_example"]: c for c in data["cases"] if c["blame"] == "pass"}
    # Delta debugging judged smaller models too; what failed among them is recorded.
    assert set(blamed) >= {*FAULTY, KNOWN}, lines
    assert {c["cause"] for c in blamed.values()} == {
        "linear-3d-input",
        "new:wrong-result[bn_eps_changed]",
    }
    assert blamed[KNOWN]["cause"] == "linear-3d-input"
    new = {blamed[i]["cause"] for i in FAULTY}
    assert new == {"new:wrong-result[bn_eps_changed]"}, lines
    entries = {e["cause"]: e for e in data["fuzz"]["causes"]}
    assert entries["new:wrong-result[bn_eps_changed]"]["known"] is False
    assert entries["linear-3d-input"]["known"] is True


def test_the_new_cause_has_a_standalone_reproducer_that_shows_it(triaged, tmp_path, faulty_pass):
    data, _, _, _ = triaged
    entry = next(e for e in data["fuzz"]["causes"] if not e["known"])
    # Delta debugging left the plainest model with a changed eps.
    ex = Example.from_id(entry["representative"])
    assert (ex.layer, ex.call, ex.bn_eps != 1e-5) == ("Linear", "module", True), ex.id
    script = tmp_path / "repro.py"
    script.write_text(standalone_script(ex.id, script.name))
    assert len(script.read_text().splitlines()) <= 60
    for shows, context in (
        (True, lambda: faulty_pass(eps_fault)),
        (False, contextlib.nullcontext),
    ):
        torch._dynamo.reset()
        # The fault lives in Python that Inductor traces into the graph, so a cached
        # graph would carry it into the run without it: no FX graph cache here.
        no_cache = torch._inductor.config.patch(fx_graph_cache=False)
        with no_cache, context(), pytest.raises(SystemExit) as stop:
            runpy.run_path(str(script), run_name="__main__")
        assert stop.value.code == (1 if shows else 0), (shows, stop.value.code)


def test_the_proposed_row_recognises_every_finding_of_the_fault(triaged):
    data, _, tmp, _ = triaged
    proposed = causes.load(tmp / "fuzz-proposed-causes.toml")
    (row,) = proposed.rows
    assert row.when == {"bn_eps_changed": [True], "outcome": ["wrong-result"]}
    for case in data["cases"]:
        if case["first_example"] in FAULTY:
            assert proposed.recognise(CaseRecord.from_json(case), torch.__version__), case["id"]
