"""Suite plumbing: expectations, results file and JUnit XML for the matrix cases.

Each matrix test attaches its record to ``user_properties``; the controlling process
(the only one under pytest-xdist) gathers them into ``<results dir>/<run>.json``.
"""

from __future__ import annotations

import json
import os

import pytest

from convbn_compat import results
from convbn_compat.releases import ConfigError

RECORD_KEY = results.RECORD_KEY


class MatrixRecorder:
    """Keeps the results file current: rewritten after every case, finished at the end."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.writer: results.ResultsWriter | None = None

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
        record = dict(report.user_properties).get(RECORD_KEY)
        if record is None or report.when != "call":
            return
        record = dict(record, status="xfailed" if hasattr(report, "wasxfail") else report.outcome)
        self._writer().add(record)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.writer is not None:
            interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldstop)
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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--convbn-devices",
        default="cpu,cuda",
        help="comma-separated devices whose matrix cases run (default: cpu,cuda)",
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


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller records
        return
    try:
        import torch  # noqa: F401
    except ImportError:  # unit tests only: no matrix, no results file
        return
    name = results.default_run_name()
    if not config.option.xmlpath:
        config.option.xmlpath = str(results.results_dir() / f"{name}.xml")
    config.pluginmanager.register(MatrixRecorder(name), "convbn-matrix-recorder")


@pytest.fixture(scope="session")
def expectations():
    from convbn_compat import expectations as exp

    try:
        return exp.load()
    except ConfigError as exc:
        pytest.exit(f"convbn-compat: {exc}", returncode=4)
