"""What a reader of the report sees, computed once from the model: rows in the order to
look at them, each row's changes along its lanes, what is unexpected, the lanes and
their labels, each cell's reproduce and rerun commands and its links. The renderers
(``markdown``, ``html``) draw a ``View``; they compute nothing of their own.
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass, field

from ..core.cases import get_case
from ..core.causes import rank
from ..core.cells import node_id
from ..core.errors import ConfigError
from ..core.outcomes import Blame, Outcome
from ..core.policy import Policy
from ..core.record import CaseRecord
from ..core.releases import INSTALLED, RELEASES, session_name
from ..core.results import FoundCause as SearchedCause
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


SECTION_TITLES = {
    "tests": "Matrix",
    "fuzz": "Generator findings (nox -s fuzz-X.Y-cpu)",
    "reach": "Entry points (nox -s reach-X.Y-cpu)",
}


@dataclass
class Section:
    """One kind of run, laid out for itself: its lanes, and the rows it has cells in.
    The matrix's lanes never interleave with a generator's or reach's."""

    kind: str
    title: str
    lanes: list[Lane]
    rows: list[Row]

    @property
    def columns(self) -> list[Column]:
        return [c for lane in self.lanes for c in lane.columns]


@dataclass
class Broken:
    """A case that is wrong or fails in a release, in one or more of its lanes."""

    case_id: str
    outcome: Outcome
    lanes: list[str]
    cause: str
    """The expectation's reason (its first sentence) where the table predicts it, else
    the record's own message: what a maintainer reads first."""
    unexpected: bool
    links: list[str]
    rerun: str


@dataclass
class FoundCause:
    """The findings of one search that one cause explains."""

    cause: str
    known: bool
    examples: int
    signatures: int
    range: str
    links: list[str]
    command: str
    """The command that writes its upstream-ready reproducer."""


@dataclass
class Search:
    """A fuzz column: its figures, and its findings blamed on the pass, by cause."""

    column: Column
    figures: dict
    causes: list[FoundCause]
    not_the_pass: int


@dataclass
class ReleaseSummary:
    """Where the pass stands in one release: what is broken, and what changed."""

    release: str
    torch: str
    broken: list[Broken]
    changes: list[tuple[str, Change]]
    """(case id, change) landing on this release: fixes and regressions."""
    against_baseline: list[dict]


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
    causes: dict[tuple[str, str], str] = field(default_factory=dict)
    """(case id, column key) -> the known cause that explains a failing cell."""
    policy: Policy | None = None
    """The tables the view was judged against (loaded once per command)."""
    unexpected: set[tuple[str, str]] = field(default_factory=set)
    """The cells that count as unexpected: an outcome the expectations table does not
    predict, unless a known cause explains the failure (in its release range), or the
    generator's oracle blamed it on Inductor rather than the pass."""
    sections: list[Section] = field(default_factory=list)
    releases: list[ReleaseSummary] = field(default_factory=list)
    searches: list[Search] = field(default_factory=list)
    """Each generator run, newest release first: what it found, by cause."""
    """The matrix's releases, newest first: the summary's answer to "where is the pass
    broken now?"."""

    def group(self, group: RowGroup) -> list[Row]:
        return [r for r in self.rows if r.group is group]

    @property
    def unexpected_cells(self) -> int:
        return len(self.unexpected)

    def is_unexpected(self, case_id: str, key: str) -> bool:
        return (case_id, key) in self.unexpected

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
    cell = node_id("{case}", device, tf32)
    return {"repro": repro, "rerun": f'nox -s {session} -- "{cell}"'}


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


def _story(
    case_id: str, cells: dict[str, CaseRecord], changes: list[Change], group: RowGroup, odd_keys
) -> str:
    if group is RowGroup.UNEXPECTED:
        odd = [
            f"{key}: {cell.outcome} (expected {cell.expected_outcome})"
            for key, cell in cells.items()
            if (case_id, key) in odd_keys
        ]
        if odd:
            more = f" and {len(odd) - 3} more" if len(odd) > 3 else ""
            return "; ".join(odd[:3]) + more
        return "a new failure against the baseline"
    if changes:
        return "; ".join(str(c) for c in changes)
    outcomes = sorted({str(c.outcome) for c in cells.values() if c.outcome})
    return f"{', '.join(outcomes)} in every release it ran"


def _with_causes(story: str, ids: list[str]) -> str:
    """A row's story with the known causes of its failures in front."""
    return f"known cause {', '.join(ids)}: {story}" if ids else story


def _counts(matrix: Matrix, unexpected: set[tuple[str, str]]) -> dict[str, dict[str, int]]:
    out = {}
    for column in matrix.columns:
        key = str(column.key)
        counts = {o.value: 0 for o in Outcome}
        counts["not run"] = counts["unexpected"] = 0
        for case_id, row in matrix.cells.items():
            cell = row.get(key)
            if cell is None:
                continue
            counts[cell.outcome.value if cell.outcome else "not run"] += 1
            counts["unexpected"] += (case_id, key) in unexpected
        out[key] = counts
    return out


def _explain(matrix: Matrix, policy: Policy) -> tuple[dict, set[tuple[str, str]]]:
    """Each failing cell's known cause (as reading judged it), and the cells that stay
    unexpected."""
    known, odd = {}, set()
    for case_id, row in matrix.cells.items():
        for key, cell in row.items():
            failing = cell.outcome is not None and cell.outcome.is_failure
            cause = cell.cause if failing and cell.cause in policy.causes.by_id else None
            if cause is not None:
                known[(case_id, key)] = cause
            not_the_pass = cell.blame is Blame.NOT_PASS
            if cell.unexpected and cause is None and not not_the_pass:
                odd.add((case_id, key))
    return known, odd


def _lanes(matrix: Matrix) -> list[Lane]:
    lanes: list[Lane] = []
    for column in matrix.columns:
        label = lane_label(column.key)
        if lanes and lanes[-1].label == label:
            lanes[-1].columns.append(column)
        else:
            lanes.append(Lane(label, column.key.kind, [column]))
    return lanes


def build_view(
    matrix: Matrix, diff: list[dict] | None = None, policy: Policy | None = None
) -> View:
    """Everything the renderers draw, computed once."""
    policy = policy or Policy.current()
    new_failures = {r["case"] for r in diff or () if r["class"] == Diff.NEW_FAILURE.value}
    changes = row_changes(matrix)
    known, odd = _explain(matrix, policy)
    table = policy.expectations
    order = {case_id: i for i, case_id in enumerate(matrix.cells)}
    rows = []
    for case_id, cells in matrix.cells.items():
        worst = max((c.outcome.severity for c in cells.values() if c.outcome), default=0)
        if case_id in new_failures or any((case_id, k) in odd for k in cells):
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
                _with_causes(
                    _story(case_id, cells, row_changes_, group, odd),
                    sorted({known[(case_id, k)] for k in cells if (case_id, k) in known}),
                ),
                _links(case_id, cells, matrix, table),
            )
        )
    groups = list(RowGroup)
    rows.sort(key=lambda r: (groups.index(r.group), -r.worst, order[r.case_id]))
    lanes = _lanes(matrix)
    view = View(
        matrix,
        diff,
        rows,
        lanes,
        {str(c.key): commands(c) for c in matrix.columns},
        _counts(matrix, odd),
        {(r["case"], r["column"]): r for r in diff or ()},
        causes=known,
        unexpected=odd,
    )
    view.policy = policy
    view.sections = _sections(view)
    view.releases = _releases(view)
    view.searches = _searches(view)
    return view


def _searches(view: View) -> list[Search]:
    """Each search's causes, by the one rule (``Policy.searched_causes``), its searches'
    causes added up where a column has several."""
    out = []
    for column in reversed([c for c in view.matrix.columns if c.key.kind == "fuzz"]):
        key = str(column.key)
        runs = view.matrix.search_runs.get(key, [])
        merged: dict[str, SearchedCause] = {}
        for run in runs:
            for found in view.policy.searched_causes(run):
                kept = merged.get(found.cause)
                if kept is None:
                    merged[found.cause] = found
                    continue
                better = rank(found.representative, found.shrunk) < rank(
                    kept.representative, kept.shrunk
                )
                total = (kept.examples + found.examples, kept.signatures + found.signatures)
                kept = merged[found.cause] = found if better else kept
                kept.examples, kept.signatures = total
        not_the_pass = sum(
            1
            for run in runs
            for r in run.records
            if r.blame is not None and r.blame is not Blame.PASS
        )
        found_causes = [
            FoundCause(
                f.cause,
                f.known,
                f.examples,
                f.signatures,
                f"torch {f.range}" if f.known else f.range,
                list(f.links),
                f"python -m convbn_compat repro {f.cause if f.known else f.representative} "
                "--standalone -o bug.py",
            )
            for f in sorted(merged.values(), key=lambda f: not f.known)
        ]
        out.append(Search(column, view.matrix.searches.get(key, {}), found_causes, not_the_pass))
    return out


def _sections(view: View) -> list[Section]:
    out = []
    for kind in dict.fromkeys(lane.kind for lane in view.lanes):
        lanes = [lane for lane in view.lanes if lane.kind == kind]
        keys = {str(c.key) for lane in lanes for c in lane.columns}
        rows = [r for r in view.rows if keys & set(r.cells)]
        out.append(Section(kind, SECTION_TITLES.get(kind, kind), lanes, rows))
    return out


def _cause(view: View, record: CaseRecord, known: str | None) -> str:
    if known is not None:
        return f"{known}: {view.policy.title(known)}."
    if not record.unexpected and record.expectation_reason:
        return record.expectation_reason.split(". ")[0].rstrip(".") + "."
    return record.message.splitlines()[0][:300] if record.message else str(record.outcome)


def _broken(view: View, columns: list[Column]) -> list[Broken]:
    found: dict[str, Broken] = {}
    for column in columns:
        key = str(column.key)
        for row in view.rows:
            record = row.cells.get(key)
            if record is None or record.outcome is None or not record.outcome.is_failure:
                continue
            lane = lane_text(column.key)
            if row.case_id in found:
                found[row.case_id].lanes.append(lane)
                continue
            rerun = view.commands[key]["rerun"].replace("{case}", row.case_id)
            found[row.case_id] = Broken(
                row.case_id,
                record.outcome,
                [lane],
                _cause(view, record, view.causes.get((row.case_id, key))),
                view.is_unexpected(row.case_id, key),
                row.links.get(key, []),
                rerun,
            )
    return sorted(found.values(), key=lambda b: (not b.unexpected, -b.outcome.severity))


def _releases(view: View) -> list[ReleaseSummary]:
    by_release: dict[str, list[Column]] = {}
    for column in view.matrix.columns:
        if column.key.kind == "tests":
            by_release.setdefault(column.key.release, []).append(column)
    out = []
    for release, columns in reversed(list(by_release.items())):
        changes = [
            (row.case_id, change)
            for row in view.rows
            for change in row.changes
            if change.release == release and not change.lane.endswith(("fuzz", "reach"))
        ]
        keys = {str(c.key) for c in columns}
        against = [r for r in view.diff or () if r["column"] in keys and r["class"] != "unchanged"]
        out.append(
            ReleaseSummary(release, columns[0].torch, _broken(view, columns), changes, against)
        )
    return out


def summary_lines(view: View) -> list[str]:
    """The summary in a few lines, as the terminal prints it (and the page leads with)."""
    lines = []
    for summary in view.releases:
        unexpected = sum(b.unexpected for b in summary.broken)
        fixes = sum(c.direction == "fix" for _, c in summary.changes)
        regressions = sum(c.direction == "regression" for _, c in summary.changes)
        words = [f"{len(summary.broken)} cases wrong or failing"]
        if unexpected:
            words.append(f"{unexpected} of them UNEXPECTED")
        if summary.changes:
            words.append(f"against the release before: {fixes} fixed, {regressions} regressed")
        if summary.against_baseline:
            words.append(f"{len(summary.against_baseline)} cells changed against the baseline")
        lines.append(f"{summary.release} (torch {summary.torch}): " + "; ".join(words))
    for search in view.searches:
        found = ", ".join(
            f"{'known' if c.known else 'NEW'} {c.cause} ({c.examples})" for c in search.causes
        )
        lines.append(
            f"fuzz, torch {search.column.torch} on {search.column.key.device}: "
            f"{search.figures.get('examples', '?')} examples; "
            + (found or "no failure of the pass")
        )
    return lines


@dataclass
class CauseNow:
    """One known cause, as it stands across the matrix's releases now."""

    cause: str
    title: str
    releases: list[str]
    cells: int
    link: str
    command: str


def causes_now(view: View) -> list[CauseNow]:
    """The known causes of the matrix's failing cells, one each: the releases it breaks,
    how many cells, its first link and the command that writes its reproducer."""
    order = {key: i for i, key in enumerate(RELEASES)}
    found: dict[str, list[str]] = {}
    for (_case, key), cause in view.causes.items():
        column = ColumnKey.parse(key)
        if column.kind == "tests":
            found.setdefault(cause, []).append(column.release)
    out = []
    for cause, releases in found.items():
        known = view.policy.causes.by_id[cause]
        ordered = sorted(set(releases), key=lambda r: order.get(r, len(order)))
        out.append(
            CauseNow(
                cause,
                known.title,
                ordered,
                len(releases),
                known.links[0] if known.links else "",
                f"python -m convbn_compat repro {cause} --standalone -o bug.py",
            )
        )
    return sorted(out, key=lambda c: -c.cells)


def span(releases: list[str]) -> str:
    """``2.5-2.15`` for a run of releases in the table's order, else a list."""
    keys = list(RELEASES)
    at = [keys.index(r) for r in releases if r in keys]
    if len(at) == len(releases) > 2 and at == list(range(at[0], at[0] + len(at))):
        return f"{releases[0]}-{releases[-1]}"
    return ", ".join(releases)
