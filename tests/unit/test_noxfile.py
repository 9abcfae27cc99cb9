"""The sessions Nox lists are exactly the release table x flavours, plus the extras."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from convbn_compat.core.releases import FLAVOURS, RELEASES

pytest.importorskip("nox", reason="needs nox: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[2]


def _sessions(*select):
    out = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json", *select],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {s["session"]: s for s in json.loads(out)}


def test_sessions_match_release_table():
    expected = {r.session(f) for r in RELEASES.values() for f in FLAVOURS}
    assert set(_sessions("-t", "matrix")) == expected
    assert "tests-2.4-cuda" in expected
    assert "tests-nightly-cpu" in expected
    assert set(_sessions("-s", "tests-installed", "unit")) == {"tests-installed", "unit"}


def test_tags_select_a_flavour_or_one_release():
    for flavour in FLAVOURS:
        assert set(_sessions("-t", flavour)) == {r.session(flavour) for r in RELEASES.values()}
    assert set(_sessions("-t", "2.4")) == {"tests-2.4-cpu", "tests-2.4-cuda"}
    assert set(_sessions("-t", "2.1")) == set()  # tags are strings, not floats


def test_every_session_has_a_one_line_description():
    for name, session in _sessions("-t", "matrix", "installed", "unit", "selftest").items():
        assert session["description"], name
        assert "\n" not in session["description"].strip(), name
