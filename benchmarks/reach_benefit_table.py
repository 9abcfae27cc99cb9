"""The reach-and-benefit table of docs/reach-and-benefit.md, made from the committed files.

    python benchmarks/reach_benefit_table.py            # print it
    python benchmarks/reach_benefit_table.py --readme   # replace it between the markers

One row per release with both a reach file (docs/reach/reach-X.Y-cpu.json) and a
benefit file (docs/benefit/benefit-X.Y-cpu.json). Torch-free.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convbn_compat.core.outcomes import Outcome  # noqa: E402
from convbn_compat.core.releases import RELEASES  # noqa: E402
from convbn_compat.core.results import load_run  # noqa: E402

MARKERS = ("<!-- reach-table -->", "<!-- /reach-table -->")
HEADER = (
    "| release | torch | fused (of 9) | unsupported | other | warm FX graph cache | "
    "warm AOTAutograd cache | dynamic: Dynamo restarts | peak eager / off / on (MiB) | "
    "saved vs off | held for backward, saved |"
)


def _warm(case: dict | None) -> str:
    if case is None or case["outcome"] == Outcome.UNSUPPORTED.value:
        return "no cache"
    counters = case.get("cache_counters") or {}
    if case.get("cache_hits"):
        return "hit (pass ran)" if case["fire_count"] else "hit (pass skipped)"
    if any("bypass" in k for k in counters) or case.get("cache_bypass_reasons"):
        return "bypassed"
    return "miss"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def row(key: str) -> str | None:
    reach = ROOT / "docs" / "reach" / f"reach-{key}-cpu.json"
    benefit = ROOT / "docs" / "benefit" / f"benefit-{key}-cpu.json"
    if not (reach.is_file() and benefit.is_file()):
        return None
    r = load_run(reach)
    cases = {c.entry: c.to_json() for c in r.records}
    fused = sum(c["outcome"] == Outcome.FUSED.value for c in cases.values())
    unsupported = [n for n, c in cases.items() if c["outcome"] == Outcome.UNSUPPORTED.value]
    other = [
        f"{n}: {c['outcome']}"
        for n, c in cases.items()
        if c["outcome"] not in (Outcome.FUSED.value, Outcome.UNSUPPORTED.value)
    ]
    dynamic = cases.get("dynamic", {})
    restarts = "yes" if "Dynamo abandoned" in (dynamic.get("message") or "") else "no"
    section = load_run(benefit).benefit
    b = section.to_json() if section else {"configs": {}}
    peaks = []
    for config in ("eager", "off", "on"):
        c = b["configs"].get(config, {})
        peaks.append("error" if "error" in c else f"{c['peak_step_bytes'] / 2**20:.1f}")
    summary = b.get("summary") or {}
    cells = [
        key,
        r.torch,
        str(fused),
        ", ".join(unsupported) or "-",
        ", ".join(other) or "-",
        _warm(cases.get("warm-fx-graph")),
        _warm(cases.get("warm-aot-autograd")),
        restarts,
        " / ".join(peaks),
        _pct(summary.get("memory_saved_vs_off")),
        _pct(summary.get("held_for_backward_saved_vs_off")),
    ]
    return "| " + " | ".join(cells) + " |"


def table() -> str:
    rows = [r for r in (row(k) for k in RELEASES) if r]
    return "\n".join([HEADER, "|" + "---|" * HEADER.count(" | ") + "---|", *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="rewrite its table in the doc")
    args = parser.parse_args()
    text = table()
    if not args.readme:
        print(text)
        return 0
    readme = ROOT / "docs" / "reach-and-benefit.md"
    start, end = (re.escape(m) for m in MARKERS)
    old = readme.read_text()
    new, n = re.subn(f"{start}\n.*?\n{end}", f"{MARKERS[0]}\n{text}\n{MARKERS[1]}", old, flags=re.S)
    if n != 1:
        print(f"{readme}: no {MARKERS[0]} ... {MARKERS[1]} block", file=sys.stderr)
        return 2
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
