"""Generated examples: one layer -> BatchNorm model, as data, with a readable id.

An :class:`Example` says everything a generated case needs: the layer and its
arguments, how the model calls it (module, functional by position or keyword, or a
pre-dispatch graph), the BatchNorm that follows, dtype and memory format, dynamic
shapes, how many layer-BN pairs, whether the layer output has another user, and the
control (flag off, training, freezing) where the pass must stay away.

The id *is* the example: ``Example.from_id(ex.id) == ex``. Fields at their default are
left out of it, so ids stay short, and ``repro``, ``cases`` and the matrix take them like
any other case id::

    Gen-ConvTranspose2d-module-c4x8-k3-s2-g2-x2x4x5x5

This module imports neither torch nor Hypothesis: the report and the case table read it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from .cells import DEVICES

__all__ = ["CALLS", "CONTROLS", "LAYERS", "PREFIX", "Example", "IdError"]

PREFIX = "Gen"
LAYERS = (
    "Linear",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
)
CALLS = (
    "module",  # self.bn(self.conv(x))
    "modulekw",  # self.bn(input=self.conv(input=x))
    "fpos",  # F.batch_norm(F.conv2d(x, w, b, stride, ...), ...): arguments by position
    "fkw",  # F.conv2d(x, w, bias=b, stride=...): all but input and weight by keyword
    "fallkw",  # F.conv2d(input=x, weight=w, bias=b, ...): every argument by keyword
    "fmixed",  # F.conv2d(x, w, b, stride=...): input, weight, bias by position
    "decomposed",  # the module call, traced to a pre-dispatch aten graph first
)
FUNCTIONAL_CALLS = ("fpos", "fkw", "fallkw", "fmixed")
MODULE_CALLS = ("module", "modulekw")
# Functional BatchNorm: non-default arguments by position, by keyword, or all 8 by position.
BN_FORMS = ("pos", "kw", "all")
CONTROLS = ("none", "flagoff", "train", "freezing")
DTYPES = ("float32", "float64", "float16", "bfloat16")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
EPS = {"5": 1e-5, "3": 1e-3, "1": 0.1}  # eps token: its negative decimal exponent


class IdError(ValueError):
    """A string that is not a generated example's id."""


def spatial_dims(layer: str) -> int:
    return 0 if layer == "Linear" else int(layer[-2])


def is_transposed(layer: str) -> bool:
    return layer.startswith("ConvTranspose")


@dataclass(frozen=True)
class Example:
    layer: str
    call: str
    in_ch: int
    out_ch: int
    input_shape: tuple[int, ...]
    """The model input, batch first: (N, C, *spatial) for convs, (N, C) or (N, S, C)
    for Linear (3-D: the BatchNorm normalises dim 1, as BatchNorm1d does)."""
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] | str = ()
    """Ints per spatial dim, or 'same' / 'valid' (not for transposed convs)."""
    dilation: tuple[int, ...] = ()
    output_padding: tuple[int, ...] = ()
    groups: int = 1
    bias: bool = True
    padding_mode: str = "zeros"
    bn_affine: bool = True
    bn_track: bool = True
    bn_eps: float = 1e-5
    bn_momentum: float | None = 0.1
    bn_form: str = "pos"
    dtype: str = "float32"
    autocast: bool = False
    channels_last: bool = False
    dynamic: bool = False
    pairs: int = 1
    extra_user: bool = False
    control: str = "none"
    backward: bool = False
    stats_seed: int = 0
    inline: bool = True
    """Dynamo inlines built-in modules (its default from 2.5); off, a module call style
    reaches the pass's module path where the release honours the switch."""

    # -- derived facts -------------------------------------------------------------

    @property
    def dims(self) -> int:
        return spatial_dims(self.layer)

    @property
    def functional(self) -> bool:
        return self.call in FUNCTIONAL_CALLS

    @property
    def devices(self) -> tuple[str, ...]:
        if self.dtype in ("float16", "bfloat16") or self.autocast:
            return ("cuda",)
        if self.dtype == "float64":
            return ("cpu",)
        return DEVICES

    @property
    def bn_features(self) -> int:
        if self.layer == "Linear" and len(self.input_shape) == 3:
            return self.input_shape[1]
        return self.out_ch

    @property
    def expected_fires(self) -> int:
        """Pairs the pass's documented conditions allow it to rewrite: BatchNorm in eval
        mode with running statistics, a layer output with no other user, the flag on and
        freezing off. (Whether a release's patterns reach a call style is a fact of that
        release, kept in the expectations table.)"""
        if self.control != "none" or not self.bn_track:
            return 0
        return self.pairs - (1 if self.extra_user else 0)

    @property
    def id(self) -> str:
        return _encode(self)

    @classmethod
    def from_id(cls, text: str) -> Example:
        return _decode(text)

    def replace(self, **changes) -> Example:
        return dataclasses.replace(self, **changes)

    def problems(self) -> list[str]:
        """Why this is not a valid model (an empty list for a valid one)."""
        return _problems(self)


# -- the id ------------------------------------------------------------------------


def _ints(values) -> str:
    return "x".join(str(v) for v in values)


def _parse_ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split("x"))


def _uniform(values: tuple[int, ...], default: int) -> str | None:
    """'3' for (3, 3), '3x5' for (3, 5), None when every value is the default."""
    if not values or all(v == default for v in values):
        return None
    return str(values[0]) if len(set(values)) == 1 else _ints(values)


def _conv_tokens(ex: Example) -> list[str]:
    """Kernel, stride, dilation, padding and output padding, where not the default."""
    parts = [f"k{_uniform(ex.kernel, -1)}"]
    for tag, values, default in (("s", ex.stride, 1), ("d", ex.dilation, 1)):
        text = _uniform(values, default)
        if text:
            parts.append(f"{tag}{text}")
    if isinstance(ex.padding, str):
        parts.append(f"p{ex.padding}")
    elif _uniform(ex.padding, 0):
        parts.append(f"p{_uniform(ex.padding, 0)}")
    if _uniform(ex.output_padding, 0):
        parts.append(f"op{_uniform(ex.output_padding, 0)}")
    return parts


def _bn_tokens(ex: Example) -> list[str]:
    """The BatchNorm's variations from a default ``BatchNorm(C)`` called by position."""
    parts = []
    if not ex.bn_affine:
        parts.append("bnnoaffine")
    if not ex.bn_track:
        parts.append("bnnostats")
    if ex.bn_eps != 1e-5:
        parts.append("eps" + next(k for k, v in EPS.items() if v == ex.bn_eps))
    if ex.bn_momentum != 0.1:
        parts.append(f"mom{'none' if ex.bn_momentum is None else ex.bn_momentum}")
    if ex.bn_form != "pos":
        parts.append(f"bn{ex.bn_form}")
    return parts


def _run_tokens(ex: Example) -> list[str]:
    """How the model runs: dtype, flags, pairs, control and the statistics' seed."""
    parts = [] if ex.dtype == "float32" else [ex.dtype]
    flags = (
        ("autocast", ex.autocast),
        ("cl", ex.channels_last),
        ("dyn", ex.dynamic),
        ("user", ex.extra_user),
        ("bwd", ex.backward),
        ("noinline", not ex.inline),
    )
    parts += [name for name, on in flags if on]
    if ex.pairs != 1:
        parts.append(f"pairs{ex.pairs}")
    if ex.control != "none":
        parts.append(ex.control)
    if ex.stats_seed:
        parts.append(f"seed{ex.stats_seed}")
    return parts


def _encode(ex: Example) -> str:
    parts = [PREFIX, ex.layer, ex.call, f"c{ex.in_ch}x{ex.out_ch}"]
    if ex.dims:
        parts += _conv_tokens(ex)
    layer_options = (
        (ex.groups != 1, f"g{ex.groups}"),
        (not ex.bias, "nobias"),
        (ex.padding_mode != "zeros", f"pm{ex.padding_mode}"),
    )
    parts += [token for differs, token in layer_options if differs]
    parts.append(f"x{_ints(ex.input_shape)}")
    return "-".join(parts + _bn_tokens(ex) + _run_tokens(ex))


def _spatial(dims: int, text: str) -> tuple[int, ...]:
    values = _parse_ints(text)
    return values * dims if len(values) == 1 else values


_SPATIAL = "per spatial dim"
_TOKENS: tuple[tuple[re.Pattern, str, object], ...] = tuple(
    (re.compile(pattern + r"\Z"), field, value)
    for pattern, field, value in (
        # (token, the Example field it sets, its value: a constant, a conversion of the
        # token's group, or one int per spatial dim)
        (r"k([0-9x]+)", "kernel", _SPATIAL),
        (r"s([0-9x]+)", "stride", _SPATIAL),
        (r"d([0-9x]+)", "dilation", _SPATIAL),
        (r"p(same|valid)", "padding", str),
        (r"p([0-9x]+)", "padding", _SPATIAL),
        (r"op([0-9x]+)", "output_padding", _SPATIAL),
        (r"g([0-9]+)", "groups", int),
        (r"nobias", "bias", False),
        (r"pm(reflect|replicate|circular)", "padding_mode", str),
        (r"x([0-9x]+)", "input_shape", _parse_ints),
        (r"bnnoaffine", "bn_affine", False),
        (r"bnnostats", "bn_track", False),
        (r"eps([0-9])", "bn_eps", EPS.__getitem__),
        (r"mom(none|[0-9.]+)", "bn_momentum", lambda t: None if t == "none" else float(t)),
        (r"bn(kw|all)", "bn_form", str),
        (r"(float64|float16|bfloat16)", "dtype", str),
        (r"autocast", "autocast", True),
        (r"cl", "channels_last", True),
        (r"dyn", "dynamic", True),
        (r"user", "extra_user", True),
        (r"bwd", "backward", True),
        (r"noinline", "inline", False),
        (r"pairs([0-9]+)", "pairs", int),
        (r"(flagoff|train|freezing)", "control", str),
        (r"seed([0-9]+)", "stats_seed", int),
    )
)


def _head(text: str, tokens: list[str]) -> dict:
    """Layer, call style and channels: the fields every id starts with."""
    if len(tokens) < 5 or tokens[0] != PREFIX:
        raise IdError(f"{text!r} is not a generated example id (they start {PREFIX}-<layer>-)")
    layer, call, channels = tokens[1:4]
    if layer not in LAYERS:
        raise IdError(f"{text!r}: unknown layer {layer!r}; layers: {', '.join(LAYERS)}")
    if call not in CALLS:
        raise IdError(f"{text!r}: unknown call style {call!r}; styles: {', '.join(CALLS)}")
    m = re.fullmatch(r"c([0-9]+)x([0-9]+)", channels)
    if not m:
        raise IdError(f"{text!r}: expected channels as c<in>x<out>, got {channels!r}")
    return {"layer": layer, "call": call, "in_ch": int(m[1]), "out_ch": int(m[2])}


def _apply_token(text: str, token: str, fields: dict, dims: int) -> None:
    for pattern, field, value in _TOKENS:
        match = pattern.match(token)
        if not match:
            continue
        if value is _SPATIAL:
            fields[field] = _spatial(dims, match[1])
        elif callable(value):
            fields[field] = value(match[1])
        else:
            fields[field] = value
        return
    raise IdError(f"{text!r}: unknown part {token!r}")


def _decode(text: str) -> Example:
    tokens = text.split("-")
    fields = _head(text, tokens)
    dims = spatial_dims(fields["layer"])
    for token in tokens[4:]:
        _apply_token(text, token, fields, dims)
    if "input_shape" not in fields:
        raise IdError(f"{text!r}: no input shape (x<N>x<C>x...)")
    if dims:
        if "kernel" not in fields:
            raise IdError(f"{text!r}: no kernel (k<size>)")
        for name, default in (("stride", 1), ("dilation", 1), ("padding", 0)):
            fields.setdefault(name, (default,) * dims)
        if is_transposed(fields["layer"]):
            fields.setdefault("output_padding", (0,) * dims)
    ex = Example(**fields)
    problems = ex.problems()
    if problems:
        raise IdError(f"{text!r} is not a valid model: {'; '.join(problems)}")
    return ex


# -- validity: the arithmetic torch applies, without torch ---------------------------


def out_size(ex: Example, size: int, d: int) -> int:
    """Length of spatial dim ``d`` after the layer, for an input of length ``size``."""
    k, s, dil = ex.kernel[d], ex.stride[d], ex.dilation[d]
    if is_transposed(ex.layer):
        p, op = ex.padding[d], ex.output_padding[d]
        return (size - 1) * s - 2 * p + dil * (k - 1) + op + 1
    if ex.padding == "same":
        return size
    p = 0 if ex.padding == "valid" else ex.padding[d]
    return (size + 2 * p - dil * (k - 1) - 1) // s + 1


def _problems(ex: Example) -> list[str]:
    if ex.call not in CALLS or ex.layer not in LAYERS or ex.control not in CONTROLS:
        return ["unknown layer, call style or control"]
    if ex.dtype not in DTYPES or ex.bn_form not in BN_FORMS:
        return ["unknown dtype or BatchNorm form"]
    out = _general_problems(ex)
    if ex.layer == "Linear":
        return out + _linear_problems(ex)
    if len(ex.input_shape) != ex.dims + 2 or ex.input_shape[1] != ex.in_ch:
        return [*out, f"{ex.layer} input is (N, {ex.in_ch}, {ex.dims} spatial dims)"]
    out += _conv_argument_problems(ex)
    return out or _size_problems(ex)


def _general_problems(ex: Example) -> list[str]:
    """What no layer allows: channels, groups and pairs that do not fit, options that
    do not go together."""
    rules = (
        (
            ex.in_ch < 1 or ex.out_ch < 1 or ex.groups < 1 or ex.pairs < 1,
            "channels, groups and pairs must be positive",
        ),
        (
            ex.groups >= 1 and (ex.in_ch % ex.groups or ex.out_ch % ex.groups),
            f"groups {ex.groups} must divide in {ex.in_ch} and out {ex.out_ch}",
        ),
        (
            ex.pairs > 1 and ex.groups >= 1 and ex.out_ch % ex.groups,
            "a chained pair needs out channels divisible by groups",
        ),
        (ex.autocast and ex.dtype != "float32", "autocast runs a float32 model"),
        (
            ex.channels_last and ex.dims not in (2, 3),
            "channels_last needs a 4-D or 5-D tensor (Conv2d, Conv3d)",
        ),
        (ex.control == "freezing" and ex.backward, "freezing is for inference; no backward"),
        (
            not ex.inline and ex.call not in MODULE_CALLS,
            "inlining is switched off only for module call styles (module, modulekw)",
        ),
        (
            ex.padding_mode != "zeros"
            and (ex.functional or is_transposed(ex.layer) or not ex.dims),
            "padding_mode other than zeros exists only on Conv modules",
        ),
    )
    return [why for broken, why in rules if broken]


def _linear_problems(ex: Example) -> list[str]:
    rules = (
        (
            ex.groups != 1 or ex.kernel or ex.channels_last,
            "Linear has no groups, kernel or channels_last",
        ),
        (
            len(ex.input_shape) not in (2, 3) or ex.input_shape[-1] != ex.in_ch,
            "Linear input is (N, in) or (N, S, in)",
        ),
        (len(ex.input_shape) == 3 and ex.pairs > 1, "a 3-D Linear input chains no second pair"),
    )
    return [why for broken, why in rules if broken]


def _conv_argument_problems(ex: Example) -> list[str]:
    """Kernel, stride, dilation, padding and output padding: their counts and values."""
    d = ex.dims
    out = [
        f"{name} needs {d} positive values"
        for name in ("kernel", "stride", "dilation")
        if len(getattr(ex, name)) != d or min(getattr(ex, name)) < 1
    ]
    if isinstance(ex.padding, str):
        if is_transposed(ex.layer) or ex.padding not in ("same", "valid"):
            out.append("string padding is 'same' or 'valid', and not for transposed convs")
        elif ex.padding == "same" and max(ex.stride, default=1) != 1:
            out.append("padding='same' needs stride 1")
    elif len(ex.padding) != d or min(ex.padding) < 0:
        out.append(f"padding needs {d} non-negative values")
    if not is_transposed(ex.layer):
        return out + (["output_padding is only for transposed convs"] if ex.output_padding else [])
    if len(ex.output_padding) != d:
        out.append(f"output_padding needs {d} values")
    elif any(
        op < 0 or op >= max(s, dl) for op, s, dl in zip(ex.output_padding, ex.stride, ex.dilation)
    ):
        out.append("output_padding must be smaller than stride or dilation")
    return out


def _padding_limit(mode: str):
    """The largest padding a padding mode allows on a dim of size s."""
    return {"reflect": lambda s: s - 1, "circular": lambda s: s}.get(mode, lambda s: 1 << 30)


def _size_problems(ex: Example) -> list[str]:
    """Every pair's output must be non-empty, and within its padding mode's limits."""
    sizes = list(ex.input_shape[2:])
    for _ in range(ex.pairs):
        if ex.padding_mode != "zeros" and not isinstance(ex.padding, str):
            limit = _padding_limit(ex.padding_mode)
            if any(p > limit(s) for p, s in zip(ex.padding, sizes)):
                return [f"padding too large for {ex.padding_mode} on size {sizes}"]
        sizes = [out_size(ex, s, i) for i, s in enumerate(sizes)]
        if min(sizes) < 1:
            return [f"the layer's output would be empty ({sizes})"]
    return []
