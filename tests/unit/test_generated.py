"""The generator without torch: ids, strategies, determinism, and the fuzz driver.

The driver is tested with a stand-in oracle that plants known bugs, so that what it
must find, shrink and group is known exactly; the real oracle's blame is tested with
torch in tests/test_oracle.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, seed, settings

from convbn_compat.core import cases
from convbn_compat.core.generated import Example, IdError
from convbn_compat.core.outcomes import Blame, Outcome
from convbn_compat.core.releases import ConfigError
from convbn_compat.generator.fuzz import Fuzzer, Signature
from convbn_compat.generator.strategies import examples
from convbn_compat.tools import repro

ROOT = Path(__file__).resolve().parents[2]

QUICK = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_every_generated_example_is_valid_and_its_id_reads_back(device):
    seen = []

    # Derandomized: the span asserted below must not depend on a lucky draw (with a
    # random seed the [cuda] case failed once in 11 unit runs here: an axis not drawn).
    @settings(QUICK, derandomize=True)
    @given(examples(device))
    def check(ex):
        assert ex.problems() == []
        assert Example.from_id(ex.id) == ex
        assert device in ex.devices
        seen.append(ex)

    check()
    # The generator spans the axes the issue asks for, not one corner of them.
    assert {e.layer for e in seen} == set(cases.LAYERS)
    assert {e.call for e in seen} >= {"module", "modulekw", "fpos", "fkw", "fallkw", "decomposed"}
    assert {e.control for e in seen} == {"none", "flagoff", "train", "freezing"}
    assert any(e.groups > 1 and e.groups == e.in_ch for e in seen)  # depthwise
    assert any(isinstance(e.padding, str) for e in seen)
    assert any(e.pairs > 1 for e in seen)
    assert any(e.extra_user for e in seen)
    assert any(e.dynamic for e in seen)
    assert any(not e.bn_affine for e in seen)


def _ids_for(seed_value: int, n: int = 30) -> list[str]:
    out: list[str] = []

    @seed(seed_value)
    @settings(QUICK, max_examples=n)
    @given(examples("cpu"))
    def collect(ex):
        out.append(ex.id)

    collect()
    return out


def test_the_same_seed_gives_the_same_examples():
    assert _ids_for(7) == _ids_for(7)
    assert _ids_for(7) != _ids_for(8)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Conv2d-module", "not a generated example id"),
        ("Gen-Conv4d-module-c1x1-k1-x1x1x1x1", "unknown layer"),
        ("Gen-Conv2d-sideways-c1x1-k1-x1x1x1x1", "unknown call style"),
        ("Gen-Conv2d-module-c1x1-k1-x1x1x1x1-zz9", "unknown part 'zz9'"),
        ("Gen-Conv2d-module-c3x4-k1-g2-x1x3x4x4", "groups 2 must divide"),
        ("Gen-Conv2d-module-c1x1-k5-x1x1x2x2", "output would be empty"),
        ("Gen-ConvTranspose2d-module-c1x1-k1-pvalid-x1x1x2x2", "string padding"),
    ],
)
def test_a_bad_id_says_what_is_wrong(text, problem):
    with pytest.raises(IdError, match=problem):
        Example.from_id(text)


def test_repro_and_cases_take_generated_ids_like_any_case_id():
    ex_id = "Gen-ConvTranspose2d-fkw-c4x8-k3-s2-g2-x2x4x5x5-cl"
    case = cases.get_case(ex_id)
    assert (case.id, case.example, case.channels_last) == (ex_id, ex_id, True)
    script = repro.repro_script(ex_id, "cpu", "2.15")
    ast.parse(script)
    assert f"CASE = {ex_id!r}" in script
    # It carries the oracle itself, not a copy of its checks.
    assert "def judge(ex: Example" in script
    with pytest.raises(ConfigError, match="output would be empty"):
        cases.get_case("Gen-Conv2d-module-c1x1-k5-x1x1x2x2")


def test_found_cases_are_valid_examples_with_their_own_subset():
    found = [c for c in cases.CASES if c.subset == cases.FOUND]
    assert found
    for case in found:
        assert Example.from_id(case.id).id == case.id == case.example


# -- the driver, with planted bugs ------------------------------------------------------


class _Verdict:
    def __init__(self, outcome, blame, exception=None):
        self.outcome, self.blame, self.exception = outcome, blame, exception
        self.device, self.fires, self.fires_off = "cpu", 1, 0
        self.expected_fires, self.graph_rewrites, self.max_abs_error = 1, None, None
        self.graphs = 1
        self.message, self.message_off, self.seconds = "planted", "", 0.0
        self.warnings, self.path, self.frames, self.id = [], None, None, "planted"


def planted_oracle(ex: Example, device: str):
    """Two planted pass bugs and one shared (not the pass's) failure."""
    if ex.layer.startswith("ConvTranspose") and ex.groups > 1:
        return _Verdict(Outcome.ERROR, Blame.PASS, "RuntimeError")
    if ex.layer == "Linear" and len(ex.input_shape) == 3:
        return _Verdict(Outcome.WRONG_RESULT, Blame.PASS)
    if ex.control == "freezing" and ex.dtype == "float64":
        return _Verdict(Outcome.ERROR, Blame.NOT_PASS, "RuntimeError")
    return _Verdict(Outcome.FUSED, Blame.NONE)


def _fuzz(tmp_path, max_examples=400, seed_value=0):
    lines: list[str] = []
    fuzzer = Fuzzer(
        "cpu", seed_value, 600, max_examples, tmp_path / "db", planted_oracle, lines.append,
        torch_version="2.15.0", cause_budget=0,
    )  # fmt: skip
    fuzzer.search()
    return fuzzer, lines


def test_the_driver_finds_shrinks_and_groups_planted_bugs(tmp_path):
    fuzzer, lines = _fuzz(tmp_path)
    assert fuzzer.examples_run == 400
    by_sig = {sig: f for (sig, _), f in fuzzer.findings.items()}
    convt = [s for s in by_sig if s.layer.startswith("ConvTranspose") and s.blame == "pass"]
    assert convt, by_sig.keys()
    # One entry per signature, however many examples shared it.
    assert sum(f.count for f in by_sig.values()) > len(by_sig)
    # The planted oracle answers at once, so shrinking always ends within its cap.
    shrunk = [by_sig[s] for s in convt if by_sig[s].shrunk]
    assert shrunk, "no ConvTranspose finding was shrunk"
    for finding in shrunk:
        ex = finding.example
        # Shrunk to the smallest model that keeps the bug: groups 2, one channel per
        # group, kernel 1, stride 1, nothing else switched on.
        assert (ex.groups, ex.in_ch, ex.out_ch, ex.pairs) == (2, 2, 2, 1), ex.id
        assert (set(ex.kernel), set(ex.stride)) == ({1}, {1}), ex.id
        switched_on = (ex.dynamic, ex.extra_user, ex.backward, ex.channels_last, not ex.inline)
        assert switched_on == (False,) * 5, ex.id
    shared = [s for s in by_sig if s.blame == Blame.NOT_PASS.value]
    assert all(s.outcome == "error" for s in shared)
    assert any("examples" in line for line in lines)  # progress was reported


def test_the_database_replays_earlier_findings(tmp_path):
    first, _ = _fuzz(tmp_path, max_examples=150)
    shrunk = {s: f.example.id for (s, _), f in first.findings.items() if f.shrunk}
    assert shrunk
    # A search with another seed and no budget for new examples still reports every
    # minimal failure the database holds, without running anything new.
    again, _ = _fuzz(tmp_path, max_examples=len(first.causes), seed_value=99)
    replayed = {s: f.example.id for (s, _), f in again.findings.items()}
    assert replayed.items() >= shrunk.items()


def test_a_signature_reads_as_one_line():
    sig = Signature("pass", "error", "RuntimeError", "ConvTranspose2d", "module")
    assert str(sig) == "pass/error/RuntimeError/ConvTranspose2d/module"


def test_a_release_range_names_the_first_bad_release_and_the_fix():
    from convbn_compat.tools.repro import release_range, replay_markdown

    never = {"2.2": "not-fused", "2.3": "fused"}
    assert release_range(never) == "never wrong or failing"
    open_bug = {"2.2": "not-fused", "2.4": "error", "2.5": "wrong-result"}
    assert release_range(open_bug) == "from 2.4 to 2.5 (the newest tested): not fixed"
    fixed = {"2.2": "error", "2.3": "fused", "2.4": "error"}
    assert release_range(fixed) == "from 2.2, fixed in 2.3"
    table = replay_markdown({"Gen-Linear-module-c1x2-x1x2x1": open_bug}, "cpu")
    assert "| `Gen-Linear-module-c1x2-x1x2x1` | not-fused | error | wrong-result |" in table


def _planted_run(tmp_path, oracle):
    from convbn_compat.core.results import ResultsWriter
    from convbn_compat.generator.fuzz import Fuzzer, _summary, write_results

    fuzzer = Fuzzer(
        "cpu", 0, 600, 300, tmp_path / "db", oracle, lambda line: None, torch_version="2.15.0"
    )
    fuzzer.search()
    environment = {"torch": "2.15.0"}  # what a writer reads of the run's torch
    writer = ResultsWriter(tmp_path / "fuzz.json", {"session": "t", "kind": "fuzz"}, environment)
    write_results(fuzzer, writer, complete=True)
    # What the file holds: the document's own JSON.
    return writer.doc.to_json(), _summary(writer.doc, tmp_path / "fuzz.json")


def test_a_run_of_known_causes_ends_in_them_and_exits_0(tmp_path, capsys):
    data, status = _planted_run(tmp_path, planted_oracle)
    out = capsys.readouterr().out
    assert status == 0
    blamed = [c for c in data["cases"] if c["blame"] == "pass"]
    assert blamed
    assert {c["cause"] for c in blamed} == {"convtranspose-groups", "linear-3d-input"}
    assert "  known convtranspose-groups: " in out
    assert "every failure blamed on the pass has a known cause" in out
    # One line a cause, however many signatures it had.
    assert sum(line.startswith("  known ") for line in out.splitlines()) == 2


def reflect_oracle(ex: Example, device: str):
    """The planted bugs, and one that no cause describes: reflect padding."""
    if ex.padding_mode == "reflect":
        return _Verdict(Outcome.WRONG_RESULT, Blame.PASS)
    return planted_oracle(ex, device)


def test_a_fault_no_cause_knows_is_one_new_cause_with_its_exit_code(tmp_path, capsys):
    data, status = _planted_run(tmp_path, reflect_oracle)
    out = capsys.readouterr().out
    assert status == 4  # Exit.NEW_CAUSE
    blamed = [c for c in data["cases"] if c["blame"] == "pass"]
    new = {c["cause"] for c in blamed if c["cause"].startswith("new")}
    # Every signature of the planted fault (Conv1d-3d, each call style) is one new
    # cause: delta debugging leaves only what the fault needs.
    assert new == {"new:wrong-result[conv+padding_mode]"}, new
    reflect = [c for c in blamed if "pmreflect" in c["id"]]
    assert reflect
    assert all(c["cause"] in new for c in reflect)
    assert "NEW cause(s) (exit 4)" in out
    assert "fingerprint: conv+padding_mode" in out
    assert {c["cause"] for c in blamed} - new >= {"convtranspose-groups"}
    # Its proposed row reads as a causes table, and recognises the fault's findings.
    from convbn_compat.core import causes
    from convbn_compat.core.record import CaseRecord

    proposed = causes.load(tmp_path / "fuzz-proposed-causes.toml")
    (row,) = proposed.rows
    assert row.when == {
        "conv": [True],
        "padding_mode": ["reflect", "replicate", "circular"],
        "outcome": ["wrong-result"],
    }  # fmt: skip
    assert row.example.startswith("Gen-Conv1d-module-")
    assert "pmreflect" in row.example
    assert all(proposed.recognise(CaseRecord.from_json(c), "2.15.0") for c in reflect)
    # `triage` reads the run again, one line a cause, and exits 4 for the new one.
    from convbn_compat.__main__ import main

    capsys.readouterr()
    assert main(["triage", str(tmp_path / "fuzz.json")]) == 4
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("NEW   new:wrong-result[conv+padding_mode]") for line in lines) == 1


def test_triage_reads_every_committed_fuzz_run_as_known_causes(capsys):
    from convbn_compat.__main__ import main

    for path in sorted((ROOT / "docs" / "fuzz").glob("*.json")):
        assert main(["triage", str(path)]) == 0, path
        out = capsys.readouterr().out
        assert ", 0 new" in out.splitlines()[0], (path, out)
