"""The README's "Reproduce a failure" commands, run after a full run of the newest
release's CPU cell (``nox -s ci`` runs this after ``tests-X.Y-cpu``): none of them, nor
a partial rerun stopped with Ctrl-C, takes a cell away from the release's results.

Needs the newest release's environment and its full results file
(``results/tests-X.Y-cpu.json``); ``nox -s reproduce`` runs it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convbn_compat.core.releases import NEWEST, RELEASES
from convbn_compat.core.results import load_run
from convbn_compat.report.model import build_matrix

ROOT = Path(__file__).resolve().parents[2]
SESSION = RELEASES[NEWEST].session("cpu")
FULL = Path(os.environ.get("CONVBN_RESULTS_DIR") or ROOT / "results") / f"{SESSION}.json"


def readme_commands() -> list[str]:
    """The code block under README's "## Reproduce a failure", one command a line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Reproduce a failure", 1)[1].split("```bash\n", 1)[1].split("```")[0]
    return [line.split("   #")[0].strip() for line in block.splitlines() if line.strip()]


COMMANDS = readme_commands()


def test_the_readme_has_its_reproduce_commands():
    """...and they name the newest release, whose full run this checks them against."""
    assert any(c.startswith(f"nox -s {SESSION} ") for c in COMMANDS), (SESSION, COMMANDS)
    assert any(c.startswith("nox -s ") for c in COMMANDS)
    assert any(c.startswith("nox -R ") for c in COMMANDS)
    assert any(" repro " in c for c in COMMANDS)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A copy of the full run's results folder, where the commands write."""
    if not FULL.is_file():
        pytest.fail(f"no full run to start from: {FULL}; run `nox -s {SESSION}` first")
    full = load_run(FULL)
    assert full.complete, f"{FULL} is not a full run"
    folder = tmp_path_factory.mktemp("results")
    shutil.copy(FULL, folder / FULL.name)
    return folder


def _cells(folder: Path) -> set[tuple]:
    return {r.cell for r in load_run(folder / FULL.name).records}


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "CONVBN_RESULTS_DIR": str(folder), "CONVBN_TORCH_INDEX": "default"}


def _argv(command: str, workdir: Path) -> list[str]:
    argv = shlex.split(command)
    if argv[0] == "python":
        argv[0] = sys.executable
    # Where a command writes a file of its own (-o), it writes into the test's folder.
    return [str(workdir / a) if prev == "-o" else a for prev, a in zip(["", *argv], argv)]


def _report_shows_every_cell(folder: Path, before: set[tuple]) -> None:
    after = _cells(folder)
    assert before <= after, f"cells lost: {sorted(before - after)[:5]}"
    matrix = build_matrix([folder])
    column = next(c for c in matrix.columns if c.key.release == NEWEST)
    assert column.complete, f"the report calls {column.key} incomplete"
    assert not matrix.missing, matrix.missing[:5]
    shown = {cid for cid, row in matrix.cells.items() if str(column.key) in row}
    assert {cell[0] for cell in before if cell[1] == "cpu"} <= shown


@pytest.mark.parametrize("command", [c for c in COMMANDS if " bisect " not in c])
def test_a_reproduce_command_keeps_every_cell(results, tmp_path, command):
    before = _cells(results)
    done = subprocess.run(
        _argv(command, tmp_path), cwd=ROOT, env=_env(results), capture_output=True, text=True
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    _report_shows_every_cell(results, before)


def test_bisect_writes_nothing_into_the_results(results):
    """bisect builds other releases' environments (minutes each, so not run here): its
    scripts go to results/bisect/, never into a session's results file."""
    (bisect,) = [c for c in COMMANDS if " bisect " in c]
    assert "--older" in bisect
    source = (ROOT / "convbn_compat" / "tools" / "repro.py").read_text()
    assert re.search(r'script_dir = root / "results" / "bisect"', source)


def test_a_partial_rerun_stopped_with_ctrl_c_keeps_every_cell(results):
    before = _cells(results)
    runs_before = len(load_run(results / FULL.name).runs)
    proc = subprocess.Popen(
        ["nox", "-R", "-s", SESSION, "--", "-k", "Conv2d and module", "-n", "0"],
        cwd=ROOT,
        env=_env(results),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            run = load_run(results / FULL.name)
            if len(run.runs) > runs_before and run.runs[-1].cells >= 2:
                break
            time.sleep(1)
        assert proc.poll() is None, "the rerun ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run = load_run(results / FULL.name)
    assert run.runs[-1].finished, "the stopped run never wrote its end"
    assert run.runs[-1].interrupted, "the stopped run is not marked interrupted"
    _report_shows_every_cell(results, before)
