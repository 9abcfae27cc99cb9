"""Markdown renderings of the report's view: ``matrix.md`` and ``table``'s document.
Everything drawn here was computed by ``view``."""

from __future__ import annotations

import datetime as _dt

from ..core.cases import CASES
from ..core.errors import ConfigError
from ..core.outcomes import NOT_RUN_SYMBOL, Outcome
from ..core.record import CaseRecord
from ..core.releases import session_name
from .model import CLASSES, Column, Matrix
from .view import RowGroup, View, causes_now, span, summary_lines

__all__ = ["render_job_summary", "render_markdown", "table_document"]

LEGEND = ", ".join(f"{o.symbol} {o.value}" for o in Outcome) + ", blank: not run"
HEADS = [o.value for o in Outcome] + ["not run", "unexpected"]


def _symbol(cell: CaseRecord | None, unexpected: bool = False) -> str:
    if cell is None:
        return NOT_RUN_SYMBOL
    mark = cell.outcome.symbol if cell.outcome else NOT_RUN_SYMBOL
    return f"**{mark}!**" if unexpected else mark


def _summary(view: View) -> list[str]:
    matrix = view.matrix
    lines = [
        "## Summary",
        "",
        f"- {len(matrix.cells)} cases in {len(matrix.columns)} columns",
        f"- **{len(view.group(RowGroup.UNEXPECTED))} cases with an unexpected outcome** (not "
        "what the expectations table predicts)",
        f"- {len(view.group(RowGroup.KNOWN))} cases not fused somewhere, each as expected "
        "(known bugs and limits)",
    ]
    if matrix.incomplete:
        lines.append(f"- **{len(matrix.incomplete)} incomplete runs**")
    if matrix.skipped:
        lines.append(f"- {len(matrix.skipped)} files skipped (not results files)")
    return [*lines, ""]


def _baseline(view: View) -> list[str]:
    if view.diff is None:
        return []
    counts = {k: sum(1 for r in view.diff if r["class"] == k) for k in CLASSES}
    lines = [
        "## Against the baseline",
        "",
        "| " + " | ".join(CLASSES) + " |",
        "|---" * len(CLASSES) + "|",
        "| " + " | ".join(str(counts[k]) for k in CLASSES) + " |",
        "",
    ]
    lines += [
        f"- **new failure** `{r['case']}` in {r['column']}: {r['before']} -> {r['after']}"
        for r in view.new_failures
    ]
    return [*lines, ""] if view.new_failures else lines


def _incomplete(matrix: Matrix) -> list[str]:
    if not (matrix.incomplete or matrix.missing):
        return []
    lines = ["## Incomplete", ""]
    lines += [f"- incomplete run: `{p}`" for p in matrix.incomplete]
    lines += [f"- missing: {m}" for m in matrix.missing[:50]]
    if len(matrix.missing) > 50:
        lines.append(f"- ... and {len(matrix.missing) - 50} more missing cells")
    return [*lines, ""]


def _runs(matrix: Matrix) -> list[str]:
    """Which cells came from which run, and when: for every column that shows more than
    one run's cells (a partial rerun, a second file), and every cell two files held."""
    several = {k: runs for k, runs in matrix.runs.items() if len(runs) > 1}
    if not (several or matrix.superseded):
        return []
    lines = ["## Where the cells come from", ""]
    for key, runs in several.items():
        lines.append(f"- `{key}`:")
        for r in runs:
            stop = " (interrupted)" if r["interrupted"] else ""
            what = f", {r['selected']}" if r["selected"] else ""
            lines.append(
                f"  - {r['cells_shown']} cells from `{r['file']}` run {r['run']}, started "
                f"{r['started'] or '?'}{what}{stop}"
            )
    if matrix.superseded:
        lines += ["", "Cells two files held (the later run's record is shown):", ""]
        lines += [f"- {line}" for line in matrix.superseded[:50]]
        if len(matrix.superseded) > 50:
            lines.append(f"- ... and {len(matrix.superseded) - 50} more")
    return [*lines, ""]


def _per_column(view: View) -> list[str]:
    lines = [
        "## Outcomes per column",
        "",
        "| column | torch | " + " | ".join(HEADS) + " | complete |",
        "|---" * (len(HEADS) + 3) + "|",
    ]
    for column in view.matrix.columns:
        counts = view.counts[str(column.key)]
        lines.append(
            f"| {column.key} | {column.torch} | "
            + " | ".join(str(counts[h]) for h in HEADS)
            + f" | {'yes' if column.complete else '**no**'} |"
        )
    return lines


def _not_fused(view: View) -> list[str]:
    keys = [str(c.key) for c in view.matrix.columns]
    lines = [
        "",
        "## Cases that are not fused somewhere",
        "",
        "Unexpected first, then by severity. `!` marks an outcome the expectations table "
        "did not predict.",
        "",
        "| case | kind | changes | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 3) + "|",
    ]
    for row in (r for r in view.rows if r.group is not RowGroup.FUSED):
        changed = "; ".join(str(c) for c in row.changes) or "-"
        symbols = [_symbol(row.cells.get(k), view.is_unexpected(row.case_id, k)) for k in keys]
        lines.append(f"| `{row.case_id}` | {row.group} | {changed} | " + " | ".join(symbols) + " |")
    return [*lines, "", LEGEND + "; `!` unexpected.", ""]


def _searches(view: View) -> list[str]:
    if not view.searches:
        return []
    lines = ["## Generator findings, by cause", ""]
    for search in view.searches:
        f = search.figures
        lines += [
            f"torch {search.column.torch} on {search.column.key.device}: "
            f"{f.get('examples', '?')} examples, {f.get('examples_per_minute', '?')} a minute, "
            f"seed {f.get('seed', '?')}, {f.get('workers') or 1} workers"
            + (f" ({f['searches']} searches added up)" if f.get("searches") else "")
            + f"; {search.not_the_pass} signatures not the pass's.",
            "",
            "| cause | examples | signatures | range | reproducer |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {'known' if c.known else '**NEW**'} `{c.cause}`"
            + "".join(f" [{link.rsplit('/', 1)[-1]}]({link})" for link in c.links)
            + f" | {c.examples} | {c.signatures} | {c.range} | `{c.command}` |"
            for c in search.causes
        ]
        lines.append("")
    return lines


def render_markdown(view: View) -> str:
    matrix = view.matrix
    lines = ["# convbn-compat matrix", "", *_summary(view), *_baseline(view), *_searches(view)]
    lines += _incomplete(matrix) + _runs(matrix)
    if matrix.skipped:
        lines += ["## Skipped files", ""] + [f"- {s}" for s in matrix.skipped] + [""]
    lines += _per_column(view) + _not_fused(view) + benefit_lines(matrix)
    return "\n".join(lines)


def render_job_summary(view: View) -> str:
    """``summary.md``, for a CI job's summary page: a headline; every unexpected cell of
    any release with the command that reruns exactly it; each known cause once, with the
    releases it breaks; what is broken in the newest release; the other releases in a
    line each. The full matrix is the HTML page in the run's artifact, not a copy here."""
    unexpected = len(view.group(RowGroup.UNEXPECTED))
    new = len(view.new_failures)
    head = (f"**{unexpected} cases unexpected**" if unexpected else "every outcome as expected") + (
        f", **{new} new failures against the baseline**" if new else ""
    )
    if view.matrix.incomplete:
        head += f", **{len(view.matrix.incomplete)} incomplete runs**"
    lines = [f"# convbn-compat matrix: {head}", ""]
    if view.unexpected:
        lines += ["## Unexpected", "", "| cell | outcome | expected | rerun |", "|---|---|---|---|"]
        for case_id, key in sorted(view.unexpected):
            cell = view.matrix.cells[case_id][key]
            rerun = view.commands[key]["rerun"].replace("{case}", case_id)
            lines.append(
                f"| `{case_id}` @ {key} | {cell.outcome} | {cell.expected_outcome} | `{rerun}` |"
            )
        lines.append("")
    now = causes_now(view)
    if now:
        lines += ["## Known causes of what fails now", ""]
        lines += ["| cause | releases | cells | reproducer |", "|---|---|---|---|"]
        for c in now:
            name = f"[{c.cause}]({c.link})" if c.link else f"`{c.cause}`"
            lines.append(f"| {name} | {span(c.releases)} | {c.cells} | `{c.command}` |")
        lines.append("")
    if view.releases:
        newest = view.releases[0]
        lines += [
            f"## Broken in {newest.release} (torch {newest.torch})",
            "",
            "| case | outcome | cause | rerun |",
            "|---|---|---|---|",
        ]
        for b in newest.broken:
            mark = " **(unexpected)**" if b.unexpected else ""
            cause = b.cause.replace("|", "\\|")[:200]
            lines.append(f"| `{b.case_id}` | {b.outcome}{mark} | {cause} | `{b.rerun}` |")
        if not newest.broken:
            lines.append("| - | nothing wrong or failing | | |")
        lines += ["", "Every release, newest first:", ""]
        lines += [f"- {line}" for line in summary_lines(view)]
    lines += [
        "",
        "The whole matrix, every cell with its record, is `matrix.html` (one offline page) "
        "and `matrix.md` in this run's `matrix` artifact.",
        "",
    ]
    return "\n".join(lines)


def _peak(measured: dict, key: str) -> str:
    if "error" in measured:
        return "error"
    value = measured.get(key)
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def benefit_lines(matrix: Matrix) -> list[str]:
    if not matrix.benefit:
        return []
    lines = [
        "## What the pass saves",
        "",
        "| release | torch | device | model | peak eager | peak off | peak on | saved vs off "
        "| step on/off | regression |",
        "|---" * 10 + "|",
    ]
    for row in matrix.benefit:
        key = "peak_bytes" if row["device"] == "cuda" else "peak_step_bytes"
        peaks = [_peak(row["configs"].get(c, {}), key) for c in ("eager", "off", "on")]
        saved = row["summary"].get("memory_saved_vs_off")
        lines.append(
            f"| {row['release']} | {row['torch']} | {row['device']} | {row['model']} | "
            + " | ".join(peaks)
            + f" | {'-' if saved is None else f'{saved:.0%}'} | "
            f"{row['summary'].get('step_time_on_over_off', '-')} | "
            f"{'**' + row['regression'] + '**' if row['regression'] else ''} |"
        )
    methods = sorted({r["method"] for r in matrix.benefit if r["method"]})
    errors = [
        f"- {row['release']} ({row['device']}), {config}: {measured['error'][:300]}"
        for row in matrix.benefit
        for config, measured in row["configs"].items()
        if "error" in measured
    ]
    errors = ["Configurations that failed:", "", *errors, ""] if errors else []
    return [*lines, "", "Method: " + "; ".join(methods) + ".", "", *errors]


def _session_of(column: Column) -> str:
    """The Nox session that makes the column's runs: a run may carry another name
    (``--convbn-run tests-2.5-cpu-paths``), which is no session to type."""
    key = column.key
    try:
        return session_name(key.kind, key.release, key.flavour)
    except ValueError:
        return str(column.session)


def _provenance(matrix: Matrix) -> str:
    """How the input was made, read from the files themselves."""
    parts = []
    for column in matrix.columns:
        install = column.install or {}
        index = install.get("torch_index")
        how = f"`nox -s {_session_of(column)}`" if column.session else "a plain pytest run"
        where = f" on {column.platform}" if column.platform else ""
        source = f", torch from index `{index}`" if index else ""
        parts.append(f"- torch {column.torch}: {how}{source}{where}")
    return "\n".join(dict.fromkeys(parts))


def table_document(view: View, sources: list[str], device: str = "cpu") -> str:
    """Outcome counts per release, then every case against every release (docs/matrix.md).

    Columns are the model's: runs of one release, flavour and device share one (a full
    run plus a later run of new cases, say), labelled by their torch.
    """
    matrix = view.matrix
    columns = [c for c in matrix.columns if c.key.device == device and c.key.kind == "tests"]
    if not columns:
        have = sorted({c.key.device for c in matrix.columns if c.key.kind == "tests"})
        if not have:  # only a search's, the entry points' or a measurement's results
            kinds = {c.key.kind for c in matrix.columns}
            kinds |= {"benefit"} if matrix.benefit else set()
            raise ConfigError(
                f"no matrix cells in {', '.join(sources)} (they hold "
                f"{' and '.join(sorted(kinds)) or 'no'} results); the table lays out what "
                "`nox -s tests-X.Y-cpu` wrote: name those (`report` reads every kind)"
            )
        raise ConfigError(
            f"no {device} cells in {', '.join(sources)} (they hold: {', '.join(have)}); "
            f"choose --device {have[0]}"
        )
    heads = [o.value for o in Outcome]
    lines = ["| torch | " + " | ".join(heads) + " | complete |"]
    lines.append("|---" * (len(heads) + 2) + "|")
    for column in columns:
        counts = view.counts[str(column.key)]
        complete = "yes" if column.complete else "**no**"
        lines.append(
            f"| {column.torch} | " + " | ".join(str(counts[h]) for h in heads) + f" | {complete} |"
        )
    lines += ["", f"Per case ({device}); {LEGEND}.", ""]
    lines.append("| case | " + " | ".join(c.torch for c in columns) + " |")
    lines.append("|---" * (len(columns) + 1) + "|")
    for case in CASES:
        row = matrix.cells.get(case.id, {})
        symbols = [_symbol(row.get(str(c.key))) for c in columns]
        lines.append(f"| `{case.id}` | " + " | ".join(symbols) + " |")
    names = ", ".join(f"`{p.rsplit('/', 1)[-1]}`" for p in matrix.sources)
    return (
        f"# Measured matrix ({device})\n\n"
        f"Generated on {_dt.date.today().isoformat()} by `python -m convbn_compat table` from "
        f"{names}. Files of one torch share a column. How each was made, as its files "
        f"record it:\n\n{_provenance(matrix)}\n\n" + "\n".join(lines) + "\n"
    )
