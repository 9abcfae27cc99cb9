"""Every guard of the pass is held on every path a release has, in the committed results.

For each release of the table, each path its pass has (module from 2.2, aten from 2.4,
functional from 2.5) and each control of the case table (one per guard), some committed
CPU cell of that control took that path (its recorded ``path``) and kept the pass away
(``fused``). A control missing on a path, or a route that stopped reaching its path,
fails here without torch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from convbn_compat.core.cases import CONTROLS
from convbn_compat.core.outcomes import Outcome
from convbn_compat.core.releases import RELEASED
from convbn_compat.core.results import load_run
from convbn_compat.core.versions import torch_release
from convbn_compat.shim.paths import ARRIVED

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


def _records(release: str):
    files = sorted(RESULTS.glob(f"tests-{release}-cpu*.json"))
    return [r for f in files for r in load_run(f).records if r.device == "cpu"]


@pytest.mark.parametrize("release", RELEASED)
def test_every_control_holds_the_pass_away_on_every_path_the_release_has(release):
    records = _records(release)
    assert records, f"no committed CPU results for {release}"
    version = torch_release(f"{release}.0")
    have = [p for p, since in ARRIVED.items() if version >= torch_release(f"{since}.0")]
    missing = []
    for path in have:
        for name, *_ in CONTROLS:
            held = [
                r
                for r in records
                if r.id.startswith(f"{name}-")
                and r.path
                and path.value in r.path.split("+")
                and r.outcome is Outcome.FUSED
            ]
            if not held:
                missing.append(f"{name} on the {path} path")
    assert not missing, f"torch {release}: no fused cell for " + ", ".join(missing)
