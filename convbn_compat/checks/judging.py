"""How a compiled result is judged, in one place: tolerances, the comparison with eager,
the float64 reference for low precision, and the BatchNorm state that makes a wrong fold
visible. The suite, the generator's oracle and reach all judge through this module.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch

__all__ = [
    "LOW_PRECISION",
    "ROUNDING_ULPS",
    "Tolerance",
    "compare",
    "first_weight",
    "max_abs_error",
    "randomize_bn",
    "reference",
    "warning_lines",
    "within_rounding",
]

LOW_PRECISION = ("float16", "bfloat16")
ROUNDING_ULPS = 4
"""How many units in the last place of the output's scale the fold may add to eager's
rounding error (``within_rounding``)."""


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


def randomize_bn(bn, seed: int = 0, *, wide: bool = True) -> None:
    """Running statistics and affine terms far from the identity: a fresh BN is nearly
    the identity in eval mode, so a fold that gets a term wrong would still match eager.

    ``wide``: variances spread from 0.01 to 2, so that every term of the fold, eps and
    the square root included, moves the output far beyond tolerance; else 0.5 to 1.5.
    A BatchNorm without running statistics or affine terms keeps what it lacks.
    """
    g = torch.Generator().manual_seed(1234 + seed)
    n = bn.num_features
    with torch.no_grad():
        if bn.running_mean is not None:
            bn.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            if wide:
                bn.running_var.copy_(torch.exp(torch.empty(n).uniform_(-4.6, 0.7, generator=g)))
            else:
                bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
        if bn.weight is not None:
            bn.weight.copy_(torch.randn(n, generator=g))
            bn.bias.copy_(torch.randn(n, generator=g))


def first_weight(model):
    return next(p for name, p in model.named_parameters() if name.endswith("weight"))


def reference(model, *inputs, grad: bool = False):
    """The float64 value of what ``model`` computes (its own parameters and input,
    upcast, so rounding is the only difference left to judge), and with ``grad`` the
    first layer's weight gradient of ``out.sum()``."""
    ref = copy.deepcopy(model).double()
    for p in ref.parameters():
        p.grad = None  # the copy carries eager's gradients
    if not grad:
        with torch.no_grad():
            return ref(*(i.double() for i in inputs)), None
    out = ref(*(i.double() for i in inputs))
    out.sum().backward()
    return out.detach(), first_weight(ref).grad


def max_abs_error(actual, expected) -> float:
    with torch.no_grad():
        return float((actual.detach().double() - expected.detach().double()).abs().max())


def compare(actual, expected, tol: Tolerance, ref=None) -> tuple[bool, float | None, str]:
    """Is the compiled output ``actual`` as good as eager's ``expected``?

    float32/float64: ``torch.testing.assert_close`` with the dtype's tolerances (TF32:
    atol 0.003), as upstream. float16/bfloat16 (``ref`` given): any reordering of the
    arithmetic (the fold computes the conv in float32 and rounds once) moves results by
    an ulp, so, as Dynamo's own accuracy checker does, the compiled output must be no
    more than twice as far from a float64 reference as eager is, plus 1e-4.
    """
    if actual.shape != expected.shape:
        # Compiled code that returns another shape computed something else entirely.
        shapes = f"compiled output has shape {tuple(actual.shape)}, eager {tuple(expected.shape)}"
        return False, None, shapes
    err = max_abs_error(actual, expected)
    if ref is not None:
        compiled_err = max_abs_error(actual, ref)
        eager_err = max_abs_error(expected, ref)
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


def within_rounding(actual, expected, ref, dtype) -> tuple[bool, str]:
    """The generator's allowance for the fold's own rounding, on top of ``compare``.

    The fold computes ``weight * scale`` and rounds it once in the model's dtype, so its
    output differs from eager's by rounding. An output that fails ``compare`` is still
    right when it is no further from the float64 value than twice eager's distance,
    plus 1e-4, plus ROUNDING_ULPS units of the dtype's epsilon times the output's scale.
    For float32 that last term is below 1e-6 of the scale; for float16 and bfloat16 it
    is about 0.4% and 3%. On the H200, 4 minutes of float16/bfloat16 examples under the
    matrix's rule alone (2x eager + 1e-4) turned up 15 signatures at 2-7x eager's
    rounding error, none beyond 1% of the output's scale; bugs of the pass move outputs
    by whole units.
    """
    with torch.no_grad():
        ref = ref.double()
        compiled_err = float((actual.double() - ref).abs().max())
        eager_err = float((expected.double() - ref).abs().max())
        scale = float(ref.abs().max())
    allowed = 2 * eager_err + 1e-4 + ROUNDING_ULPS * torch.finfo(dtype).eps * scale
    if compiled_err <= allowed:
        return True, ""
    return False, (
        f"compiled is {compiled_err:.3g} from the float64 value, eager {eager_err:.3g}, "
        f"allowed {allowed:.3g} at output scale {scale:.3g}"
    )


def warning_lines(caught) -> list[str]:
    """What a record keeps of the warnings a run raised (``warnings.catch_warnings``):
    each once, as ``Category: message``. Warnings are recorded, never judged: a
    deprecation inside torch is not a failure of the pass. Addresses (at 0x7f...) would
    make every copy of one warning unique."""
    return sorted(
        {
            re.sub(r" at 0x[0-9a-f]+", "", f"{w.category.__name__}: {w.message}")[:300]
            for w in caught
        }
    )
