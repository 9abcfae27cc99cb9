"""``python -m convbn_compat.tools.reach``: does the pass fire where users compile their models?

One small model (two Conv2d-BatchNorm pairs in eval mode, random BatchNorm state) goes
through each entry point of ``entrypoints`` in a process of its own, with a compile
cache of its own, so no entry point sees another's compiled code. Each ends in an outcome
of the suite's vocabulary: fused (right, and the pass rewrote both pairs), not-fused,
wrong-result, error, or unsupported (the release cannot express it, with why).

    python -m convbn_compat.tools.reach --device cpu --out results/reach-2.15-cpu.json

The results file is the suite's schema with ``"kind": "reach"``; ``report`` shows it as
a lane of its own.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ..core import results
from ..core.cells import DEVICES
from ..core.entrypoints import ENTRY_POINTS, PAIRS, SUBSET, EntryPoint, get_entry
from ..core.outcomes import Outcome, Unsupported, classify
from ..core.policy import Policy
from ..core.record import CaseRecord, Status

__all__ = ["main", "run_entry"]

RECORD = "REACH-RECORD: "
PARTIAL = "REACH-PARTIAL: "
ENTRY_TIMEOUT_S = 900  # AOTInductor's C++ build is the slowest: 60-100 s seen here


def _model(device: str):
    import torch
    from torch import nn

    from ..checks.judging import randomize_bn

    torch.manual_seed(0)
    layers = []
    channels = 3
    for i in range(PAIRS):
        bn = nn.BatchNorm2d(8)
        randomize_bn(bn, i, wide=False)  # real statistics, so a wrong fold shows
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
    from ..checks.judging import Tolerance, compare

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


class _Warm:
    """A warm entry point's cache: a cold compile fills it, then Dynamo forgets it."""

    def __init__(self, entry: EntryPoint, stack: contextlib.ExitStack) -> None:
        from ..shim import inductor

        self.name = entry.cache
        stack.enter_context(inductor.cache_enabled(self.name))
        self.bypasses = stack.enter_context(_Bypasses())

    def fill(self, compiled_model, x, record: CaseRecord) -> None:
        import torch

        from ..shim import inductor

        with inductor.count_fires() as cold:
            torch.compile(compiled_model)(x).mean().backward()
        compiled_model.zero_grad()
        record.extra["cold_fire_count"] = cold.counter
        inductor.reset_compiler()
        self.hits = inductor.cache_hits(self.name)
        self.counts = inductor.cache_counters(self.name)

    def record(self, record: CaseRecord) -> None:
        from ..shim import inductor

        record.extra["cache_hits"] = inductor.cache_hits(self.name) - self.hits
        after = inductor.cache_counters(self.name)
        record.extra["cache_counters"] = {
            k: v - self.counts.get(k, 0) for k, v in after.items() if v != self.counts.get(k, 0)
        }
        record.extra["cache_bypass_reasons"] = sorted(set(self.bypasses.reasons))


def _compile(entry: EntryPoint, compiled_model, x, device: str):
    import torch

    from ..shim import inductor

    if entry.name != "aoti":
        return torch.compile(compiled_model, dynamic=entry.name == "dynamic")
    with inductor.count_fires() as built:
        artefact = inductor.aoti_compile(compiled_model, (x,))
    # If loading or running it kills the process, what the compile did is still known.
    print(PARTIAL + json.dumps({"fire_count": built.counter}), flush=True)
    return inductor.aoti_load(artefact, device)


def _what_runs(entry: EntryPoint, fires, record: CaseRecord) -> tuple[int, int | None, str]:
    """(rewrites counted, rewrites in the graph, a note): of the code that runs.

    Dynamo may abandon a compile and retry (2.10+, ``dynamic=True``: restart analysis);
    the pass rewrote every attempt, and the graphs that run hold what counts. A warm
    compile that hit the cache may skip pre-grad passes (2.12+ "late" timing: "only on
    cache miss"): the counter stays still, yet the code it runs is the cold compile's,
    which the pass rewrote, and that reaches the user.
    """
    counted, rewrites, notes = fires.counter, fires.in_graph, []
    running = fires.in_running_graphs
    if running is not None and fires.attempts > fires.finished:
        counted = rewrites = running
        notes.append(
            f"Dynamo abandoned {fires.attempts - fires.finished} of {fires.attempts} "
            f"compiles and retried (restart analysis); the pass rewrote every "
            f"attempt (counter {fires.counter}), the graphs that run hold {running}"
        )
        record.extra["graph_rewrites_running"] = running
    if entry.cache:
        hits, cold = record.extra["cache_hits"], record.extra["cold_fire_count"]
        if fires.counter == 0 and hits and cold == entry.expected_fires:
            counted, rewrites = cold, None
            notes.append(
                f"cache hit ({hits}): the pass did not run again, the warm run reuses the "
                f"cold compile's code, which it rewrote {cold} time(s)"
            )
        else:
            note = f"cold compile: {cold} rewrite(s); warm: {fires.counter}, {hits} cache hit(s)"
            if record.extra["cache_bypass_reasons"]:
                note += "; the cache refused: " + " / ".join(record.extra["cache_bypass_reasons"])
            notes.append(note)
    return counted, rewrites, "; ".join(notes)


def _run(entry: EntryPoint, device: str, record: CaseRecord) -> None:
    import copy

    from ..shim import inductor, tracing

    with contextlib.ExitStack() as stack:
        stack.enter_context(inductor.pass_enabled(True, pin_timing=entry.cache is None))
        if entry.name == "no-inline":
            stack.enter_context(tracing.inline_inbuilt_nn_modules(False))
        if entry.name == "freezing":
            stack.enter_context(inductor.freezing(True))
        warm = _Warm(entry, stack) if entry.cache else None
        model, x = _model(device)
        compiled_model = copy.deepcopy(model)
        if not entry.backward:
            for p in [*model.parameters(), *compiled_model.parameters()]:
                p.requires_grad_(False)
        inductor.reset_compiler()
        if warm:
            warm.fill(compiled_model, x, record)
        with inductor.count_fires() as fires, _grad_mode(entry.name):
            compiled = _compile(entry, compiled_model, x, device)
            ok, err, msg = _check(entry, compiled, model, compiled_model, x)
        record.fire_count, record.graph_rewrites, record.max_abs_error = (
            fires.counter,
            fires.in_graph,
            err,
        )
        if warm:
            warm.record(record)
    counted, rewrites, note = _what_runs(entry, fires, record)
    outcome, why = classify(
        correct=ok, fires=counted, expected=entry.expected_fires, rewrites=rewrites, wrong=msg
    )
    record.outcome, record.message = outcome, "; ".join(filter(None, [why, note]))


def run_entry(entry: EntryPoint, device: str) -> CaseRecord:
    """One entry point in this process; its record (never raises for the pass's sake)."""
    record = _new_record(entry, device)
    started = time.perf_counter()
    try:
        _run(entry, device, record)
    except Unsupported as exc:
        record.outcome, record.message = Outcome.UNSUPPORTED, str(exc)
    except Exception as exc:
        lines = traceback.format_exception_only(type(exc), exc)
        record.message = "".join(lines).strip()[:2000]
    record.seconds = round(time.perf_counter() - started, 3)
    return record


def _child(entry: EntryPoint, device: str) -> CaseRecord:
    """Run one entry point in a fresh interpreter with a fresh compile cache."""
    with tempfile.TemporaryDirectory(prefix="convbn-reach-") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        cmd = [sys.executable, "-X", "faulthandler", "-m", __spec__.name]
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
            return CaseRecord.from_json(json.loads(line[len(RECORD) :]))
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
        record.fire_count = partial["fire_count"]
        record.message += f" (before it died, the compile rewrote {partial['fire_count']})"
    return record


def _new_record(entry: EntryPoint, device: str, message: str = "") -> CaseRecord:
    """An entry point's record before anything is known: an error until it says more."""
    return CaseRecord(
        entry.id,
        SUBSET,
        device,
        outcome=Outcome.ERROR,
        expected_count=entry.expected_fires,
        message=message,
        entry=entry.name,
        about=entry.about,
    )


def _died(entry: EntryPoint, device: str, why: str) -> CaseRecord:
    return dataclasses.replace(_new_record(entry, device, why), seconds=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m convbn_compat.tools.reach", description=__doc__
    )
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    parser.add_argument("--out", type=Path, help="results file (default: <results>/<run>.json)")
    results.add_run_options(parser.add_argument)
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
        record = run_entry(get_entry(args.one), args.device)
        print(RECORD + json.dumps(record.to_json()), flush=True)
        return 0
    import torch

    entries = [get_entry(n) for n in args.only] or list(ENTRY_POINTS)
    run = results.tool_run(args, "reach")
    out = run.path
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = results.ResultsWriter(out, run.header("reach"), kind="reach")
    table = Policy.current().expectations
    complete = False
    try:
        # Side by side, written in table order as each one's turn comes.
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            futures = [pool.submit(_child, entry, args.device) for entry in entries]
            for entry, future in zip(entries, futures):
                record = table.apply(future.result(), torch.__version__)
                writer.add(record)
                print(
                    f"{entry.id:24} {record.outcome!s:13} fires {record.fire_count}"
                    f"/{entry.expected_fires}  {record.seconds} s  {record.message[:100]}",
                    flush=True,
                )
        complete = True
    finally:
        writer.finish(complete, 0 if complete else 1)
    failed = [r.id for r in writer.doc.records if r.status is Status.FAILED]
    print(f"wrote {out}; {len(failed)} entry point(s) other than expected: {', '.join(failed)}")
    return 1 if failed else 0


def annotate(path: Path) -> int:
    """Give each cell of a reach file today's expectation; the measured fields stay as
    they were. Returns how many cells changed their expectation."""
    run = results.load_run(path)
    table = Policy.current().expectations
    before = [r.expected_outcome for r in run.records]
    run.records = [table.apply(r, run.torch) for r in run.records]
    results.atomic_write_json(Path(path), run.to_json())
    return sum(b is not r.expected_outcome for b, r in zip(before, run.records))


if __name__ == "__main__":
    sys.exit(results.tool_main(main))
