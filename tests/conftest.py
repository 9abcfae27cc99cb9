"""Fixtures of the matrix suite. The harness itself is ``convbn_compat/suite/plugin.py``."""

from __future__ import annotations

import contextlib
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
    from convbn_compat.core.policy import Policy

    try:
        return Policy.current().expectations
    except ConfigError as exc:
        pytest.exit(f"convbn-compat: {exc}", returncode=4)


@contextlib.contextmanager
def _faulty_pass(change):
    """The installed pass with a real fault for the block: each of its replacement
    functions returns ``change(output, name, args)`` instead of its output."""
    from torch._inductor.fx_passes import efficient_conv_bn_eval as pass_module

    saved = {}
    for name in ("efficient_conv_bn_eval", "efficient_conv_bn_eval_decomposed"):
        original = getattr(pass_module, name, None)
        if original is None:
            continue  # the decomposed replacement arrived in 2.4

        def faulty(*args, _original=original, _name=name, **kwargs):
            return change(_original(*args, **kwargs), _name, args)

        faulty.__module__ = pass_module.__name__
        saved[name] = original
        setattr(pass_module, name, faulty)
    try:
        yield
    finally:
        for name, original in saved.items():
            setattr(pass_module, name, original)


@pytest.fixture(scope="session")
def faulty_pass():
    """``with faulty_pass(change): ...``: plant a fault in the installed pass (torch-side
    tests only)."""
    return _faulty_pass
