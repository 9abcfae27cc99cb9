"""Inductor config and Dynamo counters: turning the pass on and seeing it fire."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

from ..core.outcomes import Unsupported

__all__ = [
    "FireCount",
    "aoti_compile",
    "aoti_load",
    "cache_enabled",
    "cache_hits",
    "count_fires",
    "freezing",
    "pass_enabled",
    "reset_compiler",
]

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
def pass_enabled(enabled: bool = True, *, pin_timing: bool = True) -> Iterator[None]:
    """Set the pass's config flag for the duration of the block, restoring it after.

    ``pin_timing=False`` leaves ``pre_grad_pass_timing`` at the release's default: the
    warm-cache entry points measure what a user's default compile does on a cache hit.
    """
    config = _inductor_config()
    if not hasattr(config, PASS_FLAG):
        raise Unsupported(f"torch._inductor.config has no {PASS_FLAG} (the pass arrived in 2.2)")
    patch = {PASS_FLAG: enabled}
    if pin_timing and hasattr(config, "pre_grad_pass_timing"):
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
        self.per_graph: list[int] | None = None
        """Rewrites found in each pre-grad graph, in compile order (None: no hook)."""
        self.per_graph_running: list[int] = []
        """The same, for the graphs whose compiles finished."""
        self.paths = None
        """The pass's paths in the graphs it saw (``paths.paths_in``), None without a hook."""
        self.attempts = 0
        self.finished = 0
        """AOTAutograd compiles begun and finished in the block. Dynamo abandons a
        compile when it restarts its analysis (2.10+ with ``dynamic=True``: its
        ``tensorify_python_scalars`` pass asks for a restart after the pre-grad passes
        ran), and the pass has rewritten that abandoned graph too."""

    @property
    def in_running_graphs(self) -> int | None:
        """Rewrites in the graphs whose compiles finished: the code that runs (None where
        the release has no hook to look)."""
        if self.per_graph is None:
            return None
        return sum(self.per_graph_running)


def _finished_compiles() -> int:
    from torch._dynamo.utils import counters

    return counters["aot_autograd"]["ok"]


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
        self.per_graph: list[int] = []
        self.finished_before: list[int] = []
        self.paths: set = set()

    def __call__(self, graph) -> None:
        from .paths import paths_in

        graph = getattr(graph, "graph", graph)
        found = _count_replacements(graph)
        self.paths |= paths_in(graph)
        self.count += found
        self.per_graph.append(found)
        self.finished_before.append(_finished_compiles())

    def running(self, finished_at_end: int) -> list[int]:
        """Each graph's rewrites, kept where its compile finished: the next graph (or the
        block's end) saw one more finished AOTAutograd compile."""
        after = [*self.finished_before[1:], finished_at_end]
        return [n for n, before, later in zip(self.per_graph, self.finished_before, after)
                if later > before]  # fmt: skip

    def uuid(self) -> str:
        return self.UUID

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


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
    from torch._dynamo.utils import counters

    config = _inductor_config()
    result = FireCount()
    before = _counter_value()
    aot_before = (counters["aot_autograd"]["total"], counters["aot_autograd"]["ok"])
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
            result.per_graph = None if observer is None else observer.per_graph
            result.paths = None if observer is None else observer.paths
            if observer is not None:
                result.per_graph_running = observer.running(_finished_compiles())
            result.attempts = counters["aot_autograd"]["total"] - aot_before[0]
            result.finished = counters["aot_autograd"]["ok"] - aot_before[1]


CACHES = {
    # name: (config module, flag, counter group, hit counter)
    "fx-graph": ("torch._inductor.config", "fx_graph_cache", "inductor", "fxgraph_cache_hit"),
    "aot-autograd": (
        "torch._functorch.config",
        "enable_autograd_cache",
        "aot_autograd",
        "autograd_cache_hit",
    ),
}


@contextlib.contextmanager
def cache_enabled(name: str) -> Iterator[None]:
    """Turn one compile cache on for the block: ``fx-graph`` (Inductor's FX graph cache,
    every release) or ``aot-autograd`` (2.5 and later; it stores Inductor's output, so the
    FX graph cache is on with it)."""
    import importlib

    module, flag, _, _ = CACHES[name]
    config = importlib.import_module(module)
    if not hasattr(config, flag):
        raise Unsupported(f"{module} has no {flag}: this release has no {name} cache")
    with contextlib.ExitStack() as stack:
        stack.enter_context(config.patch({flag: True}))
        if name == "aot-autograd":
            stack.enter_context(_inductor_config().patch({"fx_graph_cache": True}))
        yield


def cache_counters(name: str) -> dict[str, int]:
    """Every counter of the cache's group (hits, misses, bypasses, saves) as it stands."""
    from torch._dynamo.utils import counters

    return dict(counters[CACHES[name][2]])


def cache_hits(name: str) -> int:
    from torch._dynamo.utils import counters

    _, _, group, counter = CACHES[name]
    return counters[group][counter]


def aoti_compile(model, args: tuple):
    """``torch.export`` the model and compile it with AOTInductor: an artefact for
    ``aoti_load``. 2.6 and later package it (``aoti_compile_and_package``); 2.3-2.5
    compile a shared library (``aot_compile``); 2.2 can compile but has no loader."""
    import torch
    import torch._export
    import torch._inductor

    if hasattr(torch._inductor, "aoti_compile_and_package"):
        return (
            "package",
            torch._inductor.aoti_compile_and_package(torch.export.export(model, args)),
        )
    if hasattr(torch._export, "aot_load"):
        return ("library", torch._export.aot_compile(model, args))
    raise Unsupported(
        "torch._export has aot_compile but no aot_load (it arrived in 2.3): an "
        "AOTInductor library cannot be loaded back to run"
    )


def aoti_load(artefact, device: str):
    """A callable that runs what ``aoti_compile`` built."""
    import torch
    import torch._export
    import torch._inductor

    kind, path = artefact
    if kind == "package":
        return torch._inductor.aoti_load_package(path)
    return torch._export.aot_load(path, device)


def reset_compiler() -> None:
    """Forget every compiled graph so the next call compiles, and the pass runs, again."""
    import torch._dynamo

    torch._dynamo.reset()
