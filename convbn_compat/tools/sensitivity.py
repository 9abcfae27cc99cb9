"""Suite sensitivity: break the installed pass on purpose and see whether the suite notices.

Each mutation is a small, deliberate fault in the pass's source file
(``torch/_inductor/fx_passes/efficient_conv_bn_eval.py``), written as text rewrites.
The source differs between releases (2.2 has only the module-level transform; 2.4 adds
the aten-level one, 2.5 the functional one; 2.13 rewrites the argument handling), so a
mutation lists every form of the line it targets, and applies wherever one matches. A
mutation that matches nothing in a release is ``not-applicable`` there.

``run()`` mutates the file of the environment it runs in, one mutation at a time, runs
the matrix suite against it, and restores the original, so it must only ever run in a
scratch environment (the ``sensitivity-X.Y`` Nox sessions build their own). The file is
replaced, never edited in place: uv hardlinks environments to its cache, and an in-place
write would corrupt the cache and every environment sharing it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..core.errors import ConfigError
from ..core.outcomes import FaultVerdict
from ..core.record import CORE_SUMMARY, Status
from ..core.results import atomic_write_json, load_run

__all__ = ["MUTATIONS", "Mutation", "apply", "pass_source", "run"]

PASS_FILE = ("_inductor", "fx_passes", "efficient_conv_bn_eval.py")


@dataclasses.dataclass(frozen=True)
class Mutation:
    id: str
    fault_class: str
    about: str
    rewrites: tuple[tuple[str, str], ...]
    """(regex, replacement) pairs, applied with re.MULTILINE; any that match apply."""
    scope: str
    """The function of the pass the rewrites are confined to (its decorator included)."""
    paths: tuple[str, ...]
    """The pass's paths that run the mutated code (``shim.paths.PassPath`` values)."""
    probe: str
    """The cells that should notice (a pytest -k expression): the guard's controls, or
    the cases with BatchNorm state far from the identity."""


FOLD = "folded weight and bias"
LAYOUT = "conv / transposed-conv layout"
GUARD = "guards on when the pass may fire"
NEVER = "the pass never fires"
COUNT_ONLY = "counts without rewriting"

# The pass's functions, and the paths that run each. The module path folds in
# efficient_conv_bn_eval; the aten and functional paths share the decomposed fold.
TRANSFORMS = {
    "module": "efficient_conv_bn_eval_graph_transform",
    "aten": "efficient_conv_bn_eval_graph_transform_decomposed",
    "functional": "efficient_conv_bn_eval_graph_transform_inlined",
}
FOLDS = {
    "module": ("efficient_conv_bn_eval", ("module",)),
    "decomposed": ("efficient_conv_bn_eval_decomposed", ("aten", "functional")),
}
COUNT_LINE = r'^(?P<indent>[ \t]+)counters\["inductor"\]\["efficient_conv_bn_eval"\] \+= 1\n'
STATS = "Stats"

# (id, class, about, probe, {path: rewrites}): a guard of each transform.
_GUARDS = (
    (
        "guard-training-ignored",
        "the pass also folds a BatchNorm in training mode",
        "Control-trainbn",
        {
            "module": [
                (
                    r"if not bn_mod\.track_running_stats or bn_mod\.training:",
                    "if not bn_mod.track_running_stats:",
                )
            ],
            "aten": [(r"if bn_node\.args\[-4\]:", "if False:")],
            "functional": [
                (r"if bn_node\.args\[-3\]:", "if False:"),
                (r"if training_arg:", "if False:"),
            ],
        },
    ),
    (
        "guard-nostats-ignored",
        "the pass also folds a BatchNorm without running statistics",
        "Control-bnnostats",
        {
            "module": [
                (
                    r"if not bn_mod\.track_running_stats or bn_mod\.training:",
                    "if bn_mod.training:",
                )
            ],
        },
    ),
    (
        "guard-multiuser-ignored",
        "the pass also fires when the conv output has other users",
        "Control-convmultiuser",
        {p: [(r"if len\(conv_node\.users\) > 1:", "if False:")] for p in TRANSFORMS},
    ),
    (
        "guard-flag-ignored",
        "the pass fires with its config flag off",
        "Control-passoff",
        {
            p: [(r"\n(\s*)and inductor_config\.efficient_conv_bn_eval_fx_passes,", ",")]
            for p in TRANSFORMS
        },
    ),
    (
        "guard-freezing-ignored",
        "the pass fires with Inductor's freezing on",
        "Control-freezing",
        {
            p: [(r"lambda match: not inductor_config\.freezing", "lambda match: True")]
            for p in TRANSFORMS
        },
    ),
    (
        "guard-notconv-ignored",
        "the pass folds a BatchNorm whose input is not a conv",
        "Control-notconv",
        {
            "module": [
                (
                    r"if not any\(isinstance\(input_mod, cls\) for cls in supported_convs\):",
                    "if False:",
                )
            ],
            "aten": [(r"if not any\(input_fn is cls for cls in supported_convs\):", "if False:")],
            "functional": [
                (r"if not any\(input_fn is cls for cls in supported_convs\):", "if False:")
            ],
        },
    ),
    (
        "never-fires",
        "every match returns before counting or rewriting",
        STATS,
        {p: [(COUNT_LINE, r"\g<indent>return\n")] for p in TRANSFORMS},
    ),
    (
        "counts-without-rewriting",
        "the counter goes up, then the transform returns without touching the graph",
        STATS,
        {
            p: [
                (
                    COUNT_LINE,
                    r'\g<indent>counters["inductor"]["efficient_conv_bn_eval"] += 1\n'
                    r"\g<indent>return\n",
                )
            ]
            for p in TRANSFORMS
        },
    ),
)

# (id, class, about, {fold: rewrites}): a term of each fold.
_FOLD_FAULTS = (
    (
        "fold-eps-dropped",
        FOLD,
        "rsqrt(var + eps) becomes rsqrt(var)",
        [(r"torch\.rsqrt\((bn[._]running_var) \+ bn[._]eps\)", r"torch.rsqrt(\1)")],
    ),
    (
        "fold-rsqrt-as-reciprocal",
        FOLD,
        "the scale is 1/(var + eps), not 1/sqrt(var + eps)",
        [(r"torch\.rsqrt\(", "torch.reciprocal(")],
    ),
    (
        "fold-bn-weight-dropped",
        FOLD,
        "the BatchNorm weight (gamma) is left out of the scale",
        [
            (
                r"coefff_on_the_fly = bn_weight\.view_as\(weight_coeff\) \* weight_coeff",
                "coefff_on_the_fly = weight_coeff",
            )
        ],
    ),
    (
        "fold-bn-bias-dropped",
        FOLD,
        "the BatchNorm bias (beta) is left out of the folded bias",
        [(r"bias_on_the_fly = bn_bias \+ ", "bias_on_the_fly = ")],
    ),
    (
        "fold-running-mean-dropped",
        FOLD,
        "the running mean is not subtracted",
        [(r"\(\s*bias_on_the_fly - bn[._]running_mean\s*\)", "(bias_on_the_fly)")],
    ),
    (
        "fold-mean-sign-flipped",
        FOLD,
        "the running mean is added instead of subtracted",
        [(r"bias_on_the_fly - (bn[._]running_mean)", r"bias_on_the_fly + \1")],
    ),
    (
        "fold-conv-bias-dropped",
        FOLD,
        "the conv's own bias is replaced by zeros",
        [(r"bias_on_the_fly = (conv[._]bias)\n", r"bias_on_the_fly = torch.zeros_like(\1)\n")],
    ),
    (
        "fold-weight-unscaled",
        FOLD,
        "the conv weight is not multiplied by the scale",
        [
            (
                r"weight_on_the_fly = weight_on_the_fly \* coefff_on_the_fly",
                "weight_on_the_fly = weight_on_the_fly",
            )
        ],
    ),
    (
        "fold-bias-unscaled",
        FOLD,
        "the bias difference is not multiplied by the scale",
        [(r"coefff_on_the_fly\.flatten\(\) \* \(", "(")],
    ),
    (
        "layout-transposed-as-conv",
        LAYOUT,
        "transposed convs get the scale on dim 0, as plain convs",
        [(r"target_shape\[:2\] = \[target_shape\[1\], target_shape\[0\]\]", "pass")],
    ),
    (
        "layout-conv-as-transposed",
        LAYOUT,
        "every conv is treated as transposed: the scale goes on dim 1",
        [
            (r"isinstance\(conv, nn\.modules\.conv\._ConvTransposeNd\)", "True"),
            (r'"conv_transpose" in conv\.__str__\(\)', "True"),
        ],
    ),
)


def _catalogue() -> tuple[Mutation, ...]:
    out = []
    for name, about, probe, by_path in _GUARDS:
        fault_class = {"never-fires": NEVER, "counts-without-rewriting": COUNT_ONLY}.get(
            name, GUARD
        )
        for path, rewrites in by_path.items():
            out.append(
                Mutation(
                    f"{name}-{path}", fault_class, about, tuple(rewrites), TRANSFORMS[path],
                    (path,), probe,
                )
            )  # fmt: skip
    for name, fault_class, about, rewrites in _FOLD_FAULTS:
        for fold, (function, paths) in FOLDS.items():
            out.append(
                Mutation(
                    f"{name}-{fold}", fault_class, about, tuple(rewrites), function, paths, STATS
                )
            )
    return tuple(out)


MUTATIONS: tuple[Mutation, ...] = _catalogue()
"""Every guard of every transform, every term of both folds: one mutation each."""


def region(source: str, function: str) -> tuple[int, int] | None:
    """Where ``function`` (its decorator included) stands in the pass's source."""
    match = re.search(rf"^def {re.escape(function)}\(", source, flags=re.MULTILINE)
    if match is None:
        return None
    start = match.start()
    decorator = source.rfind("\n@register_graph_pattern(", 0, start)
    if decorator != -1 and "\ndef " not in source[decorator:start]:
        start = decorator + 1
    end = re.search(r"^(?:@|def |class )", source[match.end() :], flags=re.MULTILINE)
    return start, (match.end() + end.start()) if end else len(source)


def apply(mutation: Mutation, source: str) -> str | None:
    """The mutated source, or None where the function or no form of the targeted line
    is in it (the release lacks that path, or that guard)."""
    span = region(source, mutation.scope)
    if span is None:
        return None
    body = source[span[0] : span[1]]
    hits = 0
    for pattern, replacement in mutation.rewrites:
        body, n = re.subn(pattern, replacement, body, flags=re.MULTILINE)
        hits += n
    return source[: span[0]] + body + source[span[1] :] if hits else None


def pass_source() -> Path:
    """The pass's file in this environment, found without importing torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"no torch in {sys.executable}")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*PASS_FILE)


def _replace(path: Path, text: str) -> None:
    # A new file, never an in-place write: the old one may be a hardlink into uv's cache.
    tmp = path.with_name(f".{path.name}.convbn-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    for pyc in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        pyc.unlink()


def _suite(label: str, workdir: Path, pytest_args: list[str]) -> dict:
    """Run the matrix suite once; what it says, and the first case that failed."""
    results = workdir / label
    env = dict(
        os.environ,
        # A fresh compile cache per run: nothing compiled against another mutant is reused.
        TORCHINDUCTOR_CACHE_DIR=str(workdir / f"{label}-inductor-cache"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/test_matrix.py",
        "-p",
        "no:cacheprovider",
        "--convbn-devices=cpu",
        f"--convbn-run={label}",
        f"--convbn-results={results}",
        "--convbn-sensitive-first",
        "-q",
        "--no-header",
        "-rN",
        *pytest_args,
    ]
    started = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = round(time.monotonic() - started, 1)
    first = None
    try:
        run = load_run(results / f"{label}.json")
        failed = [r for r in run.records if r.status is Status.FAILED]
        ran = len(run.records)
        if failed:
            c = failed[0].to_json()
            first = {k: c.get(k) for k in ("id", *CORE_SUMMARY, "path")}
    except ConfigError:  # no file (the run died before its first case), or a broken one
        ran = None
    return {
        "exit": proc.returncode,
        "seconds": seconds,
        "cases_run": ran,
        "first_failure": first,
        "tail": proc.stdout[-1500:] if proc.returncode not in (0, 1) else "",
    }


def run(release: str, out: Path, pytest_args: list[str], only: list[str] | None = None) -> int:
    """Mutate, run, restore, for each mutation; write ``out``; 0 if every applicable one
    was caught and the unmutated suite passed."""
    import torch  # noqa: F401  (fails here, clearly, if the environment has no torch)

    path = pass_source()
    # A pristine copy beside the environment: if an earlier run was killed between
    # mutating and restoring, the file is put back before anything else happens.
    pristine = Path(sys.prefix) / "convbn-pass-pristine.py"
    if pristine.is_file():
        if path.read_text(encoding="utf-8") != pristine.read_text(encoding="utf-8"):
            print(f"restoring {path} from {pristine} (an earlier run was cut short)")
            _replace(path, pristine.read_text(encoding="utf-8"))
    else:
        pristine.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    original = pristine.read_text(encoding="utf-8")
    # SIGTERM (a CI job cancelled) unwinds like Ctrl-C, so the finally below restores.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    chosen = [m for m in MUTATIONS if not only or m.id in only]
    unknown = set(only or ()) - {m.id for m in MUTATIONS}
    if unknown:
        raise SystemExit(
            f"unknown mutation(s) {sorted(unknown)}; choose from: "
            + ", ".join(m.id for m in MUTATIONS)
        )
    report = {
        "schema": "convbn-compat/sensitivity",
        "schema_version": 2,
        "release": release,
        "torch": _torch_version(),
        "pass_file": str(path),
        "paths": [p.value for p in _available_paths()],
        "complete": False,
        "baseline": None,
        "mutations": [],
    }
    with tempfile.TemporaryDirectory(prefix="convbn-sensitivity-") as tmp:
        workdir = Path(tmp)
        print(f"sensitivity {release}: unmutated suite first (it must pass)", flush=True)
        probes = " or ".join(sorted({m.probe for m in chosen}))
        report["baseline"] = _suite("baseline", workdir, ["-k", probes, *pytest_args])
        atomic_write_json(out, report)
        for mutation in chosen:
            mutated = apply(mutation, original)
            row = {
                "id": mutation.id,
                "fault_class": mutation.fault_class,
                "about": mutation.about,
                "paths": list(mutation.paths),
                "probe": mutation.probe,
            }
            if mutated is None:
                row["verdict"] = FaultVerdict.NOT_APPLICABLE.value
            else:
                try:
                    _replace(path, mutated)
                    # The probe first: a -k of the user's own, after it, wins.
                    args = ["-k", mutation.probe, *pytest_args, "--maxfail=1"]
                    ran = _suite(mutation.id, workdir, args)
                finally:
                    _replace(path, original)
                row.update(ran)
                row["verdict"] = _verdict(ran).value
            report["mutations"].append(row)
            print(
                f"  {mutation.id:28} {row['verdict']}"
                + (f"  ({row['seconds']} s)" if "seconds" in row else ""),
                flush=True,
            )
            atomic_write_json(out, report)
    report["complete"] = True
    atomic_write_json(out, report)
    print(markdown(report))
    baseline_ok = report["baseline"]["exit"] == 0
    all_caught = all(
        FaultVerdict(r["verdict"]) in (FaultVerdict.CAUGHT, FaultVerdict.NOT_APPLICABLE)
        for r in report["mutations"]
    )
    if not baseline_ok:
        print("the unmutated suite did not pass: the verdicts above mean nothing", file=sys.stderr)
    return 0 if baseline_ok and all_caught else 1


def _verdict(ran: dict) -> FaultVerdict:
    # --maxfail under pytest-xdist ends the run as "interrupted" (exit 2) after the
    # first failure, so a failed case, not the exit code, is what says "caught".
    if ran["first_failure"] is not None and ran["exit"] in (1, 2):
        return FaultVerdict.CAUGHT
    if ran["exit"] == 0:
        return FaultVerdict.MISSED
    return FaultVerdict.HARNESS_ERROR


def _available_paths():
    from ..shim.paths import available

    return available()


def _torch_version() -> str:
    import torch

    return torch.__version__


def score(report: dict) -> tuple[int, int]:
    applicable = [r for r in report["mutations"] if r["verdict"] != FaultVerdict.NOT_APPLICABLE]
    return sum(r["verdict"] == FaultVerdict.CAUGHT for r in applicable), len(applicable)


def markdown(report: dict) -> str:
    caught, applicable = score(report)
    lines = [
        f"torch {report['torch']}: {caught}/{applicable} applicable faults caught "
        f"(unmutated suite: {'passed' if report['baseline']['exit'] == 0 else 'FAILED'}, "
        f"{report['baseline']['seconds']} s)",
        "",
        "| fault | class | paths it hits | verdict | caught by (path it took) |",
        "|---|---|---|---|---|",
    ]
    for r in report["mutations"]:
        first = r.get("first_failure") or {}
        by = ""
        if first:
            by = (
                f"`{first['id']}` ({first.get('path') or '-'}): {first['outcome']} (expected "
                f"{first['expected_outcome']}; fires {first['fire_count']}, in graph "
                f"{first['graph_rewrites']})"
            )
        hits = ", ".join(r.get("paths", [])) or "-"
        lines.append(f"| `{r['id']}` | {r['fault_class']} | {hits} | {r['verdict']} | {by} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m convbn_compat.tools.sensitivity")
    parser.add_argument("--release", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", action="append", help="run just this mutation (repeatable)")
    parser.add_argument(
        "--i-know-this-mutates-torch",
        action="store_true",
        required=True,
        help="this environment's torch is modified (and restored) in place",
    )
    args, pytest_args = parser.parse_known_args(argv)
    return run(args.release, args.out, pytest_args, args.only)


if __name__ == "__main__":
    sys.exit(main())
