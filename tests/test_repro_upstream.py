"""Every upstream case's reproducer gives the suite's committed outcome for this release.

The script carries the suite's runner verbatim (``repro``), so the two can only differ
if the embedding breaks: a module missing from the script, an installed convbn_compat
shadowing the embedded one, an argument lost on the way. 112 scripts take about 4
minutes on 2 cores, so CI runs this on the newest release only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from convbn_compat.core.cases import UPSTREAM_CASES  # noqa: E402
from convbn_compat.core.releases import RELEASES  # noqa: E402
from convbn_compat.core.results import load_run  # noqa: E402
from convbn_compat.core.versions import is_prerelease_build, release_of  # noqa: E402
from convbn_compat.tools.repro import repro_script  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# Runs each script in turn in one interpreter (torch imported once), with no path to
# this checkout: only the script's embedded modules can serve convbn_compat.
_DRIVER = """
import runpy, sys


class _NotEmbedded:
    # Behind each script's own finder: a convbn_compat module the script lacks fails
    # here, as it would where the package is not installed (the GPU image), instead of
    # coming from this environment's editable install.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "convbn_compat":
            raise ImportError(name + " is not embedded in the script")
        return None


sys.meta_path.insert(0, _NotEmbedded())
for path in sys.argv[1:]:
    for name in [m for m in sys.modules if m.split(".")[0] == "convbn_compat"]:
        del sys.modules[name]
    runpy.run_path(path, run_name="__main__")
"""


def _committed_suite_outcomes() -> dict[str, str] | None:
    if is_prerelease_build(torch.__version__):
        return None
    key = release_of(torch.__version__)
    path = ROOT / "docs" / "results" / f"tests-{key}-cpu.json"
    if key not in RELEASES or not path.is_file():
        return None
    run = load_run(path)
    return {r.id: r.outcome.value for r in run.records if r.device == "cpu" and r.outcome}


def test_every_upstream_case_reproduces_the_suites_outcome(tmp_path):
    suite = _committed_suite_outcomes()
    if suite is None:
        pytest.skip(f"no committed CPU results for torch {torch.__version__} (docs/results)")
    scripts = []
    for case in UPSTREAM_CASES:
        script = tmp_path / f"{case.id}.py"
        script.write_text(repro_script(case.id))
        scripts.append(script)
    workers = max(1, min(2, os.cpu_count() or 1))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", TORCHINDUCTOR_COMPILE_THREADS="1")  # one core each
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _DRIVER, *map(str, scripts[i::workers])],
            cwd=tmp_path,  # not the checkout: nothing but the script serves convbn_compat
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    outs = [proc.communicate(timeout=1800) for proc in procs]
    lines = [line for out, _ in outs for line in out.splitlines() if line.startswith("OUTCOME:")]
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in outs]
    got = {}
    for i in range(workers):
        mine = [s.stem for s in scripts[i::workers]]
        said = [line.split()[1] for line in outs[i][0].splitlines() if line.startswith("OUTCOME:")]
        got.update(zip(mine, said))
    assert len(lines) == len(UPSTREAM_CASES)
    differ = {c: (suite.get(c), got[c]) for c in got if suite.get(c) != got[c]}
    assert not differ, f"reproducer vs suite (suite, script): {differ}"
