"""Hypothesis strategies for generated examples: one strategy per axis, combined once.

Constraints live in the strategies (sizes drawn from what the layer's arithmetic
allows), not in ``assume()``, so shrinking stays fast: a failure shrinks towards the
first layer (Linear), the first call style (module), small channels, kernel 1, stride 1,
no padding, float32, one pair, and no control. Imports Hypothesis, never torch.
"""

from __future__ import annotations

from hypothesis import strategies as st

from ..core.generated import (
    BN_FORMS,
    CALLS,
    CONTROLS,
    LAYERS,
    MODULE_CALLS,
    PADDING_MODES,
    Example,
    is_transposed,
    spatial_dims,
)

__all__ = ["examples"]

CPU_DTYPES = ("float32", "float64")
CUDA_DTYPES = ("float32", "float16", "bfloat16")


def _rarely(draw, odds: int) -> bool:
    """True once in ``odds + 1`` draws; shrinks to False (the plain configuration)."""
    return draw(st.integers(0, odds)) == odds


def _per_dim(values: st.SearchStrategy[int], dims: int) -> st.SearchStrategy[tuple[int, ...]]:
    """Mostly one value for every dim (as most models write it), sometimes one each."""
    same = values.map(lambda v: (v,) * dims)
    return st.one_of(same, st.tuples(*[values] * dims)) if dims > 1 else same


@st.composite
def _channels(draw, layer: str) -> tuple[int, int, int]:
    """(in, out, groups): groups divides both; depthwise (groups == in) included."""
    if layer == "Linear":
        return draw(st.integers(1, 8)), draw(st.integers(1, 8)), 1
    groups = draw(st.sampled_from((1, 1, 2, 3, 4)))
    in_ch = groups * draw(st.integers(1, 3))
    out_ch = groups * draw(st.integers(1, 3))
    return in_ch, out_ch, groups


@st.composite
def _conv_args(draw, layer: str, functional: bool) -> dict:
    dims = spatial_dims(layer)
    transposed = is_transposed(layer)
    kernel = draw(_per_dim(st.integers(1, 4), dims))
    stride = draw(_per_dim(st.integers(1, 3), dims))
    dilation = draw(_per_dim(st.sampled_from((1, 1, 2)), dims))
    args: dict = {"kernel": kernel, "stride": stride, "dilation": dilation}
    if not transposed and _rarely(draw, 5):
        # String padding: 'same' needs stride 1.
        padding = draw(st.sampled_from(("same", "valid")))
        if padding == "same":
            args["stride"] = (1,) * dims
        args["padding"] = padding
    else:
        args["padding"] = draw(_per_dim(st.integers(0, 2), dims))
    if transposed:
        args["output_padding"] = tuple(
            draw(st.integers(0, max(s, d) - 1)) if draw(st.booleans()) else 0
            for s, d in zip(stride, dilation)
        )
    if not functional and not transposed and not isinstance(args["padding"], str):
        args["padding_mode"] = draw(st.sampled_from(PADDING_MODES[:1] * 3 + PADDING_MODES[1:]))
    return args


def _min_input(fields: dict, dims: int, pairs: int) -> int:
    """The smallest spatial size that keeps every pair's output non-empty (and its
    padding mode's limits met); MAX_SIZE + 1 where none up to MAX_SIZE does."""
    keys = ("kernel", "stride", "padding", "dilation", "output_padding", "padding_mode")
    for size in range(1, MAX_SIZE + 1):
        probe = Example(
            layer=fields["layer"],
            call="module",
            in_ch=1,
            out_ch=1,
            input_shape=(1, 1) + (size,) * dims,
            pairs=pairs,
            **{k: fields[k] for k in keys if k in fields},
        )
        if not probe.problems():
            return size
    return MAX_SIZE + 1


MAX_SIZE = 24  # spatial sizes stay small: a Conv3d input is at most 3 x 12 x 30^3


def _shape(draw, fields: dict, dims: int, pairs: int, batch: int) -> tuple[tuple, int]:
    """(input shape, pairs): a spatial size every pair's output fits, fewer pairs (or no
    padding mode) where none up to MAX_SIZE does; for Linear, sometimes a 3-D input."""
    in_ch = fields["in_ch"]
    if not dims:
        rank3 = _rarely(draw, 3)
        if rank3:
            return (batch, draw(st.integers(1, 5)), in_ch), 1
        return (batch, in_ch), pairs
    smallest = _min_input(fields, dims, pairs)
    while smallest > MAX_SIZE and pairs > 1:
        # Each pair shrinks (or grows) the map again; fewer pairs keep it small.
        pairs -= 1
        smallest = _min_input(fields, dims, pairs)
    if smallest > MAX_SIZE:  # even one pair cannot fit: drop the padding mode
        fields["padding_mode"] = "zeros"
        smallest = _min_input(fields, dims, pairs)
    spatial = [draw(st.integers(smallest, smallest + 6)) for _ in range(dims)]
    return (batch, in_ch, *spatial), pairs


def _batchnorm(draw, functional: bool) -> dict:
    fields = {
        "bn_affine": not _rarely(draw, 4),
        "bn_track": not _rarely(draw, 6),
        "bn_eps": draw(st.sampled_from((1e-5, 1e-3, 0.1))),
        "bn_momentum": draw(st.sampled_from((0.1, 0.5, None))),
    }
    if functional:
        fields["bn_form"] = draw(st.sampled_from(BN_FORMS))
    return fields


def _how_it_runs(draw, device: str, dims: int) -> dict:
    """dtype, autocast, memory format, dynamic shapes, an extra user, the control."""
    fields = {"dtype": draw(st.sampled_from(CPU_DTYPES if device == "cpu" else CUDA_DTYPES))}
    if device == "cuda" and fields["dtype"] == "float32":
        fields["autocast"] = _rarely(draw, 3)
    if dims in (2, 3):
        fields["channels_last"] = _rarely(draw, 3)
    fields["dynamic"] = _rarely(draw, 4)
    fields["extra_user"] = _rarely(draw, 5)
    fields["control"] = draw(st.sampled_from(CONTROLS[:1] * 9 + CONTROLS[1:]))
    return fields


@st.composite
def examples(
    draw, device: str = "cpu", layers: tuple[str, ...] = LAYERS, no_inline: bool = True
) -> Example:
    """One valid layer -> BatchNorm model for ``device`` ('cpu' or 'cuda'). With
    ``no_inline`` False (a release without that route), every module call inlines."""
    layer = draw(st.sampled_from(layers))
    call = draw(st.sampled_from(CALLS))
    functional = call.startswith("f")
    dims = spatial_dims(layer)
    in_ch, out_ch, groups = draw(_channels(layer))
    fields: dict = {"layer": layer, "call": call, "in_ch": in_ch, "out_ch": out_ch}
    fields["groups"] = groups
    fields["bias"] = draw(st.booleans().map(lambda b: not b))  # shrinks to bias on
    pairs = draw(st.sampled_from((1, 1, 1, 2, 3)))
    batch = draw(st.integers(1, 3))
    if dims:
        fields.update(draw(_conv_args(layer, functional)))
    fields["input_shape"], fields["pairs"] = _shape(draw, fields, dims, pairs, batch)
    fields.update(_batchnorm(draw, functional))
    fields.update(_how_it_runs(draw, device, dims))
    if call == "decomposed" and fields["control"] == "train" and fields["bn_momentum"] is None:
        # A cumulative average divides by num_batches_tracked, a value make_fx cannot
        # read while it traces ("trying to get value out of a tracing tensor"): no model
        # for the pre-dispatch path, in any release.
        fields["bn_momentum"] = 0.1
    if fields["control"] == "train" or not fields["bn_track"]:
        # BatchNorm on batch statistics needs more than one value per channel: eager
        # refuses a batch of one on a 1x1 map ("Expected more than 1 value per channel").
        shape = fields["input_shape"]
        fields["input_shape"] = (max(2, shape[0]), *shape[1:])
    if fields["control"] != "freezing":
        fields["backward"] = _rarely(draw, 3)
    fields["stats_seed"] = draw(st.integers(0, 3))
    if call in MODULE_CALLS and no_inline:
        # Last, so that the draws before it make the examples they made before it came.
        fields["inline"] = not _rarely(draw, 4)
    example = Example(**fields)
    problems = example.problems()
    # The strategy only builds valid examples; a problem here is a bug of the strategy.
    assert not problems, (example.id, problems)
    return example
