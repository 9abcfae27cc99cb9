"""The pass's three ways in, and how a model reaches each one.

- ``module``: the BatchNorm is a *module call* (``call_module``) after a conv module;
  since 2.2 (``efficient_conv_bn_eval_graph_transform``).
- ``aten``: ``aten.batch_norm`` after an aten conv, in a pre-dispatch graph; since 2.4
  (``..._graph_transform_decomposed``, pytorch#123680).
- ``functional``: ``F.batch_norm`` after ``F.conv*d``/``F.linear``, which is what Dynamo
  makes of a BatchNorm module once it inlines built-in modules (the default from 2.5);
  since 2.5 (``..._graph_transform_inlined``, pytorch#128878).

Which a release has is read from its pass (the transform functions it defines). Which a
compile took is read from the graph the pass saw (``paths_in``): the BatchNorm sites it
left alone and the replacement calls it made.

A *route* is how a case hands its model to Inductor: ``module`` (``torch.compile``, the
release's default), ``decomposed`` (a pre-dispatch ``make_fx`` graph, then
``torch.compile``), ``fxtrace`` (``torch.fx.symbolic_trace``, then Inductor's
``compile_fx``: call_module nodes on every release, as frameworks that trace with FX
hand them over) and ``noinline`` (``torch.compile`` with Dynamo's
``inline_inbuilt_nn_modules`` off, where the release has and honours that switch).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import warnings
from collections.abc import Iterator

from ..core.cases import ROUTES
from ..core.outcomes import Unsupported

__all__ = ["ROUTES", "PassPath", "available", "paths_in", "route"]

PASS_MODULE = "torch._inductor.fx_passes.efficient_conv_bn_eval"


class PassPath(str, enum.Enum):
    MODULE = "module"
    ATEN = "aten"
    FUNCTIONAL = "functional"

    def __str__(self) -> str:
        return self.value


_TRANSFORMS = {
    PassPath.MODULE: "efficient_conv_bn_eval_graph_transform",
    PassPath.ATEN: "efficient_conv_bn_eval_graph_transform_decomposed",
    PassPath.FUNCTIONAL: "efficient_conv_bn_eval_graph_transform_inlined",
}
ARRIVED = {PassPath.MODULE: "2.2", PassPath.ATEN: "2.4", PassPath.FUNCTIONAL: "2.5"}
"""When each path shipped (for messages; ``available`` reads the installed pass)."""


def _pass_module():
    import importlib

    return importlib.import_module(PASS_MODULE)


def available() -> tuple[PassPath, ...]:
    """The paths this release's pass has, read from the transforms it defines."""
    module = _pass_module()
    return tuple(p for p, name in _TRANSFORMS.items() if hasattr(module, name))


def paths_in(graph) -> set[PassPath]:
    """The paths of the BatchNorm sites in a pre-grad graph after the pass ran: the
    replacement calls it made and the BatchNorms it left alone."""
    import torch
    import torch.nn.functional as F

    owner = getattr(graph, "owning_module", None)
    found = set()
    for node in graph.nodes:
        target = node.target
        if node.op == "call_module" and owner is not None:
            module = owner.get_submodule(target) if isinstance(target, str) else None
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                found.add(PassPath.MODULE)
        elif node.op != "call_function":
            continue
        elif getattr(target, "__module__", "") == PASS_MODULE:
            if target.__name__ == "efficient_conv_bn_eval":
                found.add(PassPath.MODULE)
            else:  # the decomposed replacement: aten ops on the aten path
                conv = node.args[5] if len(node.args) > 5 else None
                aten = isinstance(conv, torch._ops.OpOverload)
                found.add(PassPath.ATEN if aten else PassPath.FUNCTIONAL)
        elif target is F.batch_norm:
            found.add(PassPath.FUNCTIONAL)
        elif target is torch.ops.aten.batch_norm.default:
            found.add(PassPath.ATEN)
    return found


def describe(paths) -> str | None:
    """``module``, ``aten+functional``, ``none`` (no BatchNorm site left or rewritten),
    or None where the release has no hook to look."""
    if paths is None:
        return None
    return "+".join(p.value for p in PassPath if p in paths) or "none"


@functools.cache
def honours_no_inline() -> bool:
    """Whether Dynamo keeps a BatchNorm module a module call once inlining is off: one
    small compile (the pass's flag off), whose pre-grad graph is read. 2.4-2.11 keep it;
    2.12 on inline anyway (2.15 says so: "does not do anything, inline_inbuilt_nn_modules
    is always True"). Probed, not read from the version: it is what a user meets."""
    import torch
    from torch._inductor import config

    from .inductor import pass_enabled, reset_compiler
    from .tracing import inline_inbuilt_nn_modules

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.BatchNorm2d(1)).eval()
    seen: set[PassPath] = set()
    spy = config.patch(pre_grad_custom_pass=lambda graph: seen.update(paths_in(graph)))
    reset_compiler()
    try:
        with inline_inbuilt_nn_modules(False), pass_enabled(False), torch.no_grad(), spy:
            torch.compile(model)(torch.rand(1, 1, 2, 2))
    finally:
        reset_compiler()
    return PassPath.MODULE in seen


@contextlib.contextmanager
def route(name: str) -> Iterator[None]:
    """What a route needs around its compile and its calls: inlining off for
    ``noinline``, Unsupported where Dynamo has no such switch (before 2.4) or does not
    honour it (``honours_no_inline``)."""
    if name != "noinline":
        yield
        return
    from .tracing import inline_inbuilt_nn_modules

    with inline_inbuilt_nn_modules(False):
        if not honours_no_inline():
            raise Unsupported(
                "Dynamo inlines built-in modules in this release even with "
                "inline_inbuilt_nn_modules off (probed: a BatchNorm module reached the "
                "pre-grad passes as F.batch_norm), so this way to the module path does not "
                "exist; FX tracing (-fxtrace) still reaches it"
            )
        yield


def has_no_inline_route() -> bool:
    """Whether ``noinline`` reaches anything in this release (2.4-2.11): the generator
    draws no such example where it would only read ``unsupported``."""
    with warnings.catch_warnings():
        # 2.15 deprecates the switch (FutureWarning); this probe only asks about it.
        warnings.simplefilter("ignore", FutureWarning)
        try:
            with route("noinline"):
                return True
        except Unsupported:
            return False


def check_reached(name: str, seen: set[PassPath] | None) -> None:
    """``noinline`` on a release that inlines anyway (2.15 deprecated the switch: "does
    not do anything, inline_inbuilt_nn_modules is always True") reaches no module path:
    Unsupported, with what the compile took instead."""
    if name == "noinline" and seen is not None and PassPath.MODULE not in seen:
        raise Unsupported(
            "Dynamo inlined the BatchNorm module although inline_inbuilt_nn_modules was "
            f"off: the graph the pass saw holds {describe(seen)} sites, no module call"
        )
