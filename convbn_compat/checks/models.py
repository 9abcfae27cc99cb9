"""The models the cases build, in plain torch: upstream's ``ConvOp`` and
``MultiUserConvOp``, our conv-BN pairs, and a generated example's model.

A case names its builder (``MODELS``) and the builder's arguments; a generated example
is built from its id (``build_example``). Each returns the model on the CPU in float32
and its input shape.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..core import generated
from ..core.cases import Case
from ..core.forward import forward_source
from ..core.generated import Example, is_transposed
from .judging import randomize_bn

__all__ = ["MODELS", "GenModel", "build", "build_example"]

# The BatchNorm that follows each layer: the number of spatial dims decides it.
_SPATIAL_DIMS = {layer: generated.spatial_dims(layer) for layer in generated.LAYERS}


def upstream_model(module: str, bias: bool, layer: str, random_bn: bool = False):
    """Upstream's ConvOp / MultiUserConvOp with freshly built layers, and its input shape."""
    layer_cls = getattr(nn, layer)
    dims = _SPATIAL_DIMS[layer]
    bn_cls = getattr(nn, f"BatchNorm{max(dims, 1)}d")
    kwargs = {} if layer == "Linear" else {"kernel_size": 3, "stride": 2}

    class ConvOp(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = layer_cls(3, 32, bias=bias, **kwargs)
            self.bn = bn_cls(32)

        def forward(self, x):
            x = self.conv(x)
            return self.bn(x)

    class MultiUserConvOp(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = layer_cls(3, 32, bias=bias, **kwargs)
            self.bn1 = bn_cls(32)
            self.conv2 = layer_cls(32, 32, bias=bias, **kwargs)
            self.bn2 = bn_cls(32)
            self.conv3 = layer_cls(32, 32, bias=bias, **kwargs)
            self.bn3 = bn_cls(32)

        def forward(self, x):
            # conv1-bn1 fuses; bn2 follows the second call of conv2; bn3 is used twice
            x = self.bn1(self.conv1(input=x))
            x = self.bn2(input=self.conv2(self.conv2(x)))
            x = self.bn3(input=self.conv3(input=x))
            x = self.bn3(x) + x
            return x

    model = {"ConvOp": ConvOp, "MultiUserConvOp": MultiUserConvOp}[module]()
    if random_bn:
        for bn in (m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
            randomize_bn(bn, 0, wide=True)
            bn.eps = 0.1
    # Conv shapes go from big to small, transposed convs from small to big (upstream).
    spatial = 4 if layer.startswith("ConvTranspose") else 96
    return model, [4, 3] + [spatial] * dims


def conv_bn(variant: str = "plain", **conv_kwargs):
    """A Conv2d + BatchNorm2d pair with non-trivial BN state, in one of a few shapes."""
    in_ch = 8
    conv_kwargs = {"kernel_size": 3, **conv_kwargs}

    class ConvBN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(in_ch, 16, **conv_kwargs)
            # bn-nostats: a BatchNorm that normalises with batch statistics even in eval.
            self.bn = nn.BatchNorm2d(16, track_running_stats=variant != "bn-nostats")
            randomize_bn(self.bn, 0, wide=False)
            # bn-after-relu: a module between them, so the module path meets a module
            # call that is no conv (and the other paths a ReLU call).
            self.relu = nn.ReLU()

        def forward(self, x):
            y = self.conv(x)
            if variant == "bn-after-relu":
                # The BatchNorm's input is not a conv: nothing for the pass to fold.
                return self.bn(self.relu(y))
            if variant == "conv-multiuser":
                # The conv output feeds BN and the sum: the pass must leave it alone.
                return self.bn(y) + y
            if variant == "bn-3args":
                # pytorch#169011: F.batch_norm with only its 3 required arguments.
                return F.batch_norm(y, self.bn.running_mean, self.bn.running_var)
            return self.bn(y)

    class ConvKwargsBN(nn.Module):
        # pytorch#196165: F.conv2d given bias/stride/padding by keyword.
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(in_ch, 16, 3)
            self.bn = nn.BatchNorm2d(16)
            randomize_bn(self.bn, 0, wide=False)

        def forward(self, x):
            y = F.conv2d(x, self.conv.weight, bias=self.conv.bias, stride=2, padding=1)
            bn = self.bn
            return F.batch_norm(
                y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.1, bn.eps
            )

    model = ConvKwargsBN() if variant == "conv-kwargs" else ConvBN()
    return model, [4, in_ch, 24, 24]


MODELS: dict[str, Callable[..., tuple[nn.Module, list[int]]]] = {
    "upstream": upstream_model,
    "convbn": conv_bn,
}
"""Builders by name, as cases name them. Each returns (model on the CPU in float32,
input shape); ``run_case`` moves both. A test plugin may add its own (tests/faults)."""


def build(case: Case) -> tuple[nn.Module, list[int]]:
    return MODELS[case.model](**dict(case.model_args))


def _bn_class(ex: Example):
    return getattr(nn, f"BatchNorm{max(ex.dims, 1)}d")


def _layer(ex: Example, in_ch: int):
    if ex.layer == "Linear":
        return nn.Linear(in_ch, ex.out_ch, bias=ex.bias)
    kwargs = dict(
        kernel_size=ex.kernel,
        stride=ex.stride,
        padding=ex.padding,
        dilation=ex.dilation,
        groups=ex.groups,
        bias=ex.bias,
    )
    if is_transposed(ex.layer):
        kwargs["output_padding"] = ex.output_padding
    else:
        kwargs["padding_mode"] = ex.padding_mode
    return getattr(nn, ex.layer)(in_ch, ex.out_ch, **kwargs)


class GenModel(nn.Module):
    """``pairs`` x (layer -> BatchNorm); ``forward`` is :func:`forward_source`."""

    def __init__(self, ex: Example):
        super().__init__()
        self.layers = nn.ModuleList(
            _layer(ex, ex.in_ch if i == 0 else ex.out_ch) for i in range(ex.pairs)
        )
        bn = _bn_class(ex)
        self.bns = nn.ModuleList(
            bn(
                ex.bn_features,
                eps=ex.bn_eps,
                momentum=ex.bn_momentum,
                affine=ex.bn_affine,
                track_running_stats=ex.bn_track,
            )
            for _ in range(ex.pairs)
        )
        for i, norm in enumerate(self.bns):
            randomize_bn(norm, ex.stats_seed * 16 + i)
        self.source = forward_source(ex)
        namespace: dict = {"F": F}
        exec(compile(self.source, f"<forward of {ex.id}>", "exec"), namespace)
        # A plain function of the class: Dynamo traces it like any written forward.
        self._forward = namespace["forward"]

    def forward(self, x):
        return self._forward(self, x)

    def extra_repr(self) -> str:
        return "forward, as generated:\n" + self.source.rstrip()


def build_example(ex: Example) -> tuple[nn.Module, tuple[int, ...]]:
    """The example's model (CPU, float32, fresh parameters from its seed) and input shape."""
    torch.manual_seed(ex.stats_seed)
    return GenModel(ex), ex.input_shape
