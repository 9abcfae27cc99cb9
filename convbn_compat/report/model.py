"""The report's model: results files -> columns of records, the baseline comparison,
and the benefit rows. Torch-free, and free of any output format: ``view`` computes what
a reader sees from it once, and the renderers draw that.

A column is one (release, flavour, device, GPU) of one kind of run: ``tests`` (the
matrix suite), ``fuzz`` (a generator's findings), ``reach`` (entry points). Rows are
cases. Every cell is the run's own ``CaseRecord``, so a renderer can show everything a
run recorded about it.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from packaging.version import Version

from ..core.cases import CASES
from ..core.cells import column_device, parse_column_device
from ..core.errors import ConfigError, NotResults
from ..core.outcomes import Outcome
from ..core.policy import Policy
from ..core.record import CaseRecord, RecordError
from ..core.releases import RELEASES
from ..core.results import SCHEMA as RESULTS_SCHEMA
from ..core.results import FuzzSection, Run, instant, load_run, read_json
from ..core.versions import torch_release

__all__ = [
    "REGRESSION_FRACTION",
    "Column",
    "ColumnKey",
    "Diff",
    "Matrix",
    "build_matrix",
    "compare",
    "load_baseline",
]

MATRIX_SCHEMA = "convbn-compat/matrix"
MATRIX_SCHEMA_VERSION = 2
"""2: every cell is a whole case record (1: the record less its id and device)."""
REGRESSION_FRACTION = 1 / 3
"""A release whose memory saving falls by more than this fraction of the release
before's is a benefit regression (a saving of 40% falling under 26.7%, say)."""
KIND_ORDER = ("tests", "fuzz", "reach")


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

    @classmethod
    def of(cls, now: CaseRecord | None, then: CaseRecord | None) -> Diff:
        if then is None:
            return cls.NEW_CELL
        if now is None:
            return cls.GONE_CELL
        if now.outcome is then.outcome:
            return cls.UNCHANGED
        if now.outcome is None or then.outcome is None:
            return cls.CHANGED
        if now.outcome.severity > then.outcome.severity:
            return cls.NEW_FAILURE
        return cls.FIXED if now.outcome is Outcome.FUSED else cls.CHANGED


CLASSES = tuple(d.value for d in Diff)
CASE_ORDER = {c.id: i for i, c in enumerate(CASES)}


class ColumnKey(NamedTuple):
    """One column: ``2.4/cpu/cuda-tf32`` as text, ``2.15/cpu/cpu/fuzz`` for a fuzz run,
    ``2.11/installed/cuda@NVIDIA H100 80GB HBM3`` for a GPU's run of the installed torch:
    two GPUs' runs of one release stay two columns."""

    release: str
    flavour: str
    device: str
    """``cpu``, ``cuda`` or ``cuda-tf32`` (``core.cells.column_device``)"""
    kind: str = "tests"
    gpu: str = ""
    """The GPU's name for a GPU column (empty on the CPU)."""

    def __str__(self) -> str:
        text = f"{self.release}/{self.flavour}/{self.device}"
        text += f"@{self.gpu}" if self.gpu else ""
        return text if self.kind == "tests" else f"{text}/{self.kind}"

    @classmethod
    def parse(cls, text: str) -> ColumnKey:
        parts = text.split("/")
        if len(parts) not in (3, 4):
            raise ValueError(f"{text!r} is not a column key (release/flavour/device)")
        device, _, gpu = parts[2].partition("@")
        return cls(parts[0], parts[1], device, parts[3] if len(parts) == 4 else "tests", gpu)

    @property
    def lane(self) -> tuple[str, str, str, str]:
        """Columns of one lane differ only by release; changes are read along a lane."""
        return (self.kind, self.flavour, self.device, self.gpu)

    @property
    def on_gpu(self) -> bool:
        return self.device != "cpu"

    @property
    def device_and_tf32(self) -> tuple[str, bool]:
        return parse_column_device(self.device)


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
            **self.key._asdict(),
            "torch": self.torch,
            "session": self.session,
            "source": self.sources[0],
            "sources": self.sources,
            "complete": self.complete,
        }

    @classmethod
    def from_json(cls, data: dict) -> Column:
        key = ColumnKey(
            data["release"],
            data["flavour"],
            data["device"],
            data.get("kind", "tests"),
            data.get("gpu", ""),
        )
        sources = data.get("sources") or [data.get("source", "?")]
        return cls(key, data["torch"], data.get("session"), sources, data["complete"])


@dataclass
class Matrix:
    columns: list[Column] = field(default_factory=list)
    cells: dict[str, dict[str, CaseRecord]] = field(default_factory=dict)
    """case id -> str(column key) -> the run's record"""
    incomplete: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Files a folder held that are not results files, each with why it was skipped."""
    sources: list[str] = field(default_factory=list)
    benefit: list[dict] = field(default_factory=list)
    """One row per benefit run (``kind: benefit``), by lane and release."""
    searches: dict[str, dict] = field(default_factory=dict)
    """Per fuzz column: the search's own figures (examples, minutes, seed, workers)."""
    search_runs: dict[str, list[Run]] = field(default_factory=dict)
    """Per fuzz column: its searches, judged (each record's cause given)."""
    superseded: list[str] = field(default_factory=list)
    """Cells two files both held: which file's record won (its run started later)."""
    recorded_by: dict[tuple[str, str], str] = field(default_factory=dict)
    """(case id, column key) -> which file and run recorded the cell shown, and when."""
    runs: dict[str, list[dict]] = field(default_factory=dict)
    """Per column key: every run whose cells it shows (file, run, when, what it selected,
    how many of its cells are shown)."""

    def to_json(self) -> dict:
        return {
            "schema": MATRIX_SCHEMA,
            "schema_version": MATRIX_SCHEMA_VERSION,
            "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "columns": [c.to_json() for c in self.columns],
            "cells": {
                cid: {k: r.to_json() for k, r in row.items()} for cid, row in self.cells.items()
            },
            "incomplete": self.incomplete,
            "missing": self.missing,
            "skipped": self.skipped,
            "superseded": self.superseded,
            "runs": self.runs,
            "benefit": self.benefit,
        }

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if str(c.key) == key)


def _column_key(run: Run, record: CaseRecord) -> ColumnKey:
    gpus = run.environment.gpus
    gpu = gpus[0].name if record.device != "cpu" and gpus else ""
    device = column_device(record.device, record.tf32)
    return ColumnKey(run.release_key, run.flavour_key, device, run.kind, gpu)


def release_sort_key(release: str, torch: str) -> tuple:
    """The release table's order; a release it lacks after every one it has, by torch."""
    if release in RELEASES:
        return (list(RELEASES).index(release), Version("0"))
    return (len(RELEASES), torch_release(torch))


def _column_sort_key(column: Column) -> tuple:
    key = column.key
    # Matrix lanes, then the generator's findings, then entry points; CPU lanes before
    # GPU lanes; by release within each.
    return (
        KIND_ORDER.index(key.kind) if key.kind in KIND_ORDER else len(KIND_ORDER),
        key.on_gpu,
        key.flavour,
        key.device,
        key.gpu,
        release_sort_key(key.release, column.torch),
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


def build_matrix(paths: list[Path], policy: Policy | None = None) -> Matrix:
    """Read every run, apply the policy to each once (``Policy.judge``: each record's
    cause), and lay the records out in columns."""
    runs, skipped = expand(paths)
    policy = policy or Policy.current()
    for run in runs:
        policy.judge(run)
    return matrix_of(runs, skipped)


def _ran(run: Run, record: CaseRecord) -> str:
    """When the run that recorded ``record`` started (ISO 8601 UTC)."""
    entry = run.run_of(record)
    return entry.started if entry is not None else run.started


def _add_run(
    matrix: Matrix, columns: dict[ColumnKey, Column], run: Run, when: dict[tuple, tuple]
) -> None:
    for record in run.records:
        key = _column_key(run, record)
        column = columns.get(key)
        if column is None:
            column = columns[key] = Column(
                key,
                run.torch,
                run.session,
                [],
                True,
                run.environment.platform,
                run.install.to_json() if run.install else None,
            )
        if str(run.path) not in column.sources:
            column.sources.append(str(run.path))
        # A column merges every run of it; one unfinished run leaves it incomplete.
        column.complete = column.complete and run.complete
        if column.torch != run.torch:
            raise ConfigError(
                f"{run.path} and {column.sources[0]} both give column {key} but test "
                f"torch {run.torch} and {column.torch}; report them separately"
            )
        _place(matrix, str(key), record, (_ran(run, record), str(run.path), run), when)
    if run.kind == "fuzz" and run.records:
        _add_search(matrix, str(_column_key(run, run.records[0])), run)
    if not run.complete:
        matrix.incomplete.append(str(run.path))


def _moment(started: str) -> _dt.datetime:
    """When a run started, to order runs by (``load_run`` checked it is a time); a run
    that did not say comes before every one that did."""
    return instant(started) or _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)


def _place(matrix: Matrix, key: str, record: CaseRecord, ran: tuple, when) -> None:
    """Put a record in its cell. Two files that hold the same cell: the one whose run
    started later wins, whatever the files are called, and the report names both."""
    row = matrix.cells.setdefault(record.id, {})
    before = when.get((record.id, key))
    if before is not None:
        later = _moment(ran[0]) > _moment(before[0])
        if _moment(ran[0]) == _moment(before[0]) and row[key].observed() != record.observed():
            raise ConfigError(
                f"{before[1]} and {ran[1]} both hold {record.id} in column {key} from runs "
                f"that started at {ran[0] or 'an unknown time'} (runs[].started), with "
                "different outcomes; remove one of the files"
            )
        newer, older = (ran, before) if later else (before, ran)
        matrix.superseded.append(
            f"{record.id} in {key}: {newer[1]} (run of {newer[0]}) over {older[1]} "
            f"(run of {older[0]})"
        )
        if not later:
            return
    row[key] = record
    when[(record.id, key)] = ran
    entry = ran[2].run_of(record)
    run_id = entry.id if entry else "r1"
    matrix.recorded_by[(record.id, key)] = f"{ran[1]}, run {run_id} of {ran[0] or '?'}"


def _runs_shown(matrix: Matrix, when: dict[tuple, tuple]) -> None:
    """Per column, the runs whose records it shows: which cells came from which run."""
    shown: dict[tuple, list] = {}
    for (case_id, key), (_, path, run) in when.items():
        entry = run.run_of(matrix.cells[case_id][key])
        ident = (key, path, entry.id if entry else "r1")
        shown.setdefault(ident, [0, entry])[0] += 1
    for (key, path, run_id), (count, entry) in shown.items():
        matrix.runs.setdefault(key, []).append(
            {
                "file": path,
                "run": run_id,
                "started": entry.started if entry else None,
                "finished": entry.finished if entry else None,
                "interrupted": entry.interrupted if entry else None,
                "selected": entry.selection.describe() if entry and entry.selection else None,
                "cells_shown": count,
            }
        )
    for runs in matrix.runs.values():
        runs.sort(key=lambda r: _moment(r["started"]))


def _add_search(matrix: Matrix, key: str, run: Run) -> None:
    figures = run.fuzz or FuzzSection()
    mine = {
        "examples": figures.examples,
        "elapsed_s": figures.elapsed_s,
        "seed": figures.seed,
        "workers": figures.workers,
    }
    before = matrix.searches.get(key)
    if before is not None:  # two searches of one column: their figures add up
        mine["examples"] = (before["examples"] or 0) + (mine["examples"] or 0)
        mine["elapsed_s"] = (before["elapsed_s"] or 0) + (mine["elapsed_s"] or 0)
        mine["seed"] = ", ".join(str(v) for v in (before["seed"], mine["seed"]))
        mine["searches"] = before.get("searches", 1) + 1
    elapsed = mine["elapsed_s"] or 0
    mine["examples_per_minute"] = (
        round(60 * (mine["examples"] or 0) / elapsed, 1) if elapsed else None
    )
    matrix.searches[key] = mine
    matrix.search_runs.setdefault(key, []).append(run)


def matrix_of(runs: list[Run], skipped: list[str] | None = None) -> Matrix:
    matrix = Matrix(skipped=list(skipped or []), sources=[str(r.path) for r in runs])
    columns: dict[ColumnKey, Column] = {}
    matrix.benefit = benefit_rows([r for r in runs if r.kind == "benefit"])
    when: dict[tuple, tuple] = {}
    for run in runs:
        _add_run(matrix, columns, run, when)
    _runs_shown(matrix, when)
    matrix.columns = sorted(columns.values(), key=_column_sort_key)
    for column in matrix.columns:
        if column.complete or column.key.kind != "tests":
            continue
        key = str(column.key)
        have = {cid for cid, row in matrix.cells.items() if key in row}
        device = column.key.device_and_tf32[0]
        want = {c.id for c in CASES if device in c.devices}
        matrix.missing += [f"{key}: {cid}" for cid in sorted(want - have, key=CASE_ORDER.get)]
    matrix.cells = dict(sorted(matrix.cells.items(), key=lambda kv: CASE_ORDER.get(kv[0], 1e9)))
    return matrix


def benefit_rows(runs: list[Run]) -> list[dict]:
    """Benefit runs in release order per lane, each flagged where its memory saving fell
    by more than ``REGRESSION_FRACTION`` of the release before's (same model, device)."""
    rows_: list[dict] = []
    for run in runs:
        section = run.benefit
        rows_.append(
            {
                "release": run.release_key,
                "flavour": run.flavour_key,
                "torch": run.torch,
                "device": section.device if section else None,
                "model": section.model if section else None,
                "method": section.method if section else None,
                "configs": {
                    k: v.to_json() for k, v in (section.configs if section else {}).items()
                },
                "summary": dict(section.summary or {}) if section else {},
                "pr_figures_gb": section.pr_figures_gb if section else None,
                "complete": run.complete,
                "source": str(run.path),
            }
        )
    rows_.sort(
        key=lambda r: (
            r["device"] or "",
            r["model"] or "",
            release_sort_key(r["release"], r["torch"]),
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
    """A baseline is an earlier matrix.json, or a folder (or file) of results; one that
    has no columns compares nothing, and is refused."""
    path = Path(path)
    if path.is_file():
        data = read_json(path, "baseline")
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema == MATRIX_SCHEMA:
            matrix = _matrix_from_json(path, data)
        elif schema == RESULTS_SCHEMA:
            matrix = build_matrix([path])
        else:
            found = f"its schema is {schema!r}" if schema else "it names no schema"
            raise ConfigError(
                f"baseline {path} is neither a report's matrix.json nor a results file "
                f"({found}); give an earlier report's matrix.json or its results folder"
            )
    else:
        matrix = build_matrix([path])
    if not matrix.columns:
        raise ConfigError(
            f"baseline {path} has no columns, so it compares nothing; give the matrix.json "
            "of a report that read results, or the results folder"
        )
    return matrix


def _matrix_from_json(path: Path, data: dict) -> Matrix:
    version = data.get("schema_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version > MATRIX_SCHEMA_VERSION:
        raise ConfigError(
            f"baseline {path} has matrix schema version {version!r}; "
            f"this convbn-compat reads up to {MATRIX_SCHEMA_VERSION}"
        )
    columns, cells = data.get("columns"), data.get("cells")
    if not isinstance(columns, list) or not all(isinstance(c, dict) for c in columns):
        raise ConfigError(
            f"baseline {path} is a matrix missing or mangling 'columns' (a list of "
            "columns); regenerate it with `report`"
        )
    rows = cells.values() if isinstance(cells, dict) else None
    if rows is None or not all(
        isinstance(row, dict) and all(isinstance(c, dict) for c in row.values()) for row in rows
    ):
        raise ConfigError(
            f"baseline {path} is a matrix missing or mangling 'cells' (case id -> column "
            "-> record); regenerate it with `report`"
        )
    try:
        return Matrix(
            [Column.from_json(c) for c in columns],
            {
                cid: {key: _baseline_record(cid, key, cell) for key, cell in row.items()}
                for cid, row in cells.items()
            },
            data.get("incomplete", []),
        )
    except RecordError as exc:
        raise ConfigError(f"baseline {path}: {exc}; regenerate the baseline") from None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"baseline {path} is a matrix missing or mangling {exc}; regenerate it with `report`"
        ) from None


def _baseline_record(case_id: str, key: str, cell: dict) -> CaseRecord:
    """A baseline's cell as a record (version 1 kept the record less its identity)."""
    device, tf32 = ColumnKey.parse(key).device_and_tf32
    identity = {"id": case_id, "subset": "?", "device": device, "tf32": tf32}
    try:
        return CaseRecord.from_json({**identity, **cell})
    except RecordError as exc:
        raise RecordError(f"cell {case_id} @ {key}: {exc}") from None


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
            rows.append(
                {
                    "case": case_id,
                    "column": key,
                    "class": Diff.of(now, then).value,
                    "before": _word(then),
                    "after": _word(now),
                    "count_changed": bool(now and then and now.fire_count != then.fire_count),
                    "message_changed": bool(now and then and now.message != then.message),
                }
            )
    rows.sort(key=lambda r: CLASSES.index(r["class"]))
    return rows


def _word(record: CaseRecord | None) -> str | None:
    return None if record is None or record.outcome is None else record.outcome.value
