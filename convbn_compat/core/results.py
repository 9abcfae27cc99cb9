"""The results file each run writes (``<results dir>/<session>.json``), and its reader.

Schema ``convbn-compat/results`` version 1 (documented in ``docs/results-schema.md``).
The file is rewritten atomically after every case, so a killed run leaves a valid file
holding every case that finished, with ``"complete": false``. ``load_run`` is the one
reader: every file the report, the CLI and the tools read goes through its checks.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, NotResults
from .record import CaseRecord, RecordError
from .releases import FLAVOURS, INSTALLED, RELEASES, get_release
from .versions import release_of

__all__ = [
    "DEFAULT_DIR",
    "KINDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "ResultsWriter",
    "Run",
    "RunIdentity",
    "add_run_options",
    "environment_info",
    "load_run",
    "read_json",
]

SCHEMA = "convbn-compat/results"
SCHEMA_VERSION = 1
KINDS = ("tests", "fuzz", "reach", "benefit")
"""What a results file can be the results of (its ``kind``; absent means ``tests``)."""
RECORD_KEY = "convbn_case"
"""The user_properties key a matrix test stores its case record under."""
ENVIRONMENT_KEY = "convbn_environment"
"""The user_properties key of environment_info(), from the process that ran the case:
the controller of an xdist run never imports torch itself."""

DEFAULT_DIR = Path("results")
"""Where every run writes unless told otherwise (relative to the working directory)."""


def default_run_name(torch_version: str, kind: str = "pytest") -> str:
    """The name of a run nobody named: ``pytest-torch-2.15.0``, ``reach-torch-...``."""
    return f"{kind}-torch-{torch_version}".replace("+", "-")


# -- the run's identity: one dialect for pytest and the tools -----------------------

RUN_OPTIONS = (
    ("--convbn-run", {"metavar": "NAME", "help": "the run's name: its results file is "
                      "<results>/<NAME>.json (Nox passes the session's name)"}),
    ("--convbn-results", {"metavar": "DIR", "default": str(DEFAULT_DIR),
                          "help": f"folder of the results file (default: {DEFAULT_DIR})"}),
    ("--convbn-release", {"metavar": "KEY", "help": "release-table key, recorded"}),
    ("--convbn-flavour", {"choices": (*FLAVOURS, INSTALLED), "help": "wheel flavour, recorded"}),
    ("--convbn-install-record", {"metavar": "JSON_FILE", "help": "the environment's "
                                 "install record (how torch was installed), recorded"}),
)  # fmt: skip
"""The options through which Nox tells a run which run it is: the pytest plugin and
every tool (fuzz, reach, benefit) declare these same ones."""


def add_run_options(add) -> None:
    """Declare RUN_OPTIONS with ``add`` (argparse's add_argument, pytest's addoption)."""
    for name, kwargs in RUN_OPTIONS:
        add(name, **kwargs)


@dataclass(frozen=True)
class RunIdentity:
    """Which run a results file is: its name, its path, and what Nox installed."""

    name: str
    path: Path
    release: str | None = None
    flavour: str | None = None
    install: dict | None = None

    @classmethod
    def from_options(cls, get, default_name: str, path: Path | None = None) -> RunIdentity:
        """From RUN_OPTIONS' values, read through ``get(option name)``; ``path``
        overrides <results>/<name>.json."""
        name = (get("--convbn-run") or default_name).strip()
        release = get("--convbn-release")
        if release is not None and release != INSTALLED:
            get_release(release)  # names the known releases when it is not one
        install = None
        record = get("--convbn-install-record")
        if record:
            install = read_json(Path(record), "install record")
            if not isinstance(install, dict):
                raise ConfigError(f"install record {record} is not a JSON object")
        path = path or Path(get("--convbn-results") or DEFAULT_DIR) / f"{name}.json"
        return cls(name, Path(path), release, get("--convbn-flavour"), install)

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


def tool_run(args, kind: str) -> RunIdentity:
    """A tool's run, from its argparse namespace (RUN_OPTIONS and ``--out``)."""
    import torch

    values = vars(args)
    return RunIdentity.from_options(
        lambda name: values.get(name.lstrip("-").replace("-", "_")),
        default_run_name(torch.__version__, kind),
        getattr(args, "out", None),
    )


# -- writing ---------------------------------------------------------------------


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
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=False) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
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

    def add(self, record: CaseRecord) -> None:
        self.data["cases"].append(record.to_json())
        self.flush()

    def finish(self, complete: bool, exitstatus: int) -> None:
        self.data["finished"] = _now()
        self.data["complete"] = complete
        self.data["pytest_exitstatus"] = exitstatus
        self.flush()

    def flush(self) -> None:
        atomic_write_json(self.path, self.data)


# -- reading ---------------------------------------------------------------------


@dataclass
class Run:
    """One results file, read and checked: its header and its records."""

    path: Path
    data: dict
    """The file as written, the case list included (what writes it back unchanged)."""
    records: list[CaseRecord] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """``tests`` for a matrix run, else the tool that wrote it (fuzz, reach, benefit)."""
        return self.data.get("kind") or "tests"

    @property
    def torch(self) -> str:
        return self.data["environment"]["torch"]

    @property
    def release(self) -> str:
        """The release-table key the run tested (from its torch where Nox gave none)."""
        return self.data.get("release") or release_of(self.torch)

    @property
    def flavour(self) -> str:
        return self.data.get("flavour") or INSTALLED

    @property
    def complete(self) -> bool:
        return self.data["complete"]

    def to_json(self) -> dict:
        """The file's data with its cases written from the records."""
        return {**self.data, "cases": [r.to_json() for r in self.records]}


def read_json(path: Path, what: str) -> object:
    """Parse a JSON file, or raise a ConfigError that names it and says what to do."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}): it is corrupt or not a convbn-compat file; regenerate or remove it"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not valid JSON (truncated or corrupt?): {exc}; "
            "regenerate or remove it"
        ) from None


def load_run(path: Path) -> Run:
    """Read one results file, refusing anything this version cannot read correctly: a
    ConfigError names the file, the field and what to do."""
    path = Path(path)
    data = read_json(path, "results file")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else None
        found = f" (its schema is {schema!r})" if schema else ""
        raise NotResults(
            f"{path} is not a convbn-compat results file{found}; it needs schema {SCHEMA!r}"
        )
    _check_header(path, data)
    records = []
    for i, case in enumerate(data["cases"]):
        where = f"results file {path}: case #{i + 1}"
        if isinstance(case, dict) and isinstance(case.get("id"), str):
            where += f" ({case['id']})"
        try:
            records.append(CaseRecord.from_json(case))
        except RecordError as exc:
            raise ConfigError(f"{where}: {exc}; regenerate the file") from None
    return Run(path, data, records)


def _check_header(path: Path, data: dict) -> None:
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
        raise ConfigError(
            f"{path} has schema version {version!r}; this convbn-compat reads up to "
            f"{SCHEMA_VERSION}: upgrade convbn-compat to read it"
        )
    where = f"results file {path}"
    for key in ("environment", "cases", "complete"):
        if key not in data:
            raise ConfigError(f"{where} lacks {key!r}; regenerate it")
    env = data["environment"]
    if not isinstance(env, dict) or not isinstance(env.get("torch"), str):
        raise ConfigError(
            f"{where}: its environment lacks 'torch' (the version under test), so its "
            "cells have no column; regenerate it"
        )
    try:
        release_of(env["torch"])  # a torch the table lacks still gets a column of its own
    except ValueError as exc:
        raise ConfigError(f"{where}: environment.torch: {exc}; regenerate it") from None
    if not isinstance(data["complete"], bool):
        raise ConfigError(
            f"{where}: 'complete' is {data['complete']!r}; it must be true or false "
            "(regenerate the file)"
        )
    if not isinstance(data["cases"], list):
        raise ConfigError(f"{where}: 'cases' is not a list; regenerate it")
    _check_identity(where, data)


def _check_identity(where: str, data: dict) -> None:
    """The run's kind, release and flavour: words this version knows."""
    kind = data.get("kind", "tests")
    if kind not in KINDS:
        raise ConfigError(f"{where}: 'kind' is {kind!r}; choose one of: {', '.join(KINDS)}")
    named = data.get("release")
    if named is not None and named not in RELEASES and named != INSTALLED:
        raise ConfigError(
            f"{where}: release {named!r} is not in the release table ({', '.join(RELEASES)}); "
            "a newer convbn-compat may know it"
        )
    flavour = data.get("flavour")
    if flavour is not None and flavour not in (*FLAVOURS, INSTALLED):
        raise ConfigError(
            f"{where}: 'flavour' is {flavour!r}; choose one of: {', '.join((*FLAVOURS, INSTALLED))}"
        )
