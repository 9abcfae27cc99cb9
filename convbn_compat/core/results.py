"""The results file each run writes (``<results dir>/<session>.json``): one typed
document, with one reader (``load_run``) and one writer (``ResultsWriter``).

Schema ``convbn-compat/results`` version 2, shipped as ``results.schema.json`` beside
this module (``docs/results-schema.md`` is generated from it). Every file is checked
against it with ``jsonschema`` before anything reads a field, and the checks a schema
cannot say (a release that does not match the torch tested, one cell twice, a case
naming a run the file lacks) follow; each refusal is a ConfigError naming the file, the
field and the fix. Version 1 files (no ``runs``) are read as one run.

A file is rewritten atomically after every case, so a killed run leaves a valid file
holding every case that finished. A run of part of a session (``-k``, node ids,
``--lf``, a Ctrl-C) writes into the session's existing file: each cell it runs replaces
that cell's older record, every other cell stays, and ``runs`` says which run recorded
which cell, when, and what it selected.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import math
import os
import platform
import sys
import tempfile
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, NotResults
from .record import CaseRecord, RecordError
from .releases import FLAVOURS, INSTALLED, NIGHTLY, RELEASES, get_release
from .versions import is_prerelease_build, release_of

__all__ = [
    "DEFAULT_DIR",
    "SCHEMA",
    "SCHEMA_FILE",
    "SCHEMA_VERSION",
    "BenefitSection",
    "Environment",
    "FuzzSection",
    "ResultsWriter",
    "Run",
    "RunEntry",
    "RunIdentity",
    "Selection",
    "add_run_options",
    "environment_info",
    "instant",
    "load_run",
    "parse_json",
    "read_json",
]

SCHEMA = "convbn-compat/results"
SCHEMA_VERSION = 2
"""2: ``runs`` and each case's ``run`` (reruns merge into one file); 1: one run a file."""
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")
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


def tool_main(main, argv=None) -> int:
    """A tool's command line (fuzz, reach, benefit): bad input is one line and exit 2,
    as for ``python -m convbn_compat``, never a traceback."""
    try:
        return main(argv)
    except ConfigError as exc:
        print(f"convbn-compat: {exc}", file=sys.stderr)
        return 2


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


def dump_json(data: object) -> str:
    """JSON as every file of ours is written: indented, and never NaN or Infinity (which
    JSON cannot hold, and a browser's JSON.parse refuses)."""
    return json.dumps(data, indent=1, sort_keys=False, allow_nan=False) + "\n"


def atomic_write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, dump_json(data))


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


# -- the document's parts: typed, each with its JSON ------------------------------


class _Part:
    """A dataclass that is one object of the file: ``from_json`` after the schema has
    checked it, ``to_json`` writing every field that is not None, in field order."""

    _ALWAYS: typing.ClassVar[tuple[str, ...]] = ()
    """Fields written even when None (the schema requires them, null allowed)."""

    @classmethod
    def from_json(cls, data: dict):
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                kwargs[f.name] = _typed(hints[f.name], data[f.name])
        return cls(**kwargs)

    def to_json(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name not in self._ALWAYS:
                continue
            out[f.name] = _plain(value)
        return out


def _typed(hint, value):
    """``value`` (already checked by the schema) as ``hint`` holds it."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)]
        return _typed(inner[0], value) if len(inner) == 1 else value
    if isinstance(hint, type) and issubclass(hint, _Part):
        return hint.from_json(value)
    if origin is list:
        return [_typed(args[0], v) for v in value] if args else list(value)
    if origin is dict:
        return {k: _typed(args[1], v) for k, v in value.items()} if args else dict(value)
    return value


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON holds no NaN or Infinity
    if isinstance(value, _Part):
        return value.to_json()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class Gpu(_Part):
    name: str
    capability: str


@dataclass
class Environment(_Part):
    """What was under test, as the process that ran the cells saw it."""

    torch: str
    torch_git: str | None = None
    cuda: str | None = None
    cudnn: int | None = None
    python: str | None = None
    python_executable: str | None = None
    platform: str | None = None
    cpu_count: int | None = None
    gpus: list[Gpu] = field(default_factory=list)
    _ALWAYS = ("torch_git", "cuda", "cudnn", "python", "python_executable", "platform")


@dataclass
class Install(_Part):
    """The environment's install record (``sessions/install.py``)."""

    backend: str | None = None
    bytecode: str | None = None
    commands: list[str] | None = None
    compile_bytecode: bool | None = None
    torch_index: str | None = None


@dataclass
class Selection(_Part):
    """What one run was asked to run."""

    args: list[str]
    selected: int
    full: bool
    keyword: str | None = None
    markers: str | None = None
    last_failed: bool | None = None

    def describe(self) -> str:
        if self.full:
            return f"all {self.selected} cells"
        words = [f"-k {self.keyword!r}"] if self.keyword else []
        words += [f"-m {self.markers!r}"] if self.markers else []
        words += ["--lf"] if self.last_failed else []
        named = [a.rpartition("[")[2].rstrip("]") for a in self.args if "[" in a]
        words += named[:3] + ([f"and {len(named) - 3} more"] if len(named) > 3 else [])
        return f"{self.selected} cells ({' '.join(words) or 'part of the suite'})"


@dataclass
class RunEntry(_Part):
    """One run that wrote cells into the file."""

    id: str
    started: str
    finished: str | None
    interrupted: bool
    cells: int = 0
    pytest_exitstatus: int | None = None
    selection: Selection | None = None
    _ALWAYS = ("finished",)


@dataclass
class Triaged(_Part):
    """A cause as one search triaged it: its representative and its fingerprint."""

    representative: str
    shrunk: bool
    examples: int | None = None
    suspect: str | None = None
    fingerprint: str | None = None
    when: dict[str, list] | None = None
    crash: dict[str, str] | None = None
    untested: list[str] | None = None
    judged: int | None = None
    complete: bool | None = None


@dataclass
class FoundCause(_Part):
    """One cause of a search's findings blamed on the pass (``causes.summarise``)."""

    cause: str
    known: bool
    examples: int
    signatures: int
    representative: str
    shrunk: bool
    range: str
    links: list[str]
    title: str
    seen_on: str | None = None
    fingerprint: str | None = None
    when: dict[str, list] | None = None
    crash: dict[str, str] | None = None
    suspect: str | None = None
    untested: list[str] | None = None
    releases: str | None = None
    replay: str | None = None


@dataclass
class FuzzSection(_Part):
    """A search: how it was asked to run, what it judged, and its causes."""

    seed: int | None = None
    budget_s: float | None = None
    max_examples: int | None = None
    database: str | None = None
    workers: int | None = None
    rounds: int | None = None
    examples: int | None = None
    steered: int | None = None
    cause_budget: int | None = None
    elapsed_s: float | None = None
    examples_per_minute: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    signatures: int | None = None
    blamed_on_pass: int | None = None
    triage: dict[str, Triaged] | None = None
    causes: list[FoundCause] | None = None


@dataclass
class BenefitConfig(_Part):
    config: str | None = None
    compile_s: float | None = None
    peak_step_bytes: int | None = None
    held_for_backward_bytes: int | None = None
    peak_bytes: int | None = None
    step_s: float | None = None
    step_s_all: list[float] | None = None
    fire_count: int | None = None
    error: str | None = None


@dataclass
class BenefitSection(_Part):
    """What the pass saves: memory and time, flag on against off and eager."""

    model: str
    device: str
    configs: dict[str, BenefitConfig] = field(default_factory=dict)
    input: list[int] | None = None
    steps: int | None = None
    method: str | None = None
    summary: dict[str, float | None] | None = None
    pr_figures_gb: dict[str, float] | None = None


# -- the document ----------------------------------------------------------------


@dataclass
class Run:
    """One results file: its header, its runs, its records and its kind's section."""

    session: str
    environment: Environment
    records: list[CaseRecord] = field(default_factory=list)
    kind: str = "tests"
    release: str | None = None
    """The release-table key Nox gave (``release_key`` falls back on the torch)."""
    flavour: str | None = None
    install: Install | None = None
    started: str = ""
    finished: str | None = None
    complete: bool = False
    pytest_exitstatus: int | None = None
    runs: list[RunEntry] = field(default_factory=list)
    fuzz: FuzzSection | None = None
    benefit: BenefitSection | None = None
    path: Path | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def torch(self) -> str:
        return self.environment.torch

    @property
    def release_key(self) -> str:
        """The release-table key the run tested (from its torch where Nox gave none)."""
        return self.release or release_of(self.torch)

    @property
    def flavour_key(self) -> str:
        return self.flavour or INSTALLED

    def run_of(self, record: CaseRecord) -> RunEntry | None:
        """The run that recorded ``record``; for a version-1 file, its one run."""
        return next((r for r in self.runs if r.id == record.run), None) or (
            self.runs[0] if len(self.runs) == 1 else None
        )

    def to_json(self) -> dict:
        """The file as the schema orders it (always the newest version)."""
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "session": self.session,
        }
        if self.kind != "tests":
            out["kind"] = self.kind
        out |= {"release": self.release, "flavour": self.flavour}
        out["install"] = self.install.to_json() if self.install else None
        out |= {"started": self.started, "finished": self.finished, "complete": self.complete}
        out["environment"] = self.environment.to_json()
        if self.pytest_exitstatus is not None:
            out["pytest_exitstatus"] = self.pytest_exitstatus
        out["runs"] = [r.to_json() for r in self.runs]
        out["cases"] = [r.to_json() for r in self.records]
        if self.fuzz is not None:
            out["fuzz"] = self.fuzz.to_json()
        if self.benefit is not None:
            out["benefit"] = self.benefit.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict, path: Path | None = None) -> Run:
        """A document the schema has checked (``load_run`` checks, then calls this)."""
        records = [CaseRecord.from_json(c) for c in data["cases"]]
        runs = [RunEntry.from_json(r) for r in data.get("runs", [])]
        if not runs:  # version 1: one run, the file's own, which recorded every cell
            records = [dataclasses.replace(r, run=r.run or "r1") for r in records]
            finished = data.get("finished")
            runs = [
                RunEntry(
                    "r1",
                    data.get("started") or "",
                    finished,
                    finished is not None and not data["complete"],
                    len(records),
                    data.get("pytest_exitstatus"),
                )
            ]
        install = data.get("install")
        return cls(
            session=data.get("session") or (path.stem if path else "?"),
            environment=Environment.from_json(data["environment"]),
            records=records,
            kind=data.get("kind") or "tests",
            release=data.get("release"),
            flavour=data.get("flavour"),
            install=Install.from_json(install) if install else None,
            started=data.get("started") or "",
            finished=data.get("finished"),
            complete=data["complete"],
            pytest_exitstatus=data.get("pytest_exitstatus"),
            runs=runs,
            fuzz=FuzzSection.from_json(data["fuzz"]) if data.get("fuzz") else None,
            benefit=BenefitSection.from_json(data["benefit"]) if data.get("benefit") else None,
            path=path,
            schema_version=data["schema_version"],
        )


# -- writing ---------------------------------------------------------------------


class ResultsWriter:
    """Keeps ``path`` a valid, current results file: every case as it finishes.

    A tests run writes into the session's existing file when it holds the same torch
    build on the same devices: the cells it runs replace their older records, every
    other cell stays (a partial rerun loses nothing). A file of another build or
    devices, or a tool's earlier run (fuzz, reach, benefit: each run is one search or
    one measurement), is moved aside to ``<name>.json.replaced-<when>`` (never read as
    results) and a new file begins. One run writes a file at a time: a second is refused
    while the first holds the file's lock.
    """

    def __init__(
        self,
        path: Path,
        run: dict,
        environment: dict | Environment | None = None,
        *,
        kind: str | None = None,
        selection: Selection | None = None,
        expected_cells: set[tuple[str, str, bool]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.expected_cells = expected_cells
        if environment is None:
            environment = environment_info()
        env = (
            environment
            if isinstance(environment, Environment)
            else Environment.from_json(_checked_part("environment", environment, self.path))
        )
        kind = kind or run.get("kind") or "tests"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _take_lock(self.path)
        self.doc = self._previous(kind, env) or Run(
            session=run["session"], environment=env, kind=kind, started=_now(), path=self.path
        )
        # The newest run's identity and environment head the file.
        self.doc.release, self.doc.flavour = run.get("release"), run.get("flavour")
        self.doc.install = Install.from_json(run["install"]) if run.get("install") else None
        self.doc.environment = env
        self.entry = RunEntry(f"r{len(self.doc.runs) + 1}", _now(), None, False, 0)
        self.entry.selection = selection
        self.doc.runs.append(self.entry)
        # Until this run ends the file is not whole: a run killed outright (SIGKILL, a
        # crash in one process) leaves it so, and the report says which run never ended.
        self.doc.finished, self.doc.complete = None, False
        self.flush()

    @staticmethod
    def check(path: Path) -> None:
        """Refuse, before any work, a file at ``path`` that a run could not write into
        (another run writing it now, not a results file, corrupt, of a newer schema): a
        ConfigError says what."""
        path = Path(path)
        if path.parent.is_dir():
            _take_lock(path).release()
        _check_readable(path)

    def _previous(self, kind: str, env: Environment) -> Run | None:
        """The session's file to write into: a tests file of the same torch build, seen
        on the same devices."""
        if not self.path.exists():
            return None
        _check_readable(self.path)
        before = load_run(self.path)
        same = (
            kind == "tests"
            and before.kind == kind
            and _build_and_devices(before.environment) == _build_and_devices(env)
        )
        if same:
            return before
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        aside = self.path.with_name(f"{self.path.name}.replaced-{stamp}")
        os.replace(self.path, aside)
        why = (
            f"held {before.kind} results of torch {before.torch} on other devices or builds"
            if kind == "tests"
            else f"held an earlier {before.kind} run"
        )
        print(
            f"convbn-compat: {self.path} {why}; kept as {aside}, and a new file begins",
            file=sys.stderr,
        )
        return None

    def add(self, record: CaseRecord) -> None:
        """Record one cell: it replaces an older record of the same cell."""
        record = dataclasses.replace(record, run=self.entry.id)
        records = self.doc.records
        at = next((i for i, r in enumerate(records) if r.cell == record.cell), None)
        if at is None:
            records.append(record)
        else:
            records[at] = record
        self.entry.cells += 1
        self.flush()

    def set_records(self, records: list[CaseRecord]) -> None:
        """A tool's whole set of records at once (a search's findings)."""
        self.doc.records = [dataclasses.replace(r, run=self.entry.id) for r in records]
        self.entry.cells = len(records)

    def finish(self, complete: bool, exitstatus: int) -> None:
        """The run ended: ``complete`` false if it was interrupted before its selection
        ran out. The file is complete when it holds every cell it should; a full run
        that finished drops the cells of cases that no longer exist."""
        self.entry.finished = self.doc.finished = _now()
        self.entry.interrupted = not complete
        self.entry.pytest_exitstatus = self.doc.pytest_exitstatus = exitstatus
        if self.expected_cells is None:
            self.doc.complete = complete
        else:
            selection = self.entry.selection
            if complete and selection is not None and selection.full:
                self.doc.records = [r for r in self.doc.records if r.cell in self.expected_cells]
            have = {r.cell for r in self.doc.records}
            self.doc.complete = self.expected_cells <= have
        try:
            self.flush()
            problem = _schema_error(self.doc.to_json(), f"results file {self.path}")
            if problem is not None:  # a bug of ours: what it wrote is on disk, and named
                raise RuntimeError(f"convbn-compat wrote a file its reader refuses: {problem}")
            _check_meaning(f"results file {self.path}", self.doc)
        finally:
            self._lock.release()

    def flush(self) -> None:
        atomic_write_text(self.path, dump_json(self.doc.to_json()))


def _check_readable(path: Path) -> None:
    """A file a run would write into must be a results file this version reads."""
    if path.exists():
        try:
            load_run(path)
        except NotResults as exc:
            raise ConfigError(
                f"{path} exists and is not a results file ({exc}); move it away or name "
                "another run (--convbn-run)"
            ) from None


def _take_lock(path: Path):
    """The file's lock, taken now or refused: one run writes a results file at a time."""
    import filelock

    lock = filelock.FileLock(str(path.with_name(f".{path.name}.lock")))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise ConfigError(
            f"another run is writing {path} now; wait for it to end, or name this run "
            "otherwise (--convbn-run, --convbn-results)"
        ) from None
    return lock


def _build_and_devices(env: Environment) -> tuple:
    """What two runs must share to write into one file: the torch build and its GPUs."""
    return env.torch, env.torch_git, env.cuda, tuple(g.name for g in env.gpus)


# -- reading ---------------------------------------------------------------------


MAX_DEPTH = 64
"""Deeper JSON than any results file has (it nests 5 deep): refused before parsing, so
that a hostile file cannot exhaust the parser's recursion."""


def _depth(text: str) -> tuple[int, int]:
    """How deep the text's arrays and objects nest, and the character where they first
    nest past MAX_DEPTH (-1 where they do not); a string's brackets do not count."""
    depth = deepest = 0
    past = -1
    in_string = escaped = False
    for at, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH and past < 0:
                past = at
        elif ch in "]}":
            depth -= 1
    return deepest, past


MAX_INT_DIGITS = 19
"""No field of ours holds a longer integer (a 64-bit one has 19 digits): a longer one is
refused by its length, before Python is asked to convert it."""


class _Refused:
    """A value strict JSON refuses, kept in place while parsing so that the refusal can
    name the field that holds it: ``what`` it is."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


class _Repeated(dict):
    """An object that has ``key`` twice (its last value kept, as ``json`` would)."""

    key: str = ""


def _constant(name: str) -> _Refused:
    return _Refused(f"{name}, which JSON cannot hold (a non-finite number)")


def _float(text: str) -> float | _Refused:
    value = float(text)
    if math.isfinite(value):
        return value
    return _Refused(f"{_clip(text, 20)}, a number too large for a float (it reads as infinity)")


def _int(text: str) -> int | _Refused:
    digits = len(text.lstrip("-"))
    value = int(text) if digits <= MAX_INT_DIGITS else None
    if value is None or abs(value) >= 2**63:
        return _Refused(f"a {digits}-digit integer, longer than any field of ours holds")
    return value


def _pairs(items: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for key, value in items:
        if key in seen and not isinstance(seen, _Repeated):
            seen = _Repeated(seen)
            seen.key = key
        seen[key] = value
    return seen


LONE_SURROGATE = "a lone surrogate (an unpaired \\ud800-\\udfff escape)"


def _lone_surrogate(text: str) -> bool:
    """Text no file, terminal or page can hold: an escape of half a UTF-16 pair."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _first_refused(value: object, path: str = "") -> tuple[str, str] | None:
    """The first value strict JSON refuses, as (its path, what it is)."""
    here = path or "the top level"
    if isinstance(value, _Refused):
        return here, value.what
    if isinstance(value, str):
        return (here, LONE_SURROGATE) if _lone_surrogate(value) else None
    if isinstance(value, _Repeated):
        return here, f"the key {_clip(value.key)!r} twice in one object"
    if isinstance(value, dict):
        if any(_lone_surrogate(key) for key in value):
            return here, f"a key that is {LONE_SURROGATE}"
        items = ((f"{path}.{key}" if path else key, item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", item) for i, item in enumerate(value))
    else:
        return None
    return next(filter(None, (_first_refused(item, at) for at, item in items)), None)


def _clip(text: str, limit: int = 80) -> str:
    """``text`` as a refusal shows it: at most ``limit`` characters of it."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def parse_json(text: str, where: str) -> object:
    """Strict JSON: no NaN or Infinity (nor a number so large it reads as infinity), no
    key twice in one object, no nesting deeper than MAX_DEPTH, no integer longer than
    MAX_INT_DIGITS, no lone surrogate. A ConfigError names ``where`` and the field."""
    deepest, at = _depth(text)
    if deepest > MAX_DEPTH:
        raise ConfigError(
            f"{where} nests {deepest} levels deep (past {MAX_DEPTH} at character {at}); no "
            f"convbn-compat file nests more than {MAX_DEPTH}: it is not one of ours"
        )
    try:
        data = json.loads(
            text,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
            object_pairs_hook=_pairs,
        )
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{where} is not valid JSON (truncated or corrupt?): {exc}; regenerate or remove it"
        ) from None
    found = _first_refused(data)
    if found is not None:
        field_, what = found
        raise ConfigError(
            f"{where}: {_clip(field_)} holds {what}; regenerate the file, or correct that field"
        )
    return data


def read_json(path: Path, what: str) -> object:
    """Parse a JSON file strictly (``parse_json``), or raise a ConfigError that names it
    and says what to do."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}): it is corrupt or not a convbn-compat file; regenerate or remove it"
        ) from None
    return parse_json(text, f"{what} {path}")


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _where(data: dict, path) -> str:
    """A JSON path as a reader finds it: ``cases[3] (ConvOp-...).outcome``."""
    parts = list(path)
    text = ""
    for i, part in enumerate(parts):
        if isinstance(part, int):
            text += f"[{part}]"
            if i == 1 and parts[0] == "cases":
                case = data["cases"][part]
                if isinstance(case, dict) and isinstance(case.get("id"), str):
                    text += f" ({case['id'][:80]})"
        else:
            text += f".{part}" if text else str(part)
    return text or "the top level"


_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a JSON object",
    "null": "null",
}


def _friendly(error, data: object) -> str:
    """A schema error as one line a person can act on: the field, what it holds, and
    what it must hold."""
    path = list(error.absolute_path)
    field_ = _where(data, path) if isinstance(data, dict) else "the top level"
    name = str(path[-1]) if path else "the document"
    if len(path) > 1 and isinstance(path[-1], int):
        name = f"{path[-2]}[{path[-1]}]"
    shown = "null" if error.instance is None else repr(error.instance)[:80]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"{field_}: '{missing}' is missing (lacks '{missing}')"
    if error.validator == "type":
        kinds = error.validator_value
        kinds = [kinds] if isinstance(kinds, str) else kinds
        words = " or ".join(_TYPE_WORDS.get(k, k) for k in kinds)
        return f"{field_}: '{name}' is {shown}; it must be {words}"
    if error.validator in ("enum", "const"):
        allowed = error.validator_value
        allowed = allowed if isinstance(allowed, list) else [allowed]
        words = ", ".join("null" if a is None else str(a) for a in allowed)
        return f"{field_}: '{name}' is {shown}; choose one of: {words}"
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        extra = next((k for k in error.instance if k not in known), "?")
        return f"{field_}: an unknown field {_clip(extra)!r}; this version knows no such field"
    if error.validator in ("oneOf", "anyOf"):
        kinds = [_kinds(choice) for choice in error.validator_value]
        return f"{field_}: '{name}' is {shown}; it must be {' or '.join(kinds)}"
    if error.validator == "minimum":
        return f"{field_}: '{name}' is {shown}; it must be at least {error.validator_value}"
    if error.validator in ("pattern", "format"):
        return f"{field_}: '{name}' is {shown}, which is not the expected form"
    return f"{field_}: {error.message[:200]}"


def _kinds(schema: dict) -> str:
    """What a schema admits, in words: ``null``, ``a JSON object``."""
    if "$ref" in schema:
        schema = _validator().schema["$defs"][schema["$ref"].rpartition("/")[2]]
    kinds = schema.get("type", "a value of another form")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    return " or ".join(_TYPE_WORDS.get(k, k) for k in kinds)


def _schema_error(data: object, where: str) -> str | None:
    """The schema's verdict on ``data``: None, or one line naming the field."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is None:
        return None
    return f"{where}: {_friendly(error, data)}"


def _checked_part(name: str, value: object, path: Path) -> dict:
    """A part the writer was handed (the environment a worker saw), checked as the
    reader will check it."""
    import jsonschema

    schema = _validator().schema["$defs"][name]
    resolver = _validator().evolve(schema=schema)
    error = jsonschema.exceptions.best_match(resolver.iter_errors(value))
    if error is not None:
        raise ConfigError(f"results file {path}: {name}: {error.message}")
    return value  # type: ignore[return-value]


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
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ConfigError(
            f"{path} has schema version {version}; this convbn-compat reads up to "
            f"{SCHEMA_VERSION}: upgrade convbn-compat to read it"
        )
    where = f"results file {path}"
    problem = _schema_error(data, where)
    if problem is not None:
        raise ConfigError(
            f"{problem} (schema {SCHEMA} version {SCHEMA_VERSION}); regenerate the file "
            "or correct that field"
        )
    try:
        run = Run.from_json(data, path)
    except RecordError as exc:  # what the schema cannot say of a record (tf32 on a CPU)
        raise ConfigError(f"{where}: {exc}; regenerate the file") from None
    _check_meaning(where, run)
    return run


def _check_meaning(where: str, run: Run) -> None:
    """What the schema cannot say: the release fits the torch, each cell once, each
    case's run is in the file, and the kind's section belongs to the kind."""
    _check_release(where, run)
    _check_times(where, run)
    _check_cells(where, run)
    _check_sections(where, run)


def instant(text: str | None) -> _dt.datetime | None:
    """The moment an ISO 8601 time names, in UTC (one without an offset is UTC, as every
    file of ours is written); None for none. A ValueError for text that is no time."""
    if not text:
        return None
    when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))  # 3.10 reads no Z
    return when.replace(tzinfo=when.tzinfo or _dt.timezone.utc).astimezone(_dt.timezone.utc)


def _check_times(where: str, run: Run) -> None:
    """Each time is one: the report orders two runs of one cell by when they started."""
    times = [("started", run.started), ("finished", run.finished)]
    for i, entry in enumerate(run.runs):
        times += [(f"runs[{i}].started", entry.started), (f"runs[{i}].finished", entry.finished)]
    for name, text in times:
        try:
            instant(text)
        except ValueError:
            raise ConfigError(
                f"{where}: {name} is {_clip(text)!r}, which is not a time (ISO 8601, like "
                "2026-12-01T07:57:31+00:00); regenerate the file, or correct that field"
            ) from None


def _check_release(where: str, run: Run) -> None:
    try:
        tested = release_of(run.torch)
    except ValueError:
        raise ConfigError(
            f"{where}: environment.torch {_clip(run.torch)!r} is not a torch version (like "
            "'2.4.1' or '2.6.0.dev20241001+cu124'); regenerate the file"
        ) from None
    named = run.release
    if named is not None and named != INSTALLED:
        if named not in RELEASES:
            raise ConfigError(
                f"{where}: release {_clip(named)!r} is not in the release table "
                f"({', '.join(RELEASES)}); a newer convbn-compat may know it"
            )
        if named == NIGHTLY:
            if not is_prerelease_build(run.torch):
                raise ConfigError(
                    f"{where}: release 'nightly' but environment.torch is {run.torch}, a "
                    "release build; the file is mislabelled: regenerate it"
                )
        elif named != tested:
            raise ConfigError(
                f"{where}: release {named!r} but environment.torch is {run.torch} (release "
                f"{tested}); the file is mislabelled: regenerate it, or correct 'release'"
            )
    if run.flavour is not None and run.flavour not in (*FLAVOURS, INSTALLED):
        raise ConfigError(f"{where}: 'flavour' is {run.flavour!r}")


def _check_cells(where: str, run: Run) -> None:
    seen: dict[tuple, int] = {}
    for i, record in enumerate(run.records):
        if record.cell in seen:
            raise ConfigError(
                f"{where}: cases[{i}] ({_clip(record.id)}, {record.column_device}) repeats "
                f"cases[{seen[record.cell]}]: a file holds each cell once; keep the one "
                "you trust and delete the other"
            )
        seen[record.cell] = i
    ids = {r.id for r in run.runs}
    if len(ids) != len(run.runs):
        raise ConfigError(f"{where}: two runs share an id; regenerate the file")
    for i, record in enumerate(run.records):
        if record.run is not None and record.run not in ids:
            raise ConfigError(
                f"{where}: cases[{i}] ({_clip(record.id)}) names run {record.run!r}, which 'runs' "
                "lacks; regenerate the file"
            )


def _check_sections(where: str, run: Run) -> None:
    for section in ("fuzz", "benefit"):
        if getattr(run, section) is not None and run.kind != section:
            raise ConfigError(
                f"{where}: a {section!r} section in a file of kind {run.kind!r}; a "
                f"{section} run writes kind {section!r}: regenerate it"
            )
    if run.complete and not run.records and run.kind in ("tests", "reach"):
        raise ConfigError(
            f"{where}: marked complete with no cases; a finished run records its cells "
            "(regenerate it)"
        )
    if run.kind == "benefit" and run.complete and run.benefit is None:
        raise ConfigError(f"{where}: a complete benefit run without its 'benefit' section")
