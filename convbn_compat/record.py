"""The case record: one cell of a results file, as every part of the harness sees it.

The runner fills in what it measured, the pytest plugin adds the expectation and
pytest's verdict, the crash path writes one for a case whose interpreter died, the
generator writes one per finding and ``reach`` one per entry point. The report and
``sensitivity`` read the same fields back. ``docs/results-schema.md`` documents every
field; a unit test holds its tables to the groups below.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .outcomes import Blame, Outcome

__all__ = ["CORE_SUMMARY", "FIELDS", "GROUPS", "OBSERVED", "CaseRecord"]


@dataclass
class CaseRecord:
    """One case on one device: what it is, what happened, and what was expected."""

    id: str
    subset: str
    device: str
    tf32: bool = False
    outcome: Outcome | None = None
    """None until the case has run (and for one that was skipped before it ran)."""
    expected_outcome: Outcome | None = None
    fire_count: int | None = None
    expected_count: int | None = None
    graph_rewrites: int | None = None
    max_abs_error: float | None = None
    seconds: float | None = 0.0
    """None when the interpreter died in the case."""
    message: str = ""
    # The harness's: the expectation's cause, warnings seen, pytest's verdict.
    expectation_reason: str | None = None
    warnings: list[str] | None = None
    status: str | None = None
    # Generated examples (the found cases and fuzz findings): the oracle's verdict.
    blame: Blame | None = None
    fire_count_pass_off: int | None = None
    # Fuzz findings only: the flag-off result, and how the search found it.
    message_pass_off: str | None = None
    exception: str | None = None
    graphs: int | None = None
    signature: str | None = None
    examples_with_signature: int | None = None
    first_example: str | None = None
    shrunk: bool | None = None
    # Reach: the entry point a record is about.
    entry: str | None = None
    about: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields a tool adds beside these (reach's cache counters): kept, written last."""

    def to_json(self) -> dict[str, Any]:
        """The record as the results file holds it: the core fields always, the others
        where they are known; enums as their words."""
        out: dict[str, Any] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is None and name not in GROUPS["core"]:
                continue
            out[name] = value.value if isinstance(value, (Outcome, Blame)) else value
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseRecord:
        """A record read from a file; raises ValueError naming a bad outcome word."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("outcome", "expected_outcome"):
            if kwargs.get(key) is not None:
                kwargs[key] = Outcome.parse(kwargs[key])
        if kwargs.get("blame") is not None:
            kwargs["blame"] = Blame(kwargs["blame"])
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in known})

    @property
    def cell(self) -> tuple[str, str, bool]:
        """(id, device, tf32): what a record is the record of."""
        return self.id, self.device, self.tf32

    def observed(self) -> dict[str, Any]:
        """What a warm rerun must see again: caches may only save time."""
        return {k: getattr(self, k) for k in OBSERVED}


def _groups() -> dict[str, tuple[str, ...]]:
    names = [f.name for f in dataclasses.fields(CaseRecord) if f.name != "extra"]
    bounds = {"core": "id", "harness": "expectation_reason", "generated": "blame"}
    bounds |= {"fuzz": "message_pass_off", "reach": "entry"}
    starts = [names.index(first) for first in bounds.values()] + [len(names)]
    return {g: tuple(names[a:b]) for g, a, b in zip(bounds, starts, starts[1:])}


GROUPS = _groups()
"""Fields by who writes them (the comments in CaseRecord), as docs/results-schema.md
documents them: core (every record), harness (the pytest plugin), generated (found
cases and fuzz findings), fuzz (findings only), reach (entry points)."""
FIELDS = tuple(name for group in GROUPS.values() for name in group)
"""Every field a record may carry, in the order a results file writes them."""
OBSERVED = ("outcome", "fire_count", "graph_rewrites")
"""What a warm rerun must see again, and what tells two runs of a case apart."""
CORE_SUMMARY = ("outcome", "expected_outcome", "fire_count", "graph_rewrites", "message")
"""A record in one line: what a failure report shows of it."""
