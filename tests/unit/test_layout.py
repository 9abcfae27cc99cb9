"""The package's floors, as the README draws them, hold: each folder imports only the
folders its line names, and the torch-free floors import with torch blocked, so a
report, `nox -l` or a reproducer's writing never pays for (or needs) torch."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "convbn_compat"
BLOCK = "import sys; sys.modules['torch'] = None  # any `import torch` now raises\n"


def _floors() -> dict[str, set[str]]:
    """The README's picture: ``floor  -> what it may import`` lines in its layout block."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- floors -->", 1)[1].split("<!-- /floors -->", 1)[0]
    floors = {}
    for line in block.splitlines():
        m = re.match(r"\s*(\w+)/?\s+(?:->|→)\s*(.*?)\s*(?:#.*)?$", line)
        if m:
            floors[m[1]] = {w for w in re.split(r"[,\s]+", m[2]) if w and w != "-"}
    return floors


def _imports(path: Path) -> set[str]:
    """The convbn_compat folders ``path`` imports (relative and absolute imports)."""
    here = path.relative_to(ROOT).with_suffix("").parts[:-1]  # its package, as parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(here[: len(here) - node.level + 1])
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [".".join([*target, a.name]) for a in node.names]
            else:
                names = [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "convbn_compat" and len(parts) > 1:
                found.add(parts[1])
    return found


def _floor_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else path.stem


def test_the_readme_draws_every_folder_of_the_package():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert set(_floors()) == folders | {"__main__"}


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_each_module_imports_only_the_floors_its_folder_may(path):
    floors = _floors()
    floor = _floor_of(path)
    if floor == "__init__":
        return  # the package's public surface re-exports core
    allowed = floors[floor] | {floor}
    modules = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir()}
    imported = {name for name in _imports(path) if name in modules} - {"__init__"}
    assert imported <= allowed, f"{path.relative_to(ROOT)} imports {sorted(imported - allowed)}"


def test_no_two_floors_import_each_other():
    floors = _floors()
    for a, uses in floors.items():
        for b in uses:
            assert a not in floors.get(b, set()), f"{a} and {b} import each other"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], cwd=ROOT, capture_output=True, text=True
    )


def test_the_torch_free_floors_import_without_torch():
    proc = _run(
        "import importlib, pkgutil, convbn_compat\n"
        "for floor in ('core', 'report', 'sessions'):\n"
        "    pkg = importlib.import_module('convbn_compat.' + floor)\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        importlib.import_module(f'convbn_compat.{floor}.{m.name}')\n"
        "import convbn_compat.__main__, convbn_compat.suite.plugin, convbn_compat.tools.repro\n"
        "from convbn_compat.core.cases import CASES\n"
        "assert len(CASES) > 112"
    )
    assert proc.returncode == 0, proc.stderr


def test_the_noxfile_never_imports_torch():
    proc = _run("import runpy; runpy.run_path('noxfile.py', run_name='noxfile')")
    assert proc.returncode == 0, proc.stderr


def test_the_checks_are_where_torch_comes_in():
    # The table names models; the checks build them, and import torch to do it.
    proc = _run("import convbn_compat.checks.models")
    assert "ModuleNotFoundError" in proc.stderr
    assert "torch" in proc.stderr


def test_the_block_stops_torch():  # else the tests above could not fail
    assert "ModuleNotFoundError" in _run("import torch").stderr


def test_every_module_imports_or_needs_only_torch():
    # A name one module takes from another that no longer has it fails here, without
    # torch: only a missing torch itself is allowed to stop an import.
    proc = _run(
        "import importlib, pkgutil, convbn_compat\n"
        "for m in pkgutil.walk_packages(convbn_compat.__path__, 'convbn_compat.'):\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except ModuleNotFoundError as exc:\n"
        "        if exc.name not in ('torch', 'hypothesis'):\n"
        "            raise\n"
        "    except ImportError as exc:\n"
        "        if 'torch' not in str(exc):\n"
        "            raise\n"
    )
    assert proc.returncode == 0, proc.stderr
