"""The case list: every case of the matrix, as data. Imports no torch.

The cases are upstream's ``test/inductor/test_efficient_conv_bn_eval.py`` product: two
module shapes x conv bias x seven conv/linear + BN pairs x SyncBatchNorm x pre-dispatch
decomposition, 112 per device, then our controls, configurations, reported bugs and the
bugs the generator found. A case names its model (a builder of ``checks.models.MODELS`` and its
arguments); ``runner.run_case`` builds it, runs upstream's checks and classifies.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass
from typing import Any

from . import generated
from .cells import DEVICES, parse_cell_id
from .errors import ConfigError

__all__ = [
    "CASES",
    "EXTENDED_CASES",
    "UPSTREAM_CASES",
    "Case",
    "get_case",
]

# The layers the pass handles, one list for the case table and the generator.
LAYERS = generated.LAYERS
MODULES = ("ConvOp", "MultiUserConvOp")
EXPECTED_FIRES = {"ConvOp": 1, "MultiUserConvOp": 3}


UPSTREAM = "upstream"
EXTENDED = "extended"
FOUND = "found"
"""Bugs the generator found (``nox -s fuzz-X.Y-cpu``), kept as cases of the matrix."""
GENERATED = "generated"


@dataclass(frozen=True)
class Case:
    """One case: which model it builds, and what the pass should do with it."""

    id: str
    expected_fires: int
    model: str = ""
    """The builder in ``checks.models.MODELS`` (``upstream``, ``convbn``); empty for a
    generated example, which ``checks.models.build_example`` builds from its id."""
    model_args: tuple[tuple[str, Any], ...] = ()
    """The builder's keyword arguments, as (name, value) pairs."""
    subset: str = UPSTREAM
    graph: str = "module"
    """The route to Inductor (``shim.paths.ROUTES``): module (``torch.compile``, the
    release's default path), decomposed (pre-dispatch make_fx first: the aten path),
    fxtrace (``symbolic_trace`` + ``compile_fx``: the module path on every release),
    noinline (``torch.compile`` with inlining off: the module path where honoured)."""
    syncbn: bool = False
    pass_enabled: bool = True
    train: bool = False
    freezing: bool = False
    """Inductor's freezing flag on (the pass's guard reads it), grad left on."""
    dtype: str = "float32"
    channels_last: bool = False
    devices: tuple[str, ...] = DEVICES
    links: tuple[str, ...] = ()
    about: str = ""
    example: str | None = None
    """A generated example's id (``Gen-...``): the case is that example, run and judged
    by the generator's oracle (``checks.oracle``), pass off as well as on."""


def _model(name: str, **kwargs: Any) -> dict[str, Any]:
    """A Case's model fields: builder ``name`` with ``kwargs``."""
    return {"model": name, "model_args": tuple(sorted(kwargs.items()))}


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
                **_model("upstream", module=module, bias=bias, layer=layer),
                graph=graph,
                syncbn=norm == "syncbn",
            )
        )
    return tuple(cases)


ROUTES = ("module", "decomposed", "fxtrace", "noinline")
"""Every route to Inductor (``shim.paths.ROUTES``, named here for a torch-free table)."""


CONTROLS = (
    ("Control-passoff", _model("convbn"), {"pass_enabled": False}, "flag off"),
    ("Control-trainbn", _model("convbn"), {"train": True}, "BatchNorm in training mode"),
    (
        "Control-convmultiuser",
        _model("convbn", variant="conv-multiuser"),
        {},
        "the conv output has a second user",
    ),
    ("Control-freezing", _model("convbn"), {"freezing": True}, "Inductor's freezing on"),
    (
        "Control-bnnostats",
        _model("convbn", variant="bn-nostats"),
        {},
        "BatchNorm without running statistics (track_running_stats=False)",
    ),
    (
        "Control-notconv",
        _model("convbn", variant="bn-after-relu"),
        {},
        "the BatchNorm's input is a ReLU, not a conv",
    ),
)
"""(name, model, case fields, the guard): where the pass must stay away."""


def _extended_cases() -> tuple[Case, ...]:
    cases = []
    graphs = ("module", "decomposed")

    def add(name, fires, model, graphs=graphs, **kw):
        for graph in graphs:
            cases.append(
                Case(
                    f"{name}-Conv2d-bn-{graph}", fires, **model, subset=EXTENDED, graph=graph, **kw
                )
            )

    # Controls upstream's test lacks: where the pass must not fire, output still equals
    # eager. One per guard of the pass, each on every route, so that each of the pass's
    # paths (module, aten, functional) meets every guard on every release that has it.
    for name, model, kw, about in CONTROLS:
        add(name, 0, model, graphs=ROUTES, about=f"{about}: the pass must stay away", **kw)
    # Conv configurations beyond upstream's kernel 3, stride 2, NCHW float32.
    add("Config-groups", 1, _model("convbn", groups=4))
    add("Config-dilation", 1, _model("convbn", dilation=2))
    add("Config-padding", 1, _model("convbn", padding=2, padding_mode="zeros"))
    add("Config-kernel3x5", 1, _model("convbn", kernel_size=(3, 5), stride=(2, 1)))
    add("Config-channelslast", 1, _model("convbn"), channels_last=True)
    add("Config-float64", 1, _model("convbn"), dtype="float64", devices=("cpu",))
    add("Config-float16", 1, _model("convbn"), dtype="float16", devices=("cuda",))
    # Upstream's ConvOp for every layer, with BatchNorm state far from the identity:
    # upstream's fresh BN would let a fold with a wrong term, or a transposed conv
    # scaled along the wrong dimension, still match eager.
    for layer, graph in itertools.product(LAYERS, ROUTES):
        cases.append(
            Case(
                f"Stats-ConvOp-bias-{layer}-bn-{graph}",
                1,
                **_model("upstream", module="ConvOp", bias=True, layer=layer, random_bn=True),
                subset=EXTENDED,
                graph=graph,
                about="BatchNorm with random statistics, affine terms and eps 0.1",
            )
        )
    # Bugs users reported against the pass.
    add(
        "Bug169011-bn3args",
        1,
        _model("convbn", variant="bn-3args"),
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
        _model("convbn", variant="conv-kwargs"),
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
        subset=subset,
        graph="decomposed" if ex.call == "decomposed" else "module" if ex.inline else "noinline",
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
        "Gen-ConvTranspose1d-module-c2x2-k1-g2-x1x2x1-noinline",
        "ConvTranspose with groups > 1, module path with Dynamo's inlining off",
        (),
    ),
    (
        "Gen-Linear-module-c1x2-x1x2x1-noinline",
        "Linear on a 3-D input, module path with Dynamo's inlining off",
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
    case_id = case_id.strip()
    if case_id in _BY_ID:
        return _BY_ID[case_id]
    cell = parse_cell_id(case_id)  # a cell's pytest id, pasted whole
    if cell is not None and cell[0] in _BY_ID:
        return _BY_ID[cell[0]]
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
