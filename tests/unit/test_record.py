"""One case record: what the results files hold, what the schema doc says, round trips."""

import json
import re
from pathlib import Path

from convbn_compat.outcomes import Blame, Outcome
from convbn_compat.record import FIELDS, GROUPS, CaseRecord

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


def test_committed_records_read_back_unchanged():
    files = sorted((ROOT / "docs").glob("*/*.json"))
    records = [
        c
        for f in files
        for c in json.loads(f.read_text()).get("cases", [])
        if isinstance(c, dict) and "id" in c
    ]
    assert len(records) > 1000
    for data in records:
        record = CaseRecord.from_json(data)
        assert record.to_json() == {
            k: v for k, v in data.items() if v is not None or k in GROUPS["core"]
        }


def test_enums_are_written_as_their_words_and_unknown_fields_kept():
    record = CaseRecord("c", "found", "cpu", outcome=Outcome.WRONG_RESULT, blame=Blame.PASS)
    record.extra["cache_hits"] = 2
    out = record.to_json()
    assert (out["outcome"], out["blame"], out["cache_hits"]) == ("wrong-result", "pass", 2)
    assert "entry" not in out  # an optional field that is not known is left out
    assert CaseRecord.from_json(out) == record
