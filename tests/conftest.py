"""Fixtures of the matrix suite. The harness itself is ``convbn_compat/suite/plugin.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from convbn_compat.core.errors import ConfigError


@pytest.fixture(scope="session")
def cold_run(pytestconfig):
    """The records of the cold run a warm rerun is checked against, or None."""
    path = pytestconfig.getoption("--convbn-warm-of")
    if not path:
        return None
    cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR", "")
    if not cache or not any(Path(cache).iterdir()):
        pytest.exit(f"--convbn-warm-of: the compile cache {cache!r} is empty: not warm", 4)
    from convbn_compat.core.results import load_run

    try:
        run = load_run(Path(path))
    except ConfigError as exc:
        pytest.exit(f"--convbn-warm-of: {exc}", returncode=4)
    return {r.cell: r for r in run.records}


@pytest.fixture(scope="session")
def expectations():
    from convbn_compat.core import expectations as exp

    try:
        return exp.load()
    except ConfigError as exc:
        pytest.exit(f"convbn-compat: {exc}", returncode=4)
