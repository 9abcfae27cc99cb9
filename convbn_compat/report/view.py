"""What a reader of the report sees, computed once from the model: rows in the order to
look at them, each row's changes along its lanes, what is unexpected, the lanes and
their labels, each cell's reproduce and rerun commands and its links. The renderers
(``markdown``, ``html``) draw a ``View``; they compute nothing of their own.
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass, field

from ..core import expectations
from ..core.cases import get_case
from ..core.errors import ConfigError
from ..core.outcomes import Outcome
from ..core.record import CaseRecord
from ..core.releases import INSTALLED, RELEASES, session_name
from .model import Column, ColumnKey, Diff, Matrix

__all__ = ["Change", "Lane", "Row", "RowGroup", "View", "build_view"]


@dataclass(frozen=True)
class Change:
    """A case's outcome differs from the release before, along one lane."""

    lane: str
    before_release: str
    release: str
    before: Outcome | None
    after: Outcome | None

    @property
    def direction(self) -> str:
        """``regression`` (worse), ``fix`` (better) or ``change`` (neither, or unknown)."""
        if self.before is None or self.after is None:
            return "change"
        a, b = self.before.severity, self.after.severity
        return "regression" if b > a else "fix" if b < a else "change"

    def __str__(self) -> str:
        return f"{self.release} ({self.lane}): {self.before} -> {self.after} ({self.direction})"


class RowGroup(str, enum.Enum):
    """Rows by what a reader must look at first."""

    UNEXPECTED = "unexpected"
    """Some cell's outcome is not the one the expectations table predicts, or the
    baseline comparison calls it a new failure."""
    KNOWN = "known"
    """Not fused somewhere, every time as the expectations table predicts."""
    FUSED = "fused"
    """Fused (or unsupported) everywhere it ran."""

    def __str__(self) -> str:
        return self.value


TITLES = {
    RowGroup.UNEXPECTED: "Unexpected: an outcome the expectations table does not predict",
    RowGroup.KNOWN: "Not fused somewhere, as expected (known bugs and limits)",
    RowGroup.FUSED: "Fused everywhere",
}


@dataclass
class Row:
    case_id: str
    group: RowGroup
    worst: int
    """The worst outcome's severity in the row."""
    cells: dict[str, CaseRecord]
    changes: list[Change]
    story: str
    """One line: where the row is unexpected, or how its outcome moves across releases."""
    links: dict[str, list[str]] = field(default_factory=dict)
    """Per column key: the case's links and its expectation's (issue, fix PR)."""


@dataclass
class Lane:
    label: str
    kind: str
    columns: list[Column]


@dataclass
class View:
    matrix: Matrix
    diff: list[dict] | None
    rows: list[Row]
    lanes: list[Lane]
    commands: dict[str, dict[str, str]]
    """Per column key: ``repro`` and ``rerun``, with ``{case}`` for the case id."""
    counts: dict[str, dict[str, int]]
    """Per column key: cells per outcome, ``not run``, and ``unexpected``."""
    diff_by_cell: dict[tuple[str, str], dict]

    def group(self, group: RowGroup) -> list[Row]:
        return [r for r in self.rows if r.group is group]

    @property
    def unexpected_cells(self) -> int:
        return sum(c["unexpected"] for c in self.counts.values())

    @property
    def new_failures(self) -> list[dict]:
        return [r for r in self.diff or () if r["class"] == Diff.NEW_FAILURE.value]


def lane_text(key: ColumnKey) -> str:
    text = f"{key.flavour}/{key.device}" + (f"@{key.gpu}" if key.gpu else "")
    return text if key.kind == "tests" else f"{text} {key.kind}"


def lane_label(key: ColumnKey) -> str:
    flavour = {"cpu": "CPU wheel", "cuda": "CUDA wheel", INSTALLED: "installed torch"}.get(
        key.flavour, key.flavour
    )
    device = {"cpu": "on CPU", "cuda": "on GPU", "cuda-tf32": "on GPU, TF32"}.get(
        key.device, key.device
    )
    gpu = f" ({key.gpu})" if key.gpu else ""
    kind = {"fuzz": "fuzz findings, ", "reach": "entry points, "}.get(key.kind, "")
    return f"{kind}{flavour} {device}{gpu}"


def row_changes(matrix: Matrix) -> dict[str, list[Change]]:
    """Per case, every change of outcome from one release to the next, in each lane."""
    lanes: dict[tuple, list[Column]] = {}
    for column in matrix.columns:
        lanes.setdefault(column.key.lane, []).append(column)
    out: dict[str, list[Change]] = {}
    for case_id, row in matrix.cells.items():
        for columns in lanes.values():
            previous: tuple[Column, Outcome | None] | None = None
            for column in columns:
                cell = row.get(str(column.key))
                if cell is None:
                    continue
                if previous is not None and cell.outcome is not previous[1]:
                    change = Change(
                        lane_text(column.key),
                        previous[0].key.release,
                        column.key.release,
                        previous[1],
                        cell.outcome,
                    )
                    out.setdefault(case_id, []).append(change)
                previous = (column, cell.outcome)
    return out


def commands(column: Column) -> dict[str, str]:
    """How to reproduce and rerun a cell of ``column``; ``{case}`` stands for the case.
    Sessions come from ``session_name``: the ones ``nox -l`` lists."""
    key = column.key
    device, tf32 = key.device_and_tf32
    known = key.release in RELEASES
    release = key.release if known else INSTALLED
    flavour = key.flavour if key.flavour != INSTALLED else None
    where = release if flavour else INSTALLED
    if key.kind == "reach":
        session = session_name("reach", where, flavour)
        repro = (
            f"python -m convbn_compat.tools.reach --device {device} --only {{case}} "
            "--out reach.json   # with the Python of that release's environment"
        )
        return {"repro": repro, "rerun": f"nox -s {session} -- --only {{case}}"}
    repro = (
        f"python -m convbn_compat repro {{case}} --device {device}"
        f"{' --tf32' if tf32 else ''}{f' --release {key.release}' if known else ''} -o repro.py"
        "\npython repro.py   # with the Python of that release's environment"
    )
    if key.kind == "fuzz":
        releases = f" --releases {key.release}" if known and flavour else ""
        return {
            "repro": repro,
            "rerun": f"python -m convbn_compat replay {{case}} --device {device}{releases}",
        }
    session = session_name("tests", where, flavour)
    cell = f"{{case}}-{key.device}"
    return {"repro": repro, "rerun": f"nox -s {session} -- -k '{cell}'"}


def _links(case_id: str, row: dict[str, CaseRecord], matrix: Matrix, table) -> dict:
    own: list[str] = []
    with contextlib.suppress(ConfigError):  # a case this version does not know
        own = list(get_case(case_id).links)
    out = {}
    for column in matrix.columns:
        record = row.get(str(column.key))
        if record is None:
            continue
        links = list(own)
        with contextlib.suppress(ConfigError):
            links += table.lookup(case_id, record.device, column.torch).links
        if links:
            out[str(column.key)] = list(dict.fromkeys(links))
    return out


def _story(cells: dict[str, CaseRecord], changes: list[Change], group: RowGroup) -> str:
    if group is RowGroup.UNEXPECTED:
        odd = [
            f"{key}: {cell.outcome} (expected {cell.expected_outcome})"
            for key, cell in cells.items()
            if cell.unexpected
        ]
        if odd:
            more = f" and {len(odd) - 3} more" if len(odd) > 3 else ""
            return "; ".join(odd[:3]) + more
        return "a new failure against the baseline"
    if changes:
        return "; ".join(str(c) for c in changes)
    outcomes = sorted({str(c.outcome) for c in cells.values() if c.outcome})
    return f"{', '.join(outcomes)} in every release it ran"


def _counts(matrix: Matrix) -> dict[str, dict[str, int]]:
    out = {}
    for column in matrix.columns:
        key = str(column.key)
        counts = {o.value: 0 for o in Outcome}
        counts["not run"] = counts["unexpected"] = 0
        for row in matrix.cells.values():
            cell = row.get(key)
            if cell is None:
                continue
            counts[cell.outcome.value if cell.outcome else "not run"] += 1
            counts["unexpected"] += cell.unexpected
        out[key] = counts
    return out


def _lanes(matrix: Matrix) -> list[Lane]:
    lanes: list[Lane] = []
    for column in matrix.columns:
        label = lane_label(column.key)
        if lanes and lanes[-1].label == label:
            lanes[-1].columns.append(column)
        else:
            lanes.append(Lane(label, column.key.kind, [column]))
    return lanes


def build_view(matrix: Matrix, diff: list[dict] | None = None) -> View:
    """Everything the renderers draw, computed once."""
    new_failures = {r["case"] for r in diff or () if r["class"] == Diff.NEW_FAILURE.value}
    changes = row_changes(matrix)
    table = expectations.load()
    order = {case_id: i for i, case_id in enumerate(matrix.cells)}
    rows = []
    for case_id, cells in matrix.cells.items():
        worst = max((c.outcome.severity for c in cells.values() if c.outcome), default=0)
        if case_id in new_failures or any(c.unexpected for c in cells.values()):
            group = RowGroup.UNEXPECTED
        elif worst > 0:
            group = RowGroup.KNOWN
        else:
            group = RowGroup.FUSED
        row_changes_ = changes.get(case_id, [])
        rows.append(
            Row(
                case_id,
                group,
                worst,
                cells,
                row_changes_,
                _story(cells, row_changes_, group),
                _links(case_id, cells, matrix, table),
            )
        )
    groups = list(RowGroup)
    rows.sort(key=lambda r: (groups.index(r.group), -r.worst, order[r.case_id]))
    return View(
        matrix,
        diff,
        rows,
        _lanes(matrix),
        {str(c.key): commands(c) for c in matrix.columns},
        _counts(matrix),
        {(r["case"], r["column"]): r for r in diff or ()},
    )
