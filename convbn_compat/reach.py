"""``python -m convbn_compat.reach``: does the pass fire where users compile their models?

One small model (two Conv2d-BatchNorm pairs in eval mode, random BatchNorm state) goes
through each entry point of ``entrypoints`` in a process of its own, with a compile
cache of its own, so no entry point sees another's compiled code. Each ends in an outcome
of the suite's vocabulary: fused (right, and the pass rewrote both pairs), not-fused,
wrong-result, error, or unsupported (the release cannot express it, with why).

    python -m convbn_compat.reach --device cpu --out results/reach-2.15-cpu.json

The results file is the suite's schema with ``"kind": "reach"``; ``report`` shows it as
a lane of its own.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import expectations, results
from .entrypoints import ENTRY_POINTS, PAIRS, EntryPoint, get_entry
from .outcomes import Outcome, Unsupported, classify

__all__ = ["main", "run_entry"]

RECORD = "REACH-RECORD: "
PARTIAL = "REACH-PARTIAL: "
ENTRY_TIMEOUT_S = 900  # AOTInductor's C++ build is the slowest: 60-100 s seen here


def _model(device: str):
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers = []
    channels = 3
    for _ in range(PAIRS):
        bn = nn.BatchNorm2d(8)
        with torch.no_grad():  # real statistics, so a wrong fold shows
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
        layers += [nn.Conv2d(channels, 8, 3, padding=1), bn, nn.ReLU()]
        channels = 8
    model = nn.Sequential(*layers).to(device).eval()
    x = torch.rand(4, 3, 16, 16, device=device)
    return model, x


def _grads(model):
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def _check(entry: EntryPoint, compiled, model, compiled_model, x) -> tuple[bool, float, str]:
    """Run eager and compiled side by side (forward, and backward where the entry
    trains); compare the outputs, then every parameter's gradient.

    On a GPU, TF32 stays at the release's default, as a user's run has it, and the
    comparison allows what upstream's test allows with TF32 on (atol 3e-3): eager and
    compiled convolutions round differently in TF32 (3.3e-4 apart under no_grad on the
    H200). Turning TF32 off through the new precision API instead makes AOTInductor's
    compile raise in 2.9 and later (it reads the legacy ``cudnn.allow_tf32``, which
    refuses to answer once the new API was used), which is not the pass either.
    """
    from .runner import Tolerance, compare

    tol = Tolerance.for_run(x.is_cuda)
    # A gradient sums over the batch and every pixel (1,024 terms here), in another order
    # once compiled: float32 rounding alone moves it by a few units in 1e-6 relative
    # (2.5e-6 seen on 2.15). A wrong fold is off by whole units; 1e-4 tells them apart.
    grad_tol = Tolerance(rtol=1e-4, atol=3e-3 if x.is_cuda else 1e-5)
    if entry.backward:
        out_eager = model(x)
        out = compiled(x)
        ok, err, msg = compare(out, out_eager, tol)
        if not ok:
            return ok, err, msg
        out_eager.mean().backward()
        out.mean().backward()
        errs = [err]
        for i, (g, ge) in enumerate(zip(_grads(compiled_model), _grads(model))):
            ok, err, msg = compare(g, ge, grad_tol)
            errs.append(err)
            if not ok:
                return False, err, f"gradient of parameter {i}: {msg}"
        return True, max(e for e in errs if e is not None), ""
    out_eager = model(x)
    return compare(compiled(x), out_eager, tol)


def _grad_mode(name: str):
    import torch

    return {
        "no-grad": torch.no_grad,
        "inference-mode": torch.inference_mode,
        "freezing": torch.no_grad,
        "aoti": torch.no_grad,
    }.get(name, contextlib.nullcontext)()


class _Bypasses:
    """Collects the caches' own words when they refuse an entry ("Bypassing autograd
    cache due to: ..."): the why behind a warm run that compiled afresh."""

    LOGGERS = ("torch._functorch._aot_autograd.autograd_cache", "torch._inductor.codecache")

    def __init__(self) -> None:
        import logging

        self.reasons: list[str] = []
        outer = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                text = record.getMessage()
                if "ypass" in text:
                    text = " ".join(re.sub(r" at 0x[0-9a-f]+", "", text).split())
                    outer.reasons.append(text[:300])

        self.handler = Handler(logging.DEBUG)
        self.loggers = [logging.getLogger(name) for name in self.LOGGERS]

    def __enter__(self) -> _Bypasses:
        import logging

        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.addHandler(self.handler)
            if lg.getEffectiveLevel() > logging.INFO:
                lg.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc) -> None:
        for lg, level in zip(self.loggers, self.levels):
            lg.removeHandler(self.handler)
            lg.setLevel(level)


def run_entry(entry: EntryPoint, device: str) -> dict:
    """One entry point in this process; its record (never raises for the pass's sake)."""
    import copy

    import torch

    from . import inductor, tracing

    record = _new_record(entry, device)
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(inductor.pass_enabled(True, pin_timing=entry.cache is None))
            if entry.name == "no-inline":
                stack.enter_context(tracing.inline_inbuilt_nn_modules(False))
            if entry.name == "freezing":
                stack.enter_context(inductor.freezing(True))
            if entry.cache:
                stack.enter_context(inductor.cache_enabled(entry.cache))
                bypasses = stack.enter_context(_Bypasses())
            model, x = _model(device)
            compiled_model = copy.deepcopy(model)
            if not entry.backward:
                for p in [*model.parameters(), *compiled_model.parameters()]:
                    p.requires_grad_(False)
            inductor.reset_compiler()
            if entry.cache:
                # Cold: compile and run once, filling the cache; then Dynamo forgets it.
                with inductor.count_fires() as cold:
                    torch.compile(compiled_model)(x).mean().backward()
                compiled_model.zero_grad()
                record["cold_fire_count"] = cold.counter
                inductor.reset_compiler()
                hits = inductor.cache_hits(entry.cache)
                counts = inductor.cache_counters(entry.cache)
            with inductor.count_fires() as fires, _grad_mode(entry.name):
                if entry.name == "aoti":
                    with inductor.count_fires() as built:
                        artefact = inductor.aoti_compile(compiled_model, (x,))
                    # If loading or running it kills the process, what the compile did
                    # is still known.
                    print(PARTIAL + json.dumps({"fire_count": built.counter}), flush=True)
                    compiled = inductor.aoti_load(artefact, device)
                else:
                    compiled = torch.compile(compiled_model, dynamic=entry.name == "dynamic")
                ok, err, msg = _check(entry, compiled, model, compiled_model, x)
            record["fire_count"] = fires.counter
            record["graph_rewrites"] = fires.in_graph
            record["max_abs_error"] = err
            counted, rewrites, note = fires.counter, fires.in_graph, ""
            running = fires.in_running_graphs
            if running is not None and fires.attempts > fires.finished:
                # Judge the code that runs, not the compile Dynamo threw away.
                counted = rewrites = running
                note = (
                    f"Dynamo abandoned {fires.attempts - fires.finished} of {fires.attempts} "
                    f"compiles and retried (restart analysis); the pass rewrote every "
                    f"attempt (counter {fires.counter}), the graphs that run hold {running}"
                )
                record["graph_rewrites_running"] = running
            outcome, why = classify(
                correct=ok,
                fires=counted,
                expected=entry.expected_fires,
                rewrites=rewrites,
                wrong=msg,
            )
            why = "; ".join(filter(None, [why, note]))
            if entry.cache:
                record["cache_hits"] = inductor.cache_hits(entry.cache) - hits
                after = inductor.cache_counters(entry.cache)
                record["cache_counters"] = {
                    k: v - counts.get(k, 0) for k, v in after.items() if v != counts.get(k, 0)
                }
                record["cache_bypass_reasons"] = sorted(set(bypasses.reasons))
                outcome, why = _warm_verdict(record, outcome, why, entry)
            record["outcome"], record["message"] = outcome.value, why
    except Unsupported as exc:
        record["outcome"], record["message"] = Outcome.UNSUPPORTED.value, str(exc)
    except Exception as exc:
        lines = traceback.format_exception_only(type(exc), exc)
        record["message"] = "".join(lines).strip()[:2000]
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def _warm_verdict(record: dict, outcome: Outcome, why: str, entry: EntryPoint):
    """A warm compile that hit the cache may skip pre-grad passes (2.12+ "late" timing:
    "only on cache miss"): the counter stays still, yet the code it runs is the cold
    compile's, which the pass rewrote. That reaches the user: fused, and said so."""
    hits, cold = record["cache_hits"], record["cold_fire_count"]
    if (
        outcome is Outcome.NOT_FUSED
        and record["fire_count"] == 0
        and hits
        and cold == (entry.expected_fires)
    ):
        return Outcome.FUSED, (
            f"cache hit ({hits}): the pass did not run again, the warm run reuses the "
            f"cold compile's code, which it rewrote {cold} time(s)"
        )
    note = f"cold compile: {cold} rewrite(s); warm: {record['fire_count']}, {hits} cache hit(s)"
    if record.get("cache_bypass_reasons"):
        note += "; the cache refused: " + " / ".join(record["cache_bypass_reasons"])
    return outcome, f"{why}; {note}" if why else note


def _child(entry: EntryPoint, device: str) -> dict:
    """Run one entry point in a fresh interpreter with a fresh compile cache."""
    with tempfile.TemporaryDirectory(prefix="convbn-reach-") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        cmd = [sys.executable, "-X", "faulthandler", "-m", "convbn_compat.reach"]
        cmd += ["--one", entry.name, "--device", device]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=env, timeout=ENTRY_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            return _died(entry, device, f"did not finish in {ENTRY_TIMEOUT_S} s")
    partial: dict = {}
    for line in proc.stdout.splitlines():
        if line.startswith(RECORD):
            return json.loads(line[len(RECORD) :])
        if line.startswith(PARTIAL):
            partial = json.loads(line[len(PARTIAL) :])
    # faulthandler's dump names where a crash happened: keep its first frames.
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    fatal = [i for i, line in enumerate(lines) if line.startswith("Fatal Python error")]
    current = [i for i, line in enumerate(lines) if line.startswith("Current thread")]
    if current:  # the crashing thread's own frames, innermost first
        tail = lines[fatal[0] : fatal[0] + 1] + lines[current[0] : current[0] + 10]
    else:
        tail = lines[fatal[0] : fatal[0] + 8] if fatal else lines[-3:]
    record = _died(
        entry, device, f"the interpreter died (exit {proc.returncode}): " + " | ".join(tail)
    )
    if partial:
        record.update(partial)
        record["message"] += f" (before it died, the compile rewrote {partial['fire_count']})"
    return record


def _new_record(entry: EntryPoint, device: str, message: str = "") -> dict:
    """An entry point's record before anything is known: an error until it says more."""
    return {
        "id": entry.id,
        "subset": "reach",
        "entry": entry.name,
        "about": entry.about,
        "device": device,
        "tf32": False,
        "outcome": Outcome.ERROR.value,
        "fire_count": None,
        "expected_count": entry.expected_fires,
        "graph_rewrites": None,
        "max_abs_error": None,
        "message": message,
    }


def _died(entry: EntryPoint, device: str, why: str) -> dict:
    return {**_new_record(entry, device, why), "seconds": None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convbn_compat.reach", description=__doc__)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    results.add_run_options(parser)
    parser.add_argument("--only", action="append", default=[], metavar="ENTRY")
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="entry points run side by side, each in its own process (default: one per core)",
    )
    parser.add_argument("--one", metavar="ENTRY", help=argparse.SUPPRESS)
    parser.add_argument(
        "--annotate",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="re-apply today's expectations table to reach files (outcomes untouched)",
    )
    args = parser.parse_args(argv)
    if args.annotate:
        for path in args.annotate:
            print(f"{path}: {annotate(path)} cell(s) now expected otherwise")
        return 0
    if args.one:
        print(RECORD + json.dumps(run_entry(get_entry(args.one), args.device)), flush=True)
        return 0
    import torch

    entries = [get_entry(n) for n in args.only] or list(ENTRY_POINTS)
    run = results.run_identity(args, f"reach-torch-{torch.__version__}".replace("+", "-"))
    out = run.path
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = results.ResultsWriter(out, run.header("reach"))
    table = expectations.load()
    complete = False
    try:
        # Side by side, written in table order as each one's turn comes.
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            futures = [pool.submit(_child, entry, args.device) for entry in entries]
            for entry, future in zip(entries, futures):
                record = future.result()
                expected = table.lookup(entry.id, args.device, torch.__version__)
                record["expected_outcome"] = expected.outcome.value
                record["expectation_reason"] = expected.reason
                same = record["outcome"] == expected.outcome.value
                record["status"] = "passed" if same else "failed"
                writer.add(record)
                print(
                    f"{entry.id:24} {record['outcome']:13} fires {record['fire_count']}"
                    f"/{entry.expected_fires}  {record['seconds']} s  {record['message'][:100]}",
                    flush=True,
                )
        complete = True
    finally:
        writer.finish(complete, 0 if complete else 1)
    failed = [c["id"] for c in writer.data["cases"] if c["status"] == "failed"]
    print(f"wrote {out}; {len(failed)} entry point(s) other than expected: {', '.join(failed)}")
    return 1 if failed else 0


def annotate(path: Path) -> int:
    """Give each cell of a reach file today's expectation; the measured fields stay as
    they were. Returns how many cells changed their expectation."""
    from .matrix import load_run

    run = load_run(path)
    table = expectations.load()
    torch_version = run.data["environment"]["torch"]
    changed = 0
    for record in run.data["cases"]:
        expected = table.lookup(record["id"], record["device"], torch_version)
        changed += record["expected_outcome"] != expected.outcome.value
        record["expected_outcome"] = expected.outcome.value
        record["expectation_reason"] = expected.reason
        same = record["outcome"] == expected.outcome.value
        record["status"] = "passed" if same else "failed"
    results.atomic_write_json(Path(path), run.data)
    return changed


if __name__ == "__main__":
    sys.exit(main())
