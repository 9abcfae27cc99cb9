"""One case record: what the results files hold, what the schema doc says, round trips."""

import json
import re
from pathlib import Path

import pytest

from convbn_compat.core.outcomes import Blame, Outcome
from convbn_compat.core.record import FIELDS, GROUPS, CaseRecord, RecordError
from convbn_compat.core.results import load_run

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DOC = ROOT / "docs" / "results-schema.md"


def _table_keys(section: str) -> set[str]:
    """The backticked keys in the first column of the tables under ``section``."""
    text = SCHEMA_DOC.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    keys = set()
    for line in body.splitlines():
        if line.startswith("| `"):
            keys.update(re.findall(r"`(\w+)`", line.split("|")[1]))
    return keys


def test_the_schema_doc_documents_exactly_the_records_fields():
    matrix = set(GROUPS["core"] + GROUPS["harness"] + GROUPS["generated"])
    assert _table_keys("A case record") == matrix
    fuzz = _table_keys("A fuzz results file")
    assert set(GROUPS["fuzz"]) <= fuzz
    reach = _table_keys("A reach results file")
    assert set(GROUPS["reach"]) <= reach


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
