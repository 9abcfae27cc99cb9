"""``python -m convbn_compat report``: many results files, one matrix, and what changed.

Columns are cells of the matrix (release, flavour, device, TF32), ordered by release;
rows are cases. With ``--baseline`` every cell is classed against an earlier run, and
the exit status is non-zero when any cell newly fails.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import filelock
from packaging.version import Version

from .cases import CASES
from .matrix import SYMBOL, Run, load_run
from .outcomes import Outcome
from .releases import RELEASES, ConfigError
from .results import atomic_write_json
from .versions import release_of, torch_release

__all__ = ["Matrix", "build_matrix", "compare", "main_report"]

MATRIX_SCHEMA = "convbn-compat/matrix"
MATRIX_SCHEMA_VERSION = 1

# Worse outcomes rank higher; a rise in rank is a new failure.
SEVERITY = {
    Outcome.FUSED.value: 0,
    Outcome.UNSUPPORTED.value: 0,
    Outcome.NOT_FUSED.value: 1,
    Outcome.WRONG_RESULT.value: 2,
    Outcome.ERROR.value: 3,
}
CLASSES = ("new failure", "fixed", "changed outcome", "unchanged", "new cell", "gone cell")
CASE_ORDER = {c.id: i for i, c in enumerate(CASES)}


@dataclass
class Matrix:
    columns: list[dict] = field(default_factory=list)
    cells: dict[str, dict[str, dict]] = field(default_factory=dict)
    """case id -> column key -> cell record"""
    incomplete: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "schema": MATRIX_SCHEMA,
            "schema_version": MATRIX_SCHEMA_VERSION,
            "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "columns": self.columns,
            "cells": self.cells,
            "incomplete": self.incomplete,
            "missing": self.missing,
        }


def _column_key(run: Run, case: dict) -> str:
    data = run.data
    release = data.get("release") or release_of(data["environment"]["torch"])
    flavour = data.get("flavour") or "installed"
    device = case["device"] + ("-tf32" if case.get("tf32") else "")
    return f"{release}/{flavour}/{device}"


def _release_sort_key(release: str, torch: str) -> tuple:
    if release in RELEASES:
        return (list(RELEASES).index(release), Version("0"))
    return (len(RELEASES), torch_release(torch))


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
            if not found:
                raise ConfigError(f"{path} holds no results files (*.json)")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"no results file or folder at {path}")
    return files


def build_matrix(paths: list[Path]) -> Matrix:
    matrix = Matrix()
    columns: dict[str, dict] = {}
    for run in (load_run(p) for p in _expand(paths)):
        env = run.data["environment"]
        for case in run.data["cases"]:
            key = _column_key(run, case)
            column = columns.setdefault(
                key,
                {
                    "key": key,
                    "release": key.split("/")[0],
                    "flavour": key.split("/")[1],
                    "device": key.split("/")[2],
                    "torch": env["torch"],
                    "session": run.data.get("session"),
                    "source": str(run.path),
                    "complete": bool(run.data["complete"]),
                },
            )
            # A column merges every run of it; one unfinished run leaves it incomplete.
            column["complete"] = column["complete"] and bool(run.data["complete"])
            if column["torch"] != env["torch"]:
                raise ConfigError(
                    f"{run.path} and {column['source']} both give column {key} but test "
                    f"torch {env['torch']} and {column['torch']}; report them separately"
                )
            cell = {
                k: case.get(k)
                for k in (
                    "outcome",
                    "expected_outcome",
                    "expectation_reason",
                    "fire_count",
                    "expected_count",
                    "graph_rewrites",
                    "max_abs_error",
                    "message",
                    "status",
                )
            }
            matrix.cells.setdefault(case["id"], {})[key] = cell
        if not run.data["complete"]:
            matrix.incomplete.append(str(run.path))
    matrix.columns = sorted(
        columns.values(), key=lambda c: (_release_sort_key(c["release"], c["torch"]), c["key"])
    )
    for column in matrix.columns:
        have = {cid for cid, row in matrix.cells.items() if column["key"] in row}
        device = column["device"].split("-")[0]
        want = {c.id for c in CASES if device in c.devices}
        if not column["complete"]:
            matrix.missing += [
                f"{column['key']}: {cid}" for cid in sorted(want - have, key=CASE_ORDER.get)
            ]
    matrix.cells = dict(sorted(matrix.cells.items(), key=lambda kv: CASE_ORDER.get(kv[0], 1e9)))
    return matrix


def load_baseline(path: Path) -> Matrix:
    """A baseline is an earlier matrix.json, or a folder (or file) of results."""
    if path.is_file() and path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"baseline {path} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and data.get("schema") == MATRIX_SCHEMA:
            if data.get("schema_version", 0) > MATRIX_SCHEMA_VERSION:
                raise ConfigError(
                    f"baseline {path} has matrix schema version {data['schema_version']}; "
                    f"this convbn-compat reads up to {MATRIX_SCHEMA_VERSION}"
                )
            return Matrix(data["columns"], data["cells"], data.get("incomplete", []))
    return build_matrix([path])


def compare(current: Matrix, baseline: Matrix) -> list[dict]:
    """Class every cell of either matrix against the other, new failures first."""
    rows = []
    case_ids = list(current.cells) + [c for c in baseline.cells if c not in current.cells]
    for case_id in case_ids:
        now_row = current.cells.get(case_id, {})
        then_row = baseline.cells.get(case_id, {})
        for key in list(now_row) + [k for k in then_row if k not in now_row]:
            now, then = now_row.get(key), then_row.get(key)
            if then is None:
                klass = "new cell"
            elif now is None:
                klass = "gone cell"
            elif now["outcome"] == then["outcome"]:
                klass = "unchanged"
            elif now["outcome"] is None or then["outcome"] is None:
                klass = "changed outcome"
            elif SEVERITY[now["outcome"]] > SEVERITY[then["outcome"]]:
                klass = "new failure"
            elif now["outcome"] == Outcome.FUSED.value:
                klass = "fixed"
            else:
                klass = "changed outcome"
            rows.append(
                {
                    "case": case_id,
                    "column": key,
                    "class": klass,
                    "before": then and then["outcome"],
                    "after": now and now["outcome"],
                    "count_changed": bool(now and then and now["fire_count"] != then["fire_count"]),
                    "message_changed": bool(now and then and now["message"] != then["message"]),
                }
            )
    rows.sort(key=lambda r: CLASSES.index(r["class"]))
    return rows


def first_changes(matrix: Matrix) -> dict[str, list[str]]:
    """Per case: the first release, per flavour and device, whose outcome differs from
    the release before it."""
    lanes: dict[str, list[dict]] = {}
    for column in matrix.columns:
        lanes.setdefault(f"{column['flavour']}/{column['device']}", []).append(column)
    changes: dict[str, list[str]] = {}
    for case_id, row in matrix.cells.items():
        for lane, columns in lanes.items():
            previous = None
            for column in columns:
                cell = row.get(column["key"])
                if cell is None:
                    continue
                if previous is not None and cell["outcome"] != previous[1]:
                    changes.setdefault(case_id, []).append(
                        f"{column['release']} ({lane}): {previous[1]} -> {cell['outcome']}"
                    )
                    break
                previous = (column, cell["outcome"])
    return changes


def table_document(paths: list[Path], device: str = "cpu") -> str:
    """Outcome counts per release, then every case against every release (docs/matrix.md).

    Columns are build_matrix's: runs of one release, flavour and device share one (a full
    run plus a later run of new cases, say), labelled by their torch.
    """
    matrix = build_matrix(paths)
    columns = [c for c in matrix.columns if c["device"] == device]
    lines = ["| torch | " + " | ".join(o.value for o in Outcome) + " | complete |"]
    lines.append("|---" * (len(Outcome) + 2) + "|")
    for column in columns:
        outcomes = [row[column["key"]]["outcome"] for row in matrix.cells.values()
                    if column["key"] in row]  # fmt: skip
        counts = [str(outcomes.count(o.value)) for o in Outcome]
        complete = "yes" if column["complete"] else "**no**"
        lines.append(f"| {column['torch']} | " + " | ".join(counts) + f" | {complete} |")
    legend = ", ".join(f"{sym} {o}" for o, sym in SYMBOL.items() if o) + ", blank: not run"
    lines += ["", f"Per case ({device}); {legend}.", ""]
    lines.append("| case | " + " | ".join(c["torch"] for c in columns) + " |")
    lines.append("|---" * (len(columns) + 1) + "|")
    for case in CASES:
        row = matrix.cells.get(case.id, {})
        symbols = [SYMBOL[(row.get(c["key"]) or {}).get("outcome")] for c in columns]
        lines.append(f"| `{case.id}` | " + " | ".join(symbols) + " |")
    sources = ", ".join(f"`{Path(p).name}`" for p in _expand(paths))
    return (
        f"# Measured matrix ({device})\n\n"
        f"Generated on {_dt.date.today().isoformat()} by `python -m convbn_compat table` from "
        f"{sources}. Each file was written by `CONVBN_TORCH_INDEX=default nox -s "
        "tests-X.Y-cpu` on the project's 2-core x86_64 machine (PyPI's CUDA wheels, run on "
        "the CPU). Files of one torch share a column (`tests-X.Y-cpu-stats.json`: the "
        "`Stats-*` cases, added after the full run of that release, run with "
        "`-- -k Stats`).\n\n" + "\n".join(lines) + "\n"
    )


def render_markdown(matrix: Matrix, diff: list[dict] | None) -> str:
    lines = ["# convbn-compat matrix", ""]
    if diff is not None:
        counts = {k: sum(1 for r in diff if r["class"] == k) for k in CLASSES}
        lines += [
            "## Against the baseline",
            "",
            "| " + " | ".join(CLASSES) + " |",
            "|---" * len(CLASSES) + "|",
            "| " + " | ".join(str(counts[k]) for k in CLASSES) + " |",
            "",
        ]
        failures = [r for r in diff if r["class"] == "new failure"]
        for r in failures:
            lines.append(
                f"- **new failure** `{r['case']}` in {r['column']}: {r['before']} -> {r['after']}"
            )
        if failures:
            lines.append("")
    if matrix.incomplete or matrix.missing:
        lines += ["## Incomplete", ""]
        lines += [f"- incomplete run: `{p}`" for p in matrix.incomplete]
        lines += [f"- missing: {m}" for m in matrix.missing[:50]]
        if len(matrix.missing) > 50:
            lines.append(f"- ... and {len(matrix.missing) - 50} more missing cells")
        lines.append("")
    lines += [
        "## Outcomes per column",
        "",
        "| column | torch | " + " | ".join(o.value for o in Outcome) + " | complete |",
        "|---" * (len(Outcome) + 3) + "|",
    ]
    for column in matrix.columns:
        outcomes = [
            row[column["key"]]["outcome"] for row in matrix.cells.values() if column["key"] in row
        ]
        lines.append(
            f"| {column['key']} | {column['torch']} | "
            + " | ".join(str(outcomes.count(o.value)) for o in Outcome)
            + f" | {'yes' if column['complete'] else '**no**'} |"
        )
    changes = first_changes(matrix)
    not_all_fused = [
        cid
        for cid, row in matrix.cells.items()
        if any(c["outcome"] != "fused" for c in row.values())
    ]
    lines += [
        "",
        "## Cases that are not fused somewhere",
        "",
        "| case | first change | " + " | ".join(c["key"] for c in matrix.columns) + " |",
        "|---" * (len(matrix.columns) + 2) + "|",
    ]
    for cid in not_all_fused:
        row = matrix.cells[cid]
        cells = [SYMBOL.get((row.get(c["key"]) or {}).get("outcome"), " ") for c in matrix.columns]
        lines.append(
            f"| `{cid}` | {'; '.join(changes.get(cid, [])) or '-'} | " + " | ".join(cells) + " |"
        )
    lines += ["", "✓ fused, ○ not-fused, ✗ wrong-result, E error, u unsupported.", ""]
    return "\n".join(lines)


_CSS = """
body{font:13px system-ui,sans-serif;margin:1em}table{border-collapse:collapse}
th,td{border:1px solid #ccc;padding:2px 5px;text-align:center;white-space:nowrap}
th.case,td.case{text-align:left;font-family:monospace;position:sticky;left:0;background:#fff}
thead th{position:sticky;top:0;background:#f4f4f4;writing-mode:vertical-rl}
thead th.case{writing-mode:horizontal-tb}
.fused{background:#c8e6c9}.not-fused{background:#fff3b0}.wrong-result{background:#ff8a80}
.error{background:#b39ddb}.unsupported{background:#e0e0e0}.none{background:#fff}
.changed{box-shadow:inset 3px 0 0 #1565c0}.new-failure{outline:3px solid #d50000}
.count-changed{text-decoration:underline double}
.controls{margin:.5em 0}.legend span{padding:2px 6px;margin-right:4px}
"""

_JS = """
const q=document.getElementById('q'),o=document.getElementById('o'),c=document.getElementById('c');
function apply(){const t=q.value.toLowerCase(),w=o.value,only=c.checked;
for(const r of document.querySelectorAll('tbody tr')){
 const okT=r.dataset.case.toLowerCase().includes(t);
 const okO=!w||r.dataset.outcomes.split(' ').includes(w);
 const okC=!only||r.dataset.changes==='1';
 r.style.display=(okT&&okO&&okC)?'':'none';}}
q.oninput=o.onchange=c.onchange=apply;
"""


def render_html(matrix: Matrix, diff: list[dict] | None) -> str:
    esc = html.escape
    diff_by_cell = {(r["case"], r["column"]): r for r in (diff or [])}
    changes = first_changes(matrix)
    head = "".join(
        f'<th title="{esc(c["torch"])} · {esc(c["source"])}">{esc(c["key"])}'
        f"{'' if c['complete'] else ' (incomplete)'}</th>"
        for c in matrix.columns
    )
    body = []
    for cid, row in matrix.cells.items():
        tds, outcomes, previous = [], set(), {}
        for column in matrix.columns:
            cell = row.get(column["key"])
            lane = f"{column['flavour']}/{column['device']}"
            if cell is None:
                tds.append('<td class="none" title="not run"></td>')
                continue
            outcome = cell["outcome"] or "none"
            outcomes.add(outcome)
            classes = [outcome]
            if lane in previous and previous[lane] != cell["outcome"]:
                classes.append("changed")
            previous[lane] = cell["outcome"]
            d = diff_by_cell.get((cid, column["key"]))
            if d and d["class"] == "new failure":
                classes.append("new-failure")
            if d and d["count_changed"]:
                classes.append("count-changed")
            tip = [
                f"{cid} @ {column['key']} (torch {column['torch']})",
                f"outcome: {cell['outcome']} (expected {cell['expected_outcome']})",
                f"fires: {cell['fire_count']}/{cell['expected_count']}, "
                f"in graph: {cell['graph_rewrites']}, max abs error: {cell['max_abs_error']}",
            ]
            if cell.get("message"):
                tip.append(f"message: {cell['message']}")
            if cell.get("expectation_reason") and cell["expected_outcome"] != "fused":
                tip.append(f"reason: {cell['expectation_reason']}")
            if d and d["class"] != "unchanged":
                tip.append(f"vs baseline: {d['class']} ({d['before']} -> {d['after']})")
            tds.append(
                f'<td class="{" ".join(classes)}" title="{esc(chr(10).join(tip))}">'
                f"{esc(SYMBOL.get(cell['outcome'], ''))}</td>"
            )
        first = "; ".join(changes.get(cid, []))
        body.append(
            f'<tr data-case="{esc(cid)}" data-outcomes="{esc(" ".join(sorted(outcomes)))}" '
            f'data-changes="{1 if first else 0}"><td class="case" title="{esc(first)}">'
            f"{esc(cid)}</td>{''.join(tds)}</tr>"
        )
    summary = ""
    if diff is not None:
        counts = ", ".join(f"{k}: {sum(1 for r in diff if r['class'] == k)}" for k in CLASSES)
        summary = f"<p><b>Against the baseline</b> — {esc(counts)}</p>"
    if matrix.incomplete:
        summary += "<p><b>Incomplete runs:</b> " + esc(", ".join(matrix.incomplete)) + "</p>"
    outcomes = [o for o in SYMBOL if o]
    legend = "".join(f'<span class="{o}">{esc(SYMBOL[o])} {esc(o)}</span>' for o in outcomes)
    options = "".join(f'<option value="{o}">{o}</option>' for o in outcomes)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>convbn-compat matrix</title><style>{_CSS}</style></head><body>
<h1>convbn-compat matrix</h1>{summary}
<div class="legend">{legend} <span class="changed">│ outcome changed since the release before</span>
<span class="new-failure">new failure vs baseline</span></div>
<div class="controls"><input id="q" placeholder="filter cases (e.g. decomposed)" size="40">
<select id="o"><option value="">any outcome</option>{options}</select>
<label><input type="checkbox" id="c"> only cases whose outcome changes</label></div>
<table><thead><tr><th class="case">case</th>{head}</tr></thead>
<tbody>{"".join(body)}</tbody></table><script>{_JS}</script></body></html>
"""


def main_report(
    paths: list[Path], outdir: Path, baseline: Path | None, no_fail_on: tuple[str, ...] = ()
) -> int:
    matrix = build_matrix(paths)
    diff = compare(matrix, load_baseline(baseline)) if baseline else None
    outdir.mkdir(parents=True, exist_ok=True)
    # Two reports writing one folder take turns; each file is replaced atomically.
    with filelock.FileLock(str(outdir / ".matrix.lock"), timeout=120):
        data = matrix.to_json()
        if diff is not None:
            data["baseline"] = {"source": str(baseline), "cells": diff}
        atomic_write_json(outdir / "matrix.json", data)
        for name, text in (
            ("matrix.md", render_markdown(matrix, diff)),
            ("matrix.html", render_html(matrix, diff)),
        ):
            tmp = outdir / f".{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(outdir / name)
    print(
        f"wrote {outdir / 'matrix.md'}, matrix.json, matrix.html "
        f"({len(matrix.columns)} columns, {len(matrix.cells)} cases)"
    )
    status = 0
    if matrix.incomplete:
        # A run that stopped early says nothing about the cells it never reached.
        print(f"INCOMPLETE runs (exit 1): {', '.join(matrix.incomplete)}")
        status = 1
    if diff is not None:
        fatal = 0
        for r in (r for r in diff if r["class"] == "new failure"):
            reported_only = r["column"].split("/")[0] in no_fail_on
            fatal += not reported_only
            note = " (reported only)" if reported_only else ""
            print(f"NEW FAILURE{note} {r['case']} @ {r['column']}: {r['before']} -> {r['after']}")
        return 1 if fatal else status
    return status
