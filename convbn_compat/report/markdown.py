"""Markdown renderings of the report's model: ``matrix.md`` and ``table``'s document."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from ..core.cases import CASES
from ..core.errors import ConfigError
from ..core.outcomes import Outcome
from .model import (
    CLASSES,
    SYMBOL,
    Diff,
    Matrix,
    RowGroup,
    build_matrix,
    is_unexpected,
    row_changes,
    rows,
)

__all__ = ["render_markdown", "table_document"]

LEGEND = ", ".join(f"{sym} {o}" for o, sym in SYMBOL.items() if o) + ", blank: not run"


def _symbol(cell: dict | None) -> str:
    if cell is None:
        return " "
    mark = SYMBOL.get(cell.get("outcome"), "?")
    return f"**{mark}!**" if is_unexpected(cell) else mark


def render_markdown(matrix: Matrix, diff: list[dict] | None) -> str:
    lines = ["# convbn-compat matrix", ""]
    ordered = rows(matrix, diff)
    unexpected = [r for r in ordered if r.group is RowGroup.UNEXPECTED]
    known = [r for r in ordered if r.group is RowGroup.KNOWN]
    lines += [
        "## Summary",
        "",
        f"- {len(matrix.cells)} cases in {len(matrix.columns)} columns",
        f"- **{len(unexpected)} cases with an unexpected outcome** (not what the "
        "expectations table predicts)",
        f"- {len(known)} cases not fused somewhere, each as expected (known bugs and limits)",
    ]
    if matrix.incomplete:
        lines.append(f"- **{len(matrix.incomplete)} incomplete runs**")
    if matrix.skipped:
        lines.append(f"- {len(matrix.skipped)} files skipped (not results files)")
    lines.append("")
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
        failures = [r for r in diff if r["class"] == Diff.NEW_FAILURE.value]
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
    if matrix.skipped:
        lines += ["## Skipped files", ""] + [f"- {s}" for s in matrix.skipped] + [""]
    heads = [o.value for o in Outcome] + ["not run", "unexpected"]
    lines += [
        "## Outcomes per column",
        "",
        "| column | torch | " + " | ".join(heads) + " | complete |",
        "|---" * (len(heads) + 3) + "|",
    ]
    for column in matrix.columns:
        counts = matrix.counts(column)
        lines.append(
            f"| {column.key} | {column.torch} | "
            + " | ".join(str(counts[h]) for h in heads)
            + f" | {'yes' if column.complete else '**no**'} |"
        )
    changes = row_changes(matrix)
    keys = [str(c.key) for c in matrix.columns]
    lines += [
        "",
        "## Cases that are not fused somewhere",
        "",
        "Unexpected first, then by severity. `!` marks an outcome the expectations table "
        "did not predict.",
        "",
        "| case | kind | changes | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 3) + "|",
    ]
    for row in (r for r in ordered if r.group is not RowGroup.FUSED):
        cells = matrix.cells[row.case_id]
        changed = "; ".join(str(c) for c in changes.get(row.case_id, [])) or "-"
        symbols = [_symbol(cells.get(k)) for k in keys]
        lines.append(f"| `{row.case_id}` | {row.group} | {changed} | " + " | ".join(symbols) + " |")
    lines += ["", LEGEND + "; `!` unexpected.", ""]
    lines += benefit_lines(matrix)
    return "\n".join(lines)


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
        peaks = []
        for config in ("eager", "off", "on"):
            measured = row["configs"].get(config, {})
            value = measured.get(key)
            peaks.append(
                "error"
                if "error" in measured
                else "-"
                if value is None
                else f"{value / 2**20:.1f} MiB"
            )
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


def _provenance(matrix: Matrix) -> str:
    """How the input was made, read from the files themselves."""
    parts = []
    for column in matrix.columns:
        install = column.install or {}
        index = install.get("torch_index")
        how = f"`nox -s {column.session}`" if column.session else "a plain pytest run"
        where = f" on {column.platform}" if column.platform else ""
        source = f", torch from index `{index}`" if index else ""
        parts.append(f"- torch {column.torch}: {how}{source}{where}")
    return "\n".join(dict.fromkeys(parts))


def table_document(paths: list[Path], device: str = "cpu") -> str:
    """Outcome counts per release, then every case against every release (docs/matrix.md).

    Columns are build_matrix's: runs of one release, flavour and device share one (a full
    run plus a later run of new cases, say), labelled by their torch.
    """
    matrix = build_matrix(paths)
    columns = [c for c in matrix.columns if c.key.device == device and c.key.kind == "tests"]
    if not columns:
        have = sorted({c.key.device for c in matrix.columns})
        raise ConfigError(
            f"no {device} cells in {', '.join(map(str, paths))} (they hold: "
            f"{', '.join(have) or 'nothing'}); choose --device {have[0] if have else 'cpu'}"
        )
    heads = [o.value for o in Outcome]
    lines = ["| torch | " + " | ".join(heads) + " | complete |"]
    lines.append("|---" * (len(heads) + 2) + "|")
    for column in columns:
        counts = matrix.counts(column)
        complete = "yes" if column.complete else "**no**"
        lines.append(
            f"| {column.torch} | " + " | ".join(str(counts[h]) for h in heads) + f" | {complete} |"
        )
    lines += ["", f"Per case ({device}); {LEGEND}.", ""]
    lines.append("| case | " + " | ".join(c.torch for c in columns) + " |")
    lines.append("|---" * (len(columns) + 1) + "|")
    for case in CASES:
        row = matrix.cells.get(case.id, {})
        symbols = [SYMBOL.get((row.get(str(c.key)) or {}).get("outcome"), "?") for c in columns]
        lines.append(f"| `{case.id}` | " + " | ".join(symbols) + " |")
    sources = ", ".join(f"`{Path(p).name}`" for p in matrix.sources)
    return (
        f"# Measured matrix ({device})\n\n"
        f"Generated on {_dt.date.today().isoformat()} by `python -m convbn_compat table` from "
        f"{sources}. Files of one torch share a column. How each was made, as its files "
        f"record it:\n\n{_provenance(matrix)}\n\n" + "\n".join(lines) + "\n"
    )
