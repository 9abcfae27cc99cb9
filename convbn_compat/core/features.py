"""An example's features: the axes a cause is told by, and how to take each one away.

A feature is one way an example differs from the plainest model (a Linear called as a
module, float32, one pair, nothing switched on). Each has a value read off the example
and a removal: the same example with that one feature taken back to the plain form.

Two things read this table, so they speak the same words:

- ``causes.toml``: a cause's ``when`` names features and the values that make it;
- delta debugging (``generator.triage``): after a failure is shrunk, each feature is
  taken away in turn, and those whose removal loses the failure are its fingerprint,
  written as a ``when``.

Torch-free: the report and the unit tests read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .generated import CONTROLS, DTYPES, FUNCTIONAL_CALLS, PADDING_MODES, Example, is_transposed

__all__ = ["FEATURES", "Feature", "of_example", "remove"]

KEYWORD_CALLS = {"fkw": "fpos", "fallkw": "fpos", "fmixed": "fpos", "modulekw": "module"}


@dataclass(frozen=True)
class Feature:
    name: str
    value: Callable[[Example], object]
    """The feature's value in an example."""
    plain: object
    """Its value in the plainest model: the example has the feature when it differs."""
    remove: Callable[[Example], Example]
    """The example with this feature taken away (it may be invalid: check problems())."""
    domain: tuple = (True,)
    """Every value the feature can have but the plain one: what a cause's ``when`` lists
    for it, so that a fault seen with one value is recognised with the others too."""


def _as_linear(ex: Example) -> Example:
    return ex.replace(
        layer="Linear",
        input_shape=(ex.input_shape[0], ex.in_ch),
        kernel=(),
        stride=(),
        padding=(),
        dilation=(),
        output_padding=(),
        groups=1,
        padding_mode="zeros",
        channels_last=False,
    )


def _as_conv(ex: Example) -> Example:
    return ex.replace(layer=ex.layer.replace("ConvTranspose", "Conv"), output_padding=())


def _as_1d(ex: Example) -> Example:
    def first(values):
        return values[:1] if isinstance(values, tuple) else values

    return ex.replace(
        layer=f"{ex.layer[:-2]}1d",
        input_shape=ex.input_shape[:3],
        kernel=first(ex.kernel),
        stride=first(ex.stride),
        padding=first(ex.padding),
        dilation=first(ex.dilation),
        output_padding=first(ex.output_padding),
        channels_last=False,
    )


def _ones(values: tuple[int, ...]) -> tuple[int, ...]:
    return (1,) * len(values)


def _zeros(values) -> tuple[int, ...]:
    return (0,) * (len(values) if isinstance(values, tuple) else 1)


def _call(call: str) -> Callable[[Example], Example]:
    return lambda ex: ex.replace(call=call, bn_form="pos")


def _field(name: str, plain: object) -> Callable[[Example], Example]:
    return lambda ex: ex.replace(**{name: plain})


FEATURES: tuple[Feature, ...] = (
    # -- the layer
    Feature("conv", lambda ex: ex.layer != "Linear", False, _as_linear),
    Feature("transposed", lambda ex: is_transposed(ex.layer), False, _as_conv),
    Feature("multi_dim", lambda ex: ex.dims > 1, False, _as_1d),
    Feature("grouped", lambda ex: ex.groups > 1, False, _field("groups", 1)),
    Feature("no_bias", lambda ex: not ex.bias, False, _field("bias", True)),
    Feature(
        "padding_mode",
        lambda ex: ex.padding_mode,
        "zeros",
        _field("padding_mode", "zeros"),
        tuple(m for m in PADDING_MODES if m != "zeros"),
    ),
    Feature(
        "kernel_over_1",
        lambda ex: any(k > 1 for k in ex.kernel),
        False,
        lambda ex: ex.replace(kernel=_ones(ex.kernel)),
    ),
    Feature(
        "strided",
        lambda ex: any(s > 1 for s in ex.stride),
        False,
        lambda ex: ex.replace(stride=_ones(ex.stride)),
    ),
    Feature(
        "padded",
        lambda ex: isinstance(ex.padding, str) or any(p for p in ex.padding),
        False,
        lambda ex: ex.replace(padding=_zeros(ex.kernel)),
    ),
    Feature(
        "dilated",
        lambda ex: any(d > 1 for d in ex.dilation),
        False,
        lambda ex: ex.replace(dilation=_ones(ex.dilation)),
    ),
    Feature(
        "output_padded",
        lambda ex: any(ex.output_padding),
        False,
        lambda ex: ex.replace(output_padding=_zeros(ex.output_padding)),
    ),
    Feature(
        "input_rank",
        # Beyond what the layer needs: (N, S, C) for a Linear; a conv's is always 2.
        lambda ex: len(ex.input_shape) - ex.dims,
        2,
        lambda ex: ex.replace(input_shape=(ex.input_shape[0], ex.in_ch)),
        (3,),
    ),
    # -- how the model calls it: keyword styles first (towards the positional call of the
    # same kind), then functional and decomposed (towards the module call)
    Feature(
        "keywords",
        lambda ex: ex.call in KEYWORD_CALLS,
        False,
        lambda ex: ex.replace(call=KEYWORD_CALLS.get(ex.call, ex.call)),
    ),
    Feature("functional", lambda ex: ex.call in FUNCTIONAL_CALLS, False, _call("module")),
    Feature("decomposed", lambda ex: ex.call == "decomposed", False, _call("module")),
    Feature("bn_keywords", lambda ex: ex.bn_form == "kw", False, _field("bn_form", "pos")),
    Feature("bn_all_args", lambda ex: ex.bn_form == "all", False, _field("bn_form", "pos")),
    # -- the BatchNorm
    Feature("bn_no_affine", lambda ex: not ex.bn_affine, False, _field("bn_affine", True)),
    Feature("bn_no_stats", lambda ex: not ex.bn_track, False, _field("bn_track", True)),
    # Yes-or-no where the value drawn is arbitrary: eps 1e-3 and 0.1 are one feature.
    Feature("bn_eps_changed", lambda ex: ex.bn_eps != 1e-5, False, _field("bn_eps", 1e-5)),
    Feature(
        "bn_momentum_changed", lambda ex: ex.bn_momentum != 0.1, False, _field("bn_momentum", 0.1)
    ),
    # -- how it runs
    Feature(
        "dtype",
        lambda ex: ex.dtype,
        "float32",
        _field("dtype", "float32"),
        tuple(d for d in DTYPES if d != "float32"),
    ),
    Feature("autocast", lambda ex: ex.autocast, False, _field("autocast", False)),
    Feature("channels_last", lambda ex: ex.channels_last, False, _field("channels_last", False)),
    Feature("dynamic", lambda ex: ex.dynamic, False, _field("dynamic", False)),
    Feature("chained", lambda ex: ex.pairs > 1, False, _field("pairs", 1)),
    Feature("extra_user", lambda ex: ex.extra_user, False, _field("extra_user", False)),
    Feature("backward", lambda ex: ex.backward, False, _field("backward", False)),
    Feature("no_inline", lambda ex: not ex.inline, False, _field("inline", True)),
    Feature(
        "control",
        lambda ex: ex.control,
        "none",
        _field("control", "none"),
        tuple(c for c in CONTROLS if c != "none"),
    ),
    Feature("reseeded", lambda ex: ex.stats_seed != 0, False, _field("stats_seed", 0)),
)
BY_NAME = {f.name: f for f in FEATURES}


def of_example(ex: Example) -> dict:
    """Every feature's value in ``ex``, with the layer and call style by name too."""
    found = {f.name: f.value(ex) for f in FEATURES}
    found.update(layer=ex.layer, call=ex.call)
    return found


def present(ex: Example) -> list[Feature]:
    """The features ``ex`` has: those not at the plainest model's value."""
    return [f for f in FEATURES if f.value(ex) != f.plain]


def remove(ex: Example, feature: Feature) -> Example | None:
    """``ex`` without ``feature``, or None where that is no valid model."""
    try:
        out = feature.remove(ex)
    except (IndexError, ValueError, TypeError):
        return None
    return None if out == ex or out.problems() else out
