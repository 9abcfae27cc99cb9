"""FX tracing: the pre-dispatch ``make_fx`` graph that the ``decomposed`` cases compile."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator

from ..core.outcomes import Unsupported

__all__ = ["fx_compile", "inline_inbuilt_nn_modules", "pre_dispatch_trace"]


@contextlib.contextmanager
def inline_inbuilt_nn_modules(enabled: bool) -> Iterator[None]:
    """Dynamo's ``inline_inbuilt_nn_modules`` for the block (2.4 and later; its default
    turned on in 2.5), which changes the graph the pass's module patterns see."""
    from torch._dynamo import config

    if not hasattr(config, "inline_inbuilt_nn_modules"):
        raise Unsupported("torch._dynamo.config has no inline_inbuilt_nn_modules (2.4+)")
    with config.patch(inline_inbuilt_nn_modules=enabled):
        yield


def _make_fx():
    # functorch.make_fx is a re-export of this one in every release we test.
    from torch.fx.experimental.proxy_tensor import make_fx

    return make_fx


def pre_dispatch_trace(module, *example_inputs):
    """Trace ``module`` to an aten-level graph above autograd, under the Python dispatcher.

    This is how upstream's test produces its "decomposed" graphs: ``make_fx(...,
    pre_dispatch=True)`` keeps ``aten.batch_norm``-level calls that the pass's aten
    patterns (2.4+) match.
    """
    make_fx = _make_fx()
    if "pre_dispatch" not in inspect.signature(make_fx).parameters:
        raise Unsupported("torch.fx.experimental.proxy_tensor.make_fx has no pre_dispatch")
    from torch._dispatch.python import enable_python_dispatcher

    with enable_python_dispatcher():
        return make_fx(module, pre_dispatch=True)(*example_inputs)


def fx_compile(module, *example_inputs):
    """``torch.fx.symbolic_trace`` the module, then hand the graph to Inductor's
    ``compile_fx``, as frameworks that trace with FX do: the graph keeps its modules as
    ``call_module`` nodes, so the pass's module path is what it meets, on every release.
    Returns a callable of the module's inputs."""
    import torch.fx
    from torch._inductor.compile_fx import compile_fx

    graph_module = torch.fx.symbolic_trace(module)
    return compile_fx(graph_module, list(example_inputs))
