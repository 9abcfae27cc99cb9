"""The matrix's pytest plugin: the run's identity, its results file, crashes, interrupts.

Registered by ``-p convbn_compat.suite.plugin`` (pyproject's addopts). Each matrix test
attaches its :class:`~convbn_compat.core.record.CaseRecord` to ``user_properties``; the
controlling process (the only one under pytest-xdist) gathers them into
``<--convbn-results>/<--convbn-run>.json``, rewritten after every case. A case whose
interpreter dies is recorded as ``error`` with the signal; a Ctrl-C marks the file
incomplete. Nox passes the run's identity as options (``noxfile.py``'s ``_pytest``).
"""

from __future__ import annotations

import dataclasses
import faulthandler
import importlib.util
import os
import shutil
import signal
import tempfile
from importlib import metadata
from pathlib import Path

import pytest

from ..core import results
from ..core.cells import DEVICES, MATRIX_TEST, matrix_cells, parse_cell_id
from ..core.errors import ConfigError
from ..core.outcomes import Outcome
from ..core.record import CaseRecord, Status

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
        # SIGTERM (nox's after its grace period, a CI runner's cancel) ends the run the
        # same way, so the results file says it was interrupted instead of being cut off.
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, cls._handle)

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

    def __init__(self, run: results.RunIdentity, crash_dir: str | None = None) -> None:
        self.run = run
        self.crash_dir = crash_dir
        self.writer: results.ResultsWriter | None = None
        self.interrupted = False
        self.selection: results.Selection | None = None
        self.expected_cells: set[tuple[str, str, bool]] | None = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if session.items:  # under pytest-xdist the workers collect, and tell us below
            self._select(session.config, [item.nodeid for item in session.items])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        if self.selection is None:  # every worker collects the same selection
            self._select(node.config, ids)

    def _select(self, config: pytest.Config, node_ids: list[str]) -> None:
        """What this run selected, against every cell its devices have: a partial run
        writes into the session's file without taking the rest of it away."""
        from ..core import cases

        devices = {d.strip() for d in config.getoption("--convbn-devices").split(",")}
        every = {
            (case.id, device, tf32)
            for case, device, tf32 in matrix_cells(cases.CASES)
            if device in devices
        }
        chosen = {cell_of(node_id) for node_id in node_ids} - {None}
        if not chosen:
            return  # no matrix cell selected (the torch-side tests alone)
        option = config.option
        self.expected_cells = every | chosen
        self.selection = results.Selection(
            args=[str(a) for a in config.args],
            selected=len(chosen),
            full=every <= chosen,
            keyword=getattr(option, "keyword", "") or None,
            markers=getattr(option, "markexpr", "") or None,
            last_failed=bool(getattr(option, "lf", False)) or None,
        )

    def _writer(self, environment: dict | None = None) -> results.ResultsWriter:
        if self.writer is None:
            # The environment as the process that ran the case saw it; computed here
            # (importing torch) only when the first record is a crash's.
            try:
                self.writer = results.ResultsWriter(
                    self.run.path,
                    self.run.header(),
                    environment,
                    selection=self.selection,
                    expected_cells=self.expected_cells,
                )
            except ConfigError as exc:
                raise pytest.UsageError(str(exc)) from None
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
            if record is None:  # not a matrix case: pytest reports it as it is
                return
        elif record is None or report.when != "call":
            return
        else:
            record = CaseRecord.from_json(record)
        status = Status.XFAILED if hasattr(report, "wasxfail") else Status(report.outcome)
        record = dataclasses.replace(record, status=status)
        if record.outcome is None and report.failed:
            # The test stopped before run_case classified it: pytest-timeout's per-case
            # limit, or a failure of the harness itself. Either way the case did not
            # finish: an error, never a pass or a fusion verdict.
            record.outcome = Outcome.ERROR
            record.message = _failure_line(report)
        self._writer(properties.get(results.ENVIRONMENT_KEY)).add(record)

    def _crash_record(self, report: pytest.TestReport) -> CaseRecord | None:
        """The record of a case whose interpreter died (segfault, abort, kill)."""
        parsed = cell_of(report.nodeid)
        from ..core import cases

        # From the live list: a plugin may have added cases (tests/faults does).
        case = next((c for c in cases.CASES if parsed and c.id == parsed[0]), None)
        if case is None:
            return None
        _, device, tf32 = parsed
        worker = getattr(getattr(report, "node", None), "gateway", None)
        fatal = _fatal_error(self.crash_dir, getattr(worker, "id", None))
        from ..core.policy import Policy

        record = dataclasses.replace(
            CaseRecord.new(case, device, tf32),
            outcome=Outcome.ERROR,
            seconds=None,
            message="the interpreter died: "
            + (
                fatal
                or "no fatal-signal report (killed by SIGKILL, e.g. the OOM killer, or exited)"
            ),
        )
        return Policy.current().expectations.apply(record, _torch_version())

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
        doc = self.writer.doc
        mine = self.writer.entry.id
        counts: dict[str, int] = {}
        for record in doc.records:
            if record.run == mine:
                key = str(record.outcome or record.status)
                counts[key] = counts.get(key, 0) + 1
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        terminalreporter.write_sep("-", "convbn-compat matrix")
        terminalreporter.write_line(f"torch {doc.torch}: this run: {summary or 'no cells'}")
        kept = len(doc.records) - sum(counts.values())
        whole = "every cell" if doc.complete else "not every cell yet"
        terminalreporter.write_line(
            f"results: {self.writer.path} ({len(doc.records)} cells, {kept} from earlier "
            f"runs; {whole})"
        )
        if self.interrupted or _Interrupt.received:
            terminalreporter.write_line("interrupted: the results file is marked incomplete")


def cell_of(nodeid: str) -> tuple[str, str, bool] | None:
    """(case id, device, tf32) of a test id whose parameter is a cell id
    (``...::test_conv_bn_eval[ConvOp-bias-Conv2d-bn-module-cpu]``), else None."""
    test, _, param = nodeid.rpartition("[")
    if not nodeid.endswith("]") or not test.endswith("::" + MATRIX_TEST.rpartition("::")[2]):
        return None
    return parse_cell_id(param[:-1])


def _fatal_error(crash_dir: str | None, worker_id: str | None) -> str:
    """The first line faulthandler wrote when worker ``worker_id`` died, if any."""
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


def _share_cores(workers: int) -> int:
    """Give each xdist worker its share of the cores instead of all of them each.

    Left alone, every worker runs torch with one thread per core and Inductor compiles
    in a pool of one process per core: N workers oversubscribe the machine N times. On
    the 2-core machine this took the 112 upstream cases from 177 s to 143 s. What the
    cases compute and compare is unchanged: eager and compiled run in the same process.
    """
    cores = os.cpu_count() or 1
    if workers >= cores:
        # One compile at a time per worker, in the worker itself; the user's own
        # TORCHINDUCTOR_COMPILE_THREADS wins. (Workers inherit the environment.)
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    return max(1, cores // max(1, workers))


def _failure_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return f"the case did not finish: {text.strip()}"[:2000]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("convbn", "convbn-compat matrix")
    group.addoption(
        "--convbn-devices",
        default=",".join(DEVICES),
        help=f"comma-separated devices whose matrix cases run (default: {','.join(DEVICES)})",
    )
    results.add_run_options(group.addoption)
    group.addoption(
        "--convbn-warm-of",
        metavar="COLD_RESULTS_JSON",
        help="this is a warm rerun of that results file's run: fail where a case's outcome "
        "or fire counts differ from it, and refuse an empty compile cache",
    )
    group.addoption(
        "--convbn-sensitive-first",
        action="store_true",
        help="run the extended cases before upstream's (the sensitivity sessions do)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = {d.strip() for d in config.getoption("--convbn-devices").split(",") if d.strip()}
    unknown = wanted - set(DEVICES)
    if unknown:
        raise pytest.UsageError(
            f"--convbn-devices: unknown {sorted(unknown)}; choose {', '.join(DEVICES)}"
        )
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


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own (one per core)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` for a rerun of named cells: no more workers than cells.

    Each worker imports torch (seconds) before it runs anything: a one-cell rerun with
    two workers paid for two imports on two cores to run one case. Where every argument
    names one cell (``path::test[cell id]``) the count is known before collection;
    otherwise (a file, ``-k``, ``-m``) xdist's own count stands.
    """
    named = [cell_of(str(arg)) for arg in config.args]
    if not named or None in named:
        return None
    return max(1, min(os.cpu_count() or 1, len(named)))


def _torch_version() -> str:
    """The installed torch's version, from its metadata: no import."""
    return metadata.version("torch")


CRASH_DIR = pytest.StashKey[str]()
THREADS = pytest.StashKey[int]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist, controller side: what each worker needs of the controller's set-up."""
    config = node.config
    if CRASH_DIR in config.stash:
        node.workerinput["convbn_crash_dir"] = config.stash[CRASH_DIR]
        node.workerinput["convbn_threads"] = config.stash[THREADS]


@pytest.hookimpl(trylast=True)  # after pytest's own faulthandler plugin
def pytest_configure(config: pytest.Config) -> None:
    _Interrupt.install()
    if hasattr(config, "workerinput"):  # an xdist worker: the controller records
        threads = config.workerinput.get("convbn_threads")
        if threads:
            import torch

            torch.set_num_threads(threads)
        crash_dir = config.workerinput.get("convbn_crash_dir")
        if crash_dir:
            # If a case kills this worker, the controller reads which signal it was here.
            log = open(Path(crash_dir) / f"{config.workerinput['workerid']}.log", "w")  # noqa: SIM115
            config._convbn_crash_log = log  # kept open for faulthandler until exit
            faulthandler.enable(file=log)
        return
    # The controller never imports torch (seconds of a one-case rerun); its workers do.
    if importlib.util.find_spec("torch") is None:  # unit tests only: no matrix, no file
        return
    try:
        run = results.RunIdentity.from_options(
            config.getoption, results.default_run_name(_torch_version())
        )
        results.ResultsWriter.check(run.path)  # before any case runs, not after the first
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    crash_dir = None
    workers = getattr(config.option, "numprocesses", None)
    if workers:
        # Each worker writes its fatal-signal report here (pytest_configure_node).
        crash_dir = config.stash[CRASH_DIR] = tempfile.mkdtemp(prefix="convbn-crash-")
        config.stash[THREADS] = _share_cores(
            workers if isinstance(workers, int) else os.cpu_count() or 1
        )
    if not config.option.xmlpath:
        config.option.xmlpath = str(run.path.with_suffix(".xml"))
    config.pluginmanager.register(MatrixRecorder(run, crash_dir), "convbn-matrix-recorder")
