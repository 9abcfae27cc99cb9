"""A generated example's forward, as plain Python source: what the generated model runs
(``checks.models``) and what a standalone reproducer prints (``tools.standalone``).
Torch-free: it writes code, it runs none."""

from __future__ import annotations

from .generated import Example, is_transposed

__all__ = ["forward_source"]


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
