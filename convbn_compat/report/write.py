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
from .view import build_view, summary_lines

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
        # The format core.results.atomic_write_json writes every JSON file of ours in.
        "matrix.json": dump_json(data),
        "matrix.md": render_markdown(view),
        "summary.md": render_job_summary(view),
        "matrix.html": render_html(view, generated),
    }
    write_folder(outdir, files, LOCK)
    print(
        f"wrote {outdir / 'matrix.md'}, summary.md, matrix.json, matrix.html "
        f"({len(matrix.columns)} columns, {len(matrix.cells)} cases)"
    )
    for line in summary_lines(view):  # what the page's summary leads with
        print(line)
    status = Exit.OK
    if matrix.incomplete:
        # A run that stopped early says nothing about the cells it never reached.
        print(f"INCOMPLETE runs (exit {Exit.FINDINGS:d}): {', '.join(matrix.incomplete)}")
        status = Exit.FINDINGS
    unexpected = sorted((c, k) for c, k in view.unexpected if k.split("/")[0] not in no_fail_on)
    if unexpected:
        print(
            f"UNEXPECTED outcomes in {len(unexpected)} cells of {len({c for c, _ in unexpected})} "
            f"cases (exit {Exit.FINDINGS:d}); the first: {unexpected[0][0]} @ {unexpected[0][1]}"
        )
        status = Exit.FINDINGS
    fatal = 0
    for r in view.new_failures:
        reported_only = r["column"].split("/")[0] in no_fail_on
        fatal += not reported_only
        note = " (reported only)" if reported_only else ""
        print(f"NEW FAILURE{note} {r['case']} @ {r['column']}: {r['before']} -> {r['after']}")
    if fatal:
        status = Exit.FINDINGS
    return int(status)
