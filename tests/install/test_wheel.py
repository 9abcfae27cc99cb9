"""The package as `pip install .` leaves it: every command, from a folder that is no checkout.

The checkout is built the way a release is (an sdist, then the wheel from it), installed
into a fresh environment with its dependencies from the index (torch is not one), and
each command runs in an empty folder with nothing of the checkout importable. Those that
build release environments with the repository's Nox sessions refuse in one line.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from convbn_compat.core.errors import Exit

ROOT = Path(__file__).resolve().parents[2]
CASE = "Bug196165-convkwargs-Conv2d-bn-module"
CAUSE = "conv-args-by-keyword"
FUZZ = "fuzz-2.15-cpu-10min-fresh-clone.json"
# A run with a cause today's table lacks, so that propose gets past reading it.
FUZZ_NEW = "fuzz-installed-cuda-h200-torch-2.11.0-cu130-before-float64-check.json"
NOT_A_CHECKOUT = "has no noxfile.py; run it from a convbn-compat checkout"


def _uv() -> list[str]:
    # nox[uv] (the dev extra) brings uv as a module; a uv on PATH does as well.
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    if shutil.which("uv"):
        return ["uv"]
    pytest.skip("needs uv: pip install -e '.[dev]'")


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin folder of a fresh environment with the checkout's wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    uv = _uv()
    _run(*uv, "build", "--out-dir", tmp / "dist", ROOT)
    (wheel,) = (tmp / "dist").glob("convbn_compat-*.whl")
    _run(*uv, "venv", "--python", sys.executable, tmp / "venv")
    python = tmp / "venv" / "bin" / "python"
    _run(*uv, "pip", "install", "--python", python, wheel)
    found = _run(
        python,
        "-c",
        "import importlib.util, convbn_compat; print(convbn_compat.__file__); "
        "print(importlib.util.find_spec('torch'))",
        cwd=tmp,
        env=_env(),
    ).stdout.split()
    assert Path(found[0]).is_relative_to(tmp / "venv"), found  # not the checkout
    assert found[1] == "None", "torch must not come with the wheel"
    return python.parent


def _env() -> dict[str, str]:
    """This process's environment, less what would put the checkout on the path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Committed results, copied away from the checkout."""
    folder = tmp_path_factory.mktemp("inputs")
    shutil.copytree(ROOT / "docs" / "results", folder / "results")
    shutil.copy(ROOT / "docs" / "fuzz" / FUZZ, folder)
    shutil.copy(ROOT / "docs" / "fuzz" / "superseded" / FUZZ_NEW, folder)
    return folder


# (arguments, exit status, what stdout or stderr says, files the command writes)
COMMANDS = {
    "help": (["--help"], Exit.OK, "usage: convbn-compat", []),
    "version": (["--version"], Exit.OK, "convbn-compat ", []),
    "cases": (["cases", "--subset", "extended"], Exit.OK, CASE, []),
    "repro": (
        ["repro", CASE, "--release", "2.15", "-o", "repro.py"],
        Exit.OK,
        "wrote repro.py",
        ["repro.py"],
    ),
    "standalone": (
        ["repro", CAUSE, "--standalone", "-o", "bug.py"],
        Exit.OK,
        "wrote bug.md",
        ["bug.py", "bug.md"],
    ),
    "report": (
        ["report", "{inputs}/results", "-o", "out"],
        Exit.OK,
        "wrote out/matrix.md",
        ["out/matrix.md", "out/summary.md", "out/matrix.json", "out/matrix.html"],
    ),
    "table": (
        ["table", "{inputs}/results/tests-2.15-cpu.json", "-o", "matrix.md"],
        Exit.OK,
        "wrote matrix.md",
        ["matrix.md"],
    ),
    "triage": (["triage", f"{{inputs}}/{FUZZ}"], Exit.OK, f"known {CAUSE}", []),
    "bisect": (
        ["bisect", CASE, "--older", "2.4", "--newer", "2.15"],
        Exit.BAD_INPUT,
        NOT_A_CHECKOUT,
        [],
    ),
    "replay": (["replay", "--releases", "2.4,2.15"], Exit.BAD_INPUT, NOT_A_CHECKOUT, []),
    "propose": (["propose", f"{{inputs}}/{FUZZ_NEW}"], Exit.BAD_INPUT, NOT_A_CHECKOUT, []),
    # env inspects the torch under test; a wheel's environment has none to inspect.
    "env": (["env"], Exit.BAD_INPUT, "No module named 'torch'", []),
    "env-quick": (["env", "--quick"], Exit.BAD_INPUT, "it is not installed", []),
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_command_of_the_installed_wheel(name, installed, inputs, tmp_path):
    args, status, says, writes = COMMANDS[name]
    proc = subprocess.run(
        [installed / "convbn-compat", *(a.format(inputs=inputs) for a in args)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == status, proc.stdout + proc.stderr
    assert says in proc.stdout + proc.stderr
    if status == Exit.BAD_INPUT:
        assert proc.stderr.startswith("convbn-compat: ")
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
    # Hidden files aside (report's lock file, which lets two reports share a folder).
    made = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(str(p) for p in made if not p.name.startswith(".")) == sorted(writes)
    for script in (tmp_path / w for w in writes if w.endswith(".py")):
        compile(script.read_text(encoding="utf-8"), str(script), "exec")


@pytest.mark.parametrize("release", ["2.2", "2.15", "nightly"])
def test_the_wheel_writes_the_reproducer_the_checkout_writes(release, installed, tmp_path):
    # Its header's install commands come from the release's constraints file (2.2 pins
    # helpers), its body from the package's own modules: the wheel carries both.
    from convbn_compat.tools.repro import repro_script

    proc = subprocess.run(
        [installed / "convbn-compat", "repro", CASE, "--release", release],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == Exit.OK, proc.stderr
    assert proc.stdout == repro_script(CASE, "cpu", release)
