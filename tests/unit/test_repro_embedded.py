"""A reproducer carries our modules verbatim and nothing else of ours: the list it
carries must hold every module of convbn_compat that those modules import, or the
script dies on import in a plain torch environment (seen: after the package's
redesign, three modules were missing and every reproducer failed)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from convbn_compat.tools import repro

PACKAGE = Path(repro.__file__).resolve().parents[1]


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(our modules, other top-level packages) that ``module`` imports."""
    tree = ast.parse((PACKAGE / (module.replace(".", "/") + ".py")).read_text())
    here = module.split(".")[:-1]
    ours, others = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[: len(here) - (node.level - 1)] + (
                node.module.split(".") if node.module else []
            )
            for alias in node.names:
                name = ".".join([*base, alias.name])
                is_module = (PACKAGE / (name.replace(".", "/") + ".py")).exists()
                ours.add(name if is_module else ".".join(base))
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("convbn_compat."):
                ours.add(node.module.removeprefix("convbn_compat."))
            else:
                others.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            others.update(alias.name.split(".")[0] for alias in node.names)
    return ours, others


def test_the_embedded_modules_are_closed_under_their_imports():
    embedded = set(repro._EMBEDDED)
    for module in sorted(embedded):
        ours, _ = _imports(module)
        missing = ours - embedded
        assert not missing, f"{module} imports {sorted(missing)}, which a reproducer lacks"


def test_the_embedded_modules_need_nothing_but_torch():
    allowed = set(sys.stdlib_module_names) | {"torch", "__future__"}
    for module in sorted(repro._EMBEDDED):
        _, others = _imports(module)
        assert others <= allowed, f"{module} imports {sorted(others - allowed)}"
