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
from dataclasses import dataclass
from pathlib import Path

from .record import CaseRecord
from .releases import ConfigError

__all__ = [
    "DEFAULT_DIR",
    "SCHEMA",
    "SCHEMA_VERSION",
    "ResultsWriter",
    "RunIdentity",
    "environment_info",
    "new_record",
]

SCHEMA = "convbn-compat/results"
SCHEMA_VERSION = 1
RECORD_KEY = "convbn_case"
"""The user_properties key a matrix test stores its case record under."""
ENVIRONMENT_KEY = "convbn_environment"
"""The user_properties key of environment_info(), from the process that ran the case:
the controller of an xdist run never imports torch itself."""

# The cells of one case: CPU, CUDA with TF32 off, CUDA with TF32 on.
RUNS = (("cpu", False), ("cuda", False), ("cuda", True))


def cell_id(case_id: str, device: str, tf32: bool) -> str:
    """The pytest id of one cell: ``ConvOp-bias-Conv2d-bn-module-cuda-tf32``."""
    return f"{case_id}-{device}{'-tf32' if tf32 else ''}"


def matrix_cells(cases):
    """(case, device, tf32) for every cell the matrix runs, in its order."""
    for device, tf32 in RUNS:
        for case in cases:
            # Generated examples set TF32 off themselves: they have no TF32 cell.
            if device not in case.devices or (tf32 and (case.dtype != "float32" or case.example)):
                continue
            yield case, device, tf32


def parse_cell_id(param: str) -> tuple[str, str, bool] | None:
    """(case id, device, tf32) from a cell's pytest id; None if it is not one."""
    for device, tf32 in sorted(RUNS, key=lambda r: -r[1]):  # "-cuda-tf32" before "-cuda"
        suffix = cell_id("", device, tf32)
        if param.endswith(suffix):
            return param[: -len(suffix)], device, tf32
    return None


def new_record(case, device: str, tf32: bool) -> CaseRecord:
    """A cell's record before it runs: what is known of the case, nothing measured."""
    return CaseRecord(case.id, case.subset, device, tf32, expected_count=case.expected_fires)


DEFAULT_DIR = Path("results")
"""Where every run writes unless told otherwise (relative to the working directory)."""


def default_run_name(torch_version: str) -> str:
    """The name of a run nobody named: a plain pytest run."""
    return f"pytest-torch-{torch_version}".replace("+", "-")


@dataclass(frozen=True)
class RunIdentity:
    """Which run a results file is: its name, its path, and what Nox installed."""

    name: str
    path: Path
    release: str | None = None
    flavour: str | None = None
    install: dict | None = None

    @classmethod
    def from_options(
        cls,
        *,
        name: str,
        path: Path,
        release: str | None = None,
        flavour: str | None = None,
        install: str | dict | None = None,
    ) -> RunIdentity:
        if isinstance(install, str):
            try:
                install = json.loads(install)
            except ValueError as exc:
                raise ConfigError(f"the install record is not JSON ({exc}): {install!r}") from None
        if release is not None:
            from .releases import get_release

            get_release(release)  # names the known releases when it is not one
        return cls(name.strip(), Path(path), release, flavour, install)

    def header(self, kind: str | None = None) -> dict:
        """The results file's identity fields, as the schema orders them; ``kind`` for a
        tool's file (fuzz, reach, benefit)."""
        return {
            "session": self.name,
            **({"kind": kind} if kind else {}),
            "release": self.release,
            "flavour": self.flavour,
            "install": self.install,
        }


def add_run_options(parser) -> None:
    """The options through which Nox tells a tool (fuzz, reach, benefit) which run it is."""
    parser.add_argument("--run", help="run name recorded in the file (the Nox session)")
    parser.add_argument(
        "--out", type=Path, help=f"results file (default: {DEFAULT_DIR}/<run>.json)"
    )
    parser.add_argument("--release", help="release-table key, recorded (Nox passes it)")
    parser.add_argument("--flavour", choices=("cpu", "cuda"), help="wheel flavour, recorded")
    parser.add_argument("--install-record", metavar="JSON", help="how torch was installed")


def run_identity(args, default_name: str) -> RunIdentity:
    """A tool's run, from its add_run_options arguments."""
    name = args.run or default_name
    return RunIdentity.from_options(
        name=name,
        path=args.out or DEFAULT_DIR / f"{name}.json",
        release=args.release,
        flavour=args.flavour,
        install=args.install_record,
    )


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)


def environment_info() -> dict:
    """What is under test: torch, Python, CUDA and the devices torch sees."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            gpus.append({"name": torch.cuda.get_device_name(i), "capability": f"{major}.{minor}"})
    return {
        # Plain str: torch's TorchVersion does not cross to pytest-xdist's controller.
        "torch": str(torch.__version__),
        "torch_git": _str_or_none(getattr(torch.version, "git_version", None)),
        "cuda": _str_or_none(torch.version.cuda),
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

    def __init__(self, path: Path, run: dict, environment: dict | None = None) -> None:
        self.path = path
        self.data = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            **run,
            "started": _now(),
            "finished": None,
            "complete": False,
            "environment": environment if environment is not None else environment_info(),
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
