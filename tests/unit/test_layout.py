"""The torch-free floors stay torch-free: the case table, the report and the noxfile
import with torch blocked, so a report or `nox -l` never pays for (or needs) torch."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK = "import sys; sys.modules['torch'] = None  # any `import torch` now raises\n"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], cwd=ROOT, capture_output=True, text=True
    )


def test_case_table_report_and_cli_import_without_torch():
    proc = _run(
        "import convbn_compat.cases, convbn_compat.report, convbn_compat.expectations\n"
        "import convbn_compat.entrypoints, convbn_compat.__main__\n"
        "import convbn_compat.record, convbn_compat.results, convbn_compat.plugin\n"
        "import convbn_compat.repro\n"
        "assert len(convbn_compat.cases.CASES) > 112"
    )
    assert proc.returncode == 0, proc.stderr


def test_the_noxfile_never_imports_torch():
    proc = _run("import runpy; runpy.run_path('noxfile.py', run_name='noxfile')")
    assert proc.returncode == 0, proc.stderr


def test_the_runner_is_where_torch_comes_in():
    # The table names models; the runner builds them, and imports torch to do it.
    proc = _run("import convbn_compat.runner")
    assert "ModuleNotFoundError" in proc.stderr
    assert "torch" in proc.stderr


def test_the_block_stops_torch():  # else the two tests above could not fail
    assert "ModuleNotFoundError" in _run("import torch").stderr
