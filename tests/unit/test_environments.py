"""Where the tools outside nox find a session's environment, and how they run in it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from convbn_compat.sessions.environments import env_dir, process_env

pytest.importorskip("nox", reason="needs nox: pip install -e '.[dev]'")

NOXFILE = """
import nox

@nox.session(name="tests-2.15-cpu", venv_backend="uv|virtualenv")
def cell(session):
    session.run("python", "-c", "")
"""


@pytest.mark.parametrize("long_path", [False, True], ids=["short-root", "long-root"])
def test_env_dir_is_where_nox_builds_the_session(tmp_path, long_path):
    # ci, bisect and replay look for nox's environments from outside nox: under a long
    # checkout path too (nox hashes names by the relative .nox/<name>, not the root).
    root = tmp_path
    if long_path:
        root = tmp_path / ("r" * (80 - len(str(tmp_path / ".nox")) - 1))
        assert len(str(root / ".nox")) == 80
    root.mkdir(exist_ok=True)
    (root / "noxfile.py").write_text(NOXFILE)
    subprocess.run(
        [sys.executable, "-m", "nox", "-s", "tests-2.15-cpu"],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=300,
    )
    found = env_dir(root, "tests-2.15-cpu")
    assert (found / "bin" / "python").exists()
    assert found == root / ".nox" / "tests-2-15-cpu"


def test_process_env_lets_python_write_bytecode():
    base = {"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin"}
    assert process_env(base) == {"PATH": "/usr/bin"}
    assert base["PYTHONDONTWRITEBYTECODE"] == "1"  # the caller's mapping is left alone
