"""The shim's knowledge of the pass's paths, against the installed torch: the paths its
pass has are the ones that shipped by this release (``shim.paths.ARRIVED``, which the
committed-results test in tests/unit uses without torch)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from convbn_compat.core.versions import torch_release  # noqa: E402
from convbn_compat.shim import paths  # noqa: E402


def test_the_paths_this_pass_has_are_the_ones_shipped_by_its_release():
    version = torch_release(torch.__version__)
    shipped = {p for p, since in paths.ARRIVED.items() if version >= torch_release(f"{since}.0")}
    assert set(paths.available()) == shipped
