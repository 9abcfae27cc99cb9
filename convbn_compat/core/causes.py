"""Known causes: the bugs of the pass that we know, as data (``causes.toml``), and how a
finding is recognised as one of them.

A finding (a failing generated example, or any failing cell) is recognised by its crash
state where its record has frames (the exception type, plus the pass's own innermost
frame: function and source line), else by the features of its example (layer, call
style, groups, the input's rank, ...). One that no row recognises is a new cause.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import SpecifierSet

from . import features as example_features
from . import generated
from .errors import ConfigError
from .outcomes import Blame, Outcome
from .record import CaseRecord
from .tables import (
    Bool,
    Choice,
    Int,
    Key,
    Kind,
    ListOf,
    Regex,
    Releases,
    Table,
    TableOf,
    Text,
    read_table,
)
from .versions import torch_release

__all__ = [
    "DEFAULT_FILE",
    "Cause",
    "Causes",
    "assign",
    "cause_of",
    "crash_state",
    "features",
    "load",
    "proposed_rows",
    "provisional_cause",
    "rank",
    "representative",
    "summarise",
]

DEFAULT_FILE = Path(__file__).with_name("causes.toml")
PASS_FILE = "fx_passes/efficient_conv_bn_eval.py"
FEATURES = ("layer", "call", *(f.name for f in example_features.FEATURES))
"""What a ``when`` may name of an example: ``core/features.py``'s table."""
RECORD_FEATURES = ("outcome", "exception")


@dataclass(frozen=True)
class Cause:
    id: str
    title: str
    releases: SpecifierSet
    links: tuple[str, ...]
    case: str
    example: str = ""
    """Its smallest generated example: the standalone reproducer's model."""
    suspect: str = ""
    """The pass's function where the fault lies."""
    crash: dict = field(default_factory=dict)
    """Its crash state as written: exception, function and the ``line`` regex's text."""
    when: dict = field(default_factory=dict)
    """Feature -> the list of values that make it."""
    line: re.Pattern | None = field(default=None, compare=False, repr=False)
    """``crash["line"]`` compiled: ``load`` compiles it (a regex that does not compile is
    refused there); a row made in code gets it here."""

    def __post_init__(self) -> None:
        if self.line is None and self.crash:
            object.__setattr__(self, "line", re.compile(self.crash["line"]))

    def in_range(self, torch_version: str) -> bool:
        return self.releases.contains(torch_release(torch_version), prereleases=True)

    def matches_crash(self, record: CaseRecord) -> bool:
        """The record's exception and the pass's innermost frame it was raised in."""
        if not self.crash or not record.frames or record.exception != self.crash["exception"]:
            return False
        own = [f for f in record.frames if PASS_FILE in f]
        if not own:
            return False
        head, _, source = own[-1].partition(": ")
        function = head.rsplit(" in ", 1)[-1]
        return function == self.crash["function"] and bool(self.line and self.line.search(source))

    def predicts(self, found: dict) -> bool:
        """Whether an example's own features (``features.of_example``), before it runs,
        are those this cause shows in: its ``when`` without the record's outcome."""
        keys = [k for k in self.when if k not in RECORD_FEATURES]
        return bool(keys) and all(found.get(k) in self.when[k] for k in keys)

    def matches_features(self, found: dict) -> bool:
        return bool(self.when) and all(found.get(k) in allowed for k, allowed in self.when.items())


def features(record: CaseRecord) -> dict:
    """What the ``when`` of a cause reads: the example's features and the record's."""
    found: dict = {"outcome": str(record.outcome), "exception": record.exception}
    try:
        ex = generated.Example.from_id(record.id)
    except generated.IdError:
        return found
    found.update(example_features.of_example(ex))
    return found


class Causes:
    def __init__(self, rows: list[Cause], source: str = "<rows>") -> None:
        self.rows = rows
        self.source = source
        self.by_id = {c.id: c for c in rows}

    def recognise(self, record: CaseRecord, torch_version: str) -> Cause | None:
        """The known cause of a failing record in this release, if one row knows it."""
        if record.outcome is None or not record.outcome.is_failure:
            return None
        rows = [c for c in self.rows if c.in_range(torch_version)]
        by_case = next((c for c in rows if c.case == record.id), None)
        if by_case is not None:  # a cause's own representative case
            return by_case
        by_crash = next((c for c in rows if c.matches_crash(record)), None)
        if by_crash is not None:
            return by_crash
        found = features(record)
        return next((c for c in rows if c.matches_features(found)), None)


def _when_kind(name: str) -> Kind:
    """What a ``when`` lists for one feature: the values its example or record has."""
    if name == "layer":
        return Choice(generated.LAYERS)
    if name == "call":
        return Choice(generated.CALLS)
    if name == "outcome":
        return Choice(tuple(o.value for o in Outcome))
    if name == "exception":
        return Text()
    feature = example_features.BY_NAME[name]
    if isinstance(feature.plain, bool):
        return Bool()
    if isinstance(feature.plain, int):
        return Int()
    return Choice((feature.plain, *feature.domain))


ROW = Table(
    {
        "id": Key(Text(), required=True, unique=True, sample='"conv-args-by-keyword"'),
        "title": Key(Text(), required=True),
        "releases": Key(Releases(), required=True),
        "links": Key(ListOf(Text()), default=(), sample='["https://github.com/..."]'),
        "case": Key(Text(), required=True, sample='"Bug196165-convkwargs-Conv2d-bn-module"'),
        "example": Key(Text(), default=""),
        "suspect": Key(Text(), default=""),
        "crash": Key(
            Table(
                {
                    "exception": Key(Text(), required=True, sample='"AssertionError"'),
                    "function": Key(Text(), required=True, sample='"efficient_conv_bn_eval"'),
                    "line": Key(Regex(), required=True),
                }
            ),
            default={},
        ),
        "when": Key(
            TableOf(
                {n: ListOf(_when_kind(n), nonempty=True) for n in (*FEATURES, *RECORD_FEATURES)},
                name="feature",
            ),
            default={},
            sample='{ layer = ["Linear"], outcome = ["wrong-result"] }',
        ),
    }
)
"""A ``[[cause]]`` row: its keys, their kinds, which are required; a ``when`` lists,
for each feature it names, the values of that feature's own type."""


def _row(raw: dict, where: str) -> Cause:
    crash, when = raw["crash"], raw["when"]
    if not (when or crash):
        raise ConfigError(
            f"{where}: 'crash' and 'when' are both missing: a cause needs a crash state or "
            f"features to be known by; write one or both: when = {ROW.keys['when'].sample}"
        )
    line = crash.get("line")
    return Cause(
        raw["id"],
        raw["title"],
        raw["releases"],
        tuple(raw["links"]),
        raw["case"],
        raw["example"],
        raw["suspect"],
        {**crash, "line": line.pattern} if line else {},
        when,
        line,
    )


def load(path: Path | None = None) -> Causes:
    """The table in ``path`` (default: ``DEFAULT_FILE``, read when called)."""
    path = DEFAULT_FILE if path is None else path
    rows = [_row(raw, where) for raw, where in read_table(path, "cause", "causes", ROW)]
    return Causes(rows, str(path))


# -- a run's findings, by cause ------------------------------------------------------


def crash_state(frames, exception: str | None) -> tuple[str, str] | None:
    """The pass's innermost frame: (function, source line), without the line number."""
    own = [f for f in frames or () if PASS_FILE in f]
    if not own or not exception:
        return None
    function, _, source = own[-1].split(" in ", 1)[1].partition(": ")
    return function, source.strip()


def provisional_cause(record, fingerprint: str | None = None) -> str:
    """A new cause's provisional id: ``new:`` and its crash state, or its fingerprint
    (``generator.triage``: the features its failure cannot do without)."""
    state = crash_state(record.frames, record.exception)
    if state is not None:
        return f"new:{record.exception}@{state[0]}:{state[1][:60]}"
    if fingerprint is not None:
        return f"new:{record.outcome}[{fingerprint}]"
    layer = record.id.split("-")[1] if record.id.startswith("Gen-") else "?"
    return f"new:{record.outcome}/{record.exception or '-'}/{layer}"


def cause_of(record: CaseRecord, torch_version: str, table: Causes) -> str | None:
    """The one rule for a failure's cause: a known row's id where one recognises it;
    else, for a failure blamed on the pass, the new cause the search gave it (by crash
    state or fingerprint) or a provisional one; else None (not the pass's, or no
    failure)."""
    known = table.recognise(record, torch_version)
    if known is not None:
        return known.id
    if record.blame is Blame.PASS:
        given = record.cause or ""
        return given if given.startswith("new:") else provisional_cause(record)
    return None


def assign(run, table: Causes) -> None:
    """Give every record of a run (``results.Run``) its cause, by ``cause_of``."""
    run.records = [dataclasses.replace(r, cause=cause_of(r, run.torch, table)) for r in run.records]


def rank(example_id: str, shrunk: bool | None) -> tuple[bool, int]:
    """The one order of examples that stand for a cause or a signature: shrunk before
    not, then the shortest id (the smallest model). Lower is better."""
    return (not shrunk, len(example_id))


def representative(records: list[CaseRecord], triaged=None) -> tuple[str, bool]:
    """The one rule for a cause's representative: the search's own triaged example
    where it is shrunk (or nothing else is), else the shrunk and shortest record."""
    smallest = min(records, key=lambda r: rank(r.id, r.shrunk))
    pick = (smallest.id, bool(smallest.shrunk))
    if triaged is not None and triaged.representative and (triaged.shrunk or not pick[1]):
        pick = (triaged.representative, triaged.shrunk)
    return pick


def _as_shown(example_id: str, record: CaseRecord) -> dict:
    """A ``when`` for a new cause that was never fingerprinted (its shrink was cut
    short): every feature its example has, so that the row matches no more than was
    seen."""
    try:
        ex = generated.Example.from_id(example_id)
    except generated.IdError:
        return {"outcome": [str(record.outcome)]}
    when = {f.name: [f.value(ex)] for f in example_features.present(ex)}
    when["outcome"] = [str(record.outcome)]
    if record.exception:
        when["exception"] = [record.exception]
    return when


def summarise(run, table: Causes) -> list:
    """One ``results.FoundCause`` per cause of a run's findings blamed on the pass:
    known or new, how many examples, its representative, the release range and the
    link; for a new one, what its proposed row needs. Reads each record's ``cause``
    (``assign`` gave it)."""
    from .results import FoundCause

    triaged = (run.fuzz.triage if run.fuzz else None) or {}
    by_cause: dict[str, list[CaseRecord]] = {}
    for record in run.records:
        if record.blame is Blame.PASS:
            by_cause.setdefault(record.cause or "new:?", []).append(record)
    out = []
    torch_version = run.torch
    for cause_id, records in sorted(by_cause.items(), key=lambda kv: kv[0].startswith("new")):
        known = table.by_id.get(cause_id)
        found = triaged.get(cause_id)
        rep, shrunk = representative(records, found)
        first = next((r for r in records if r.id == rep), min(records, key=lambda r: len(r.id)))
        entry = FoundCause(
            cause=cause_id,
            known=known is not None,
            examples=sum(r.examples_with_signature or 1 for r in records),
            signatures=len(records),
            representative=rep,
            shrunk=shrunk,
            range=str(known.releases) if known else f"seen on torch {torch_version}",
            links=list(known.links) if known else [],
            title=known.title if known else (first.message.splitlines() or ["?"])[0][:160],
        )
        if known is None:
            # The release, not the build: a nightly's 2.16.0.dev20261130 is 2.16's, as
            # a row's range reads it.
            entry.seen_on = str(torch_release(torch_version))
            if found is not None:
                for key in ("fingerprint", "when", "crash", "suspect", "untested"):
                    setattr(entry, key, getattr(found, key))
            if not (entry.when or entry.crash):
                entry.when = _as_shown(entry.representative, first)
        out.append(entry)
    return out


# -- proposed rows: what a run writes for the causes it found new --------------------


def _slug(text: str) -> str:
    """A row id from a provisional cause: readable, and unique by a short hash (two
    crashes in one function of the pass read alike for their first 50 characters)."""
    digest = hashlib.sha1(text.encode()).hexdigest()[:6]
    return f"{re.sub(r'[^a-z0-9]+', '-', text.lower()).strip('-')[:50]}-{digest}"


def _toml(value) -> str:
    # JSON's strings, lists, numbers and booleans are TOML's too.
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def proposed_rows(entries: list) -> str:
    """Rows for ``core/causes.toml``, one per new cause of a run (``fuzz.causes``)."""
    blocks = [
        "# Proposed by a fuzz run: one row per NEW cause. Check each, give it a title and a\n"
        "# link, and move it into convbn_compat/core/causes.toml.\n"
    ]
    for found in entries:
        if found.known:
            continue
        entry = found.to_json()
        row: dict = {
            "id": _slug(entry["cause"].removeprefix("new:")),
            "title": entry["title"],
            "releases": entry.get("releases") or f"=={entry['seen_on']}",
            "links": [],
            "case": entry["representative"],
            "example": entry["representative"],
        }
        if entry.get("suspect"):
            row["suspect"] = entry["suspect"]
        if entry.get("crash"):
            row["crash"] = entry["crash"]
        if entry.get("when"):
            row["when"] = entry["when"]
        lines = ["", "[[cause]]"]
        if not entry.get("releases"):
            lines.append(
                f"# releases: seen on {entry['seen_on']} only; "
                f"`python -m convbn_compat propose` replays it in every release"
            )
        if entry.get("replay"):
            lines.append(f"# replay: wrong or failing {entry['replay']}")
        lines += [f"{k} = {_toml(v)}" for k, v in row.items()]
        blocks.append("\n".join(lines) + "\n")
    return "".join(blocks)
