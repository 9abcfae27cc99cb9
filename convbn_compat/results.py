"""The results file each run writes: ``<results dir>/<session>.json``.

Schema ``convbn-compat/results`` version 1 (documented in ``docs/results-schema.md``).
The file is rewritten atomically after every case, so a killed run leaves a valid file
holding every case that finished, with ``"complete": false``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

__all__ = ["SCHEMA", "SCHEMA_VERSION", "ResultsWriter", "environment_info", "results_dir"]

SCHEMA = "convbn-compat/results"
SCHEMA_VERSION = 1
RECORD_KEY = "convbn_case"

# The cells of one case: CPU, CUDA with TF32 off, CUDA with TF32 on.
RUNS = (("cpu", False), ("cuda", False), ("cuda", True))


def cell_id(case_id: str, device: str, tf32: bool) -> str:
    """The pytest id of one cell: ``ConvOp-bias-Conv2d-bn-module-cuda-tf32``."""
    return f"{case_id}-{device}{'-tf32' if tf32 else ''}"


def parse_cell_id(param: str) -> tuple[str, str, bool] | None:
    """(case id, device, tf32) from a cell's pytest id; None if it is not one."""
    for device, tf32 in sorted(RUNS, key=lambda r: -r[1]):  # "-cuda-tf32" before "-cuda"
        suffix = cell_id("", device, tf32)
        if param.endswith(suffix):
            return param[: -len(suffix)], device, tf32
    return None


def new_record(case, device: str, tf32: bool) -> dict:
    """A cell's record before it runs: what is known of the case, nothing measured."""
    return {
        "id": case.id,
        "subset": case.subset,
        "device": device,
        "tf32": tf32,
        "outcome": None,
        "expected_outcome": None,
        "fire_count": None,
        "expected_count": case.expected_fires,
        "graph_rewrites": None,
        "max_abs_error": None,
        "seconds": 0.0,
        "message": "",
    }


"""The user_properties key a matrix test stores its case record under."""


def results_dir() -> Path:
    return Path(os.environ.get("CONVBN_RESULTS_DIR") or "results")


def default_run_name() -> str:
    """``CONVBN_SESSION`` (set by Nox), else a name of its own for a plain pytest run."""
    name = os.environ.get("CONVBN_SESSION", "").strip()
    if name:
        return name
    import torch

    return f"pytest-torch-{torch.__version__}".replace("+", "-")


def environment_info() -> dict:
    """What is under test: torch, Python, CUDA and the devices torch sees."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            gpus.append({"name": torch.cuda.get_device_name(i), "capability": f"{major}.{minor}"})
    return {
        "torch": torch.__version__,
        "torch_git": getattr(torch.version, "git_version", None),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
    }


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultsWriter:
    """Accumulates case records and keeps ``path`` a valid, current results file."""

    def __init__(self, path: Path, run: dict) -> None:
        self.path = path
        self.data = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            **run,
            "started": _now(),
            "finished": None,
            "complete": False,
            "environment": environment_info(),
            "cases": [],
        }
        self.flush()

    def add(self, record: dict) -> None:
        self.data["cases"].append(record)
        self.flush()

    def finish(self, complete: bool, exitstatus: int) -> None:
        self.data["finished"] = _now()
        self.data["complete"] = complete
        self.data["pytest_exitstatus"] = exitstatus
        self.flush()

    def flush(self) -> None:
        atomic_write_json(self.path, self.data)
