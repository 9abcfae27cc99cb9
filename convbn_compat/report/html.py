"""``matrix.html``: the report's model as one self-contained, offline page.

The summary comes first (counts, then the rows to look at, unexpected ones first), then
the matrix: rows by severity, the all-fused ones folded, columns grouped into lanes (CPU,
then GPU, then the generator's findings) under their releases. A click on a cell (or
Enter on it) opens a panel with its full record, its reproduce and rerun commands and its
links. Every text taken from a results file is escaped: the table by ``html.escape``, the
panel's data as JSON that the page only ever puts into ``textContent``.
"""

from __future__ import annotations

import contextlib
import html
import json
from importlib import resources

from ..core.cases import get_case
from ..core.expectations import Expectations
from ..core.expectations import load as load_expectations
from ..core.outcomes import Outcome
from ..core.releases import RELEASES, ConfigError
from .model import (
    CLASSES,
    SYMBOL,
    Change,
    Column,
    Diff,
    Matrix,
    RowGroup,
    is_unexpected,
    lane_text,
    row_changes,
    rows,
)

__all__ = ["render_html"]

esc = html.escape

GROUP_TITLES = {
    RowGroup.UNEXPECTED: "Unexpected: an outcome the expectations table does not predict",
    RowGroup.KNOWN: "Not fused somewhere, as expected (known bugs and limits)",
    RowGroup.FUSED: "Fused everywhere",
}


def _asset(name: str) -> str:
    return (
        resources.files("convbn_compat.report").joinpath("static", name).read_text(encoding="utf-8")
    )


def _json_for_script(data: object) -> str:
    """JSON that cannot end the <script> element it sits in."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _lane_label(column: Column) -> str:
    key = column.key
    flavour = {"cpu": "CPU wheel", "cuda": "CUDA wheel"}.get(key.flavour, key.flavour)
    device = {"cpu": "on CPU", "cuda": "on GPU", "cuda-tf32": "on GPU, TF32"}.get(
        key.device, key.device
    )
    kind = {"fuzz": "fuzz findings, ", "reach": "entry points, "}.get(key.kind, "")
    return f"{kind}{flavour} {device}"


def _commands(column: Column, case_id: str = "{case}") -> dict[str, str]:
    """How to reproduce and rerun a cell of ``column``; ``{case}`` stands for the case."""
    key = column.key
    device = key.device.split("-")[0]
    tf32 = " --tf32" if key.device.endswith("tf32") else ""
    release = f" --release {key.release}" if key.release in RELEASES else ""
    repro = (
        f"python -m convbn_compat repro {case_id} --device {device}{tf32}{release} -o repro.py"
        "\npython repro.py   # with the Python of that release's environment"
    )
    if key.kind == "reach":
        where = f"{key.release}-{key.flavour}" if key.release in RELEASES else "installed"
        repro = (
            f"python -m convbn_compat.tools.reach --device {device} --only {{case}} "
            "--out reach.json   # with the Python of that release's environment"
        )
        return {"repro": repro, "rerun": f"nox -s reach-{where} -- --only {{case}}"}
    if key.kind == "fuzz" or key.release not in RELEASES:
        releases = f" --releases {key.release}" if key.release in RELEASES else ""
        rerun = f"python -m convbn_compat replay {case_id} --device {device}{releases}"
        if key.release not in RELEASES:
            rerun = f"nox -s tests-installed -- -k '{case_id}'"
    else:
        session = RELEASES[key.release].session(key.flavour)
        rerun = f"nox -s {session} -- -k '{case_id}'"
    return {"repro": repro, "rerun": rerun}


def _links(case_id: str, row: dict, columns: list[Column], table: Expectations) -> dict:
    """Per column of a row: the case's links and its expectation's (issue, fix PR)."""
    own: list[str] = []
    with contextlib.suppress(ConfigError):  # a case this version does not know
        own = list(get_case(case_id).links)
    out = {}
    for column in columns:
        if str(column.key) not in row:
            continue
        links = list(own)
        with contextlib.suppress(ConfigError):
            device = column.key.device.split("-")[0]
            links += table.lookup(case_id, device, column.torch).links
        if links:
            out[str(column.key)] = list(dict.fromkeys(links))
    return out


def _summary(matrix: Matrix, ordered, diff, changes) -> str:
    by_group = {g: [r for r in ordered if r.group is g] for g in RowGroup}
    unexpected_cells = sum(matrix.counts(c)["unexpected"] for c in matrix.columns)
    cards = [
        (
            "alert" if by_group[RowGroup.UNEXPECTED] else "ok",
            len(by_group[RowGroup.UNEXPECTED]),
            f"cases with an unexpected outcome ({unexpected_cells} cells)",
        ),
        ("", len(by_group[RowGroup.KNOWN]), "cases not fused somewhere, as expected"),
        ("", len(by_group[RowGroup.FUSED]), "cases fused everywhere"),
        ("", len(matrix.columns), "columns"),
    ]
    if diff is not None:
        new = sum(1 for r in diff if r["class"] == Diff.NEW_FAILURE.value)
        fixed = sum(1 for r in diff if r["class"] == Diff.FIXED.value)
        cards.insert(0, ("alert" if new else "ok", new, "new failures against the baseline"))
        cards.insert(1, ("", fixed, "cells fixed since the baseline"))
    if matrix.incomplete:
        cards.insert(0, ("alert", len(matrix.incomplete), "incomplete runs"))
    if matrix.skipped:
        cards.append(("", len(matrix.skipped), "files skipped (not results)"))
    regressions = [b for b in matrix.benefit if b["regression"]]
    if matrix.benefit:
        cards.append(("alert" if regressions else "ok", len(regressions), "benefit regressions"))
    out = ['<section id="summary"><h2>Summary</h2><div class="cards">']
    out += [f'<div class="card {cls}"><b>{n}</b>{esc(label)}</div>' for cls, n, label in cards]
    out.append("</div>")
    if matrix.incomplete:
        out.append(
            "<p><b>Incomplete runs</b> (their missing cells say nothing): "
            + esc(", ".join(matrix.incomplete))
            + "</p>"
        )
    if matrix.skipped:
        out.append("<details><summary>Skipped files</summary><ul>")
        out += [f"<li>{esc(s)}</li>" for s in matrix.skipped]
        out.append("</ul></details>")
    if diff is not None:
        counts = ", ".join(f"{k}: {sum(1 for r in diff if r['class'] == k)}" for k in CLASSES)
        out.append(f"<p><b>Against the baseline</b>: {esc(counts)}</p>")
    for group in (RowGroup.UNEXPECTED, RowGroup.KNOWN):
        if not by_group[group]:
            continue
        out.append(f"<h2>{esc(GROUP_TITLES[group])} ({len(by_group[group])})</h2>")
        # Rows that tell one story (64 cases fixed in 2.4, say) share one line.
        stories: dict[str, list[str]] = {}
        for row in by_group[group]:
            cells = matrix.cells[row.case_id]
            text = _row_story(cells, changes.get(row.case_id, []), group)
            stories.setdefault(text, []).append(row.case_id)
        out.append(f'<ul class="look" id="look-{group}">')
        for text, case_ids in stories.items():
            links = [f'<a href="#row-{esc(cid)}"><code>{esc(cid)}</code></a>' for cid in case_ids]
            if len(links) == 1:
                out.append(f"<li>{links[0]}: {esc(text)}</li>")
            else:
                out.append(
                    f"<li><details><summary>{len(links)} cases: {esc(text)}</summary>"
                    f"{', '.join(links)}</details></li>"
                )
        out.append("</ul>")
    out.append(_benefit(matrix))
    out.append("<details><summary>Outcomes per column</summary>")
    heads = [o.value for o in Outcome] + ["not run", "unexpected"]
    out.append('<div class="scroll"><table class="counts"><thead><tr><th>column</th>')
    out.append("<th>torch</th>" + "".join(f"<th>{esc(h)}</th>" for h in heads))
    out.append("<th>complete</th></tr></thead><tbody>")
    for column in matrix.columns:
        counts = matrix.counts(column)
        out.append(
            f"<tr><td>{esc(str(column.key))}</td><td>{esc(column.torch)}</td>"
            + "".join(f"<td>{counts[h]}</td>" for h in heads)
            + f"<td>{'yes' if column.complete else '<b>no</b>'}</td></tr>"
        )
    out.append("</tbody></table></div></details></section>")
    return "".join(out)


def _mb(value) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def _pct(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def _benefit(matrix: Matrix) -> str:
    """What the pass saves, per release: flag on against flag off and eager."""
    if not matrix.benefit:
        return ""
    out = [
        '<h2 id="benefit">What the pass saves</h2><div class="scroll"><table class="counts">'
        "<thead><tr><th>release</th><th>torch</th><th>device</th><th>model</th>"
        "<th>peak eager</th><th>peak off</th><th>peak on</th><th>saved vs off</th>"
        "<th>step on/off</th><th>step on/eager</th><th>regression</th></tr></thead><tbody>"
    ]
    for row in matrix.benefit:
        key = "peak_bytes" if row["device"] == "cuda" else "peak_step_bytes"
        peaks = [
            "error"
            if "error" in row["configs"].get(c, {})
            else _mb(row["configs"].get(c, {}).get(key))
            for c in ("eager", "off", "on")
        ]
        summary = row["summary"]
        flag = row["regression"] or ""
        tr = '<tr class="alert">' if flag else "<tr>"
        out.append(
            f"{tr}<td>{esc(row['release'])}</td>"
            f"<td>{esc(row['torch'])}</td><td>{esc(str(row['device']))}</td>"
            f"<td>{esc(str(row['model']))}</td>"
            + "".join(f"<td>{p}</td>" for p in peaks)
            + f"<td>{_pct(summary.get('memory_saved_vs_off'))}</td>"
            f"<td>{summary.get('step_time_on_over_off', '-')}</td>"
            f"<td>{summary.get('step_time_on_over_eager', '-')}</td>"
            f"<td>{esc(flag)}</td></tr>"
        )
    out.append("</tbody></table></div>")
    methods = sorted({r["method"] for r in matrix.benefit if r["method"]})
    out.append('<p class="meta">' + esc("; ".join(methods)) + "</p>")
    return "".join(out)


def _row_story(cells: dict, changes: list[Change], group: RowGroup) -> str:
    """One line: where a row is unexpected, or how its outcome moves across releases."""
    if group is RowGroup.UNEXPECTED:
        odd = [
            f"{key}: {cell['outcome']} (expected {cell['expected_outcome']})"
            for key, cell in cells.items()
            if is_unexpected(cell)
        ]
        if odd:
            more = f" and {len(odd) - 3} more" if len(odd) > 3 else ""
            return "; ".join(odd[:3]) + more
        return "a new failure against the baseline"
    if changes:
        return "; ".join(str(c) for c in changes)
    outcomes = sorted({c["outcome"] for c in cells.values() if c.get("outcome")})
    return f"{', '.join(outcomes)} in every release it ran"


def _head(matrix: Matrix) -> str:
    lanes: list[tuple[str, list[Column]]] = []
    for column in matrix.columns:
        label = _lane_label(column)
        if lanes and lanes[-1][0] == label:
            lanes[-1][1].append(column)
        else:
            lanes.append((label, [column]))
    top = ['<tr class="lanes"><th class="case" rowspan="2" scope="col">case</th>']
    second = ['<tr class="rels">']
    for label, columns in lanes:
        key = columns[0].key
        kind = f" {key.kind}" if key.kind != "tests" else " gpu" if key.gpu else ""
        top.append(
            f'<th class="lane-start{kind}" colspan="{len(columns)}" scope="colgroup">'
            f"{esc(label)}</th>"
        )
        for i, column in enumerate(columns):
            start = " lane-start" if i == 0 else ""
            incomplete = " (incomplete)" if not column.complete else ""
            second.append(
                f'<th class="rel{start}{kind}" scope="col" '
                f'title="torch {esc(column.torch)} · {esc(", ".join(column.sources))}">'
                f"{esc(column.key.release)}{incomplete}</th>"
            )
    return "".join(top) + "</tr>" + "".join(second) + "</tr>"


def _cell(case_id, column, index, cell, change, lane_start, baseline) -> str:
    start = " lane-start" if lane_start else ""
    if cell is None:
        return f'<td class="cell none{start}" title="not run"></td>'
    outcome = cell["outcome"]
    classes = ["cell", outcome or "none"]
    classes.append("unexpected" if is_unexpected(cell) else "expected")
    attrs = ""
    if change is not None:
        classes.append(change.direction)
        attrs += f' data-change="{esc(str(change))}"'
    if baseline and baseline["class"] != Diff.UNCHANGED.value:
        if baseline["class"] == Diff.NEW_FAILURE.value:
            classes.append("new-failure")
        elif baseline["class"] == Diff.FIXED.value:
            classes.append("fixed-vs-baseline")
        if baseline["count_changed"]:
            classes.append("count-changed")
        attrs += (
            f' data-baseline="{esc(baseline["class"])}: {esc(str(baseline["before"]))} -> '
            f'{esc(str(baseline["after"]))}"'
        )
    verdict = "unexpected" if is_unexpected(cell) else "as expected"
    label = f"{case_id} at {column.key}: {outcome or 'not run'}, {verdict}"
    return (
        f'<td class="{" ".join(classes)}{start}" data-col="{index}"{attrs}>'
        f'<button type="button" aria-label="{esc(label)}">'
        f"{esc(SYMBOL.get(outcome, '?'))}</button></td>"
    )


def _slim(cell: dict) -> dict:
    """A cell for the page: the default expectation's reason goes (it is one sentence,
    the same in every fused cell; matrix.json keeps it)."""
    if cell.get("expected_outcome") in (None, Outcome.FUSED.value):
        return {k: v for k, v in cell.items() if k != "expectation_reason"}
    return cell


def render_html(matrix: Matrix, diff: list[dict] | None, generated: str = "") -> str:
    ordered = rows(matrix, diff)
    changes = row_changes(matrix)
    diff_by_cell = {(r["case"], r["column"]): r for r in (diff or [])}
    table = load_expectations()
    lane_starts = {
        i
        for i, c in enumerate(matrix.columns)
        if i == 0 or matrix.columns[i - 1].key.lane != c.key.lane
    }
    bodies = []
    for group in RowGroup:
        members = [r for r in ordered if r.group is group]
        if not members:
            continue
        body_id = ' id="fused-rows"' if group is RowGroup.FUSED else ""
        toggle = (
            ' <button type="button" id="toggle-fused" aria-controls="fused-rows">show</button>'
            if group is RowGroup.FUSED
            else ""
        )
        out = [
            f'<tbody class="group-{group}"{body_id}><tr class="group"><th colspan="'
            f'{len(matrix.columns) + 1}" scope="rowgroup">{esc(GROUP_TITLES[group])} '
            f"({len(members)}){toggle}</th></tr>"
        ]
        for row in members:
            cells = matrix.cells[row.case_id]
            by_release = {
                (c.lane, c.release): c for c in changes.get(row.case_id, [])
            }  # the change that lands on each cell
            tds = []
            for i, column in enumerate(matrix.columns):
                key = str(column.key)
                lane = lane_text(column.key)
                tds.append(
                    _cell(
                        row.case_id,
                        column,
                        i,
                        cells.get(key),
                        by_release.get((lane, column.key.release)),
                        i in lane_starts,
                        diff_by_cell.get((row.case_id, key)),
                    )
                )
            outcomes = sorted({c["outcome"] or "none" for c in cells.values()})
            story = "; ".join(str(c) for c in changes.get(row.case_id, []))
            out.append(
                f'<tr class="row" id="row-{esc(row.case_id)}" data-case="{esc(row.case_id)}" '
                f'data-outcomes="{esc(" ".join(outcomes))}" data-changes="{1 if story else 0}">'
                f'<th class="case" scope="row" title="{esc(row.case_id)}">{esc(row.case_id)}</th>'
                + "".join(tds)
                + "</tr>"
            )
        bodies.append("".join(out) + "</tbody>")
    if not ordered:
        bodies.append("<tbody><tr><td>no cells</td></tr></tbody>")
    data = {
        "columns": [
            {"key": str(c.key), "torch": c.torch, "session": c.session} for c in matrix.columns
        ],
        "cells": {cid: {k: _slim(c) for k, c in row.items()} for cid, row in matrix.cells.items()},
        "commands": {str(c.key): _commands(c) for c in matrix.columns},
        "links": {
            cid: _links(cid, row, matrix.columns, table) for cid, row in matrix.cells.items()
        },
    }
    outcomes = [o.value for o in Outcome]
    legend = "".join(f'<span class="{o}">{esc(SYMBOL[o])} {esc(o)}</span>' for o in outcomes) + (
        '<span class="unexpected">! unexpected (boxed red)</span>'
        '<span class="expected not-fused">striped: not fused, as expected</span>'
        '<span class="regression">red edge: worse than the release before</span>'
        '<span class="fix">green edge: better than the release before</span>'
    )
    options = "".join(f'<option value="{o}">{o}</option>' for o in outcomes)
    sources = f"{len(matrix.sources)} results files"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>convbn-compat matrix</title><style>{_asset("report.css")}</style></head><body>
<h1>convbn-compat matrix</h1>
<p class="meta">Efficient conv-bn eval pass, per release. {esc(sources)}{esc(generated)}.
Click a cell (or focus it and press Enter) for its record and how to reproduce it.</p>
{_summary(matrix, ordered, diff, changes)}
<h2>Matrix</h2>
<div class="legend">{legend}</div>
<div class="controls"><input id="q" type="search" placeholder="filter cases (e.g. decomposed)"
 aria-label="filter cases"><select id="o" aria-label="outcome"><option value="">any outcome
</option>{options}</select><label><input type="checkbox" id="c"> only rows that change
</label></div>
<div class="scroll" id="matrix-wrap"><table id="matrix"><thead>{_head(matrix)}</thead>
{"".join(bodies)}</table></div>
<aside id="panel" role="dialog" aria-labelledby="panel-title" hidden>
<button type="button" id="panel-close" aria-label="close">&times;</button>
<h2 id="panel-title"></h2><div id="panel-body"></div></aside>
<script type="application/json" id="report-data">{_json_for_script(data)}</script>
<script>{_asset("report.js")}</script></body></html>
"""
