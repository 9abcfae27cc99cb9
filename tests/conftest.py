"""Suite plumbing: expectations, results file and JUnit XML for the matrix cases.

Each matrix test attaches its record to ``user_properties``; the controlling process
(the only one under pytest-xdist) gathers them into ``<results dir>/<run>.json``.
"""

from __future__ import annotations

import faulthandler
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from convbn_compat import results
from convbn_compat.outcomes import Outcome
from convbn_compat.releases import ConfigError

RECORD_KEY = results.RECORD_KEY
INTERRUPTED_KEY = "convbn_interrupted"


class _Interrupt:
    """Remembers that SIGINT arrived, even where its KeyboardInterrupt was swallowed.

    Python raises KeyboardInterrupt wherever the main thread happens to be. When that is
    a weakref finalizer or ``__del__`` (torch runs many during a compile), Python
    reports it as "unraisable" and carries on, and pytest then fails whichever case was
    running, with no message: on torch 2.15 a Ctrl-C mid-suite left a finished, "complete"
    results file with one passing case marked failed, in 5 of 6 tries. So the handler
    also sets a flag: the case it interrupted is not recorded, the session stops after
    it, and the results file says incomplete.
    """

    received = False

    @classmethod
    def install(cls) -> None:
        # Only over Python's default: a shell that started us with SIGINT ignored, or a
        # user's own handler, is left as it is.
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, cls._handle)

    @classmethod
    def _handle(cls, signum, frame):
        cls.received = True
        raise KeyboardInterrupt


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if _Interrupt.received:
        # Runs where the case ran (an xdist worker or the only process): the report
        # carries the mark to the controller, which leaves the case out.
        report.user_properties.append((INTERRUPTED_KEY, True))
        item.session.shouldstop = "interrupted (SIGINT)"
    return report


class MatrixRecorder:
    """Keeps the results file current: rewritten after every case, finished at the end."""

    def __init__(self, name: str, crash_dir: str | None = None) -> None:
        self.name = name
        self.crash_dir = crash_dir
        self.writer: results.ResultsWriter | None = None
        self.interrupted = False

    def _writer(self) -> results.ResultsWriter:
        if self.writer is None:
            install = os.environ.get("CONVBN_INSTALL_RECORD")
            self.writer = results.ResultsWriter(
                results.results_dir() / f"{self.name}.json",
                {
                    "session": self.name,
                    "release": os.environ.get("CONVBN_RELEASE"),
                    "flavour": os.environ.get("CONVBN_FLAVOUR"),
                    "install": json.loads(install) if install else None,
                },
            )
        return self.writer

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        if properties.get(INTERRUPTED_KEY):
            # Its verdict may be the interrupt's, not torch's: leave the case out.
            self.interrupted = True
            return
        record = properties.get(RECORD_KEY)
        if record is None and report.failed and report.when == "???":
            record = self._crash_record(report)  # pytest-xdist: the worker died
        elif record is None or report.when != "call":
            return
        record = dict(record, status="xfailed" if hasattr(report, "wasxfail") else report.outcome)
        if record["outcome"] is None and report.failed:
            # The test stopped before run_case classified it: pytest-timeout's per-case
            # limit, or a failure of the harness itself. Either way the case did not
            # finish: an error, never a pass or a fusion verdict.
            record["outcome"] = Outcome.ERROR.value
            record["message"] = _failure_line(report)
        self._writer().add(record)

    def _crash_record(self, report: pytest.TestReport) -> dict | None:
        """The record of a case whose interpreter died (segfault, abort, kill)."""
        if "test_conv_bn_eval[" not in report.nodeid:
            return None
        parsed = results.parse_cell_id(report.nodeid.rpartition("[")[2].rstrip("]"))
        from convbn_compat import cases

        # From the live list: a plugin may have added cases (tests/faults does).
        case = next((c for c in cases.CASES if parsed and c.id == parsed[0]), None)
        if case is None:
            return None
        _, device, tf32 = parsed
        worker = getattr(getattr(report, "node", None), "gateway", None)
        fatal = _fatal_error(getattr(worker, "id", None))
        import torch

        from convbn_compat import expectations as exp

        expected = exp.load().lookup(case.id, device, torch.__version__)
        return dict(
            results.new_record(case, device, tf32),
            outcome=Outcome.ERROR.value,
            expected_outcome=expected.outcome.value,
            expectation_reason=expected.reason,
            seconds=None,
            message="the interpreter died: "
            + (
                fatal
                or "no fatal-signal report (killed by SIGKILL, e.g. the OOM killer, or exited)"
            ),
        )

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.crash_dir:
            shutil.rmtree(self.crash_dir, ignore_errors=True)
        if self.writer is not None:
            interrupted = (
                exitstatus == pytest.ExitCode.INTERRUPTED
                or bool(session.shouldstop)
                or self.interrupted
                or _Interrupt.received
            )
            self.writer.finish(complete=not interrupted, exitstatus=int(exitstatus))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.writer is None:
            return
        counts: dict[str, int] = {}
        for case in self.writer.data["cases"]:
            key = case["outcome"] or case["status"]
            counts[key] = counts.get(key, 0) + 1
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        terminalreporter.write_sep("-", "convbn-compat matrix")
        terminalreporter.write_line(f"torch {self.writer.data['environment']['torch']}: {summary}")
        terminalreporter.write_line(f"results: {self.writer.path}")
        if self.interrupted or _Interrupt.received:
            terminalreporter.write_line("interrupted: the results file is marked incomplete")


CRASH_DIR_ENV = "CONVBN_CRASH_DIR"


def _fatal_error(worker_id: str | None) -> str:
    """The first line faulthandler wrote when worker ``worker_id`` died, if any."""
    crash_dir = os.environ.get(CRASH_DIR_ENV)
    if not crash_dir or not worker_id:
        return ""
    try:
        text = (Path(crash_dir) / f"{worker_id}.log").read_text(errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        # "Fatal Python error: Segmentation fault", "... Aborted", ...
        if line.startswith("Fatal Python error:"):
            return line.removeprefix("Fatal Python error:").strip()
    return ""


WORKER_THREADS_ENV = "CONVBN_WORKER_THREADS"


def _share_cores(workers: int) -> None:
    """Give each xdist worker its share of the cores instead of all of them each.

    Left alone, every worker runs torch with one thread per core and Inductor compiles
    in a pool of one process per core: N workers oversubscribe the machine N times. On
    the 2-core machine this took the 112 upstream cases from 177 s to 143 s. What the
    cases compute and compare is unchanged: eager and compiled run in the same process.
    """
    cores = os.cpu_count() or 1
    os.environ.setdefault(WORKER_THREADS_ENV, str(max(1, cores // max(1, workers))))
    if workers >= cores:
        # One compile at a time per worker, in the worker itself; the user's own
        # TORCHINDUCTOR_COMPILE_THREADS wins.
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")


def _failure_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return f"the case did not finish: {text.strip()}"[:2000]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--convbn-devices",
        default="cpu,cuda",
        help="comma-separated devices whose matrix cases run (default: cpu,cuda)",
    )
    parser.addoption(
        "--convbn-warm-of",
        metavar="COLD_RESULTS_JSON",
        help="this is a warm rerun of that results file's run: fail where a case's outcome "
        "or fire counts differ from it, and refuse an empty compile cache",
    )
    parser.addoption(
        "--convbn-sensitive-first",
        action="store_true",
        help="run the extended cases before upstream's (the sensitivity sessions do)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = {d.strip() for d in config.getoption("--convbn-devices").split(",") if d.strip()}
    unknown = wanted - {"cpu", "cuda"}
    if unknown:
        raise pytest.UsageError(f"--convbn-devices: unknown {sorted(unknown)}; choose cpu, cuda")
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        device = spec.params.get("device") if spec else None
        (drop if device is not None and device not in wanted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    if config.getoption("--convbn-sensitive-first"):
        # Extended cases (random BN state, controls) first: a broken pass is caught
        # sooner, which matters when each run stops at its first failure.
        items.sort(key=lambda item: item.get_closest_marker("extended") is None)


@pytest.hookimpl(trylast=True)  # after pytest's own faulthandler plugin
def pytest_configure(config: pytest.Config) -> None:
    _Interrupt.install()
    if hasattr(config, "workerinput"):  # an xdist worker: the controller records
        threads = os.environ.get(WORKER_THREADS_ENV)
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        crash_dir = os.environ.get(CRASH_DIR_ENV)
        if crash_dir:
            # If a case kills this worker, the controller reads which signal it was here.
            log = open(Path(crash_dir) / f"{config.workerinput['workerid']}.log", "w")  # noqa: SIM115
            config._convbn_crash_log = log  # kept open for faulthandler until exit
            faulthandler.enable(file=log)
        return
    try:
        import torch
    except ImportError:  # unit tests only: no matrix, no results file
        return
    crash_dir = None
    workers = getattr(config.option, "numprocesses", None)
    if workers:
        # Workers inherit the environment: each writes its fatal-signal report there.
        crash_dir = os.environ[CRASH_DIR_ENV] = tempfile.mkdtemp(prefix="convbn-crash-")
        _share_cores(workers if isinstance(workers, int) else os.cpu_count() or 1)
    name = results.default_run_name()
    if not config.option.xmlpath:
        config.option.xmlpath = str(results.results_dir() / f"{name}.xml")
    config.pluginmanager.register(MatrixRecorder(name, crash_dir), "convbn-matrix-recorder")


@pytest.fixture(scope="session")
def cold_run(pytestconfig):
    """The records of the cold run a warm rerun is checked against, or None."""
    path = pytestconfig.getoption("--convbn-warm-of")
    if not path:
        return None
    cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR", "")
    if not cache or not any(Path(cache).iterdir()):
        pytest.exit(f"--convbn-warm-of: the compile cache {cache!r} is empty: not warm", 4)
    from convbn_compat.matrix import load_run

    try:
        run = load_run(Path(path))
    except ConfigError as exc:
        pytest.exit(f"--convbn-warm-of: {exc}", returncode=4)
    return {(c["id"], c["device"], c["tf32"]): c for c in run.data["cases"]}


@pytest.fixture(scope="session")
def expectations():
    from convbn_compat import expectations as exp

    try:
        return exp.load()
    except ConfigError as exc:
        pytest.exit(f"convbn-compat: {exc}", returncode=4)
