"""Where one case's time goes: cProfile over run_case, cold compile cache.

    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmarks/profile_case.py [CASE_ID ...]

Prints the phases of a case (Dynamo tracing, AOTAutograd, Inductor code generation,
the C++ compiler it waits for, eager and compiled execution) as cumulative seconds of
the functions that run them, then the top functions by cumulative time.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

started = time.perf_counter()
import torch  # noqa: E402

from convbn_compat.core.cases import get_case  # noqa: E402
from convbn_compat.suite.runner import run_case  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - started

# (label, file suffix, function name): the first function that runs each phase.
PHASES = (
    ("whole case (run_case)", "convbn_compat/runner.py", "run_case"),
    ("Dynamo: trace and compile a frame", "_dynamo/convert_frame.py", "_compile"),
    ("Inductor backend (compile_fx)", "_inductor/compile_fx.py", "compile_fx"),
    ("pre-grad passes (the pass runs here)", "_inductor/fx_passes/pre_grad.py", "pre_grad_passes"),
    ("AOTAutograd (joint graph, partition)", "_functorch/aot_autograd.py", "aot_module_simplified"),
    ("Inductor codegen + compile of a graph", "_inductor/compile_fx.py", "compile_fx_inner"),
    ("waiting on subprocesses (C++ compiler)", "subprocess.py", "communicate"),
    ("waiting on compile workers", "concurrent/futures/_base.py", "result"),
    ("backward", "torch/_tensor.py", "backward"),
)


def main(argv: list[str]) -> int:
    ids = argv or ["ConvOp-bias-Conv2d-bn-module", "MultiUserConvOp-bias-Conv2d-bn-decomposed"]
    profile = cProfile.Profile()
    wall = time.perf_counter()
    profile.enable()
    outcomes = [run_case(get_case(i)).outcome.value for i in ids]
    profile.disable()
    wall = time.perf_counter() - wall
    stats = pstats.Stats(profile)
    print(
        f"torch {torch.__version__}; import {IMPORT_SECONDS:.1f} s; cases {ids} -> "
        f"{outcomes} in {wall:.1f} s"
    )
    print("\n| phase | cumulative s | share of the cases |\n|---|---|---|")
    for label, suffix, name in PHASES:
        total = sum(
            v[3]
            for (path, _, fn), v in stats.stats.items()
            if fn == name and path.replace("\\", "/").endswith(suffix)
        )
        print(f"| {label} | {total:.2f} | {100 * total / wall:.0f}% |")
    print("\nTop functions by cumulative time:\n")
    stats.sort_stats("cumulative").print_stats(18)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
