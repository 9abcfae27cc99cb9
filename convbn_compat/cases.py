"""The case list and the one procedure every case runs.

The cases are upstream's ``test/inductor/test_efficient_conv_bn_eval.py`` product: two
module shapes x conv bias x seven conv/linear + BN pairs x SyncBatchNorm x pre-dispatch
decomposition, 112 per device. Each case runs exactly upstream's checks: compiled
forward equals eager, backward and one SGD step, forward equal again, and the pass fired
the expected number of times.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import itertools
import re
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import devices, generated, inductor, tracing
from .outcomes import Outcome, Unsupported, classify

__all__ = [
    "CASES",
    "EXTENDED_CASES",
    "UPSTREAM_CASES",
    "Case",
    "CaseResult",
    "Tolerance",
    "get_case",
    "run_case",
]

# The layers the pass handles, one list for the case table and the generator.
LAYERS = generated.LAYERS
# The BatchNorm that follows each layer: the number of spatial dims decides it.
_SPATIAL_DIMS = {layer: generated.spatial_dims(layer) for layer in LAYERS}
MODULES = ("ConvOp", "MultiUserConvOp")
EXPECTED_FIRES = {"ConvOp": 1, "MultiUserConvOp": 3}


UPSTREAM = "upstream"
EXTENDED = "extended"
FOUND = "found"
"""Bugs the generator found (``nox -s fuzz-X.Y-cpu``), kept as cases of the matrix."""
GENERATED = "generated"


@dataclass(frozen=True)
class Case:
    """One case: how to build its model, and what the pass should do with it."""

    id: str
    expected_fires: int
    build: Callable[[], tuple[Any, list[int]]]
    """Returns (model on the CPU in float32, input shape); run_case moves both."""
    subset: str = UPSTREAM
    graph: str = "module"
    """module: Dynamo traces the nn.Module; decomposed: pre-dispatch make_fx first."""
    syncbn: bool = False
    pass_enabled: bool = True
    train: bool = False
    dtype: str = "float32"
    channels_last: bool = False
    devices: tuple[str, ...] = ("cpu", "cuda")
    links: tuple[str, ...] = ()
    about: str = ""
    example: str | None = None
    """A generated example's id (``Gen-...``): the case is that example, run and judged
    by the generator's oracle (``genrunner``), pass off as well as on."""


def _upstream_model(module: str, bias: bool, layer: str, random_bn: bool = False):
    """Upstream's ConvOp / MultiUserConvOp with freshly built layers, and its input shape."""
    from torch import nn

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


def _upstream_cases() -> tuple[Case, ...]:
    cases = []
    # Same order as upstream's itertools.product, so results line up with its loop.
    for module, bias, layer, norm, graph in itertools.product(
        MODULES, (True, False), LAYERS, ("bn", "syncbn"), ("module", "decomposed")
    ):
        case_id = f"{module}-{'bias' if bias else 'nobias'}-{layer}-{norm}-{graph}"
        cases.append(
            Case(
                case_id,
                EXPECTED_FIRES[module],
                functools.partial(_upstream_model, module, bias, layer),
                graph=graph,
                syncbn=norm == "syncbn",
            )
        )
    return tuple(cases)


def _randomize_bn(bn, wide: bool = False) -> None:
    """Non-trivial BN statistics and affine terms: a fresh BN is nearly the identity in
    eval mode, so a fold that gets a term wrong would still match eager.

    ``wide``: variances spread from 0.01 to 2 and eps 0.1, so that every term of the
    fold, eps and the square root included, moves the output far beyond tolerance.
    """
    import torch

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


def _conv_bn(variant: str = "plain", **conv_kwargs):
    """A Conv2d + BatchNorm2d pair with non-trivial BN state, in one of a few shapes."""
    import torch.nn.functional as F
    from torch import nn

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


def _extended_cases() -> tuple[Case, ...]:
    cases = []
    graphs = ("module", "decomposed")

    def add(name, fires, build, graphs=graphs, **kw):
        for graph in graphs:
            cases.append(Case(f"{name}-Conv2d-bn-{graph}", fires, build, EXTENDED, graph, **kw))

    # Controls upstream's test lacks: where the pass must not fire, output still equals eager.
    add(
        "Control-passoff", 0, _conv_bn, pass_enabled=False, about="flag off: the pass must not fire"
    )
    add(
        "Control-trainbn",
        0,
        _conv_bn,
        train=True,
        about="BatchNorm in training mode: the pass must not fire",
    )
    add(
        "Control-convmultiuser",
        0,
        functools.partial(_conv_bn, "conv-multiuser"),
        about="the conv output has a second user: the pass must not fire",
    )
    # Conv configurations beyond upstream's kernel 3, stride 2, NCHW float32.
    add("Config-groups", 1, functools.partial(_conv_bn, groups=4))
    add("Config-dilation", 1, functools.partial(_conv_bn, dilation=2))
    add("Config-padding", 1, functools.partial(_conv_bn, padding=2, padding_mode="zeros"))
    add("Config-kernel3x5", 1, functools.partial(_conv_bn, kernel_size=(3, 5), stride=(2, 1)))
    add("Config-channelslast", 1, _conv_bn, channels_last=True)
    add("Config-float64", 1, _conv_bn, dtype="float64", devices=("cpu",))
    add("Config-float16", 1, _conv_bn, dtype="float16", devices=("cuda",))
    # Upstream's ConvOp for every layer, with BatchNorm state far from the identity:
    # upstream's fresh BN would let a fold with a wrong term, or a transposed conv
    # scaled along the wrong dimension, still match eager.
    for layer, graph in itertools.product(LAYERS, graphs):
        cases.append(
            Case(
                f"Stats-ConvOp-bias-{layer}-bn-{graph}",
                1,
                functools.partial(_upstream_model, "ConvOp", True, layer, random_bn=True),
                EXTENDED,
                graph,
                about="BatchNorm with random statistics, affine terms and eps 0.1",
            )
        )
    # Bugs users reported against the pass.
    add(
        "Bug169011-bn3args",
        1,
        functools.partial(_conv_bn, "bn-3args"),
        graphs=("module",),
        links=(
            "https://github.com/pytorch/pytorch/issues/169011",
            "https://github.com/pytorch/pytorch/pull/169126",
        ),
        about="F.batch_norm(x, mean, var) with default arguments",
    )
    add(
        "Bug196165-convkwargs",
        1,
        functools.partial(_conv_bn, "conv-kwargs"),
        graphs=("module",),
        links=("https://github.com/pytorch/pytorch/issues/196165",),
        about="F.conv2d with bias, stride and padding passed by keyword",
    )
    return tuple(cases)


def generated_case(example_id: str, subset: str = GENERATED, about: str = "", links=()) -> Case:
    """The case of a generated example: its id is the example's id."""
    ex = generated.Example.from_id(example_id)
    return Case(
        ex.id,
        ex.expected_fires,
        build=None,  # genrunner builds it from the example
        subset=subset,
        graph="decomposed" if ex.call == "decomposed" else "module",
        pass_enabled=ex.control != "flagoff",
        train=ex.control == "train",
        dtype=ex.dtype,
        channels_last=ex.channels_last,
        devices=ex.devices,
        links=tuple(links),
        about=about,
        example=ex.id,
    )


# Minimal examples of the bugs the generator found: one per cause and per path of the
# pass (module patterns, functional patterns from 2.5, aten patterns from 2.4), since
# each path has its own release range. Causes and ranges: expectations.toml. The
# functional ones pass F.batch_norm all 8 arguments (bnall), so that #169011 (fewer
# than 8 fail in 2.5-2.12) does not hide the cause each one is about.
_FOUND = (
    (
        "Gen-ConvTranspose1d-module-c2x2-k1-g2-x1x2x1",
        "ConvTranspose with groups > 1: the fold scales the weight along the wrong dim",
        (),
    ),
    (
        "Gen-ConvTranspose1d-fpos-c2x2-k1-g2-x1x2x1-bnall",
        "F.conv_transpose1d with groups > 1, then F.batch_norm",
        (),
    ),
    (
        "Gen-ConvTranspose1d-decomposed-c2x2-k1-g2-x1x2x1",
        "ConvTranspose with groups > 1, traced to a pre-dispatch graph",
        (),
    ),
    (
        "Gen-Linear-module-c1x2-x1x2x1",
        "Linear on a 3-D input, BatchNorm1d over dim 1: folded along the features instead",
        (),
    ),
    (
        "Gen-Linear-fpos-c1x2-x1x2x1-bnall",
        "F.linear on a 3-D input, then F.batch_norm over dim 1",
        (),
    ),
    (
        "Gen-Linear-decomposed-c1x2-x1x2x1",
        "Linear on a 3-D input, traced to a pre-dispatch graph",
        (),
    ),
    (
        "Gen-Conv2d-fallkw-c1x1-k1-x1x1x1x1-bnall",
        "F.conv2d(input=x, weight=w, ...) with every argument by keyword",
        ("https://github.com/pytorch/pytorch/issues/196165",),
    ),
    (
        "Gen-Linear-fkw-c1x1-x1x1-bnall",
        "F.linear(x, w, bias=b): the bias passed by keyword",
        ("https://github.com/pytorch/pytorch/issues/196165",),
    ),
    (
        "Gen-Conv1d-fkw-c2x2-k1-g2-x1x2x1-bnall",
        "F.conv1d(x, w, bias=b, groups=2): groups passed by keyword",
        ("https://github.com/pytorch/pytorch/issues/196165",),
    ),
)


UPSTREAM_CASES = _upstream_cases()
EXTENDED_CASES = _extended_cases()
FOUND_CASES = tuple(generated_case(i, FOUND, about, links) for i, about, links in _FOUND)
CASES: tuple[Case, ...] = UPSTREAM_CASES + EXTENDED_CASES + FOUND_CASES
_BY_ID = {c.id: c for c in CASES}


def get_case(case_id: str) -> Case:
    from .releases import ConfigError

    case_id = case_id.strip()
    if case_id in _BY_ID:
        return _BY_ID[case_id]
    for suffix in ("-cuda-tf32", "-cuda", "-cpu"):  # a cell's pytest id, pasted whole
        if case_id.endswith(suffix) and case_id[: -len(suffix)] in _BY_ID:
            return _BY_ID[case_id[: -len(suffix)]]
    if case_id.startswith(generated.PREFIX + "-"):
        try:  # any generated example, found by `fuzz` or written by hand
            return generated_case(case_id)
        except generated.IdError as exc:
            raise ConfigError(str(exc)) from None
    close = [c for c in _BY_ID if case_id.lower() in c.lower()][:5]
    close = list(dict.fromkeys(close + difflib.get_close_matches(case_id, list(_BY_ID), 5, 0.8)))
    close = close[:5]
    hint = f"; did you mean {', '.join(close)}" if close else ""
    raise ConfigError(
        f"no case {case_id!r}{hint}. Upstream ids look like "
        f"ConvOp-bias-Conv2d-bn-module: module {'|'.join(MODULES)}, bias|nobias, layer "
        f"{'|'.join(LAYERS)}, bn|syncbn, module|decomposed; `python -m convbn_compat "
        "cases` lists them all; generated examples look like "
        "Gen-Conv2d-module-c4x8-k3-x2x4x7x7"
    )


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


@dataclass
class CaseResult:
    case_id: str
    device: str
    tf32: bool
    outcome: Outcome
    fire_count: int | None
    expected_count: int
    graph_rewrites: int | None
    max_abs_error: float | None
    seconds: float
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    blame: str | None = None
    """Generated examples only: the oracle's blame (outcomes.Blame)."""
    fire_count_pass_off: int | None = None


def _max_abs_error(actual, expected) -> float:
    import torch

    with torch.no_grad():
        return float((actual.detach().double() - expected.detach().double()).abs().max())


LOW_PRECISION = ("float16", "bfloat16")


def _reference(module, inp):
    """The float64 value of what a low-precision module computes: its own parameters
    and input, upcast, so rounding is the only difference left to judge."""
    import torch

    ref = copy.deepcopy(module).double()
    with torch.no_grad():
        return ref(inp.double())


def _compare(actual, expected, tol: Tolerance, reference=None) -> tuple[bool, float | None, str]:
    """Is the compiled output ``actual`` as good as eager's ``expected``?

    float32/float64: ``torch.testing.assert_close`` with the dtype's tolerances (TF32:
    atol 0.003), as upstream. float16/bfloat16: any reordering of the arithmetic (the
    fold computes the conv in float32 and rounds once) moves results by an ulp, so,
    as Dynamo's own accuracy checker does, the compiled output must be no more than
    twice as far from a float64 reference as eager is, plus 1e-4.
    """
    import torch

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


def _run_generated(case: Case, device: str) -> CaseResult:
    from .genrunner import judge  # imports torch

    v = judge(generated.Example.from_id(case.example), device)
    return CaseResult(
        case.id,
        device,
        False,
        v.outcome,
        v.fires,
        v.expected_fires,
        v.graph_rewrites,
        v.max_abs_error,
        v.seconds,
        v.message + (f" (pass off: {v.message_off})" if v.message_off else ""),
        v.warnings,
        blame=v.blame.value,
        fire_count_pass_off=v.fires_off,
    )


def run_case(case: Case, device: str = "cpu", *, tf32: bool = False, seed: int = 0) -> CaseResult:
    """Run one case and classify it; never raises for a failure of the pass."""
    if case.example:
        return _run_generated(case, device)
    import torch
    from torch import nn

    started = time.perf_counter()
    result = CaseResult(
        case.id, device, tf32, Outcome.ERROR, None, case.expected_fires, None, None, 0.0
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
            mod_eager, shape = case.build()
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
                ok, err, msg = _compare(out_compiled, out_eager, tol, ref)
                errors = [err]
                if ok:
                    out_eager.mean().backward()
                    out_compiled.mean().backward()
                    opt_eager.step()
                    opt_compiled.step()
                    inp2 = torch.rand_like(inp)
                    ref = _reference(mod_eager, inp2) if low else None
                    ok, err, msg = _compare(compiled(inp2), mod_eager(inp2), tol, ref)
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
