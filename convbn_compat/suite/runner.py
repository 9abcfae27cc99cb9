"""The one procedure every case runs: build its model, compile it, check, classify.

Upstream's checks, exactly: compiled forward equals eager, backward and one SGD step,
forward equal again, and the pass fired the expected number of times. This module
imports torch; the case table (``core.cases``) does not. A generated example (the
``found`` cases) runs through the generator's oracle instead, pass on and off.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings

import torch
from torch import nn

from ..checks.failures import describe, frames
from ..checks.judging import LOW_PRECISION, Tolerance, compare, reference, warning_lines
from ..checks.models import build
from ..checks.oracle import judge
from ..core import generated
from ..core.cases import Case
from ..core.outcomes import Outcome, Unsupported, classify
from ..core.record import CaseRecord
from ..shim import devices, inductor, paths, tracing

__all__ = ["run_case"]


def _models(case: Case, device: str):
    """(eager model, model to compile, input) for a case, on ``device``."""
    dtype = getattr(torch, case.dtype)
    mod_eager, shape = build(case)
    mod_eager = mod_eager.to(device=device, dtype=dtype)
    mod_eager = mod_eager.train() if case.train else mod_eager.eval()
    inp = torch.rand(shape, dtype=dtype).to(device)
    if case.channels_last:
        mod_eager = mod_eager.to(memory_format=torch.channels_last)
        inp = inp.contiguous(memory_format=torch.channels_last)
    mod_compiled = copy.deepcopy(mod_eager)
    if case.syncbn:
        # Set the mode again: conversion builds new modules (upstream re-evals too).
        mod_eager = nn.SyncBatchNorm.convert_sync_batchnorm(mod_eager).train(case.train)
        mod_compiled = nn.SyncBatchNorm.convert_sync_batchnorm(mod_compiled).train(case.train)
    return mod_eager, mod_compiled, inp


def _upstream_checks(case: Case, tf32: bool, mod_eager, mod_compiled, compiled, inp):
    """Forward equal, backward and one SGD step, forward equal again: (ok, errors, why)."""
    tol = Tolerance.for_run(tf32, case.dtype)
    low = case.dtype in LOW_PRECISION
    opt_eager = torch.optim.SGD(mod_eager.parameters(), lr=1e-3)
    opt_compiled = torch.optim.SGD(mod_compiled.parameters(), lr=1e-3)
    ref = reference(mod_eager, inp)[0] if low else None
    out_eager = mod_eager(inp)
    out_compiled = compiled(inp)
    ok, err, msg = compare(out_compiled, out_eager, tol, ref)
    errors = [err]
    if ok:
        out_eager.mean().backward()
        out_compiled.mean().backward()
        opt_eager.step()
        opt_compiled.step()
        inp2 = torch.rand_like(inp)
        ref = reference(mod_eager, inp2)[0] if low else None
        ok, err, msg = compare(compiled(inp2), mod_eager(inp2), tol, ref)
        errors.append(err)
        if msg:
            msg = f"after one SGD step: {msg}"
    return ok, errors, msg


def _compile(route: str, mod_compiled, inp):
    """Hand the model to Inductor by the case's route (``shim.paths``)."""
    if route == "fxtrace":
        return tracing.fx_compile(mod_compiled, inp)  # compiles here, not at the first call
    if route == "decomposed":
        return torch.compile(tracing.pre_dispatch_trace(mod_compiled, inp))
    return torch.compile(mod_compiled)


def _run(case: Case, device: str, tf32: bool, seed: int, result: CaseRecord) -> None:
    with contextlib.ExitStack() as stack:
        stack.enter_context(inductor.pass_enabled(case.pass_enabled))
        if case.freezing:
            # The flag alone, grad left on: the pass's guard reads only the flag. Under
            # no_grad (where Inductor really freezes) its own fuse_conv_bn folds
            # module-call pairs before this pass runs, so no guard would be met there.
            stack.enter_context(inductor.freezing(True))
        if device != "cpu":
            stack.enter_context(devices.tf32(tf32))
        stack.enter_context(paths.route(case.graph))
        torch.manual_seed(seed)
        mod_eager, mod_compiled, inp = _models(case, device)
        inductor.reset_compiler()
        with inductor.count_fires() as fires:
            compiled = _compile(case.graph, mod_compiled, inp)
            ok, errors, msg = _upstream_checks(case, tf32, mod_eager, mod_compiled, compiled, inp)
    result.path = paths.describe(fires.paths)
    result.fire_count = fires.counter
    result.graph_rewrites = fires.in_graph
    paths.check_reached(case.graph, fires.paths)
    known = [e for e in errors if e is not None]
    result.max_abs_error = max(known) if len(known) == len(errors) else None
    result.outcome, result.message = classify(
        correct=ok,
        fires=fires.counter,
        expected=case.expected_fires,
        rewrites=fires.in_graph,
        wrong=msg,
    )


def run_case(case: Case, device: str = "cpu", *, tf32: bool = False, seed: int = 0) -> CaseRecord:
    """Run one case and classify it; never raises for a failure of the pass."""
    if case.example:
        verdict = judge(generated.Example.from_id(case.example), device)
        return CaseRecord.from_verdict(verdict, case.subset)
    started = time.perf_counter()
    result = CaseRecord(
        case.id,
        case.subset,
        device,
        tf32,
        outcome=Outcome.ERROR,
        expected_count=case.expected_fires,
    )
    # Warnings are recorded, never raised: a deprecation inside torch must not be
    # reported as a failure of the pass.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _run(case, device, tf32, seed, result)
        except Unsupported as exc:
            result.outcome, result.message = Outcome.UNSUPPORTED, str(exc)
        except Exception as exc:
            result.outcome = Outcome.ERROR
            result.message, result.frames = describe(exc), frames(exc)
        finally:
            inductor.reset_compiler()
    result.warnings = warning_lines(caught)
    result.seconds = round(time.perf_counter() - started, 3)
    return result
