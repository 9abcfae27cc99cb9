"""Reach in a release's environment: two entry points through the real runner, each in
its own process, agree with the expectations table (run by `nox -s ci` on the oldest and
newest release)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from convbn_compat.core.results import load_run


def test_default_and_freezing_entry_points_agree_with_the_table(tmp_path):
    out = tmp_path / "reach.json"
    proc = subprocess.run(
        [sys.executable, "-m", "convbn_compat.tools.reach", "--only", "default", "--only",
         "freezing", "--out", str(out)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = load_run(out)
    assert run.kind == "reach"
    assert run.complete is True
    cells = {r.id: r.to_json() for r in run.records}
    assert cells["Reach-default"]["fire_count"] == 2
    assert cells["Reach-freezing"]["fire_count"] == 0  # the pass stays away
    assert {c["status"] for c in cells.values()} == {"passed"}


def test_env_json_is_json_alone():
    """`env --json` is for programs: its whole output parses, with no human line first."""
    proc = subprocess.run(
        [sys.executable, "-m", "convbn_compat", "env", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["torch"].split("+")[0].count(".") == 2
    assert info["has_pass"] is True
