"""The baseline: upstream's test loop, sequential, in one process.

Upstream's test_efficient_conv_bn_eval.py runs its 112 combinations one after another
inside one test method of one process. This script does the same work per case as the
suite (``run_case``: compile, compare, backward, SGD step, compare, count fires), in
that order, with nothing in parallel, and prints the wall time and a summary as JSON.
"""

from __future__ import annotations

import json
import sys
import time

started = time.perf_counter()
import torch  # noqa: E402

from convbn_compat.core.cases import UPSTREAM_CASES  # noqa: E402
from convbn_compat.suite.runner import run_case  # noqa: E402

imported = time.perf_counter()
outcomes: dict[str, int] = {}
fires: dict[str, int | None] = {}
case_seconds = 0.0
for case in UPSTREAM_CASES:
    result = run_case(case, "cpu")
    outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
    fires[case.id] = result.fire_count
    case_seconds += result.seconds
json.dump(
    {
        "torch": torch.__version__,
        "cases": len(UPSTREAM_CASES),
        "outcomes": outcomes,
        "fires": fires,
        "import_seconds": round(imported - started, 2),
        "case_seconds": round(case_seconds, 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
    },
    sys.stdout,
)
