"""The report's model: results files -> a matrix of cells, its changes, and its summary.

Torch-free, and free of any output format: ``report_markdown`` and ``report_html``
render what this module builds.

A column is one (release, flavour, device) of one kind of run: ``tests`` (the matrix
suite) or ``fuzz`` (a generator's findings, a lane of their own). Rows are cases. Every
cell keeps its record, so a renderer can show everything a run recorded about it.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from packaging.version import Version

from ..core.cases import CASES
from ..core.outcomes import NOT_RUN_SYMBOL, Outcome
from ..core.record import FIELDS, GROUPS
from ..core.releases import RELEASES, ConfigError
from ..core.results import NotResults, Run, load_run, read_json
from ..core.versions import release_of, torch_release

__all__ = [
    "Change",
    "Column",
    "ColumnKey",
    "Matrix",
    "RowGroup",
    "build_matrix",
    "compare",
    "load_baseline",
    "row_changes",
]

# A release whose memory saving falls by more than this fraction of the release before's
# is a benefit regression (a saving of 40% falling under 26.7%, say).
REGRESSION_FRACTION = 1 / 3

MATRIX_SCHEMA = "convbn-compat/matrix"
MATRIX_SCHEMA_VERSION = 1


SYMBOL: dict[str | None, str] = {o.value: o.symbol for o in Outcome}
SYMBOL[None] = NOT_RUN_SYMBOL


def severity(word: str) -> int:
    """An outcome word's rank (``Outcome.severity``): a rise is a new failure."""
    return Outcome(word).severity


class Diff(str, enum.Enum):
    """How a cell compares with the baseline's."""

    NEW_FAILURE = "new failure"
    FIXED = "fixed"
    CHANGED = "changed outcome"
    UNCHANGED = "unchanged"
    NEW_CELL = "new cell"
    GONE_CELL = "gone cell"

    def __str__(self) -> str:
        return self.value


CLASSES = tuple(d.value for d in Diff)
CASE_ORDER = {c.id: i for i, c in enumerate(CASES)}
# A cell is its case record less what the column and the row already say.
_IDENTITY = ("id", "subset", "device", "tf32")
CELL_FIELDS = tuple(f for f in FIELDS if f not in _IDENTITY)
CORE_FIELDS = (*(f for f in GROUPS["core"] if f not in _IDENTITY), "expectation_reason", "status")
"""What every cell has, known or not; the others only where a record carries them."""


class ColumnKey(NamedTuple):
    """One column: ``2.4/cpu/cuda-tf32`` as text (``2.15/cpu/cpu/fuzz`` for a fuzz run)."""

    release: str
    flavour: str
    device: str
    """``cpu``, ``cuda`` or ``cuda-tf32``"""
    kind: str = "tests"

    def __str__(self) -> str:
        text = f"{self.release}/{self.flavour}/{self.device}"
        return text if self.kind == "tests" else f"{text}/{self.kind}"

    @classmethod
    def parse(cls, text: str) -> ColumnKey:
        parts = text.split("/")
        if len(parts) not in (3, 4):
            raise ValueError(f"{text!r} is not a column key (release/flavour/device)")
        return cls(*parts)

    @property
    def lane(self) -> tuple[str, str, str]:
        """Columns of one lane differ only by release; changes are read along a lane."""
        return (self.kind, self.flavour, self.device)

    @property
    def gpu(self) -> bool:
        return self.device.startswith("cuda")


@dataclass
class Column:
    key: ColumnKey
    torch: str
    session: str | None
    sources: list[str]
    complete: bool
    platform: str | None = None
    install: dict | None = None

    def to_json(self) -> dict:
        return {
            "key": str(self.key),
            "release": self.key.release,
            "flavour": self.key.flavour,
            "device": self.key.device,
            "kind": self.key.kind,
            "torch": self.torch,
            "session": self.session,
            "source": self.sources[0],
            "sources": self.sources,
            "complete": self.complete,
        }

    @classmethod
    def from_json(cls, data: dict) -> Column:
        key = ColumnKey(data["release"], data["flavour"], data["device"], data.get("kind", "tests"))
        sources = data.get("sources") or [data.get("source", "?")]
        return cls(key, data["torch"], data.get("session"), sources, data["complete"])


@dataclass
class Matrix:
    columns: list[Column] = field(default_factory=list)
    cells: dict[str, dict[str, dict]] = field(default_factory=dict)
    """case id -> str(column key) -> cell record"""
    incomplete: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Files a folder held that are not results files, each with why it was skipped."""
    sources: list[str] = field(default_factory=list)
    benefit: list[dict] = field(default_factory=list)
    """One row per benefit run (``kind: benefit``), by lane and release."""

    def to_json(self) -> dict:
        return {
            "schema": MATRIX_SCHEMA,
            "schema_version": MATRIX_SCHEMA_VERSION,
            "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "columns": [c.to_json() for c in self.columns],
            "cells": self.cells,
            "incomplete": self.incomplete,
            "missing": self.missing,
            "skipped": self.skipped,
            "benefit": self.benefit,
        }

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if str(c.key) == key)

    def counts(self, column: Column) -> dict[str, int]:
        """Cells per outcome in one column, ``not run`` for cells without one, and how
        many differ from their recorded expectation."""
        key = str(column.key)
        counts = {o.value: 0 for o in Outcome}
        counts["not run"] = counts["unexpected"] = 0
        for row in self.cells.values():
            cell = row.get(key)
            if cell is None:
                continue
            counts[cell["outcome"] or "not run"] += 1
            counts["unexpected"] += is_unexpected(cell)
        return counts


def is_unexpected(cell: dict | None) -> bool:
    """An outcome that the expectations table did not predict (a finding)."""
    return bool(
        cell
        and cell.get("outcome") is not None
        and cell.get("expected_outcome") is not None
        and cell["outcome"] != cell["expected_outcome"]
    )


def _column_key(run: Run, case: dict) -> ColumnKey:
    data = run.data
    release = data.get("release") or release_of(data["environment"]["torch"])
    flavour = data.get("flavour") or "installed"
    device = case["device"] + ("-tf32" if case.get("tf32") else "")
    return ColumnKey(release, flavour, device, run.kind)


def _release_sort_key(release: str, torch: str) -> tuple:
    if release in RELEASES:
        return (list(RELEASES).index(release), Version("0"))
    return (len(RELEASES), torch_release(torch))


def _column_sort_key(column: Column) -> tuple:
    key = column.key
    # CPU lanes, then GPU lanes, then the generator's findings; by release within each.
    return (
        key.kind != "tests",
        key.gpu,
        key.flavour,
        key.device,
        _release_sort_key(key.release, column.torch),
    )


def expand(paths: list[Path]) -> tuple[list[Run], list[str]]:
    """Results runs named by files and folders, and what the folders held besides.

    A file named on the command line must be a results file. A folder's other JSON files
    (a report's matrix.json, a sensitivity run) are skipped and listed, each with why.
    """
    runs: list[Run] = []
    skipped: list[str] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
            before = len(runs)
            for file in found:
                try:
                    runs.append(load_run(file))
                except NotResults as exc:
                    skipped.append(str(exc))
            if len(runs) == before:
                why = f" (skipped: {'; '.join(skipped)})" if skipped else ""
                raise ConfigError(
                    f"{path} holds no results files (*.json){why}; name the folder a "
                    "session wrote (results/ by default)"
                )
        elif path.is_file():
            runs.append(load_run(path))
        else:
            raise ConfigError(
                f"no results file or folder at {path}; name files or folders that "
                "`nox -s tests-X.Y-cpu` wrote (results/ by default)"
            )
    return runs, skipped


def build_matrix(paths: list[Path]) -> Matrix:
    runs, skipped = expand(paths)
    return matrix_of(runs, skipped)


def matrix_of(runs: list[Run], skipped: list[str] | None = None) -> Matrix:
    matrix = Matrix(skipped=list(skipped or []), sources=[str(r.path) for r in runs])
    columns: dict[ColumnKey, Column] = {}
    matrix.benefit = benefit_rows([r for r in runs if r.kind == "benefit"])
    for run in runs:
        env = run.data["environment"]
        for case in run.data["cases"]:
            key = _column_key(run, case)
            column = columns.get(key)
            if column is None:
                column = columns[key] = Column(
                    key,
                    env["torch"],
                    run.data.get("session"),
                    [],
                    True,
                    env.get("platform"),
                    run.data.get("install"),
                )
            if str(run.path) not in column.sources:
                column.sources.append(str(run.path))
            # A column merges every run of it; one unfinished run leaves it incomplete.
            column.complete = column.complete and bool(run.data["complete"])
            if column.torch != env["torch"]:
                raise ConfigError(
                    f"{run.path} and {column.sources[0]} both give column {key} but test "
                    f"torch {env['torch']} and {column.torch}; report them separately"
                )
            # Every cell has the core fields; the generator's own only where recorded.
            cell = {k: case.get(k) for k in CELL_FIELDS if k in case or k in CORE_FIELDS}
            matrix.cells.setdefault(case["id"], {})[str(key)] = cell
        if not run.data["complete"]:
            matrix.incomplete.append(str(run.path))
    matrix.columns = sorted(columns.values(), key=_column_sort_key)
    for column in matrix.columns:
        if column.complete or column.key.kind != "tests":
            continue
        key = str(column.key)
        have = {cid for cid, row in matrix.cells.items() if key in row}
        device = column.key.device.split("-")[0]
        want = {c.id for c in CASES if device in c.devices}
        matrix.missing += [f"{key}: {cid}" for cid in sorted(want - have, key=CASE_ORDER.get)]
    matrix.cells = dict(sorted(matrix.cells.items(), key=lambda kv: CASE_ORDER.get(kv[0], 1e9)))
    return matrix


def benefit_rows(runs: list[Run]) -> list[dict]:
    """Benefit runs in release order per lane, each flagged where its memory saving fell
    by more than ``REGRESSION_FRACTION`` of the release before's (same model, device)."""
    rows_: list[dict] = []
    for run in runs:
        section = run.data.get("benefit") or {}
        env = run.data["environment"]
        rows_.append(
            {
                "release": run.data.get("release") or release_of(env["torch"]),
                "flavour": run.data.get("flavour") or "installed",
                "torch": env["torch"],
                "device": section.get("device"),
                "model": section.get("model"),
                "method": section.get("method"),
                "configs": section.get("configs", {}),
                "summary": section.get("summary", {}),
                "pr_figures_gb": section.get("pr_figures_gb"),
                "complete": bool(run.data["complete"]),
                "source": str(run.path),
            }
        )
    rows_.sort(
        key=lambda r: (
            r["device"] or "",
            r["model"] or "",
            _release_sort_key(r["release"], r["torch"]),
        )
    )
    previous: dict[tuple, dict] = {}
    for row in rows_:
        lane = (row["flavour"], row["device"], row["model"])
        saved = row["summary"].get("memory_saved_vs_off")
        before = previous.get(lane)
        row["regression"] = None
        if before is not None and saved is not None:
            then = before["summary"].get("memory_saved_vs_off")
            if then is not None and then > 0 and saved < then * (1 - REGRESSION_FRACTION):
                row["regression"] = (
                    f"memory saved fell from {then:.0%} ({before['release']}) to {saved:.0%}"
                )
        if saved is not None:
            previous[lane] = row
    return rows_


def load_baseline(path: Path) -> Matrix:
    """A baseline is an earlier matrix.json, or a folder (or file) of results."""
    path = Path(path)
    if path.is_file():
        data = read_json(path, "baseline")
        if isinstance(data, dict) and data.get("schema") == MATRIX_SCHEMA:
            if data.get("schema_version", 0) > MATRIX_SCHEMA_VERSION:
                raise ConfigError(
                    f"baseline {path} has matrix schema version {data['schema_version']}; "
                    f"this convbn-compat reads up to {MATRIX_SCHEMA_VERSION}"
                )
            try:
                columns = [Column.from_json(c) for c in data["columns"]]
                cells = data["cells"]
                _check_baseline_cells(path, cells)
            except (KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(
                    f"baseline {path} is a matrix missing {exc}; regenerate it with `report`"
                ) from None
            return Matrix(columns, cells, data.get("incomplete", []))
    return build_matrix([path])


def _check_baseline_cells(path: Path, cells: dict) -> None:
    for case_id, row in cells.items():
        for key, cell in row.items():
            try:
                if cell.get("outcome") is not None:
                    Outcome.parse(cell["outcome"])
            except ValueError as exc:
                raise ConfigError(
                    f"baseline {path}: cell {case_id} @ {key}: {exc}; regenerate the baseline"
                ) from None


def compare(current: Matrix, baseline: Matrix) -> list[dict]:
    """Class every cell of either matrix against the other, new failures first."""
    shared = {str(c.key) for c in current.columns} & {str(c.key) for c in baseline.columns}
    if current.columns and baseline.columns and not shared:
        raise ConfigError(
            "the baseline shares no column with this run (baseline: "
            f"{', '.join(str(c.key) for c in baseline.columns[:4])}...; this run: "
            f"{', '.join(str(c.key) for c in current.columns[:4])}...), so nothing can be "
            "compared; give a baseline of the same releases, flavours and devices"
        )
    rows = []
    case_ids = list(current.cells) + [c for c in baseline.cells if c not in current.cells]
    for case_id in case_ids:
        now_row = current.cells.get(case_id, {})
        then_row = baseline.cells.get(case_id, {})
        for key in list(now_row) + [k for k in then_row if k not in now_row]:
            now, then = now_row.get(key), then_row.get(key)
            if then is None:
                klass = Diff.NEW_CELL
            elif now is None:
                klass = Diff.GONE_CELL
            elif now["outcome"] == then["outcome"]:
                klass = Diff.UNCHANGED
            elif now["outcome"] is None or then["outcome"] is None:
                klass = Diff.CHANGED
            elif severity(now["outcome"]) > severity(then["outcome"]):
                klass = Diff.NEW_FAILURE
            elif now["outcome"] == Outcome.FUSED.value:
                klass = Diff.FIXED
            else:
                klass = Diff.CHANGED
            rows.append(
                {
                    "case": case_id,
                    "column": key,
                    "class": klass.value,
                    "before": then and then["outcome"],
                    "after": now and now["outcome"],
                    "count_changed": bool(now and then and now["fire_count"] != then["fire_count"]),
                    "message_changed": bool(now and then and now["message"] != then["message"]),
                }
            )
    rows.sort(key=lambda r: CLASSES.index(r["class"]))
    return rows


@dataclass(frozen=True)
class Change:
    """A case's outcome differs from the release before, along one lane."""

    lane: str
    before_release: str
    release: str
    before: str | None
    after: str | None

    @property
    def direction(self) -> str:
        """``regression`` (worse), ``fix`` (better) or ``change`` (neither, or unknown)."""
        if self.before is None or self.after is None:
            return "change"
        a, b = severity(self.before), severity(self.after)
        return "regression" if b > a else "fix" if b < a else "change"

    def __str__(self) -> str:
        return f"{self.release} ({self.lane}): {self.before} -> {self.after} ({self.direction})"


def lane_text(key: ColumnKey) -> str:
    text = f"{key.flavour}/{key.device}"
    return text if key.kind == "tests" else f"{text} {key.kind}"


def row_changes(matrix: Matrix) -> dict[str, list[Change]]:
    """Per case, every change of outcome from one release to the next, in each lane."""
    lanes: dict[tuple, list[Column]] = {}
    for column in matrix.columns:
        lanes.setdefault(column.key.lane, []).append(column)
    out: dict[str, list[Change]] = {}
    for case_id, row in matrix.cells.items():
        for columns in lanes.values():
            previous: tuple[Column, str | None] | None = None
            for column in columns:
                cell = row.get(str(column.key))
                if cell is None:
                    continue
                if previous is not None and cell["outcome"] != previous[1]:
                    out.setdefault(case_id, []).append(
                        Change(
                            lane_text(column.key),
                            previous[0].key.release,
                            column.key.release,
                            previous[1],
                            cell["outcome"],
                        )
                    )
                previous = (column, cell["outcome"])
    return out


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


@dataclass(frozen=True)
class Row:
    case_id: str
    group: RowGroup
    worst: int
    """The worst outcome's severity in the row"""


def rows(matrix: Matrix, diff: list[dict] | None = None) -> list[Row]:
    """Every row, the ones to look at first first: unexpected, then known failures by
    how bad they are, then the all-fused ones, each in case order."""
    new_failures = {r["case"] for r in diff or () if r["class"] == Diff.NEW_FAILURE.value}
    out = []
    for case_id, row in matrix.cells.items():
        outcomes = [c["outcome"] for c in row.values() if c.get("outcome") is not None]
        worst = max((severity(o) for o in outcomes), default=0)
        if case_id in new_failures or any(is_unexpected(c) for c in row.values()):
            group = RowGroup.UNEXPECTED
        elif worst > 0:
            group = RowGroup.KNOWN
        else:
            group = RowGroup.FUSED
        out.append(Row(case_id, group, worst))
    order = list(RowGroup)
    return sorted(
        out,
        key=lambda r: (order.index(r.group), -r.worst, CASE_ORDER.get(r.case_id, 1e9)),
    )
