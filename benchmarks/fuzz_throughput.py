"""Generated examples per minute, side by side in one run, and a check that the
compile cache hides nothing.

    python benchmarks/fuzz_throughput.py --python .nox/fuzz-2-15-cpu/bin/python \
        --examples 60 --record docs/benchmarks.md

Runs the same seeded search three times in that environment, each stopping after the
same number of examples:

* one worker, an empty Inductor cache (cold);
* N workers (default: one per core), an empty cache (cold);
* N workers again, on the cache the second run left (warm): the same examples as the
  cold N-worker run (one seed and one number of workers give one set of examples; one
  worker draws another set of the same distribution).

The warm run must give every example the verdict the cold one gave (outcome, blame and
fire counts both ways): with pre-grad passes run before any cache lookup, a cache may
only save time, never hide the pass.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convbn_compat.core.results import load_run  # noqa: E402

OBSERVED = ("outcome", "blame", "fires", "fires_off")


def _run(
    python: str, device: str, examples: int, seed: int, workers: int, cache: Path, work: Path
) -> dict:
    verdicts = work / f"verdicts-{workers}-{time.monotonic_ns()}.jsonl"
    out = work / f"fuzz-{workers}.json"
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    subprocess.run(
        [
            *(python, "-m", "convbn_compat.generator.fuzz", "--max-examples", str(examples)),
            *("--device", device),
            *("--minutes", "60", "--seed", str(seed), "--workers", str(workers)),
            *("--db", str(work / f"db-{time.monotonic_ns()}"), "--out", str(out)),
            *("--verdicts", str(verdicts), "--run", "bench"),
        ],
        env=env,
        check=True,
        cwd=work,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    lines = [json.loads(line) for line in verdicts.read_text().splitlines()]
    data = load_run(out)
    return {
        "workers": workers,
        "wall_s": round(wall, 1),
        "examples": len(lines),
        "per_minute": round(60 * len(lines) / wall, 1),
        "signatures": len(data.records),
        "torch": data.torch,
        "verdicts": {line["id"]: {k: line[k] for k in OBSERVED} for line in lines},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the Python of a torch environment")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--examples", type=int, default=60)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="the many (default: cores)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", type=Path, help="append the Markdown record here")
    args = parser.parse_args()
    # The runs start in a scratch folder: a relative path must not change meaning there.
    # (abspath, not resolve: a venv's python is a symlink that must stay one.)
    python = os.path.abspath(args.python) if os.sep in args.python else args.python
    cores, n = os.cpu_count() or 1, args.workers
    work = Path(tempfile.mkdtemp(prefix="convbn-fuzz-bench-"))
    run = functools.partial(_run, python, args.device, args.examples, args.seed)
    try:
        one = run(1, work / "cache-1", work)
        cold = run(n, work / "cache-n", work)
        warm = run(n, work / "cache-n", work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    same_examples = set(cold["verdicts"]) == set(warm["verdicts"])
    differ = [i for i, v in cold["verdicts"].items() if warm["verdicts"].get(i) != v]
    rows = [
        ("1 worker, cold cache", one, "1.00"),
        (f"{n} workers, cold cache", cold, f"{one['wall_s'] / cold['wall_s']:.2f}"),
        (f"{n} workers, warm cache", warm, f"{one['wall_s'] / warm['wall_s']:.2f}"),
    ]
    lines = [
        f"\n### Fuzz throughput, {dt.date.today().isoformat()}: torch {one['torch']}, "
        f"{args.device}, {cores} cores ({platform.processor() or platform.machine()}), "
        f"{args.examples} examples, seed {args.seed}\n",
        "| run | wall | examples a minute | speed-up over 1 worker |",
        "|---|---|---|---|",
        *(
            f"| {name} | {r['wall_s']} s | {r['per_minute']} | {ratio}x |"
            for name, r, ratio in rows
        ),
        "",
        f"The cold and the warm {n}-worker runs ran the same {len(cold['verdicts'])} "
        f"examples: {same_examples}. "
        f"Verdicts (outcome, blame, fires with the pass on and off) that differ between "
        f"the cold and the warm run: {len(differ)}{' ' + str(differ[:5]) if differ else ''}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.record:
        with args.record.open("a", encoding="utf-8") as fh:
            fh.write(text)
    return 0 if same_examples and not differ else 1


if __name__ == "__main__":
    sys.exit(main())
