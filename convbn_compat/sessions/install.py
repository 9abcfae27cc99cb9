"""Installing a release into a session's environment, and refusing one that is not whole.

Torch first, from its index alone; then this project and its test dependencies, both
under the release's constraints file. A record of how (index, commands, backend) is
written into the environment only after every step succeeded: it tells a complete
environment from one whose install failed or was interrupted, so ``nox -R`` never tests
the latter, and every run names it as its install record (``--convbn-install-record``).
Takes nox's ``Session`` object; imports nox only through it.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from ..core.errors import ConfigError
from ..core.releases import PROJECT_ROOT, Release, torch_index
from .environments import WRITE_BYTECODE, pythonpath

__all__ = ["INSTALLED_MARKER", "Installed", "install"]

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


class Installed:
    """A complete environment: where its record is, and the variables its runs need."""

    def __init__(self, venv: Path) -> None:
        self.venv = venv
        self.record = venv / INSTALLED_MARKER

    @property
    def cache(self) -> Path:
        """One Inductor cache per environment: releases never read each other's entries,
        and removing the environment removes its cache."""
        return self.venv / "inductor-cache"

    def env(self) -> dict[str, str | None]:
        return {"TORCHINDUCTOR_CACHE_DIR": str(self.cache), **WRITE_BYTECODE}


def _plan(release: Release, flavour: str, backend: str) -> tuple[str | None, list, list, dict]:
    """(index, torch's install arguments, the harness's, the install record)."""
    index = torch_index(release, flavour)
    if release.is_nightly and index is None:
        raise ConfigError(
            "nightly wheels exist only on the PyTorch nightly index; with "
            "CONVBN_TORCH_INDEX=default this session would test the newest stable release "
            "instead. Unset CONVBN_TORCH_INDEX, or point it at an index that has nightlies"
        )
    if not release.constraints.is_file():
        raise ConfigError(
            f"missing constraints file {release.constraints} for release {release.key}"
        )
    constraints = ["-c", str(release.constraints.relative_to(PROJECT_ROOT))]
    torch_args = [release.requirement(), *constraints]
    if release.is_nightly:
        torch_args.append("--pre")  # nightlies are dev versions
    if index is not None:
        # Only the chosen index: torch and its CUDA companions can come from nowhere
        # else, so a same-named package on another index cannot replace them. Extra
        # indexes from the installer's config files and variables are left out too.
        torch_args += ["--index-url", index]
        torch_args += ["--no-config"] if backend == "uv" else ["--isolated"]
    project_args = ["-e", ".[test]", *constraints]
    record = {
        "torch_index": index or "default",
        "commands": ["install " + shlex.join(torch_args), "install " + shlex.join(project_args)],
        "backend": backend,
        "bytecode": "written on first import",
    }
    return index, torch_args, project_args, record


def install(session, release: Release, flavour: str) -> Installed:
    """Install ``release`` into the session's environment (or, under ``-R``, check that
    the environment is a complete one of it); what its runs need."""
    try:
        index, torch_args, project_args, record = _plan(release, flavour, session.venv_backend)
    except ConfigError as exc:
        session.error(str(exc))
    # Every command of the session, its install check too (nox unsets a None variable).
    session.env.update(WRITE_BYTECODE)
    installed = Installed(Path(session.virtualenv.location))
    expected = json.dumps(record, sort_keys=True)
    check = ["python", "-m", "convbn_compat", "env"]
    if not release.is_nightly:
        check += ["--expect-torch", release.torch]
    # run_install runs unless installs are skipped (-R/--no-install on a reused env).
    if session.run_install("python", "-c", "", silent=True) is None:
        if not installed.record.is_file() or installed.record.read_text() != expected:
            session.error(
                f"{installed.venv} is not a complete environment for torch "
                f"{release.torch}: its last install failed, was interrupted or used other "
                "commands. Run the session without -R/--no-install to rebuild it"
            )
        # Files and version against the install's RECORD, without importing torch: the
        # full check imports it, seconds that a one-case rerun should not pay.
        session.run(*check, "--quick", env=pythonpath())
        return installed
    installed.record.unlink(missing_ok=True)
    _install_steps(session, release, index, torch_args, project_args)
    try:
        session.run(*check, env=pythonpath(), silent=True)
    except _command_failed():
        _repair(session, installed, torch_args, index)
        session.run(*check, env=pythonpath())
    installed.record.write_text(expected)
    return installed


def _command_failed() -> type[Exception]:
    import nox.command

    return nox.command.CommandFailed


def _network() -> dict[str, str]:
    # Each index request gives up after CONVBN_INDEX_TIMEOUT seconds, retried twice: an
    # unreachable index fails the session in bounded time instead of hanging it.
    timeout = os.environ.get("CONVBN_INDEX_TIMEOUT", "30")
    return {
        "UV_HTTP_TIMEOUT": timeout,
        "UV_HTTP_RETRIES": "2",
        "PIP_TIMEOUT": timeout,
        "PIP_RETRIES": "2",
    }


def _only_chosen(index: str | None) -> dict[str, None]:
    return {var: None for var in EXTRA_INDEX_VARS} if index is not None else {}


def _install_steps(session, release: Release, index, torch_args, project_args) -> None:
    net = _network()
    where = index or "the default index (CONVBN_TORCH_INDEX=default)"
    try:
        session.install(*torch_args, env={**net, **_only_chosen(index)})
    except _command_failed():
        session.error(
            f"could not install {release.requirement()} from {where}: the index is "
            "unreachable, or lacks that release for this platform (the installer's message "
            "is above). Check CONVBN_TORCH_INDEX and the network"
        )
    # The harness step needs no torch (pyproject does not depend on it), so it cannot
    # swap torch or its companions for same-named packages of the default index.
    try:
        session.install(*project_args, env=net)
    except _command_failed():
        session.error(
            f"could not install the harness ({shlex.join(project_args)}); the installer's "
            "message is above"
        )


def _repair(session, installed: Installed, torch_args, index) -> None:
    """Installed but broken (files deleted or damaged after a past install): the
    installer saw the package as present. Uninstall it, then install it again. (Not
    uv's --reinstall: it implies --refresh, which unpacks every wheel into uv's cache
    again, some 3.5 GB per repair.)"""
    session.warn(f"torch in {installed.venv} is broken; reinstalling it")
    python = str(installed.venv / "bin" / "python")
    if session.venv_backend == "uv":
        uninstall = [_uv(), "pip", "uninstall", "--python", python, "torch"]
    else:
        uninstall = [python, "-m", "pip", "uninstall", "-y", "torch"]
    session.run_install(*uninstall, external=True)
    session.install(*torch_args, env={**_network(), **_only_chosen(index)})


def _uv() -> str:
    """The uv that nox installs with (nox[uv] brings one; else the one on PATH)."""
    from nox.virtualenv import find_uv

    found = find_uv()  # (has_uv, path[, version]) depending on nox's version
    return found[1] if found[0] else "uv"
