"""The session environments nox builds: where they live, and how a process runs in one.

Shared by the noxfile and by the tools that reuse those environments outside nox
(bisect, replay, the benchmark), so that all of them find the same folder and run their
processes the same way. No torch here: the noxfile imports it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# Session environments are ours: Python writes the bytecode of what it imports there,
# once, even where PYTHONDONTWRITEBYTECODE is set (many images and CI runners, this
# project's machine). With it set, no .pyc was ever written, so every process (pytest,
# each xdist and compile worker, each rerun, each bisect step) compiled torch's sources
# again: 14.1 s to import torch and Inductor instead of 6.1 s. Compiling all of it at
# install (uv's --compile-bytecode) cost 17.6 s per environment, for imports of 7.3 s;
# writing on first use costs one slower first import, 16.1 s (docs/benchmarks.md,
# 2026-11-29). The installed-torch sessions leave the user's own environment alone.
WRITE_BYTECODE: Mapping[str, str | None] = {"PYTHONDONTWRITEBYTECODE": None}  # None: unset


def env_dir(root: Path, session: str) -> Path:
    """Where nox keeps ``session``'s environment under ``root``'s default --envdir.

    nox's own naming: it runs from the noxfile's folder with the relative envdir `.nox`,
    and hashes a name only where that relative path would pass its length limit (so an
    absolute root must not enter the computation: a long one hashed names nox kept)."""
    try:
        from nox.sessions import _normalize_path
    except ImportError:  # no nox here, or one without it: its long-standing plain naming
        return root / ".nox" / session.replace(".", "-")
    return root / _normalize_path(".nox", session)


def pythonpath(root: Path | None = None) -> dict[str, str]:
    """PYTHONPATH with the checkout first: the installed-torch sessions run the harness
    from the source tree, in an environment that has no convbn_compat installed."""
    from ..core.releases import PROJECT_ROOT

    parts = [str(root or PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(filter(None, parts))}


def process_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) as a session runs its commands."""
    env = dict(os.environ if base is None else base)
    for name, value in WRITE_BYTECODE.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env
