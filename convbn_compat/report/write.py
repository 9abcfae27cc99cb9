"""``convbn-compat report``: many results files, one matrix, and what changed.

The model (columns of records, the comparison with a baseline) is ``model``; ``view``
computes what a reader sees once, and ``markdown`` and ``html`` draw it. This module
writes the four files, as a set (``core.output.write_folder``: a reader sees the whole
previous report or the whole new one), and decides the exit status: findings (a new
failure against the baseline, an incomplete run) exit 1, bad input exits 2.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from ..core.errors import ConfigError, Exit
from ..core.output import (
    current_folder,
    refuse_bad_parent,
    refuse_dangling_link,
    write_folder,
)
from ..core.releases import INSTALLED, RELEASES
from ..core.results import dump_json
from .html import render_html
from .markdown import render_job_summary, render_markdown, table_document
from .model import build_matrix, compare, load_baseline
from .view import build_view, causes_now, span, summary_lines

__all__ = ["main_report", "table"]


# Two reports writing one folder take turns on this file in it.
LOCK = ".matrix.lock"


def check_output_folder(outdir: Path) -> None:
    """The report's folder may exist (it is replaced whole, what else it holds kept) or be
    new, in a folder that exists: a typo in a parent is not silently made into a tree of
    folders. Through a link, the folder it names is replaced."""
    here = current_folder().resolve()
    refuse_dangling_link(outdir, "folder")
    if outdir.exists() and not outdir.is_dir():
        raise ConfigError(f"-o {outdir} is a file; name a folder for the report's four files")
    refuse_bad_parent(
        outdir,
        f"-o {outdir}: its parent folder {outdir.parent} does not exist; create it first "
        "or choose another folder",
    )
    folder = Path(os.path.realpath(outdir))
    if folder in (here, *here.parents):
        shown = "is empty or '.'" if outdir == Path(".") else f"{outdir} holds the current folder"
        raise ConfigError(
            f"-o {shown}; the report replaces its folder whole, so name a folder of its "
            "own (e.g. -o report)"
        )
    if outdir.exists() and os.path.ismount(folder):
        raise ConfigError(
            f"-o {outdir} is a mount point, which cannot be replaced whole; name a folder inside it"
        )


def _check_no_fail_on(releases: tuple[str, ...]) -> None:
    unknown = [r for r in releases if r not in RELEASES and r != INSTALLED]
    if unknown:
        raise ConfigError(
            f"--no-fail-on {unknown[0]!r} is not a release; choose from: "
            f"{', '.join([*RELEASES, INSTALLED])}"
        )


MAX_LISTED = 15
"""Unexpected cells the terminal names one a line; matrix.md names them all."""


def _verdict(matrix, view, no_fail_on: tuple[str, ...]) -> tuple[Exit, str, list[str]]:
    """The exit status, the one-line verdict, and the lines that explain it."""
    reasons = []
    if matrix.incomplete:
        # A run that stopped early says nothing about the cells it never reached.
        reasons.append(f"INCOMPLETE runs: {', '.join(matrix.incomplete)}")
    gated = [(c, k) for c, k in view.unexpected if k.split("/")[0] not in no_fail_on]
    fatal = 0
    for r in view.new_failures:
        reported_only = r["column"].split("/")[0] in no_fail_on
        fatal += not reported_only
        note = " (reported only)" if reported_only else ""
        reasons.append(f"NEW FAILURE{note} {r['case']} @ {r['column']}: {r['before']} -> "
                       f"{r['after']}")  # fmt: skip
    status = Exit.FINDINGS if (matrix.incomplete or gated or fatal) else Exit.OK
    cells = sum(len(row) for row in matrix.cells.values())
    releases = len({c.key.release for c in matrix.columns})
    if status is Exit.OK and view.unexpected:
        verdict = (
            f"VERDICT: {len(view.unexpected)} UNEXPECTED cells, all in releases of "
            f"--no-fail-on {', '.join(no_fail_on)} (exit 0)"
        )
    elif status is Exit.OK:
        failing = sum(
            1
            for row in matrix.cells.values()
            for cell in row.values()
            if cell.outcome is not None and cell.outcome.is_failure
        )
        verdict = (
            f"VERDICT: every outcome as expected: {cells} cells of {releases} releases; "
            f"{failing} wrong or failing, each as the expectations or a known cause say (exit 0)"
        )
    else:
        words = []
        if view.unexpected:
            cases = len({c for c, _ in view.unexpected})
            words.append(f"{len(view.unexpected)} UNEXPECTED cells in {cases} cases")
        if fatal:
            words.append(f"{fatal} new failures against the baseline")
        if matrix.incomplete:
            words.append(f"{len(matrix.incomplete)} incomplete runs")
        verdict = f"VERDICT: {'; '.join(words)} (exit {Exit.FINDINGS:d})"
    return status, verdict, reasons


def table(paths: list[Path], device: str = "cpu") -> str:
    """``docs/matrix.md``: every case against every release of one device."""
    return table_document(build_view(build_matrix(paths)), [str(p) for p in paths], device)


def main_report(
    paths: list[Path], outdir: Path, baseline: Path | None, no_fail_on: tuple[str, ...] = ()
) -> int:
    check_output_folder(outdir)
    _check_no_fail_on(no_fail_on)
    matrix = build_matrix(paths)
    diff = compare(matrix, load_baseline(baseline)) if baseline else None
    view = build_view(matrix, diff)
    for note in matrix.skipped:
        print(f"skipped {note}")
    generated = f", generated {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
    data = matrix.to_json()
    if diff is not None:
        data["baseline"] = {"source": str(baseline), "cells": diff}
    # Everything is rendered before the first byte is written.
    files = {
        # The format every JSON file of ours is written in (no NaN or Infinity).
        "matrix.json": dump_json(data),
        "matrix.md": render_markdown(view),
        "summary.md": render_job_summary(view),
        "matrix.html": render_html(view, generated),
    }
    write_folder(outdir, files, LOCK)

    status, verdict, reasons = _verdict(matrix, view, no_fail_on)
    # The terminal answers first: the verdict, then what is unexpected with its rerun
    # command, then the known causes across releases, then the counts.
    print(verdict)
    unexpected = sorted(view.unexpected)
    for case_id, key in unexpected[:MAX_LISTED]:
        rerun = view.commands[key]["rerun"].replace("{case}", case_id)
        cell = matrix.cells[case_id][key]
        print(f"  UNEXPECTED {case_id} @ {key}: {cell.outcome} (expected "
              f"{cell.expected_outcome}); rerun: {rerun}")  # fmt: skip
    if len(unexpected) > MAX_LISTED:
        print(f"  ... and {len(unexpected) - MAX_LISTED} more: {outdir / 'matrix.md'}")
    for reason in reasons:
        print(f"  {reason}")
    now = causes_now(view)
    if now:
        print("Known causes of what fails now:")
    for c in now:
        link = f" {c.link}" if c.link else ""
        print(f"  {c.cause}: {c.cells} cells in {span(c.releases)}{link}; {c.command}")
    for line in summary_lines(view):  # what the page's summary leads with
        print(line)
    print(
        f"wrote {outdir / 'matrix.md'}, summary.md, matrix.json, matrix.html "
        f"({len(matrix.columns)} columns, {len(matrix.cells)} cases)"
    )
    return int(status)
