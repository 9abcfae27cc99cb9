"""Run a generated example and judge it: the oracle that assigns blame.

An example is a bug of the pass only when the compile with the pass on is wrong or
fails, *and* the same compile with the pass off is right. A failure that the flag-off
compile shares is Inductor's (or BatchNorm's) own, never the pass's. Eager refusing the
model makes the example invalid. Fire counts are recorded both ways.

Imports torch at the top; the reproducer embeds this module's own source.
"""

from __future__ import annotations

import contextlib
import copy
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import devices, inductor, tracing
from .generated import Example, is_transposed
from .outcomes import Blame, Outcome
from .runner import LOW_PRECISION, Tolerance, compare

__all__ = ["Observation", "Verdict", "build", "judge", "observe"]


def _bn_class(ex: Example):
    return getattr(nn, f"BatchNorm{max(ex.dims, 1)}d")


def _randomize(bn, seed: int) -> None:
    """Running statistics and affine terms far from the identity (variances 0.01 to 2),
    so that a fold with a wrong term cannot match eager by accident."""
    g = torch.Generator().manual_seed(1234 + seed)
    n = bn.num_features
    with torch.no_grad():
        if bn.running_mean is not None:
            bn.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            bn.running_var.copy_(torch.exp(torch.empty(n).uniform_(-4.6, 0.7, generator=g)))
        if bn.weight is not None:
            bn.weight.copy_(torch.randn(n, generator=g))
            bn.bias.copy_(torch.randn(n, generator=g))


def _layer(ex: Example, in_ch: int):
    if ex.layer == "Linear":
        return nn.Linear(in_ch, ex.out_ch, bias=ex.bias)
    kwargs = dict(
        kernel_size=ex.kernel,
        stride=ex.stride,
        padding=ex.padding,
        dilation=ex.dilation,
        groups=ex.groups,
        bias=ex.bias,
    )
    if is_transposed(ex.layer):
        kwargs["output_padding"] = ex.output_padding
    else:
        kwargs["padding_mode"] = ex.padding_mode
    return getattr(nn, ex.layer)(in_ch, ex.out_ch, **kwargs)


# Functional signatures, in their positional order, with each argument's default.
_LINEAR_ARGS = (("bias", None),)
_CONV_ARGS = (("bias", None), ("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1))
_CONVT_ARGS = (
    ("bias", None),
    ("stride", 1),
    ("padding", 0),
    ("output_padding", 0),
    ("groups", 1),
    ("dilation", 1),
)
_BN_ARGS = (
    ("weight", None),
    ("bias", None),
    ("training", False),
    ("momentum", 0.1),
    ("eps", 1e-5),
)


def _is_default(value, default) -> bool:
    if value is None or default is None:
        return value is default
    if isinstance(value, tuple):
        return all(v == default for v in value)
    return value == default


def _call_source(fn: str, head: list[tuple[str, str]], rest: list, style: str) -> str:
    """A call written out as a model author would: ``head`` and ``rest`` are
    (name, source) pairs, ``rest`` with each argument's default. ``pos``: by position
    up to the last non-default one; ``kw``: the head by position, non-defaults by
    keyword; ``allkw``: every non-default by keyword; ``mixed``: the head and the first
    of the rest by position, non-defaults after it by keyword; ``all``: every argument
    by position."""

    def keywords(pairs):
        return [
            f"{name}={src}"
            for name, src, value, default in pairs
            if not _is_default(value, default)
        ]

    heads = [src for _, src in head]
    if style == "all":
        args = heads + [src for _, src, _, _ in rest]
    elif style == "pos":
        last = max((i for i, r in enumerate(rest) if not _is_default(r[2], r[3])), default=-1)
        args = heads + [src for _, src, _, _ in rest[: last + 1]]
    elif style == "allkw":
        args = [f"{name}={src}" for name, src in head] + keywords(rest)
    elif style == "mixed":
        args = [*heads, rest[0][1], *keywords(rest[1:])]
    else:
        args = heads + keywords(rest)
    return f"{fn}({', '.join(args)})"


def forward_source(ex: Example) -> str:
    """The model's forward, as plain Python: no helper for Dynamo to break a graph on."""
    lines = ["def forward(self, x):"]
    style = {"fpos": "pos", "fkw": "kw", "fallkw": "allkw", "fmixed": "mixed"}.get(ex.call)
    for i in range(ex.pairs):
        layer, bn = f"self.layers[{i}]", f"self.bns[{i}]"
        if style is None:
            kw = "input=" if ex.call == "modulekw" else ""
            lines.append(f"    y = {layer}({kw}x)")
            lines.append(f"    out = {bn}({kw}y)")
        else:
            values = {
                "bias": f"{layer}.bias" if ex.bias else None,
                "stride": ex.stride,
                "padding": ex.padding,
                "dilation": ex.dilation,
                "groups": ex.groups,
                "output_padding": ex.output_padding,
            }
            if ex.layer == "Linear":
                fn, sig = "F.linear", _LINEAR_ARGS
            elif is_transposed(ex.layer):
                fn, sig = f"F.conv_transpose{ex.dims}d", _CONVT_ARGS
            else:
                fn, sig = f"F.conv{ex.dims}d", _CONV_ARGS
            rest = [(n, _literal(values[n]), values[n], d) for n, d in sig]
            head = [("input", "x"), ("weight", f"{layer}.weight")]
            lines.append(f"    y = {_call_source(fn, head, rest, style)}")
            # What nn.BatchNorm's forward would pass, spelled out by the model's author.
            training = ex.control == "train" or not ex.bn_track
            bn_values = {
                "weight": f"{bn}.weight" if ex.bn_affine else None,
                "bias": f"{bn}.bias" if ex.bn_affine else None,
                "training": training,
                "momentum": 0.0 if ex.bn_momentum is None else ex.bn_momentum,
                "eps": ex.bn_eps,
            }
            rest = [(n, _literal(bn_values[n]), bn_values[n], d) for n, d in _BN_ARGS]
            stats = "None" if not ex.bn_track else None
            head = [
                ("input", "y"),
                ("running_mean", stats or f"{bn}.running_mean"),
                ("running_var", stats or f"{bn}.running_var"),
            ]
            bn_style = "kw" if ex.bn_form == "kw" else "all" if ex.bn_form == "all" else "pos"
            lines.append(f"    out = {_call_source('F.batch_norm', head, rest, bn_style)}")
        if ex.extra_user and i == ex.pairs - 1:
            lines.append("    out = out + y  # a second user of the layer output")
        lines.append("    x = out")
    lines.append("    return x")
    return "\n".join(lines) + "\n"


def _literal(value) -> str:
    """Source for an argument: attribute paths are already source, values are repr'd."""
    if isinstance(value, str) and value.startswith("self."):
        return value
    return repr(value)


class GenModel(nn.Module):
    """``pairs`` x (layer -> BatchNorm); ``forward`` is :func:`forward_source`."""

    def __init__(self, ex: Example):
        super().__init__()
        self.layers = nn.ModuleList(
            _layer(ex, ex.in_ch if i == 0 else ex.out_ch) for i in range(ex.pairs)
        )
        bn = _bn_class(ex)
        self.bns = nn.ModuleList(
            bn(
                ex.bn_features,
                eps=ex.bn_eps,
                momentum=ex.bn_momentum,
                affine=ex.bn_affine,
                track_running_stats=ex.bn_track,
            )
            for _ in range(ex.pairs)
        )
        for i, norm in enumerate(self.bns):
            _randomize(norm, ex.stats_seed * 16 + i)
        self.source = forward_source(ex)
        namespace: dict = {"F": F}
        exec(compile(self.source, f"<forward of {ex.id}>", "exec"), namespace)
        # A plain function of the class: Dynamo traces it like any written forward.
        self._forward = namespace["forward"]

    def forward(self, x):
        return self._forward(self, x)

    def extra_repr(self) -> str:
        return "forward, as generated:\n" + self.source.rstrip()


def build(ex: Example) -> tuple[nn.Module, tuple[int, ...]]:
    """The example's model (CPU, float32, fresh parameters from its seed) and input shape."""
    torch.manual_seed(ex.stats_seed)
    return GenModel(ex), ex.input_shape


@dataclass
class Observation:
    """One compile of an example: right, wrong, failing, or refused by eager."""

    kind: str  # "correct" | "wrong" | "error" | "invalid"
    graphs: int | None = None
    """Graphs Dynamo captured: 1 unless something broke the graph (or dynamic shapes
    recompiled), which would keep the layer and its BatchNorm apart."""
    fires: int | None = None
    in_graph: int | None = None
    max_abs_error: float | None = None
    message: str = ""
    exception: str | None = None


@dataclass
class Verdict:
    """The oracle's answer for one example on one device."""

    id: str
    device: str
    outcome: Outcome
    blame: Blame
    expected_fires: int
    fires: int | None
    fires_off: int | None
    graph_rewrites: int | None
    graphs: int | None
    max_abs_error: float | None
    message: str
    exception: str | None
    message_off: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def is_bug(self) -> bool:
        return self.outcome in (Outcome.WRONG_RESULT, Outcome.ERROR)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["outcome"], out["blame"] = self.outcome.value, self.blame.value
        return out


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception behind Dynamo's and Inductor's wrappers."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "inner_exception", None) or exc.__cause__
        if inner is None:
            break
        exc = inner
    return exc


def _first_line(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


ROUNDING_ULPS = 4
"""How many units in the last place of the output's scale the fold may add to eager's
rounding error (see _check)."""


def _check(actual, expected, ex: Example, reference) -> tuple[bool, float | None, str]:
    """The matrix's judgement (runner.compare), with one allowance for the fold's rounding.

    The fold computes ``weight * scale`` and rounds it once in the model's dtype, so its
    output differs from eager's by rounding. An output that fails the matrix's test is
    still right when it is no further from the float64 value than twice eager's
    distance, plus 1e-4, plus ROUNDING_ULPS units of the dtype's epsilon times the
    output's scale. For float32 that last term is below 1e-6 of the scale; for float16
    and bfloat16 it is about 0.4% and 3%. On the H200, 4 minutes of float16/bfloat16
    examples under the matrix's rule alone (2x eager + 1e-4) turned up 15 signatures at
    2-7x eager's rounding error, none beyond 1% of the output's scale; bugs of the pass
    move outputs by whole units.
    """
    tol = Tolerance.for_run(False, ex.dtype)
    low = ex.dtype in LOW_PRECISION or ex.autocast
    ok, err, msg = compare(actual, expected, tol, reference if low else None)
    if ok or err is None or reference is None or actual.shape != reference.shape:
        return ok, err, msg
    with torch.no_grad():
        ref = reference.double()
        compiled_err = float((actual.double() - ref).abs().max())
        eager_err = float((expected.double() - ref).abs().max())
        scale = float(ref.abs().max())
    dtype = torch.float16 if ex.autocast else actual.dtype
    allowed = 2 * eager_err + 1e-4 + ROUNDING_ULPS * torch.finfo(dtype).eps * scale
    if compiled_err <= allowed:
        return True, err, ""
    return (
        False,
        err,
        f"{msg} (compiled is {compiled_err:.3g} from the float64 value, eager {eager_err:.3g}, "
        f"allowed {allowed:.3g} at output scale {scale:.3g})",
    )


def _reference(model, *inputs, grad: bool = False):
    """The float64 value of what ``model`` computes (and the first layer's weight grad)."""
    ref = copy.deepcopy(model).double()
    for p in ref.parameters():
        p.grad = None  # the copy carries eager's gradients
    if not grad:
        with torch.no_grad():
            return ref(*(i.double() for i in inputs)), None
    out = ref(*(i.double() for i in inputs))
    out.sum().backward()
    return out.detach(), _first_weight(ref).grad


def _first_weight(model):
    return next(p for name, p in model.named_parameters() if name.endswith("weight"))


def observe(ex: Example, device: str, *, pass_on: bool) -> Observation:
    """Compile the example once, with the pass on or off, and compare with eager."""
    obs = Observation("error")
    model, shape = build(ex)
    dtype = torch.float32 if ex.autocast else getattr(torch, ex.dtype)
    train = ex.control == "train"
    gen = torch.Generator().manual_seed(ex.stats_seed)
    x = torch.rand(shape, generator=gen).to(device=device, dtype=dtype)
    batches = [x]
    if ex.dynamic:  # a second batch size: one compiled graph must serve both
        batches.append(torch.rand((shape[0] + 1, *shape[1:]), generator=gen).to(device, dtype))
    model = model.to(device=device, dtype=dtype).train(train)
    if ex.channels_last:
        layout = torch.channels_last if ex.dims == 2 else torch.channels_last_3d
        model = model.to(memory_format=layout)
        batches = [b.contiguous(memory_format=layout) for b in batches]
    compiled_model = copy.deepcopy(model)
    compiled_weight = _first_weight(compiled_model)  # before a trace renames it

    def context():
        stack = contextlib.ExitStack()
        if device != "cpu":
            stack.enter_context(devices.tf32(False))
        if ex.autocast:
            stack.enter_context(torch.autocast(device, dtype=torch.float16))
        if ex.control == "freezing" or not ex.backward:
            stack.enter_context(torch.no_grad())
        return stack

    # Eager first: an example eager refuses tests nothing.
    try:
        with context():
            eager_outs = [model(b) for b in batches]
            if ex.backward:
                eager_outs[0].float().sum().backward()
    except Exception as exc:
        return Observation("invalid", message=f"eager: {_first_line(exc)}")
    refs = [_reference(model, b, grad=ex.backward and i == 0) for i, b in enumerate(batches)]
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(inductor.pass_enabled(pass_on and ex.control != "flagoff"))
            stack.enter_context(inductor.freezing(ex.control == "freezing"))
            stack.enter_context(context())
            inductor.reset_compiler()
            if ex.call == "decomposed":
                compiled_model = tracing.pre_dispatch_trace(compiled_model, batches[0])
            compiled = torch.compile(compiled_model, dynamic=True if ex.dynamic else None)
            graphs_before = _graphs_captured()
            with inductor.count_fires() as fires:
                outs = [compiled(b) for b in batches]
            obs.fires, obs.in_graph = fires.counter, fires.in_graph
            if fires.in_running_graphs is not None and fires.attempts > fires.finished:
                # Dynamo abandoned a compile and retried (2.10+, dynamic shapes: restart
                # analysis); the pass rewrote both. Judge the graphs that run.
                obs.fires = obs.in_graph = fires.in_running_graphs
            obs.graphs = _graphs_captured() - graphs_before
            errors = []
            for out, eager_out, (ref, _) in zip(outs, eager_outs, refs):
                ok, err, msg = _check(out, eager_out.detach(), ex, ref)
                errors.append(err)
                if not ok:
                    obs.kind, obs.message = "wrong", msg
                    break
            else:
                obs.kind = "correct"
                if ex.backward:
                    outs[0].float().sum().backward()
                    grad = compiled_weight.grad
                    ok, err, msg = _check(grad, _first_weight(model).grad, ex, refs[0][1])
                    errors.append(err)
                    if not ok:
                        obs.kind, obs.message = "wrong", f"weight gradient: {msg}"
            known = [e for e in errors if e is not None]
            obs.max_abs_error = max(known) if known else None
    except Exception as exc:
        cause = root_cause(exc)
        obs.kind, obs.exception = "error", type(cause).__name__
        obs.message = _first_line(cause)
    finally:
        inductor.reset_compiler()
    return obs


def _graphs_captured() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def judge(ex: Example, device: str = "cpu") -> Verdict:
    """Run ``ex`` with the pass on; where that fails, again with it off; assign blame."""
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        on = observe(ex, device, pass_on=True)
        off = None
        if on.kind in ("wrong", "error"):
            off = observe(ex, device, pass_on=False)
    if on.kind == "invalid":
        outcome, blame = Outcome.UNSUPPORTED, Blame.INVALID
    elif on.kind == "correct":
        # Each graph Dynamo captured runs the pass once: with dynamic shapes a second
        # batch size can compile again, and the counter then rises once per graph.
        expected = ex.expected_fires * max(1, on.graphs or 1)
        outcome = Outcome.FUSED if on.fires == expected else Outcome.NOT_FUSED
        blame = Blame.NONE
    else:
        outcome = Outcome.WRONG_RESULT if on.kind == "wrong" else Outcome.ERROR
        blame = Blame.PASS if off is not None and off.kind == "correct" else Blame.NOT_PASS
    message = on.message
    if outcome is Outcome.NOT_FUSED:
        message = (
            f"pass fired {on.fires} time(s) in {on.graphs} graph(s), "
            f"expected {ex.expected_fires} a graph"
        )
    return Verdict(
        id=ex.id,
        device=device,
        outcome=outcome,
        blame=blame,
        expected_fires=ex.expected_fires,
        fires=on.fires,
        fires_off=None if off is None else off.fires,
        graph_rewrites=on.in_graph,
        graphs=on.graphs,
        max_abs_error=on.max_abs_error,
        message=message,
        exception=on.exception,
        message_off="" if off is None else f"{off.kind}: {off.message}".rstrip(": "),
        seconds=round(time.perf_counter() - started, 3),
        warnings=sorted({f"{w.category.__name__}: {w.message}"[:300] for w in caught}),
    )
