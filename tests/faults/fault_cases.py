"""Test-only pytest plugin: matrix cases that really crash, abort or hang.

``pytest -p fault_cases`` (with this folder on PYTHONPATH) appends them to the case list
before collection. The faults are real: a NULL read (SIGSEGV), ``os.abort()`` (SIGABRT)
and a wait that never ends; nothing is mocked.
"""

from __future__ import annotations

import ctypes
import os
import threading

from convbn_compat.checks import models
from convbn_compat.core import cases


def _segfault():
    ctypes.string_at(0)  # reads address 0: the kernel sends SIGSEGV


def _abort():
    os.abort()


def _hang():
    threading.Event().wait()  # nobody ever sets it


FAULTS = {"Fault-segfault": _segfault, "Fault-abort": _abort, "Fault-hang": _hang}
# The hang's own limit: short, and on that case alone. A run-wide --timeout would also
# cut short the control beside it, whose first compile in a fresh process took over
# 20 s on a busy 2-core machine.
HANG_TIMEOUT_S = 20


def pytest_configure(config):
    # In every process (controller and xdist workers): the builders, then the cases.
    models.MODELS.update(FAULTS)
    extra = tuple(
        cases.Case(name, 1, model=name, subset=cases.EXTENDED, devices=("cpu",)) for name in FAULTS
    )
    cases.CASES = cases.CASES + extra


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        if "[Fault-hang-" in item.nodeid:
            item.add_marker(pytest.mark.timeout(HANG_TIMEOUT_S))
