"""Per-release expectations, kept as data in ``expectations.toml``.

Each row names a release specifier, a case pattern and devices, and says which outcome
those cells have and why. A cell that no row names is expected to be ``fused``. A row
never overlaps another: two rows naming one cell is an error, so the table cannot say
two things about one cell.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet

from .cases import CASES
from .cells import DEVICES
from .entrypoints import IDS as ENTRY_IDS
from .errors import ConfigError
from .generated import BN_FORMS, CALLS, CONTROLS, DTYPES, LAYERS, PREFIX, Example, spatial_dims
from .outcomes import Outcome
from .record import CaseRecord, Status
from .tables import (
    Choice,
    Key,
    ListOf,
    OneOrMore,
    Releases,
    Table,
    Text,
    read_table,
    refusal,
    shared_release,
)
from .versions import torch_release

__all__ = ["DEFAULT_FILE", "Expectation", "Expectations", "load"]

DEFAULT_FILE = Path(__file__).with_name("expectations.toml")
KNOWN_IDS = tuple(c.id for c in CASES) + ENTRY_IDS
ROW = Table(
    {
        "releases": Key(Releases(), required=True),
        "cases": Key(OneOrMore(Text()), required=True, sample='["*ConvOp-*-decomposed"]'),
        "devices": Key(ListOf(Choice(DEVICES), nonempty=True), default=DEVICES),
        "outcome": Key(Text(), required=True, sample='"not-fused"'),
        "reason": Key(Text(), required=True, sample='"""the verified cause"""'),
        "links": Key(ListOf(Text()), default=(), sample='["https://github.com/..."]'),
    }
)
"""An ``[[expect]]`` row: its keys, their kinds, which are required."""


@dataclass(frozen=True)
class Expectation:
    releases: SpecifierSet
    cases: tuple[str, ...]
    devices: tuple[str, ...]
    outcome: Outcome
    reason: str
    links: tuple[str, ...] = ()

    def matches(self, case_id: str, device: str, torch_version: str) -> bool:
        return (
            device in self.devices
            and any(fnmatch.fnmatchcase(case_id, pattern) for pattern in self.cases)
            and self.releases.contains(torch_release(torch_version), prereleases=True)
        )


@dataclass(frozen=True)
class Expected:
    outcome: Outcome
    reason: str
    links: tuple[str, ...] = ()


FUSED = Expected(Outcome.FUSED, "the pass fires as often as upstream's test expects")


class Expectations:
    def __init__(self, rows: list[Expectation], source: str = "<rows>") -> None:
        self.rows = rows
        self.source = source

    def lookup(self, case_id: str, device: str, torch_version: str) -> Expected:
        hits = [r for r in self.rows if r.matches(case_id, device, torch_version)]
        if len(hits) > 1:
            raise ConfigError(
                f"{self.source}: {len(hits)} rows name {case_id} on {device} for torch "
                f"{torch_version} ({'; '.join(f'{r.cases} {r.releases}' for r in hits)}); "
                "make them disjoint"
            )
        if not hits:
            return FUSED
        return Expected(hits[0].outcome, hits[0].reason, hits[0].links)

    def apply(
        self, record: CaseRecord, torch_version: str, status: Status | None = None
    ) -> CaseRecord:
        """``record`` with this table's expectation for its cell in ``torch_version``
        (and a status: the given one, else whether the outcome is the expected one).
        The one way a record gets its expectation: the plugin, the generator, reach."""
        expected = self.lookup(record.id, record.device, torch_version)
        return record.with_expectation(expected, status)


def _row(raw: dict, where: str) -> Expectation:
    for pattern in raw["cases"]:
        if not any(fnmatch.fnmatchcase(i, pattern) for i in KNOWN_IDS):
            raise refusal(where, "cases", f"pattern {pattern!r} matches no case id")
    try:
        outcome = Outcome.parse(raw["outcome"])
    except ValueError as exc:
        raise refusal(where, "outcome", f"is {raw['outcome']!r}: {exc}") from None
    if outcome is Outcome.FUSED:
        raise refusal(where, "outcome", "is 'fused', the default; only list other outcomes")
    return Expectation(
        raw["releases"],
        tuple(raw["cases"]),
        tuple(raw["devices"]),
        outcome,
        raw["reason"].strip(),
        tuple(raw["links"]),
    )


@functools.cache
def _case_ids() -> tuple[str, ...]:
    """The case ids a row is checked against for overlaps: every committed case and
    entry point, and generated examples (the rows' ``Gen-*`` patterns name ids the search
    makes): a plain one of every layer and each committed one, each in every call style,
    BatchNorm form and inlining, and each of those in every dtype and control."""
    ids = set(KNOWN_IDS)
    seeds = [Example.from_id(i) for i in KNOWN_IDS if i.startswith(f"{PREFIX}-")]
    for layer in LAYERS:
        shape = "x1" * spatial_dims(layer)
        if shape:
            seeds.append(Example.from_id(f"{PREFIX}-{layer}-module-c1x1-k1-x1x1{shape}"))
            seeds.append(Example.from_id(f"{PREFIX}-{layer}-module-c2x2-k1-g2-x1x2{shape}"))
        else:  # a Linear's input: (N, C) and (N, S, C)
            seeds.append(Example.from_id(f"{PREFIX}-{layer}-module-c1x1-x1x1"))
            seeds.append(Example.from_id(f"{PREFIX}-{layer}-module-c1x1-x1x1x1"))
    for seed in seeds:
        for call, form, inline in itertools.product(CALLS, BN_FORMS, (True, False)):
            base = seed.replace(call=call, bn_form=form, inline=inline)
            for ex in (
                base,
                *(base.replace(dtype=d) for d in DTYPES),
                *(base.replace(control=c) for c in CONTROLS),
            ):
                if not ex.problems():
                    ids.add(ex.id)
    return tuple(sorted(ids))


@functools.cache
def _named(pattern: str) -> frozenset[str]:
    return frozenset(i for i in _case_ids() if fnmatch.fnmatchcase(i, pattern))


def _refuse_overlaps(rows: list[Expectation], wheres: list[str]) -> None:
    """Two rows that can name one cell (a case id both select, on a device both list, in
    a release both ranges hold) would say two things about it: refuse the later one."""
    named = [frozenset().union(*(_named(p) for p in row.cases)) for row in rows]
    for (i, a), (j, b) in itertools.combinations(enumerate(rows), 2):
        devices = [d for d in a.devices if d in b.devices]
        both = named[i] & named[j]
        if not devices or not both:
            continue
        release = shared_release(a.releases, b.releases)
        if release is None:
            continue
        raise ConfigError(
            f"{wheres[j]}: 'releases', 'cases' and 'devices' overlap row #{i + 1}'s: both "
            f"name {min(both)} on {devices[0]} in torch {release} (releases "
            f"{str(a.releases)!r} and {str(b.releases)!r}); make the rows disjoint: narrow "
            "one's releases, cases or devices"
        )


def load(path: Path | None = None) -> Expectations:
    """The table in ``path`` (default: ``DEFAULT_FILE``, read when called)."""
    path = DEFAULT_FILE if path is None else path
    rows = read_table(path, "expect", "expectations", ROW)
    table = [_row(raw, where) for raw, where in rows]
    _refuse_overlaps(table, [where for _, where in rows])
    return Expectations(table, str(path))
