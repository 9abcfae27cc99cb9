"""Devices and cells, defined once: which devices a case can run on, which cells (device,
TF32) the matrix runs, and how a cell is named in pytest ids and report columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = [
    "CPU",
    "CUDA",
    "DEVICES",
    "RUNS",
    "cell_id",
    "column_device",
    "matrix_cells",
    "parse_cell_id",
    "parse_column_device",
]

CPU = "cpu"
CUDA = "cuda"
DEVICES = (CPU, CUDA)
"""Every device a case can name; a CUDA wheel's session runs both."""
TF32_SUFFIX = "-tf32"

RUNS = ((CPU, False), (CUDA, False), (CUDA, True))
"""The cells of one case: CPU, CUDA with TF32 off, CUDA with TF32 on."""


def devices_of_flavour(flavour: str) -> tuple[str, ...]:
    """The devices a session of a wheel flavour runs cases on (``installed``: both)."""
    return (CPU,) if flavour == CPU else DEVICES


def column_device(device: str, tf32: bool) -> str:
    """``cpu``, ``cuda`` or ``cuda-tf32``: a cell's device as a report column names it."""
    return f"{device}{TF32_SUFFIX if tf32 else ''}"


def parse_column_device(text: str) -> tuple[str, bool]:
    """(device, tf32) from ``column_device``'s text; ValueError for anything else."""
    device, tf32 = (
        (text.removesuffix(TF32_SUFFIX), True)
        if text.endswith(TF32_SUFFIX)
        else (
            text,
            False,
        )
    )
    if device not in DEVICES or (tf32 and device != CUDA):
        raise ValueError(f"{text!r} is not a device; choose cpu, cuda or cuda-tf32")
    return device, tf32


def cell_id(case_id: str, device: str, tf32: bool) -> str:
    """The pytest id of one cell: ``ConvOp-bias-Conv2d-bn-module-cuda-tf32``."""
    return f"{case_id}-{column_device(device, tf32)}"


MATRIX_TEST = "tests/test_matrix.py::test_conv_bn_eval"
"""The matrix's one test function: a cell's pytest node id is this and its cell id."""


def node_id(case_id: str, device: str, tf32: bool) -> str:
    """The pytest node id that selects exactly one cell (``-k`` matches substrings:
    ``ConvOp-...`` would also run ``MultiUserConvOp-...``)."""
    return f"{MATRIX_TEST}[{cell_id(case_id, device, tf32)}]"


def parse_cell_id(param: str) -> tuple[str, str, bool] | None:
    """(case id, device, tf32) from a cell's pytest id; None if it is not one."""
    for device, tf32 in sorted(RUNS, key=lambda r: -r[1]):  # "-cuda-tf32" before "-cuda"
        suffix = cell_id("", device, tf32)
        if param.endswith(suffix):
            return param[: -len(suffix)], device, tf32
    return None


def matrix_cells(cases: Iterable) -> Iterator[tuple[object, str, bool]]:
    """(case, device, tf32) for every cell the matrix runs, in its order."""
    cases = list(cases)
    for device, tf32 in RUNS:
        for case in cases:
            # Generated examples set TF32 off themselves: they have no TF32 cell.
            if device not in case.devices or (tf32 and (case.dtype != "float32" or case.example)):
                continue
            yield case, device, tf32
