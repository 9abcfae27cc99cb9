"""FX tracing: the pre-dispatch ``make_fx`` graph that the ``decomposed`` cases compile."""

from __future__ import annotations

import inspect

from .outcomes import Unsupported

__all__ = ["pre_dispatch_trace"]


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
