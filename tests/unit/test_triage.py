"""Triage without torch: features and their removal, delta debugging, steering away from
known causes, proposed rows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from convbn_compat.core import causes, features
from convbn_compat.core.generated import Example
from convbn_compat.core.outcomes import Blame, Outcome
from convbn_compat.core.record import CaseRecord
from convbn_compat.core.results import Environment, FoundCause, FuzzSection, Run
from convbn_compat.generator import triage
from convbn_compat.generator.fuzz import Fuzzer
from convbn_compat.generator.strategies import examples

from .test_generated import _planted_run, _Verdict, planted_oracle, reflect_oracle


@settings(max_examples=300, deadline=None)
@given(examples("cpu"))
def test_removing_a_feature_takes_that_feature_away_and_nothing_it_does_not_imply(ex):
    for feat in features.present(ex):
        smaller = features.remove(ex, feat)
        if smaller is None:
            continue  # no valid model without it: left untested, never essential
        assert smaller.problems() == []
        assert feat.value(smaller) == feat.plain, (feat.name, ex.id, smaller.id)
        # Fewer features, never more: removal walks towards the plainest model.
        assert {f.name for f in features.present(smaller)} < {f.name for f in features.present(ex)}


def test_every_feature_a_cause_row_may_name_is_in_the_table():
    assert set(causes.FEATURES) >= {f.name for f in features.FEATURES}
    for row in causes.load().rows:
        assert set(row.when) <= set(causes.FEATURES) | set(causes.RECORD_FEATURES), row.id


def _judge(oracle):
    calls = []

    def judge(ex):
        calls.append(ex.id)
        return oracle(ex, "cpu")

    return judge, calls


def test_delta_debugging_keeps_only_what_the_failure_needs():
    ex = Example.from_id("Gen-ConvTranspose2d-fkw-c2x4-k3-s2-g2-nobias-x2x2x3x3-float64-bwd")
    judge, calls = _judge(planted_oracle)
    fp = triage.fingerprint(ex, planted_oracle(ex, "cpu"), judge)
    assert fp.essential == {"conv": True, "transposed": True, "grouped": True}
    assert fp.text == "conv+grouped+transposed"
    assert fp.complete
    assert fp.judged == len(calls) > 0
    # What is left is the plainest ConvTranspose with groups that still fails.
    assert fp.example.layer == "ConvTranspose1d"
    assert fp.example.call == "module"
    assert {f.name for f in features.present(fp.example)} == {
        "conv",
        "transposed",
        "grouped",
    } | set(fp.untested)


def test_a_feature_whose_removal_changes_the_failure_is_essential():
    # The same example fails another way without its keyword call: not the same failure.
    def oracle(ex, device):
        if ex.call == "fkw":
            return _Verdict(Outcome.ERROR, Blame.PASS, "AssertionError")
        return _Verdict(Outcome.WRONG_RESULT, Blame.PASS)

    ex = Example.from_id("Gen-Linear-fkw-c1x1-nobias-x1x1")
    judge, _ = _judge(oracle)
    fp = triage.fingerprint(ex, oracle(ex, "cpu"), judge)
    assert fp.essential == {"keywords": True, "functional": True}


def test_a_time_limit_leaves_the_fingerprint_incomplete_not_wrong():
    ex = Example.from_id("Gen-ConvTranspose2d-fkw-c2x4-k3-s2-g2-x2x2x3x3")
    fp = triage.fingerprint(ex, planted_oracle(ex, "cpu"), lambda e: None)
    assert not fp.complete
    assert fp.essential == {}
    assert set(fp.untested) >= {"conv", "transposed", "grouped"}


def _run(tmp_path, budget, max_examples=300):
    fuzzer = Fuzzer(
        "cpu", 0, 600, max_examples, tmp_path / f"db{budget}", planted_oracle,
        lambda line: None, torch_version="2.15.0", cause_budget=budget,
    )  # fmt: skip
    fuzzer.search()
    return fuzzer


def test_a_cause_seen_often_enough_gets_fewer_examples(tmp_path):
    free = _run(tmp_path, 0)
    steered = _run(tmp_path, 5)
    assert free.steered == 0
    assert steered.steered > 0
    known = ("convtranspose-groups", "linear-3d-input")
    spent_free = sum(free.causes[k].count for k in known if k in free.causes)
    spent_steered = sum(steered.causes[k].count for k in known if k in steered.causes)
    # The same number of examples run, fewer of them on causes already known.
    assert steered.examples_run == free.examples_run == 300
    assert spent_steered < spent_free, (spent_steered, spent_free)
    # Both causes are still found, and each has its shrunk representative.
    assert all(steered.causes[k].shrunk for k in known)


def test_proposed_rows_read_back_as_a_causes_table(tmp_path):
    entries = [
        {"known": True, "cause": "linear-3d-input", "title": "", "representative": "x"},
        {
            "known": False,
            "cause": 'new:AssertionError@f:assert x == "8"',
            "title": 'assert x == "8"',
            "representative": "Gen-Linear-fpos-c1x1-x1x1",
            "seen_on": "2.15.0",
            "suspect": "f",
            "crash": {"exception": "AssertionError", "function": "f", "line": 'x\\ ==\\ "8"'},
        },
        {
            "known": False,
            "cause": "new:wrong-result[no_bias]",
            "title": "wrong",
            "representative": "Gen-Linear-module-c1x1-nobias-x1x1",
            "seen_on": "2.15.0",
            "releases": ">=2.13",
            "replay": "from 2.13 to 2.15 (the newest tested): not fixed",
            "when": {"no_bias": [True], "outcome": ["wrong-result"]},
        },
    ]
    path = tmp_path / "proposed.toml"
    plain = {"known": False, "examples": 1, "signatures": 1, "shrunk": True, "links": []}
    found = [FoundCause.from_json({**plain, "range": "", **e}) for e in entries]
    path.write_text(causes.proposed_rows(found))
    table = causes.load(path)
    ids = [c.id for c in table.rows]
    assert ids[0].startswith("assertionerror-f-assert-x-8-")
    assert ids[1].startswith("wrong-result-no-bias-")
    assert str(table.rows[0].releases) == "==2.15.0"
    assert str(table.rows[1].releases) == ">=2.13"
    assert "# replay: wrong or failing from 2.13" in path.read_text()


def test_a_replay_becomes_a_release_range():
    from convbn_compat.core.errors import ConfigError
    from convbn_compat.tools.propose import release_specifier

    assert release_specifier({"2.2": "wrong-result", "2.15": "error"}) == ">=2.2"
    fixed = {"2.2": "not-fused", "2.5": "error", "2.12": "error", "2.13": "fused"}
    assert release_specifier(fixed) == ">=2.5,<2.13"
    assert release_specifier({"2.2": "fused", "2.15": "not-fused"}) == ""
    with pytest.raises(ConfigError, match="not one range"):
        release_specifier({"2.2": "error", "2.3": "fused", "2.4": "error"})


def test_propose_writes_each_new_cause_with_the_range_its_replay_found(tmp_path, monkeypatch):
    from convbn_compat.tools import propose

    replayed = []

    def fake_replay(ids, device, root, keys, progress, discard):
        replayed.append((tuple(ids), discard))
        return {i: {"2.2": "fused", "2.4": "wrong-result", "2.15": "wrong-result"} for i in ids}

    monkeypatch.setattr(propose, "replay", fake_replay)
    _planted_run(tmp_path, reflect_oracle)
    out = propose.propose(tmp_path / "fuzz.json", discard=True, progress=print)
    (example,) = {ids[0] for ids, _ in replayed}
    assert "pmreflect" in example
    assert replayed == [((example,), True)]  # once, for the one new cause
    (row,) = causes.load(out).rows
    assert row.id.startswith("wrong-result-conv-padding-mode-")
    assert str(row.releases) == ">=2.4"
    assert "# replay: wrong or failing from 2.4 to 2.15" in out.read_text()


def test_propose_refuses_a_run_with_nothing_new(tmp_path):
    from convbn_compat.core.errors import ConfigError
    from convbn_compat.tools import propose

    _planted_run(tmp_path, planted_oracle)
    with pytest.raises(ConfigError, match="no new cause"):
        propose.propose(tmp_path / "fuzz.json")


def test_triage_says_when_a_run_did_not_finish(tmp_path, capsys):
    import json

    from convbn_compat.__main__ import main

    _planted_run(tmp_path, planted_oracle)
    path = tmp_path / "fuzz.json"
    assert main(["triage", str(path)]) == 0
    data = json.loads(path.read_text())
    data["complete"] = False
    path.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["triage", str(path)]) == 1
    assert "the search did not finish" in capsys.readouterr().out


def test_a_replayed_database_with_one_new_fault_in_many_signatures_is_one_cause(tmp_path):
    def run(max_examples, seed_value, worker=0, workers=1):
        fuzzer = Fuzzer(
            "cpu", seed_value, 600, max_examples, tmp_path / "db", reflect_oracle,
            lambda line: None, round_start=worker, round_step=workers,
            torch_version="2.15.0", cause_budget=0,
        )  # fmt: skip
        fuzzer.search()
        return fuzzer

    # Two workers know only their own findings: each shrinks the fault's first
    # signature it meets and saves it in the shared database.
    firsts = [run(300, 0, worker, 2) for worker in (0, 1)]
    new = {"new:wrong-result[conv+padding_mode]"}
    assert all({k for k in f.causes if k.startswith("new:")} == new for f in firsts)
    # The next search replays every saved minimal failure first, several signatures of
    # the same fault among them: triaged one after another, they are still one cause.
    again = run(60, 99)
    assert {k for k in again.causes if k.startswith("new:")} == new
    assert not [k for k in again.causes if k.startswith("sig:pass/")]


def nobias_oracle(ex, device):
    """The planted bugs, and a new one with the same signature as linear-3d-input's
    (pass/wrong-result/-/Linear/...): a Linear without bias on a 2-D input."""
    if ex.layer == "Linear" and not ex.bias and len(ex.input_shape) == 2:
        return _Verdict(Outcome.WRONG_RESULT, Blame.PASS)
    return planted_oracle(ex, device)


def test_a_new_cause_sharing_a_known_one_s_signature_is_not_hidden(tmp_path, capsys):
    data, status = _planted_run(tmp_path, nobias_oracle)
    assert status == 4
    by_cause = {}
    for case in data["cases"]:
        if case["blame"] == "pass":
            by_cause.setdefault(case["cause"], set()).add(case["signature"])
    assert "new:wrong-result[no_bias]" in by_cause, by_cause
    assert "linear-3d-input" in by_cause
    shared = by_cause["new:wrong-result[no_bias]"] & by_cause["linear-3d-input"]
    assert shared, "the planted faults were meant to share a signature"
    counted = {e["cause"]: e["examples"] for e in data["fuzz"]["causes"]}
    triaged = data["fuzz"]["triage"]
    assert counted["linear-3d-input"] == triaged["linear-3d-input"]["examples"]


def test_one_fault_seen_with_several_values_of_a_feature_is_one_cause(tmp_path):
    def oracle(ex, device):  # any padding mode but zeros
        if ex.padding_mode != "zeros":
            return _Verdict(Outcome.WRONG_RESULT, Blame.PASS)
        return planted_oracle(ex, device)

    data, status = _planted_run(tmp_path, oracle)
    assert status == 4
    new = {c["cause"] for c in data["cases"] if c["blame"] == "pass" and "new" in c["cause"]}
    modes = {c["id"].split("-pm")[1].split("-")[0] for c in data["cases"] if "-pm" in c["id"]}
    assert len(modes) > 1, modes  # the search met more than one mode
    assert new == {"new:wrong-result[conv+padding_mode]"}, new


def test_a_new_cause_never_fingerprinted_gets_a_row_that_loads_and_matches_no_more(tmp_path):

    record = CaseRecord.from_verdict(
        _Verdict(Outcome.WRONG_RESULT, Blame.PASS), "generated"
    ).to_json()
    record.update(id="Gen-Conv2d-fpos-c2x2-k3-nobias-x1x2x4x4-bnall", signature="s", shrunk=False)
    record["examples_with_signature"] = 3
    run = Run(
        "t",
        Environment("2.16.0.dev20261130+cpu"),
        [CaseRecord.from_json(record)],
        kind="fuzz",
        fuzz=FuzzSection(),
    )
    table = causes.load()
    causes.assign(run, table)
    (entry,) = causes.summarise(run, table)
    assert entry.cause.startswith("new:")
    assert entry.seen_on == "2.16.0"
    path = tmp_path / "rows.toml"
    path.write_text(causes.proposed_rows([entry]))
    (row,) = causes.load(path).rows
    assert row.when["no_bias"] == [True]
    assert row.when["functional"] == [True]
    assert row.in_range("2.16.0.dev20261130+cpu")
    plain = CaseRecord.from_json({**record, "id": "Gen-Conv2d-fpos-c2x2-k3-x1x2x4x4-bnall"})
    assert causes.Causes([row]).recognise(plain, "2.16.0") is None
