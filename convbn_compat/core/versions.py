"""The one place that compares torch versions.

Capability probes (``hasattr``, signatures) are preferred everywhere else; this module
exists for the few facts that only a version tells: which row of the release table an
installed torch belongs to, and which expectation rows apply to it.

How special versions compare (decided once, here):

* a local label is ignored: ``2.4.1+cpu`` and ``2.4.1+cu121`` are both ``2.4.1``;
* a nightly or source build counts as the release it leads to:
  ``2.6.0.dev20241001+cu124`` and ``2.5.0a0+git9f17037`` count as ``2.6.0`` and
  ``2.5.0``. A nightly carries the code that its release will ship, so an
  expectation written ``>=2.6`` should hold for it (torchao maps them below instead,
  which hides nightlies from the newest rows).
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

__all__ = ["is_prerelease_build", "release_of", "torch_release", "torch_version_at_least"]


def _parse(version: str | Version) -> Version:
    if isinstance(version, Version):
        return version
    try:
        return Version(version)
    except InvalidVersion as exc:
        raise ValueError(
            f"{version!r} is not a torch version; expected something like '2.4.1' or "
            "'2.6.0.dev20241001+cu124'"
        ) from exc


def torch_release(version: str | Version) -> Version:
    """The release a version counts as: its X.Y.Z, without dev, pre or local parts."""
    return Version(_parse(version).base_version)


def release_of(version: str | Version) -> str:
    """The release-table key (``"2.4"``) of a version string."""
    major, minor = torch_release(version).release[:2]
    return f"{major}.{minor}"


def is_prerelease_build(version: str | Version) -> bool:
    """True for nightlies, release candidates and source builds."""
    return _parse(version).is_prerelease


def torch_version_at_least(minimum: str, version: str | Version | None = None) -> bool:
    """Whether ``version`` (default: the installed torch) is at least ``minimum``."""
    if version is None:
        import torch

        version = torch.__version__
    return torch_release(version) >= torch_release(minimum)
