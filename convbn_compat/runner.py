"""The one procedure every case runs: build its model, compile it, check, classify.

Upstream's checks, exactly: compiled forward equals eager, backward and one SGD step,
forward equal again, and the pass fired the expected number of times. This module
imports torch; the case table (``cases``) does not. ``repro`` embeds this file verbatim
in its standalone scripts, so a reproducer checks what the suite checks.
"""

from __future__ import annotations

import contextlib
import copy
import re
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import devices, generated, inductor, tracing
from .cases import Case
from .outcomes import Outcome, Unsupported, classify
from .record import CaseRecord

__all__ = ["MODELS", "Tolerance", "build", "compare", "run_case"]

# The BatchNorm that follows each layer: the number of spatial dims decides it.
_SPATIAL_DIMS = {layer: generated.spatial_dims(layer) for layer in generated.LAYERS}


def upstream_model(module: str, bias: bool, layer: str, random_bn: bool = False):
    """Upstream's ConvOp / MultiUserConvOp with freshly built layers, and its input shape."""
    layer_cls = getattr(nn, layer)
    dims = _SPATIAL_DIMS[layer]
    bn_cls = getattr(nn, f"BatchNorm{max(dims, 1)}d")
    kwargs = {} if layer == "Linear" else {"kernel_size": 3, "stride": 2}

    class ConvOp(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = layer_cls(3, 32, bias=bias, **kwargs)
            self.bn = bn_cls(32)

        def forward(self, x):
            x = self.conv(x)
            return self.bn(x)

    class MultiUserConvOp(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = layer_cls(3, 32, bias=bias, **kwargs)
            self.bn1 = bn_cls(32)
            self.conv2 = layer_cls(32, 32, bias=bias, **kwargs)
            self.bn2 = bn_cls(32)
            self.conv3 = layer_cls(32, 32, bias=bias, **kwargs)
            self.bn3 = bn_cls(32)

        def forward(self, x):
            # conv1-bn1 fuses; bn2 follows the second call of conv2; bn3 is used twice
            x = self.bn1(self.conv1(input=x))
            x = self.bn2(input=self.conv2(self.conv2(x)))
            x = self.bn3(input=self.conv3(input=x))
            x = self.bn3(x) + x
            return x

    model = {"ConvOp": ConvOp, "MultiUserConvOp": MultiUserConvOp}[module]()
    if random_bn:
        for bn in (m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
            _randomize_bn(bn, wide=True)
    # Conv shapes go from big to small, transposed convs from small to big (upstream).
    spatial = 4 if layer.startswith("ConvTranspose") else 96
    return model, [4, 3] + [spatial] * dims


def _randomize_bn(bn, wide: bool = False) -> None:
    """Non-trivial BN statistics and affine terms: a fresh BN is nearly the identity in
    eval mode, so a fold that gets a term wrong would still match eager.

    ``wide``: variances spread from 0.01 to 2 and eps 0.1, so that every term of the
    fold, eps and the square root included, moves the output far beyond tolerance.
    """
    g = torch.Generator().manual_seed(1234)
    n = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
        if wide:
            bn.running_var.copy_(torch.exp(torch.empty(n).uniform_(-4.6, 0.7, generator=g)))
            bn.eps = 0.1
        else:
            bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
        bn.weight.copy_(torch.randn(n, generator=g))
        bn.bias.copy_(torch.randn(n, generator=g))


def conv_bn(variant: str = "plain", **conv_kwargs):
    """A Conv2d + BatchNorm2d pair with non-trivial BN state, in one of a few shapes."""
    in_ch = 8
    conv_kwargs = {"kernel_size": 3, **conv_kwargs}

    class ConvBN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(in_ch, 16, **conv_kwargs)
            self.bn = nn.BatchNorm2d(16)
            _randomize_bn(self.bn)

        def forward(self, x):
            y = self.conv(x)
            if variant == "conv-multiuser":
                # The conv output feeds BN and the sum: the pass must leave it alone.
                return self.bn(y) + y
            if variant == "bn-3args":
                # pytorch#169011: F.batch_norm with only its 3 required arguments.
                return F.batch_norm(y, self.bn.running_mean, self.bn.running_var)
            return self.bn(y)

    class ConvKwargsBN(nn.Module):
        # pytorch#196165: F.conv2d given bias/stride/padding by keyword.
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(in_ch, 16, 3)
            self.bn = nn.BatchNorm2d(16)
            _randomize_bn(self.bn)

        def forward(self, x):
            y = F.conv2d(x, self.conv.weight, bias=self.conv.bias, stride=2, padding=1)
            bn = self.bn
            return F.batch_norm(
                y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.1, bn.eps
            )

    model = ConvKwargsBN() if variant == "conv-kwargs" else ConvBN()
    return model, [4, in_ch, 24, 24]


MODELS: dict[str, Callable[..., tuple[nn.Module, list[int]]]] = {
    "upstream": upstream_model,
    "convbn": conv_bn,
}
"""Builders by name, as cases name them. Each returns (model on the CPU in float32,
input shape); ``run_case`` moves both. A test plugin may add its own (tests/faults)."""


def build(case: Case) -> tuple[nn.Module, list[int]]:
    return MODELS[case.model](**dict(case.model_args))


@dataclass(frozen=True)
class Tolerance:
    """assert_close tolerances: its defaults for the dtype unless TF32 loosens them."""

    rtol: float | None = None
    atol: float | None = None

    @classmethod
    def for_run(cls, tf32: bool, dtype: str = "float32") -> Tolerance:
        # Upstream: @tf32_on_and_off(0.003) raises atol to 0.003 when TF32 is on
        # (rtol stays at float32's default, 1.3e-6).
        if tf32 and dtype == "float32":
            return cls(rtol=1.3e-6, atol=0.003)
        return cls()


def _max_abs_error(actual, expected) -> float:
    with torch.no_grad():
        return float((actual.detach().double() - expected.detach().double()).abs().max())


LOW_PRECISION = ("float16", "bfloat16")


def _reference(module, inp):
    """The float64 value of what a low-precision module computes: its own parameters
    and input, upcast, so rounding is the only difference left to judge."""
    ref = copy.deepcopy(module).double()
    with torch.no_grad():
        return ref(inp.double())


def compare(actual, expected, tol: Tolerance, reference=None) -> tuple[bool, float | None, str]:
    """Is the compiled output ``actual`` as good as eager's ``expected``?

    float32/float64: ``torch.testing.assert_close`` with the dtype's tolerances (TF32:
    atol 0.003), as upstream. float16/bfloat16: any reordering of the arithmetic (the
    fold computes the conv in float32 and rounds once) moves results by an ulp, so,
    as Dynamo's own accuracy checker does, the compiled output must be no more than
    twice as far from a float64 reference as eager is, plus 1e-4.
    """
    if actual.shape != expected.shape:
        # Compiled code that returns another shape computed something else entirely.
        return (
            False,
            None,
            (f"compiled output has shape {tuple(actual.shape)}, eager {tuple(expected.shape)}"),
        )
    err = _max_abs_error(actual, expected)
    if reference is not None:
        compiled_err = _max_abs_error(actual, reference)
        eager_err = _max_abs_error(expected, reference)
        if compiled_err <= 2 * eager_err + 1e-4:
            return True, err, ""
        return (
            False,
            err,
            (
                f"compiled is {compiled_err:.3g} from the float64 reference, eager {eager_err:.3g} "
                "(allowed: 2x eager + 1e-4)"
            ),
        )
    try:
        torch.testing.assert_close(actual, expected, rtol=tol.rtol, atol=tol.atol)
    except AssertionError as exc:
        # "Tensor-likes are not close!", then the mismatch counts and the worst element.
        return False, err, " ".join(line.strip() for line in str(exc).strip().splitlines()[:5])
    return True, err, ""


def _run_generated(case: Case, device: str) -> CaseRecord:
    from .genrunner import judge  # imports this module

    v = judge(generated.Example.from_id(case.example), device)
    return CaseRecord(
        case.id,
        case.subset,
        device,
        False,
        outcome=v.outcome,
        fire_count=v.fires,
        expected_count=v.expected_fires,
        graph_rewrites=v.graph_rewrites,
        max_abs_error=v.max_abs_error,
        seconds=v.seconds,
        message=v.message + (f" (pass off: {v.message_off})" if v.message_off else ""),
        warnings=v.warnings,
        blame=v.blame,
        fire_count_pass_off=v.fires_off,
    )


def run_case(case: Case, device: str = "cpu", *, tf32: bool = False, seed: int = 0) -> CaseRecord:
    """Run one case and classify it; never raises for a failure of the pass."""
    if case.example:
        return _run_generated(case, device)
    started = time.perf_counter()
    result = CaseRecord(
        case.id,
        case.subset,
        device,
        tf32,
        outcome=Outcome.ERROR,
        expected_count=case.expected_fires,
    )
    caught: list[warnings.WarningMessage] = []
    try:
        with contextlib.ExitStack() as stack:
            # Warnings are recorded, never raised: a deprecation inside torch must not
            # be reported as a failure of the pass.
            caught = stack.enter_context(warnings.catch_warnings(record=True))
            warnings.simplefilter("always")
            stack.enter_context(inductor.pass_enabled(case.pass_enabled))
            if device != "cpu":
                stack.enter_context(devices.tf32(tf32))
            torch.manual_seed(seed)
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
                mod_compiled = nn.SyncBatchNorm.convert_sync_batchnorm(mod_compiled).train(
                    case.train
                )
            inductor.reset_compiler()
            if case.graph == "decomposed":
                mod_compiled = tracing.pre_dispatch_trace(mod_compiled, inp)
            compiled = torch.compile(mod_compiled)
            tol = Tolerance.for_run(tf32, case.dtype)
            opt_eager = torch.optim.SGD(mod_eager.parameters(), lr=1e-3)
            opt_compiled = torch.optim.SGD(mod_compiled.parameters(), lr=1e-3)
            with inductor.count_fires() as fires:
                low = case.dtype in LOW_PRECISION
                ref = _reference(mod_eager, inp) if low else None
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
                    ref = _reference(mod_eager, inp2) if low else None
                    ok, err, msg = compare(compiled(inp2), mod_eager(inp2), tol, ref)
                    errors.append(err)
                    if msg:
                        msg = f"after one SGD step: {msg}"
            result.fire_count = fires.counter
            result.graph_rewrites = fires.in_graph
            known = [e for e in errors if e is not None]
            result.max_abs_error = max(known) if len(known) == len(errors) else None
            result.outcome, result.message = classify(
                correct=ok,
                fires=fires.counter,
                expected=case.expected_fires,
                rewrites=fires.in_graph,
                wrong=msg,
            )
    except Unsupported as exc:
        result.outcome = Outcome.UNSUPPORTED
        result.message = str(exc)
    except Exception as exc:
        result.outcome = Outcome.ERROR
        frames = traceback.format_exception_only(type(exc), exc)
        result.message = "".join(frames).strip()[:2000]
    finally:
        inductor.reset_compiler()
    # Addresses (at 0x7f...) would make every copy of one warning unique.
    result.warnings = sorted(
        {
            re.sub(r" at 0x[0-9a-f]+", "", f"{w.category.__name__}: {w.message}")[:300]
            for w in caught
        }
    )
    result.seconds = round(time.perf_counter() - started, 3)
    return result
