"""The fusion-correctness matrix: every case of upstream's test, per device.

The test body is the same for every case; what differs between releases lives in
``convbn_compat/core/expectations.toml``. A cell expected to be anything but ``fused`` is a
strict xfail: it xfails only with exactly that outcome, and fails otherwise, so a
change in either direction turns the session red.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest

torch = pytest.importorskip("torch")

from convbn_compat.core import cases  # noqa: E402
from convbn_compat.core.cells import cell_id, matrix_cells  # noqa: E402
from convbn_compat.core.outcomes import Outcome  # noqa: E402
from convbn_compat.core.record import OBSERVED, CaseRecord  # noqa: E402
from convbn_compat.core.results import ENVIRONMENT_KEY, RECORD_KEY, environment_info  # noqa: E402
from convbn_compat.shim import devices  # noqa: E402
from convbn_compat.suite.runner import run_case  # noqa: E402


def _params():
    # cases.CASES is read at collection: a test plugin may add cases.
    for case, device, tf32 in matrix_cells(cases.CASES):
        marks = [pytest.mark.matrix, getattr(pytest.mark, case.subset)]
        yield pytest.param(case, device, tf32, id=cell_id(case.id, device, tf32), marks=marks)


@pytest.mark.parametrize(("case", "device", "tf32"), list(_params()))
def test_conv_bn_eval(case, device, tf32, expectations, cold_run, request):
    # Attached before it runs: a case that never finishes still leaves its record.
    _attach(request, CaseRecord.new(case, device, tf32))
    if device == "cuda":
        skip = None
        if not devices.gpu_available():
            skip = devices.gpu_skip_reason()
        elif tf32 and not devices.tf32_supported():
            skip = "TF32 needs an sm_80 or newer GPU (upstream runs TF32-off only there)"
        if skip:
            _attach(request, CaseRecord.new(case, device, tf32), message=skip)
            if devices.gpu_required():
                pytest.fail(f"CONVBN_REQUIRE_GPU is set: {skip}", pytrace=False)
            pytest.skip(skip)

    result = run_case(case, device, tf32=tf32)
    expected = expectations.lookup(case.id, device, torch.__version__)
    record = _attach(request, expectations.apply(result, torch.__version__))
    if cold_run is not None:
        _same_as_cold(cold_run, record)
    if result.outcome is expected.outcome:
        if expected.outcome is Outcome.FUSED:
            return
        if expected.outcome is Outcome.UNSUPPORTED:
            # A way in this release lacks, as the table says: skipped, with both reasons.
            pytest.skip(f"unsupported by torch {torch.__version__}: {result.message}")
        pytest.xfail(f"{expected.outcome}: {expected.reason}")
    pytest.fail(
        f"{case.id} on {device}: expected {expected.outcome} ({expected.reason}); "
        f"got {result.outcome}: {result.message or 'fired as expected'} "
        f"[fires {result.fire_count}/{case.expected_fires}, in graph {result.graph_rewrites}, "
        f"path {result.path}, max abs error {result.max_abs_error}]",
        pytrace=False,
    )


def _attach(request, record, **fields):
    """Make ``record`` (with ``fields``) the test's record; return it. It travels as JSON:
    pytest-xdist carries user_properties to the controller as plain data."""
    record = dataclasses.replace(record, **fields)
    props = request.node.user_properties
    props[:] = [(k, v) for k, v in props if k not in (RECORD_KEY, ENVIRONMENT_KEY)]
    props += [(RECORD_KEY, record.to_json()), (ENVIRONMENT_KEY, _environment())]
    return record


@functools.lru_cache(maxsize=1)
def _environment() -> dict:
    return environment_info()


def _same_as_cold(cold_run: dict, record) -> None:
    """A warm rerun must observe what the cold run did: caches may only save time."""
    cold = cold_run.get(record.cell)
    if cold is None:
        pytest.fail(f"{record.id}: the cold run has no record of this case", pytrace=False)
    now = record.observed()
    differ = {k: (getattr(cold, k), now[k]) for k in OBSERVED if getattr(cold, k) != now[k]}
    if differ:
        pytest.fail(
            f"{record.id} on {record.device}: the warm run differs from the cold run: "
            + ", ".join(f"{k} {c!r} cold, {w!r} warm" for k, (c, w) in differ.items()),
            pytrace=False,
        )
