"""Each known cause's standalone reproducer, run in this release's environment with no
path to this checkout: it shows the bug (exit 1) where the release is in the cause's
range, and shows none (exit 0) where it is not. CI runs it on the oldest and the newest
release, which between them hold both sides of every range."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from convbn_compat.core import causes  # noqa: E402
from convbn_compat.tools.standalone import standalone_script  # noqa: E402


@pytest.mark.parametrize("cause", causes.load().rows, ids=lambda c: c.id)
def test_the_script_shows_the_bug_exactly_in_the_cause_s_range(cause, tmp_path):
    script = tmp_path / f"{cause.id}.py"
    script.write_text(standalone_script(cause.id, script.name))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / "inductor-cache")
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    shows = cause.in_range(torch.__version__)
    assert proc.returncode == (1 if shows else 0), proc.stdout + proc.stderr[-2000:]
    assert ("matches eager" in proc.stdout.split("pass on:")[1].splitlines()[0]) is not shows
