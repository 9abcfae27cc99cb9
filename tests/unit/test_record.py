"""One case record: what the results files hold, what the schema doc says, round trips."""

import dataclasses
import json
import re
from pathlib import Path

import jsonschema
import pytest

from convbn_compat.core import results
from convbn_compat.core.outcomes import Blame, Outcome
from convbn_compat.core.record import FIELDS, GROUPS, CaseRecord, RecordError
from convbn_compat.core.results import SCHEMA_FILE, load_run
from convbn_compat.core.schema_doc import schema_markdown

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DOC = ROOT / "docs" / "results-schema.md"


def test_the_schema_doc_is_the_one_the_schema_writes():
    """docs/results-schema.md is generated from the shipped schema; regenerate it with
    `python -m convbn_compat schema --markdown -o docs/results-schema.md`."""
    assert SCHEMA_DOC.read_text() == schema_markdown()


def test_the_schema_knows_exactly_the_records_fields():
    case = json.loads(SCHEMA_FILE.read_text())["$defs"]["case"]["properties"]
    reach_extras = {
        "cold_fire_count",
        "cache_hits",
        "cache_counters",
        "cache_bypass_reasons",
        "graph_rewrites_running",
    }
    assert set(case) == set(FIELDS) | reach_extras
    assert set(json.loads(SCHEMA_FILE.read_text())["$defs"]["case"]["required"]) == set(
        GROUPS["core"]
    )


@pytest.mark.parametrize(
    ("part", "name"),
    [
        (results.Environment, "environment"),
        (results.Install, "install"),
        (results.RunEntry, "run"),
        (results.Selection, "selection"),
        (results.FuzzSection, "fuzz"),
        (results.Triaged, "triaged"),
        (results.FoundCause, "found_cause"),
        (results.BenefitSection, "benefit"),
        (results.BenefitConfig, "benefit_config"),
    ],
)
def test_each_typed_part_has_exactly_the_schema_s_fields(part, name):
    schema = json.loads(SCHEMA_FILE.read_text())["$defs"][name]
    assert {f.name for f in dataclasses.fields(part)} == set(schema["properties"])


def test_every_committed_results_file_validates_against_the_shipped_schema_alone():
    """What a tool that is not ours sees: the schema file and a validator, no reader."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    for path in RESULTS_FILES:
        errors = list(validator.iter_errors(json.loads(path.read_text())))
        assert not errors, f"{path}: {errors[0].message}"


def test_every_field_belongs_to_one_group():
    assert sorted(FIELDS) == sorted(set(FIELDS))
    assert len(FIELDS) == sum(len(g) for g in GROUPS.values())


RESULTS_FILES = [
    f
    for f in sorted((ROOT / "docs").glob("*/*.json"))
    if json.loads(f.read_text()).get("schema") == "convbn-compat/results"
]


def test_there_are_committed_results_files():
    assert len(RESULTS_FILES) > 50


@pytest.mark.parametrize("path", RESULTS_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_committed_results_file_reads_back_and_writes_out_unchanged(path):
    run = load_run(path)
    assert run.records or run.kind == "benefit", path
    assert run.to_json() == json.loads(path.read_text())


def test_enums_are_written_as_their_words_and_unknown_fields_kept():
    record = CaseRecord("c", "found", "cpu", outcome=Outcome.WRONG_RESULT, blame=Blame.PASS)
    record.extra["cache_hits"] = 2
    out = record.to_json()
    assert (out["outcome"], out["blame"], out["cache_hits"]) == ("wrong-result", "pass", 2)
    assert "entry" not in out  # an optional field that is not known is left out
    assert CaseRecord.from_json(out) == record


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"fire_count": "lots"}, "field 'fire_count' is 'lots'; it must be an integer"),
        ({"tf32": "yes"}, "field 'tf32' is 'yes'; it must be true or false"),
        ({"tf32": True}, "'tf32' is true on a CPU record"),
        ({"device": "tpu"}, "field 'device' is 'tpu'; choose one of: cpu, cuda"),
        ({"outcome": "fuzed"}, "field 'outcome' is 'fuzed'; choose one of: fused"),
        ({"status": "ok"}, "field 'status' is 'ok'; choose one of: passed"),
        ({"blame": "them"}, "field 'blame' is 'them'; choose one of: pass"),
        ({"warnings": "many"}, "field 'warnings' is 'many'; it must be a list of strings"),
        ({"max_abs_error": "0.1"}, "field 'max_abs_error' is '0.1'; it must be a number"),
        ({"expected_count": True}, "field 'expected_count' is True; it must be an integer"),
        ({"id": None}, "field 'id' is null; it needs a value"),
    ],
)
def test_a_field_of_the_wrong_type_or_value_is_named(change, says):
    data = CaseRecord("c", "upstream", "cpu", outcome=Outcome.FUSED).to_json()
    with pytest.raises(RecordError, match=re.escape(says)):
        CaseRecord.from_json({**data, **change})


@pytest.mark.parametrize("missing", ["id", "subset", "device", "outcome", "expected_outcome"])
def test_a_missing_required_field_is_named(missing):
    data = CaseRecord("c", "upstream", "cpu", outcome=Outcome.FUSED).to_json()
    del data[missing]
    with pytest.raises(RecordError, match=f"field '{missing}' is missing"):
        CaseRecord.from_json(data)
