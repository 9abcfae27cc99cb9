"""The suite runs in environments that carry other pytest plugins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = '''
import warnings

import pytest


class PluginStartupWarning(pytest.PytestWarning):
    """Like pytest-benchmark's PytestBenchmarkWarning ("Benchmarks are automatically
    disabled because xdist plugin is active")."""


def pytest_configure(config):
    warnings.warn(PluginStartupWarning("benchmarks are disabled under xdist"))
'''


def test_a_plugins_startup_warning_does_not_stop_the_run(tmp_path):
    # The project's own pytest settings (filterwarnings = error), a test that passes, and
    # a plugin that warns as it starts: the run must pass and show the warning.
    (tmp_path / "startup_warner.py").write_text(PLUGIN)
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml")),
            *("--rootdir", str(tmp_path), "-p", "startup_warner", str(tmp_path / "test_ok.py")),
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "INTERNALERROR" not in proc.stdout + proc.stderr
    assert "benchmarks are disabled under xdist" in proc.stdout + proc.stderr


def test_our_own_warnings_are_still_errors(tmp_path):
    (tmp_path / "test_warns.py").write_text(
        "import warnings\n\ndef test_warns():\n    warnings.warn(DeprecationWarning('ours'))\n"
    )
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml")),
            *("--rootdir", str(tmp_path), str(tmp_path / "test_warns.py")),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "DeprecationWarning: ours" in proc.stdout
