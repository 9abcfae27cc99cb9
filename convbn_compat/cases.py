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
import itertools
import time
import traceback
import warnings
from dataclasses import dataclass, field

from . import devices, inductor, tracing
from .outcomes import Outcome, Unsupported

__all__ = ["CASES", "Case", "CaseResult", "Tolerance", "get_case", "run_case"]

LAYERS = (
    "Linear",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
)
# The BatchNorm that follows each layer: the number of spatial dims decides it.
_SPATIAL_DIMS = {
    "Linear": 0,
    "Conv1d": 1,
    "Conv2d": 2,
    "Conv3d": 3,
    "ConvTranspose1d": 1,
    "ConvTranspose2d": 2,
    "ConvTranspose3d": 3,
}
MODULES = ("ConvOp", "MultiUserConvOp")
EXPECTED_FIRES = {"ConvOp": 1, "MultiUserConvOp": 3}


@dataclass(frozen=True)
class Case:
    module: str  # ConvOp | MultiUserConvOp
    bias: bool
    layer: str  # one of LAYERS
    norm: str  # bn | syncbn
    graph: str  # module (Dynamo traces the nn.Module) | decomposed (pre-dispatch make_fx)

    @property
    def id(self) -> str:
        bias = "bias" if self.bias else "nobias"
        return f"{self.module}-{bias}-{self.layer}-{self.norm}-{self.graph}"

    @property
    def expected_fires(self) -> int:
        return EXPECTED_FIRES[self.module]


# Same order as upstream's itertools.product, so results line up with its loop.
CASES: tuple[Case, ...] = tuple(
    Case(module, bias, layer, norm, graph)
    for module, bias, layer, norm, graph in itertools.product(
        MODULES, (True, False), LAYERS, ("bn", "syncbn"), ("module", "decomposed")
    )
)
_BY_ID = {c.id: c for c in CASES}


def get_case(case_id: str) -> Case:
    from .releases import ConfigError

    try:
        return _BY_ID[case_id]
    except KeyError:
        close = [c for c in _BY_ID if case_id.lower() in c.lower()][:5]
        hint = f"; did you mean {', '.join(close)}" if close else ""
        raise ConfigError(
            f"no case {case_id!r}{hint}. Ids look like ConvOp-bias-Conv2d-bn-module: "
            f"module {'|'.join(MODULES)}, bias|nobias, layer {'|'.join(LAYERS)}, "
            "bn|syncbn, module|decomposed"
        ) from None


@dataclass(frozen=True)
class Tolerance:
    """assert_close tolerances; the float32 defaults unless TF32 loosens them."""

    rtol: float = 1.3e-6
    atol: float = 1e-5

    @classmethod
    def for_run(cls, tf32: bool) -> Tolerance:
        # Upstream: @tf32_on_and_off(0.003) raises atol to 0.003 when TF32 is on.
        return cls(atol=0.003) if tf32 else cls()


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


def _build(case: Case, device: str):
    import torch
    from torch import nn

    layer_cls = getattr(nn, case.layer)
    dims = _SPATIAL_DIMS[case.layer]
    bn_cls = getattr(nn, f"BatchNorm{max(dims, 1)}d")
    kwargs = {} if case.layer == "Linear" else {"kernel_size": 3, "stride": 2}

    class ConvOp(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = layer_cls(3, 32, bias=case.bias, **kwargs)
            self.bn = bn_cls(32)

        def forward(self, x):
            x = self.conv(x)
            return self.bn(x)

    class MultiUserConvOp(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = layer_cls(3, 32, bias=case.bias, **kwargs)
            self.bn1 = bn_cls(32)
            self.conv2 = layer_cls(32, 32, bias=case.bias, **kwargs)
            self.bn2 = bn_cls(32)
            self.conv3 = layer_cls(32, 32, bias=case.bias, **kwargs)
            self.bn3 = bn_cls(32)

        def forward(self, x):
            x = self.bn1(self.conv1(input=x))
            x = self.bn2(input=self.conv2(self.conv2(x)))
            x = self.bn3(input=self.conv3(input=x))
            x = self.bn3(x) + x
            return x

    model = {"ConvOp": ConvOp, "MultiUserConvOp": MultiUserConvOp}[case.module]()
    model = model.to(device).eval()
    # Conv shapes go from big to small, transposed convs from small to big (upstream).
    spatial = 4 if case.layer.startswith("ConvTranspose") else 96
    inp = torch.rand([4, 3] + [spatial] * dims).to(device)
    return model, inp


def _max_abs_error(actual, expected) -> float:
    import torch

    with torch.no_grad():
        return float((actual.detach().double() - expected.detach().double()).abs().max())


def _compare(actual, expected, tol: Tolerance) -> tuple[bool, float, str]:
    import torch

    err = _max_abs_error(actual, expected)
    try:
        torch.testing.assert_close(actual, expected, rtol=tol.rtol, atol=tol.atol)
    except AssertionError as exc:
        return False, err, str(exc).strip().splitlines()[0]
    return True, err, ""


def run_case(case: Case, device: str = "cpu", *, tf32: bool = False, seed: int = 0) -> CaseResult:
    """Run one case and classify it; never raises for a failure of the pass."""
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
            stack.enter_context(inductor.pass_enabled(True))
            if device != "cpu":
                stack.enter_context(devices.tf32(tf32))
            torch.manual_seed(seed)
            mod_eager, inp = _build(case, device)
            mod_compiled = copy.deepcopy(mod_eager)
            if case.norm == "syncbn":
                mod_eager = nn.SyncBatchNorm.convert_sync_batchnorm(mod_eager).eval()
                mod_compiled = nn.SyncBatchNorm.convert_sync_batchnorm(mod_compiled).eval()
            inductor.reset_compiler()
            if case.graph == "decomposed":
                mod_compiled = tracing.pre_dispatch_trace(mod_compiled, inp)
            compiled = torch.compile(mod_compiled)
            tol = Tolerance.for_run(tf32)
            opt_eager = torch.optim.SGD(mod_eager.parameters(), lr=1e-3)
            opt_compiled = torch.optim.SGD(mod_compiled.parameters(), lr=1e-3)
            with inductor.count_fires() as fires:
                out_eager = mod_eager(inp)
                out_compiled = compiled(inp)
                ok, err, msg = _compare(out_compiled, out_eager, tol)
                errors = [err]
                if ok:
                    out_eager.mean().backward()
                    out_compiled.mean().backward()
                    opt_eager.step()
                    opt_compiled.step()
                    inp2 = torch.rand_like(inp)
                    ok, err, msg = _compare(compiled(inp2), mod_eager(inp2), tol)
                    errors.append(err)
                    if msg:
                        msg = f"after one SGD step: {msg}"
            result.fire_count = fires.counter
            result.graph_rewrites = fires.in_graph
            result.max_abs_error = max(errors)
            if not ok:
                result.outcome = Outcome.WRONG_RESULT
                result.message = msg
            elif fires.counter != case.expected_fires:
                result.outcome = Outcome.NOT_FUSED
                result.message = (
                    f"pass fired {fires.counter} time(s), expected {case.expected_fires}"
                )
            elif fires.in_graph is not None and fires.in_graph != fires.counter:
                result.outcome = Outcome.NOT_FUSED
                result.message = (
                    f"pass counted {fires.counter} rewrite(s) but the compiled graph holds "
                    f"{fires.in_graph}"
                )
            else:
                result.outcome = Outcome.FUSED
    except Unsupported as exc:
        result.outcome = Outcome.UNSUPPORTED
        result.message = str(exc)
    except Exception as exc:
        result.outcome = Outcome.ERROR
        frames = traceback.format_exception_only(type(exc), exc)
        result.message = "".join(frames).strip()[:2000]
    finally:
        inductor.reset_compiler()
    result.warnings = sorted({f"{w.category.__name__}: {w.message}"[:300] for w in caught})
    result.seconds = round(time.perf_counter() - started, 3)
    return result
