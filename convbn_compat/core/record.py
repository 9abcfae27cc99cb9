"""The case record: one cell of a results file, as every part of the harness sees it.

The runner and the oracle fill in what they measured (``CaseRecord.from_verdict`` for a
generated example), the pytest plugin, the generator and ``reach`` add the expectation
(``with_expectation``), the crash path writes one for a case whose interpreter died.
The report and ``sensitivity`` read the same fields back through ``from_json``, which
checks every field's type and allowed values. ``docs/results-schema.md`` documents
every field; a unit test holds its tables to the groups below.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from .cells import DEVICES, column_device
from .outcomes import Blame, Outcome

__all__ = ["CORE_SUMMARY", "FIELDS", "GROUPS", "OBSERVED", "CaseRecord", "RecordError", "Status"]


class Status(str, enum.Enum):
    """What the harness made of a cell: pytest's verdict, or a generator's finding."""

    PASSED = "passed"
    """The outcome is the expected one (fused, or a strict xfail that held)."""
    FAILED = "failed"
    """The outcome is not the expected one."""
    SKIPPED = "skipped"
    """The cell did not run (no GPU, or a capability the release lacks)."""
    XFAILED = "xfailed"
    """Expected to be other than fused, and it was, exactly as the table says."""
    FOUND = "found"
    """A generator's finding: a failing example, recorded with its expectation."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, outcome: Outcome | None, expected: Outcome | None) -> Status:
        """A record's status where no pytest verdict exists (reach)."""
        return cls.PASSED if outcome is not None and outcome is expected else cls.FAILED


class RecordError(ValueError):
    """A record read from a file holds a field of the wrong type or an unknown value."""


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
    # Where the pass was met, and the harness's: the expectation's cause, warnings
    # seen, pytest's verdict.
    path: str | None = None
    """The pass's path in the graph it saw: module, aten, functional (joined with + where
    several), none; None where the release has no hook to look."""
    frames: list[str] | None = None
    """For an error: where it happened, ``torch/...py:line in function: source``, the
    innermost frames inside torch (the pass's own innermost frame among them)."""
    expectation_reason: str | None = None
    warnings: list[str] | None = None
    status: Status | None = None
    run: str | None = None
    """The run of its results file that recorded it (``r1``, ``r2``: the file's ``runs``)."""
    # Generated examples (the found cases and fuzz findings): the oracle's verdict.
    blame: Blame | None = None
    fire_count_pass_off: int | None = None
    message_pass_off: str | None = None
    """The flag-off compile's outcome and why (where the flag-on one failed)."""
    exception: str | None = None
    graphs: int | None = None
    cause: str | None = None
    """The known cause (``core/causes.toml``) that recognises this failure, or ``new``."""
    # Fuzz findings only: how the search found it.
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
            if isinstance(value, float) and not math.isfinite(value):
                value = None  # JSON holds no NaN or Infinity
            out[name] = value.value if isinstance(value, enum.Enum) else value
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: object) -> CaseRecord:
        """A record read from a file. Raises RecordError naming the first field whose
        type or value is wrong (and what it should be)."""
        if not isinstance(data, dict):
            raise RecordError(f"a case is a JSON object, not {type(data).__name__}")
        for name in GROUPS["core"]:  # every record has these, null where unknown
            if name not in data:
                nullable = type(None) in typing.get_args(_TYPES[name])
                hint = " (null is allowed for what is not known)" if nullable else ""
                raise RecordError(f"field {name!r} is missing{hint}")
        kwargs: dict[str, Any] = {}
        for name, kind in _TYPES.items():
            if name in data:
                kwargs[name] = _checked(name, data[name], kind)
        if kwargs["device"] not in DEVICES:
            raise RecordError(
                f"field 'device' is {kwargs['device']!r}; choose one of: {', '.join(DEVICES)}"
            )
        if kwargs.get("tf32") and kwargs["device"] != "cuda":
            raise RecordError("field 'tf32' is true on a CPU record; TF32 exists only on CUDA")
        extra = {k: v for k, v in data.items() if k not in _TYPES}
        return cls(**kwargs, extra=extra)

    @classmethod
    def new(cls, case, device: str, tf32: bool) -> CaseRecord:
        """A cell's record before it runs: what is known of the case, nothing measured."""
        return cls(case.id, case.subset, device, tf32, expected_count=case.expected_fires)

    @classmethod
    def from_verdict(cls, verdict, subset: str) -> CaseRecord:
        """The record of a generated example judged by the oracle
        (``checks.oracle.Verdict``): the found cases and the fuzz findings alike."""
        message = verdict.message
        return cls(
            verdict.id,
            subset,
            verdict.device,
            False,
            outcome=verdict.outcome,
            fire_count=verdict.fires,
            expected_count=verdict.expected_fires,
            graph_rewrites=verdict.graph_rewrites,
            max_abs_error=verdict.max_abs_error,
            seconds=verdict.seconds,
            message=message,
            warnings=verdict.warnings,
            blame=verdict.blame,
            fire_count_pass_off=verdict.fires_off,
            message_pass_off=verdict.message_off,
            exception=verdict.exception,
            graphs=verdict.graphs,
            path=verdict.path,
            frames=verdict.frames,
        )

    def with_expectation(self, expected, status: Status | None = None) -> CaseRecord:
        """This record with what the expectations table predicts for it (an
        ``expectations.Expected``), and a status: the given one (pytest's verdict, a
        finding), else whether the outcome is the expected one."""
        return dataclasses.replace(
            self,
            expected_outcome=expected.outcome,
            expectation_reason=expected.reason,
            status=status or Status.of(self.outcome, expected.outcome),
        )

    @property
    def cell(self) -> tuple[str, str, bool]:
        """(id, device, tf32): what a record is the record of."""
        return self.id, self.device, self.tf32

    @property
    def column_device(self) -> str:
        return column_device(self.device, self.tf32)

    @property
    def unexpected(self) -> bool:
        """An outcome that the expectations table did not predict (a finding)."""
        return (
            self.outcome is not None
            and self.expected_outcome is not None
            and self.outcome is not self.expected_outcome
        )

    def observed(self) -> dict[str, Any]:
        """What a warm rerun must see again: caches may only save time."""
        return {k: getattr(self, k) for k in OBSERVED}


def _groups() -> dict[str, tuple[str, ...]]:
    names = [f.name for f in dataclasses.fields(CaseRecord) if f.name != "extra"]
    bounds = {"core": "id", "harness": "path", "generated": "blame"}
    bounds |= {"fuzz": "signature", "reach": "entry"}
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


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(CaseRecord)
    return {f.name: hints[f.name] for f in dataclasses.fields(CaseRecord) if f.name != "extra"}


_TYPES = _field_types()
_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _checked(name: str, value: Any, kind: Any) -> Any:
    """``value`` as field ``name`` holds it, or RecordError saying what it should be."""
    args = typing.get_args(kind)
    optional = type(None) in args
    if value is None:
        if optional:
            return None
        raise RecordError(f"field {name!r} is null; it needs a value")
    base = next((a for a in args if a is not type(None)), kind) if args else kind
    origin = typing.get_origin(base)
    if isinstance(base, type) and issubclass(base, enum.Enum):
        try:
            return base(value)
        except ValueError:
            words = ", ".join(m.value for m in base)
            raise RecordError(f"field {name!r} is {value!r}; choose one of: {words}") from None
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RecordError(f"field {name!r} is {value!r}; it must be a list of strings")
        return value
    ok = (
        isinstance(value, bool)
        if base is bool
        else isinstance(value, (int, float)) and not isinstance(value, bool)
        if base is float
        else isinstance(value, base) and not (base is int and isinstance(value, bool))
    )
    if not ok:
        what = _NAMES.get(base, base.__name__)
        raise RecordError(f"field {name!r} is {value!r}; it must be {what}")
    return value
