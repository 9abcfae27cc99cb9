"""Inductor config and Dynamo counters: turning the pass on and seeing it fire."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

from .outcomes import Unsupported

__all__ = ["FireCount", "count_fires", "freezing", "pass_enabled", "reset_compiler"]

PASS_FLAG = "efficient_conv_bn_eval_fx_passes"
COUNTER_GROUP = "inductor"
COUNTER_NAME = "efficient_conv_bn_eval"


def _inductor_config():
    from torch._inductor import config

    return config


def has_pass() -> bool:
    """Whether this torch has the efficient conv-bn eval pass at all (2.2 and later)."""
    return hasattr(_inductor_config(), PASS_FLAG)


@contextlib.contextmanager
def pass_enabled(enabled: bool = True) -> Iterator[None]:
    """Set the pass's config flag for the duration of the block, restoring it after."""
    config = _inductor_config()
    if not hasattr(config, PASS_FLAG):
        raise Unsupported(f"torch._inductor.config has no {PASS_FLAG} (the pass arrived in 2.2)")
    patch = {PASS_FLAG: enabled}
    if hasattr(config, "pre_grad_pass_timing"):
        # 2.15's default resolves to "late": pre-grad passes run after the AOTAutograd
        # cache lookup, "only on cache miss" (its config's words), so a hit would skip
        # the pass and its counter and read as not-fused. Our cases missed that cache
        # every time we looked (in one process and across two), but the matrix must not
        # depend on it: "early" runs the passes on every compile.
        patch["pre_grad_pass_timing"] = "early"
    with config.patch(patch):
        yield


@contextlib.contextmanager
def freezing(enabled: bool = True) -> Iterator[None]:
    """Inductor's freezing (constant-folds parameters for inference) for the block. The
    pass checks ``not config.freezing`` before it rewrites anything, in every release."""
    with _inductor_config().patch({"freezing": enabled}):
        yield


class FireCount:
    """What a ``count_fires()`` block saw of the pass.

    ``counter`` is the pass's own count (what upstream's test asserts). ``in_graph`` is
    an independent, structural count: calls to the pass's replacement functions found in
    the pre-grad graphs that Inductor compiled, or ``None`` where the release has no hook
    to look (``pre_grad_custom_pass``). A pass that counts without rewriting shows up as
    the two disagreeing.
    """

    def __init__(self) -> None:
        self.counter = 0
        self.in_graph: int | None = None


def _counter_value() -> int:
    # Read through the module every time: on the first compile of a process, 2.2-2.8's
    # ``init_once_fakemode`` replaces ``counters["inductor"]`` with a restored copy, so a
    # reference to the old group would miss every count made after it.
    from torch._dynamo.utils import counters

    return counters[COUNTER_GROUP][COUNTER_NAME]


_REPLACEMENT_MODULE = "torch._inductor.fx_passes.efficient_conv_bn_eval"


def _count_replacements(graph) -> int:
    return sum(
        1
        for node in graph.nodes
        if node.op == "call_function"
        and getattr(node.target, "__module__", "") == _REPLACEMENT_MODULE
    )


def _custom_pass_base() -> type:
    try:  # 2.6 and later: a pass with a uuid() can take part in the FX graph cache key
        from torch._inductor.custom_graph_pass import CustomGraphPass
    except ImportError:
        return object
    return CustomGraphPass


class _Observer:
    """Counts replacement calls in each pre-grad graph; changes nothing.

    Inductor puts its config, this pass included, into the FX graph cache key: 2.12 and
    later by ``uuid()``, earlier releases by pickling the config. A local function
    pickles to nothing, so the cache was bypassed; this object has a fixed uuid and
    pickles to the same bytes every time, so warm runs reuse compiled code. It runs
    before any cache lookup (the shim pins ``pre_grad_pass_timing="early"``), so a cache
    hit cannot hide what it sees.
    """

    UUID = "convbn-compat-observer-1"

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, graph) -> None:
        self.count += _count_replacements(getattr(graph, "graph", graph))

    def uuid(self) -> str:
        return self.UUID

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.count = 0


_OBSERVER_CLASS: type | None = None


def _in_this_module(namespace: dict) -> None:
    namespace["__module__"] = __name__


def _observer() -> _Observer:
    global _OBSERVER_CLASS
    if _OBSERVER_CLASS is None:
        base = _custom_pass_base()
        bases = (_Observer,) if base is object else (_Observer, base)
        # Same qualified name as the class pickle looks up below.
        _OBSERVER_CLASS = types.new_class("Observer", bases, exec_body=_in_this_module)
        globals()["Observer"] = _OBSERVER_CLASS
    return _OBSERVER_CLASS()


@contextlib.contextmanager
def count_fires() -> Iterator[FireCount]:
    """Count the pass's rewrites made inside the block, by counter and in the graph."""
    config = _inductor_config()
    result = FireCount()
    before = _counter_value()
    observer = None
    with contextlib.ExitStack() as stack:
        if hasattr(config, "pre_grad_custom_pass") and config.pre_grad_custom_pass is None:
            observer = _observer()
            stack.enter_context(config.patch({"pre_grad_custom_pass": observer}))
        try:
            yield result
        finally:
            after = _counter_value()
            # A counter that went down was reset by someone else: its delta means nothing.
            result.counter = after - before if after >= before else -1
            result.in_graph = None if observer is None else observer.count


def reset_compiler() -> None:
    """Forget every compiled graph so the next call compiles, and the pass runs, again."""
    import torch._dynamo

    torch._dynamo.reset()
