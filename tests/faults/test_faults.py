"""Faults caused for real inside a matrix run: crashes, hangs and interrupts.

Each test runs the matrix suite in a child pytest (this environment's torch), makes the
fault happen, and reads the results file the child left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from convbn_compat.core.results import load_run

ROOT = Path(__file__).resolve().parents[2]
# A quick real case: it must still run, and pass, next to the faulty ones.
CONTROL = "Control-passoff-Conv2d-bn-module-cpu"


def _env(results: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(Path(__file__).parent)]))
    return env


def _suite(results: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "tests" / "test_matrix.py"),
        "-p",
        "fault_cases",
        "--convbn-devices=cpu",
        "--convbn-run=faults",
        f"--convbn-results={results}",
        "-p",
        "no:cacheprovider",
        *args,
    ]


def _cases(results: Path) -> tuple[dict, dict[str, dict]]:
    """The results file's document (as the file holds it), and its cells by case id."""
    data = load_run(results / "faults.json").to_json()
    return data, {c["id"]: c for c in data["cases"]}


def _failing_run(tmp_path: Path, *args: str) -> tuple[dict, dict[str, dict]]:
    """Run the suite to its end, where a fault fails it (exit 1); its results file."""
    proc = subprocess.run(
        _suite(tmp_path, *args),
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    data, cases = _cases(tmp_path)
    # The run ran to its end (the file holds part of the suite: not "complete").
    assert data["runs"][-1]["finished"]
    assert data["runs"][-1]["interrupted"] is False
    return data, cases


def test_a_crashing_case_is_an_error_with_its_signal_and_the_others_still_run(tmp_path):
    select = f"Fault-segfault or Fault-abort or {CONTROL}"
    _, cases = _failing_run(tmp_path, "-k", select, "-n", "2")
    assert cases["Fault-segfault"]["outcome"] == "error"
    assert "Segmentation fault" in cases["Fault-segfault"]["message"]
    assert cases["Fault-abort"]["outcome"] == "error"
    assert "Aborted" in cases["Fault-abort"]["message"]
    control = cases[CONTROL.removesuffix("-cpu")]
    assert (control["outcome"], control["status"]) == ("fused", "passed")


def test_a_hanging_case_is_stopped_by_the_timeout_and_recorded_as_error(tmp_path):
    # The hang has a 20 s limit of its own (fault_cases.py); the control keeps the
    # default 600 s, so a slow first compile on a busy machine is not cut short.
    _, cases = _failing_run(tmp_path, "-k", f"Fault-hang or {CONTROL}", "-n", "0")
    hang = cases["Fault-hang"]
    assert hang["outcome"] == "error"
    assert "Timeout" in hang["message"]
    assert cases[CONTROL.removesuffix("-cpu")]["status"] == "passed"


def _restore_default_signals():
    # A child of a non-interactive shell starts with SIGINT ignored; undo that so the
    # signal really interrupts it, as it would in a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _own_process_group():
    _restore_default_signals()
    os.setpgrp()


# How each interruption reaches the suite: one signal to pytest alone (one process), or
# Ctrl-C in a terminal, which signals the whole process group (pytest-xdist's controller
# and workers, and any compiler they run).
INTERRUPTS = {
    "SIGINT": (signal.SIGINT, "0", _restore_default_signals, os.kill),
    "SIGTERM": (signal.SIGTERM, "0", _restore_default_signals, os.kill),
    "Ctrl-C-xdist": (signal.SIGINT, "2", _own_process_group, os.killpg),
}


@pytest.mark.parametrize("how", INTERRUPTS)
def test_an_interrupted_run_leaves_an_incomplete_results_file(how, tmp_path):
    sig, workers, preexec, send = INTERRUPTS[how]
    # Upstream cases with a cold compile cache: the signal lands mid-suite, inside a
    # compile, where torch runs finalizers. It waits for two finished records (an event,
    # not a clock), and 56 cases leave no machine, however busy, done before it. A
    # KeyboardInterrupt raised in one of those is swallowed by Python; before the
    # harness remembered the signal itself, that run went on to the end, "complete",
    # with the interrupted case failed.
    env = dict(_env(tmp_path), TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor-cache"))
    proc = subprocess.Popen(
        _suite(tmp_path, "-m", "upstream", "-k", "module", "-n", workers),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=preexec,
    )
    results = tmp_path / "faults.json"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if results.exists() and len(load_run(results).records) >= 2:
                break
            assert proc.poll() is None, "the suite ended before it could be interrupted"
            time.sleep(0.2)
        send(proc.pid, sig)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    data, cases = _cases(tmp_path)
    assert data["complete"] is False
    assert data["runs"][-1]["interrupted"] is True
    assert 2 <= len(cases) < 56  # 56 upstream module cases were selected
    # Only cases that ran to the end are recorded, never one the interrupt cut short.
    assert {(c["outcome"], c["status"]) for c in cases.values()} == {("fused", "passed")}

    out = tmp_path / "report"
    report = subprocess.run(
        [sys.executable, "-m", "convbn_compat", "report", str(results), "-o", str(out)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 1, report.stdout + report.stderr
    assert "INCOMPLETE" in report.stdout
    assert "(incomplete)" in (out / "matrix.html").read_text()
