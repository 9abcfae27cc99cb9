"""The release table: the one source of truth for which torch each session tests.

Adding a release is one row in ``RELEASES`` and one file ``constraints/torch-X.Y.txt``
(the wheel ships that folder as ``convbn_compat/constraints``; ``constraints_file`` finds
it in either place).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

__all__ = [
    "FLAVOURS",
    "INSTALLED",
    "KINDS",
    "NEWEST",
    "NIGHTLY",
    "OLDEST",
    "RELEASED",
    "RELEASES",
    "Release",
    "checkout",
    "constraints_file",
    "get_release",
    "session_name",
    "torch_index",
]

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROJECT_ROOT = PACKAGE_DIR.parent
"""The checkout when this package runs from one (see ``checkout``); in an installed
wheel, site-packages, which is none."""

PYTORCH_INDEX = "https://download.pytorch.org/whl"
FLAVOURS = ("cpu", "cuda")  # the wheel flavours, named after the device they add
NIGHTLY = "nightly"
INSTALLED = "installed"
"""The pseudo-release of the ``*-installed`` sessions: the torch already installed."""

KINDS = ("tests", "warm", "fuzz", "reach", "benefit", "sensitivity")
"""Every kind of session; ``sensitivity`` has no flavour (it runs the CPU cases), and
``warm`` reruns a ``tests`` session on its compile cache."""


@dataclass(frozen=True)
class Release:
    """One row of the matrix: a torch minor release and how to install it."""

    key: str
    """Release key used in session names: ``"2.4"`` or ``"nightly"``."""
    torch: str
    """Exact pin (latest patch) for ``torch==``; empty for nightly (newest dev build)."""
    python: str
    """Python the session runs on; one that has wheels for this release."""
    cuda: str
    """CUDA wheel tag of the PyTorch index for the cuda flavour (``cu121``)."""

    @property
    def constraints(self) -> Path:
        return constraints_file(self.key)

    @property
    def is_nightly(self) -> bool:
        return self.key == NIGHTLY

    def requirement(self) -> str:
        return "torch" if self.is_nightly else f"torch=={self.torch}"

    def session(self, flavour: str, kind: str = "tests") -> str:
        return session_name(kind, self.key, flavour)


def checkout() -> Path | None:
    """The convbn-compat checkout this package runs from (the source tree, or an editable
    install of it); None where it runs from an installed wheel."""
    return PROJECT_ROOT if (PROJECT_ROOT / "noxfile.py").is_file() else None


def constraints_file(key: str) -> Path:
    """A release's constraints file: the checkout's ``constraints/torch-X.Y.txt``, which
    the sessions install under, or the copy an installed wheel carries."""
    root = checkout()
    folder = root / "constraints" if root else PACKAGE_DIR / "constraints"
    return folder / f"torch-{key}.txt"


def session_name(kind: str, release: str, flavour: str | None = None) -> str:
    """The Nox session of one kind of run, for a release key (or ``installed``) and a
    wheel flavour: ``tests-2.4-cuda``, ``reach-2.15-cpu``, ``sensitivity-2.2``,
    ``fuzz-installed``. The one place session names are made; the noxfile registers
    exactly these, and the report's rerun commands name them."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of session {kind!r}; kinds: {', '.join(KINDS)}")
    if release == INSTALLED:
        if kind in ("warm", "sensitivity"):
            raise ValueError(f"there is no {kind} session for the installed torch")
        return f"{kind}-{INSTALLED}"
    if kind == "sensitivity":
        return f"{kind}-{release}"
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}; choose one of: {', '.join(FLAVOURS)}")
    return f"{kind}-{release}-{flavour}"


# The CUDA tag is the one PyPI's default Linux wheel of that release was built with, so
# that the cuda flavour from the PyTorch index and from PyPI test the same build.
RELEASES: dict[str, Release] = {
    r.key: r
    for r in (
        Release("2.2", "2.2.2", "3.11", "cu121"),
        Release("2.3", "2.3.1", "3.11", "cu121"),
        Release("2.4", "2.4.1", "3.11", "cu121"),
        Release("2.5", "2.5.1", "3.11", "cu124"),
        Release("2.6", "2.6.0", "3.11", "cu124"),
        Release("2.7", "2.7.1", "3.11", "cu126"),
        Release("2.8", "2.8.0", "3.11", "cu128"),
        Release("2.9", "2.9.1", "3.11", "cu128"),
        Release("2.10", "2.10.0", "3.11", "cu128"),
        Release("2.11", "2.11.0", "3.11", "cu130"),
        Release("2.12", "2.12.1", "3.11", "cu130"),
        Release("2.13", "2.13.0", "3.11", "cu130"),
        Release("2.14", "2.14.1", "3.11", "cu130"),
        Release("2.15", "2.15.0", "3.11", "cu132"),
        Release(NIGHTLY, "", "3.11", "cu132"),
    )
}

RELEASED = tuple(k for k in RELEASES if k != NIGHTLY)
"""Every release but nightly, oldest first: what bisect, replay and the matrix walk."""
OLDEST = RELEASED[0]
NEWEST = RELEASED[-1]


def get_release(key: str) -> Release:
    try:
        return RELEASES[key]
    except KeyError:
        raise ConfigError(
            f"unknown release {key!r}; choose one of: {', '.join(RELEASES)}"
        ) from None


def torch_index(release: Release, flavour: str, env: dict[str, str] | None = None) -> str | None:
    """Where torch comes from for a session; ``None`` means the installer's default index.

    ``CONVBN_TORCH_INDEX`` overrides the PyTorch index: a URL (mirror, wheelhouse) or
    ``default`` for whatever index pip/uv is already configured with.
    """
    if flavour not in FLAVOURS:
        raise ConfigError(f"unknown flavour {flavour!r}; choose one of: {', '.join(FLAVOURS)}")
    env = os.environ if env is None else env
    override = env.get("CONVBN_TORCH_INDEX", "").strip()
    if override == "default":
        return None
    if override:
        if not override.startswith(("http://", "https://", "file://")):
            raise ConfigError(
                f"CONVBN_TORCH_INDEX={override!r} is neither 'default' nor a URL; give an "
                "index URL (https://..., file:///path/to/wheelhouse) or 'default' to take "
                "torch from the index pip/uv is configured with"
            )
        return override.rstrip("/")
    tag = "cpu" if flavour == "cpu" else release.cuda
    if release.is_nightly:
        return f"{PYTORCH_INDEX}/nightly/{tag}"
    return f"{PYTORCH_INDEX}/{tag}"
