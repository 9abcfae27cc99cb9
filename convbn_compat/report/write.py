"""``python -m convbn_compat report``: many results files, one matrix, and what changed.

The model (columns, cells, changes, comparison with a baseline) is ``report_model``;
``report_markdown`` and ``report_html`` render it. This module writes the three files
and decides the exit status: findings (a new failure against the baseline, an incomplete
run) exit 1, bad input exits 2.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import filelock

from ..core.errors import ConfigError, Exit
from ..core.results import atomic_write_json
from .html import render_html
from .markdown import render_markdown, table_document
from .model import (
    Diff,
    Matrix,
    build_matrix,
    compare,
    load_baseline,
    row_changes,
)

__all__ = [
    "Matrix",
    "build_matrix",
    "compare",
    "main_report",
    "render_html",
    "render_markdown",
    "row_changes",
    "table_document",
]


def check_output_folder(outdir: Path) -> None:
    """The report's folder may exist (its files are replaced) or be new, in a folder that
    exists: a typo in a parent is not silently made into a tree of folders."""
    if outdir.exists() and not outdir.is_dir():
        raise ConfigError(f"-o {outdir} is a file; name a folder for the report's three files")
    if not outdir.exists() and not outdir.parent.is_dir():
        raise ConfigError(
            f"-o {outdir}: its parent folder {outdir.parent} does not exist; create it first "
            "or choose another folder"
        )


def main_report(
    paths: list[Path], outdir: Path, baseline: Path | None, no_fail_on: tuple[str, ...] = ()
) -> int:
    check_output_folder(outdir)
    matrix = build_matrix(paths)
    diff = compare(matrix, load_baseline(baseline)) if baseline else None
    for note in matrix.skipped:
        print(f"skipped {note}")
    outdir.mkdir(exist_ok=True)
    generated = f", generated {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
    # Two reports writing one folder take turns; each file is replaced atomically.
    with filelock.FileLock(str(outdir / ".matrix.lock"), timeout=120):
        data = matrix.to_json()
        if diff is not None:
            data["baseline"] = {"source": str(baseline), "cells": diff}
        atomic_write_json(outdir / "matrix.json", data)
        for name, text in (
            ("matrix.md", render_markdown(matrix, diff)),
            ("matrix.html", render_html(matrix, diff, generated)),
        ):
            tmp = outdir / f".{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(outdir / name)
    print(
        f"wrote {outdir / 'matrix.md'}, matrix.json, matrix.html "
        f"({len(matrix.columns)} columns, {len(matrix.cells)} cases)"
    )
    status = Exit.OK
    if matrix.incomplete:
        # A run that stopped early says nothing about the cells it never reached.
        print(f"INCOMPLETE runs (exit {Exit.FINDINGS:d}): {', '.join(matrix.incomplete)}")
        status = Exit.FINDINGS
    if diff is not None:
        fatal = 0
        for r in (r for r in diff if r["class"] == Diff.NEW_FAILURE.value):
            reported_only = r["column"].split("/")[0] in no_fail_on
            fatal += not reported_only
            note = " (reported only)" if reported_only else ""
            print(f"NEW FAILURE{note} {r['case']} @ {r['column']}: {r['before']} -> {r['after']}")
        if fatal:
            status = Exit.FINDINGS
    return int(status)
