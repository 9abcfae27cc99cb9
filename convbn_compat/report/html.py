"""``matrix.html``: the report's view as one self-contained, offline page.

The summary comes first (counts, then the rows to look at, unexpected ones first), then
the matrix: rows by severity, the all-fused ones folded, columns grouped into lanes
(the matrix's CPU and GPU lanes, then the generator's findings, then entry points)
under their releases. A click on a cell (or Enter on it) opens a panel with its full
record, its reproduce and rerun commands and its links. Every text taken from a results
file is escaped: the table by ``html.escape``, the panel's data as JSON that the page
only ever puts into ``textContent``. Everything drawn here was computed by ``view``.
"""

from __future__ import annotations

import html
import json
from importlib import resources

from ..core.outcomes import NOT_RUN_SYMBOL, Outcome
from ..core.record import CaseRecord
from .model import CLASSES, Column, Diff
from .view import TITLES, Change, Row, RowGroup, Section, View, lane_text

__all__ = ["render_html"]

esc = html.escape


def _asset(name: str) -> str:
    folder = resources.files("convbn_compat.report").joinpath("static")
    return folder.joinpath(name).read_text(encoding="utf-8")


def _json_for_script(data: object) -> str:
    """JSON that cannot end the <script> element it sits in."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _cards(view: View) -> list[tuple[str, int, str]]:
    unexpected = view.group(RowGroup.UNEXPECTED)
    matrix = view.matrix
    cards = [
        (
            "alert" if unexpected else "ok",
            len(unexpected),
            f"cases with an unexpected outcome ({view.unexpected_cells} cells)",
        ),
        ("", len(view.group(RowGroup.KNOWN)), "cases not fused somewhere, as expected"),
        ("", len(view.group(RowGroup.FUSED)), "cases fused everywhere"),
        ("", len(matrix.columns), "columns"),
    ]
    if view.diff is not None:
        fixed = sum(1 for r in view.diff if r["class"] == Diff.FIXED.value)
        new = len(view.new_failures)
        cards.insert(0, ("alert" if new else "ok", new, "new failures against the baseline"))
        cards.insert(1, ("", fixed, "cells fixed since the baseline"))
    if matrix.incomplete:
        cards.insert(0, ("alert", len(matrix.incomplete), "incomplete runs"))
    if matrix.skipped:
        cards.append(("", len(matrix.skipped), "files skipped (not results)"))
    if matrix.benefit:
        regressions = [b for b in matrix.benefit if b["regression"]]
        cards.append(("alert" if regressions else "ok", len(regressions), "benefit regressions"))
    return cards


def _look(view: View, group: RowGroup) -> list[str]:
    """The rows of a group, those that tell one story (64 cases fixed in 2.4) on one line."""
    members = view.group(group)
    if not members:
        return []
    stories: dict[str, list[str]] = {}
    for row in members:
        stories.setdefault(row.story, []).append(row.case_id)
    out = [
        f"<h2>{esc(TITLES[group])} ({len(members)})</h2>",
        f'<ul class="look" id="look-{group}">',
    ]
    section_of: dict[str, str] = {}
    for section in view.sections:  # a row's anchor is in the first section that has it
        for row in section.rows:
            section_of.setdefault(row.case_id, section.kind)
    for text, case_ids in stories.items():
        links = [
            f'<a href="#row-{esc(section_of.get(cid, "tests"))}-{esc(cid)}">'
            f"<code>{esc(cid)}</code></a>"
            for cid in case_ids
        ]
        if len(links) == 1:
            out.append(f"<li>{links[0]}: {esc(text)}</li>")
        else:
            out.append(
                f"<li><details><summary>{len(links)} cases: {esc(text)}</summary>"
                f"{', '.join(links)}</details></li>"
            )
    out.append("</ul>")
    return out


def _counts_table(view: View) -> list[str]:
    heads = [o.value for o in Outcome] + ["not run", "unexpected"]
    out = ["<details><summary>Outcomes per column</summary>"]
    out.append('<div class="scroll"><table class="counts"><thead><tr><th>column</th>')
    out.append("<th>torch</th>" + "".join(f"<th>{esc(h)}</th>" for h in heads))
    out.append("<th>complete</th></tr></thead><tbody>")
    for column in view.matrix.columns:
        counts = view.counts[str(column.key)]
        out.append(
            f"<tr><td>{esc(str(column.key))}</td><td>{esc(column.torch)}</td>"
            + "".join(f"<td>{counts[h]}</td>" for h in heads)
            + f"<td>{'yes' if column.complete else '<b>no</b>'}</td></tr>"
        )
    out.append("</tbody></table></div></details>")
    return out


def _summary(view: View) -> str:
    matrix = view.matrix
    out = ['<section id="summary"><h2>Summary: where the pass is broken now</h2>']
    out.append(_release_summary(view))
    out.append('<div class="cards">')
    out += [f'<div class="card {c}"><b>{n}</b>{esc(label)}</div>' for c, n, label in _cards(view)]
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
    if view.diff is not None:
        counts = ", ".join(f"{k}: {sum(1 for r in view.diff if r['class'] == k)}" for k in CLASSES)
        out.append(f"<p><b>Against the baseline</b>: {esc(counts)}</p>")
    out += _look(view, RowGroup.UNEXPECTED) + _look(view, RowGroup.KNOWN)
    out.append(_benefit(view))
    out += _counts_table(view)
    out.append("</section>")
    return "".join(out)


def _mb(value) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def _pct(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def _benefit(view: View) -> str:
    """What the pass saves, per release: flag on against flag off and eager."""
    benefit = view.matrix.benefit
    if not benefit:
        return ""
    out = [
        '<h2 id="benefit">What the pass saves</h2><div class="scroll"><table class="counts">'
        "<thead><tr><th>release</th><th>torch</th><th>device</th><th>model</th>"
        "<th>peak eager</th><th>peak off</th><th>peak on</th><th>saved vs off</th>"
        "<th>step on/off</th><th>step on/eager</th><th>regression</th></tr></thead><tbody>"
    ]
    for row in benefit:
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
    methods = sorted({r["method"] for r in benefit if r["method"]})
    out.append('<p class="meta">' + esc("; ".join(methods)) + "</p>")
    return "".join(out)


def _head(section: Section) -> str:
    top = ['<tr class="lanes"><th class="case" rowspan="2" scope="col">case</th>']
    second = ['<tr class="rels">']
    for lane in section.lanes:
        key = lane.columns[0].key
        kind = f" {key.kind}" if key.kind != "tests" else " gpu" if key.on_gpu else ""
        top.append(
            f'<th class="lane-start{kind}" colspan="{len(lane.columns)}" scope="colgroup">'
            f"{esc(lane.label)}</th>"
        )
        for i, column in enumerate(lane.columns):
            start = " lane-start" if i == 0 else ""
            incomplete = " (incomplete)" if not column.complete else ""
            gpu = f"<br><small>{esc(column.key.gpu)}</small>" if column.key.gpu else ""
            second.append(
                f'<th class="rel{start}{kind}" scope="col" '
                f'title="torch {esc(column.torch)} · {esc(", ".join(column.sources))}">'
                f"{esc(column.key.release)}{incomplete}{gpu}</th>"
            )
    return "".join(top) + "</tr>" + "".join(second) + "</tr>"


def _cell(view: View, row: Row, index: int, column: Column, lane_start: bool) -> str:
    start = " lane-start" if lane_start else ""
    key = str(column.key)
    cell = row.cells.get(key)
    if cell is None:
        return f'<td class="cell none{start}" title="not run"></td>'
    outcome = cell.outcome.value if cell.outcome else "none"
    odd = view.is_unexpected(row.case_id, key)
    classes = ["cell", outcome, "unexpected" if odd else "expected"]
    attrs = ""
    change = _landing(row.changes, column)
    if change is not None:
        classes.append(change.direction)
        attrs += f' data-change="{esc(str(change))}"'
    baseline = view.diff_by_cell.get((row.case_id, key))
    if baseline and baseline["class"] != Diff.UNCHANGED.value:
        classes += {
            Diff.NEW_FAILURE.value: ["new-failure"],
            Diff.FIXED.value: ["fixed-vs-baseline"],
        }.get(baseline["class"], [])
        if baseline["count_changed"]:
            classes.append("count-changed")
        attrs += (
            f' data-baseline="{esc(baseline["class"])}: {esc(str(baseline["before"]))} -> '
            f'{esc(str(baseline["after"]))}"'
        )
    cause = view.causes.get((row.case_id, key))
    verdict = "unexpected" if odd else f"known cause {cause}" if cause else "as expected"
    if cause:
        attrs += f' data-cause="{esc(cause)}"'
    label = f"{row.case_id} at {key}: {cell.outcome or 'not run'}, {verdict}"
    symbol = cell.outcome.symbol if cell.outcome else NOT_RUN_SYMBOL
    return (
        f'<td class="{" ".join(classes)}{start}" data-col="{index}"{attrs}>'
        f'<button type="button" aria-label="{esc(label)}">{esc(symbol)}</button></td>'
    )


def _landing(changes: list[Change], column: Column) -> Change | None:
    """The change of outcome that lands on this column's cell, if any."""
    lane = lane_text(column.key)
    return next((c for c in changes if c.lane == lane and c.release == column.key.release), None)


def _slim(cell: CaseRecord) -> dict:
    """A cell for the page: the default expectation's reason goes (it is one sentence,
    the same in every fused cell; matrix.json keeps it)."""
    data = cell.to_json()
    if cell.expected_outcome in (None, Outcome.FUSED):
        data.pop("expectation_reason", None)
    return data


def _bodies(view: View, section: Section) -> list[str]:
    everything = view.matrix.columns
    columns = section.columns
    index = {id(c): i for i, c in enumerate(everything)}  # the page's data by column
    starts = {id(lane.columns[0]) for lane in section.lanes}
    main = section.kind == "tests"
    bodies = []
    for group in RowGroup:
        members = [r for r in section.rows if r.group is group]
        if not members:
            continue
        fused = group is RowGroup.FUSED
        target = "fused-rows" if main else f"fused-rows-{section.kind}"
        toggle_id = ' id="toggle-fused"' if main else ""
        toggle = (
            f' <button type="button" class="toggle-fused" aria-controls="{target}"'
            f"{toggle_id}>show</button>"
            if fused
            else ""
        )
        body_id = f' id="{target}"' if fused else ""
        out = [
            f'<tbody class="group-{group}"{body_id}>'
            f'<tr class="group"><th colspan="{len(columns) + 1}" scope="rowgroup">'
            f"{esc(TITLES[group])} ({len(members)}){toggle}</th></tr>"
        ]
        for row in members:
            tds = [_cell(view, row, index[id(c)], c, id(c) in starts) for c in columns]
            outcomes = sorted(
                {c.outcome.value if c.outcome else "none" for c in row.cells.values()}
            )
            out.append(
                f'<tr class="row" id="row-{esc(section.kind)}-{esc(row.case_id)}" '
                f'data-case="{esc(row.case_id)}" data-outcomes="{esc(" ".join(outcomes))}" '
                f'data-changes="{1 if row.changes else 0}">'
                f'<th class="case" scope="row" title="{esc(row.case_id)}">{esc(row.case_id)}</th>'
                + "".join(tds)
                + "</tr>"
            )
        bodies.append("".join(out) + "</tbody>")
    return bodies or ["<tbody><tr><td>no cells</td></tr></tbody>"]


def _searches(view: View) -> str:
    """The generator's runs, by cause: what each found, and the search's own figures."""
    out = []
    for search in view.searches:
        f = search.figures
        minutes = f"{f['elapsed_s'] / 60:.1f}" if f.get("elapsed_s") else "?"
        out.append(
            f"<h3>torch {esc(search.column.torch)}, {esc(search.column.key.device)}: "
            f"{f.get('examples', '?')} examples in {minutes} min "
            f"({f.get('examples_per_minute', '?')} a minute, seed {f.get('seed', '?')}, "
            f"{f.get('workers') or 1} workers"
            + (f"; {f['searches']} searches added up" if f.get("searches") else "")
            + ")</h3>"
        )
        out.append(
            '<div class="scroll"><table class="counts broken"><thead><tr><th>cause</th>'
            "<th>examples</th><th>signatures</th><th>range</th><th>reproducer</th></tr>"
            "</thead><tbody>"
        )
        for c in search.causes:
            links = " ".join(f'<a href="{esc(u)}">{esc(u.rsplit("/", 1)[-1])}</a>' for u in c.links)
            mark = "" if c.known else ' class="alert"'
            word = "known" if c.known else "NEW"
            out.append(
                f"<tr{mark}><td>{word} <code>{esc(c.cause)}</code> {links}</td>"
                f"<td>{c.examples}</td><td>{c.signatures}</td><td>{esc(c.range)}</td>"
                f"<td><code>{esc(c.command)}</code></td></tr>"
            )
        out.append("</tbody></table></div>")
        if search.not_the_pass:
            out.append(
                f'<p class="meta">{search.not_the_pass} more signatures are not the pass\'s: '
                "the flag-off compile fails too.</p>"
            )
    return "".join(out)


def _section(view: View, section: Section) -> str:
    table_id = "matrix" if section.kind == "tests" else f"matrix-{section.kind}"
    causes = _searches(view) if section.kind == "fuzz" else ""
    return (
        f'<h2 id="section-{esc(section.kind)}">{esc(section.title)}</h2>{causes}'
        f'<div class="scroll matrix-wrap" id="{table_id}-wrap"><table class="matrix" '
        f'id="{table_id}"><thead>{_head(section)}</thead>{"".join(_bodies(view, section))}'
        "</table></div>"
    )


def _release_summary(view: View) -> str:
    """Per release, newest first: what is wrong or failing now, with its cause, link and
    rerun command, and what changed against the release before and the baseline."""
    out = ['<div id="releases">']
    for i, summary in enumerate(view.releases):
        unexpected = sum(b.unexpected for b in summary.broken)
        head = (
            f"{esc(summary.release)} (torch {esc(summary.torch)}): {len(summary.broken)} "
            f"cases wrong or failing" + (f", <b>{unexpected} unexpected</b>" if unexpected else "")
        )
        fixes = [f"<code>{esc(c)}</code> {esc(str(ch))}" for c, ch in summary.changes]
        out.append(f'<details class="release"{" open" if i == 0 else ""}><summary>{head}</summary>')
        if summary.broken:
            out.append(
                '<div class="scroll"><table class="counts broken"><thead><tr><th>case</th>'
                "<th>outcome</th><th>lanes</th><th>cause</th><th>rerun</th></tr></thead><tbody>"
            )
            for b in summary.broken:
                links = " ".join(
                    f'<a href="{esc(u)}">{esc(u.rsplit("/", 1)[-1])}</a>' for u in b.links
                )
                mark = ' class="alert"' if b.unexpected else ""
                out.append(
                    f"<tr{mark}><td><code>{esc(b.case_id)}</code></td><td>{esc(str(b.outcome))}"
                    f"{' (unexpected)' if b.unexpected else ''}</td><td>{esc(', '.join(b.lanes))}"
                    f"</td><td>{esc(b.cause)} {links}</td><td><code>{esc(b.rerun)}</code></td></tr>"
                )
            out.append("</tbody></table></div>")
        if fixes:
            out.append("<p>Against the release before: " + "; ".join(fixes[:20]))
            out.append(f" and {len(fixes) - 20} more</p>" if len(fixes) > 20 else "</p>")
        if summary.against_baseline:
            items = [
                f"<code>{esc(r['case'])}</code> {esc(r['class'])}: {esc(str(r['before']))} -> "
                f"{esc(str(r['after']))}"
                for r in summary.against_baseline
            ]
            out.append("<p>Against the baseline: " + "; ".join(items) + "</p>")
        out.append("</details>")
    out.append("</div>")
    return "".join(out)


LEGEND_EXTRA = (
    '<span class="unexpected">! unexpected (boxed red)</span>'
    '<span class="expected not-fused">striped: the outcome the expectations table names</span>'
    '<span class="regression">red edge: worse than the release before</span>'
    '<span class="fix">green edge: better than the release before</span>'
)


def render_html(view: View, generated: str = "") -> str:
    matrix = view.matrix
    data = {
        "columns": [
            {"key": str(c.key), "torch": c.torch, "session": c.session} for c in matrix.columns
        ],
        "cells": {r.case_id: {k: _slim(c) for k, c in r.cells.items()} for r in view.rows},
        "commands": view.commands,
        "links": {r.case_id: r.links for r in view.rows if r.links},
        "recorded": {
            r.case_id: {k: matrix.recorded_by.get((r.case_id, k), "") for k in r.cells}
            for r in view.rows
        },
    }
    outcomes = [o.value for o in Outcome]
    legend = "".join(
        f'<span class="{o.value}">{esc(o.symbol)} {esc(o.value)}</span>' for o in Outcome
    )
    options = "".join(f'<option value="{o}">{o}</option>' for o in outcomes)
    sources = f"{len(matrix.sources)} results files"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>convbn-compat matrix</title><style>{_asset("report.css")}</style></head><body>
<h1>convbn-compat matrix</h1>
<p class="meta">Efficient conv-bn eval pass, per release. {esc(sources)}{esc(generated)}.
Click a cell (or focus it and press Enter) for its record and how to reproduce it.</p>
{_summary(view)}
<div class="legend">{legend}{LEGEND_EXTRA}</div>
<div class="controls"><input id="q" type="search" placeholder="filter cases (e.g. decomposed)"
 aria-label="filter cases"><select id="o" aria-label="outcome"><option value="">any outcome
</option>{options}</select><label><input type="checkbox" id="c"> only rows that change
</label></div>
{"".join(_section(view, section) for section in view.sections)}
<aside id="panel" role="dialog" aria-labelledby="panel-title" hidden>
<button type="button" id="panel-close" aria-label="close">&times;</button>
<h2 id="panel-title"></h2><div id="panel-body"></div></aside>
<script type="application/json" id="report-data">{_json_for_script(data)}</script>
<script>{_asset("report.js")}</script></body></html>
"""
