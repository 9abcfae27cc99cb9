"""An upstream-ready reproducer: one file that imports only torch, builds the model in
plain code, compares eager with ``torch.compile`` with the pass's flag on, then off,
prints what differs, and exits 1 where the bug shows (the flag-on compile fails or
differs, and the flag-off one does not). Beside it, a draft issue in Markdown.

It uses only APIs that every release with the pass has (2.2 on), so one script runs
unchanged across a cause's range. The harness's reproducer (``repro``) stays for
what needs the suite's own checks; this one is for a PyTorch issue.
"""

from __future__ import annotations

import textwrap

from ..core.causes import Cause
from ..core.errors import ConfigError
from ..core.forward import forward_source
from ..core.generated import PREFIX, Example, IdError, is_transposed
from ..core.policy import Policy
from ..core.releases import NEWEST, RELEASES

__all__ = ["draft_issue", "standalone_script"]

LAYER_ARGS = "kernel_size={k}, stride={s}, padding={p}, dilation={d}, groups={g}, bias={b}"

TEMPLATE = '''# {title}
# Inductor's efficient conv-bn eval pass{cause}. Needs only torch: python {name}
# It exits 1 where the bug shows: the compile with the pass is wrong or fails, without it right.
import sys

import torch
import torch.nn.functional as F
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([{layers}])
        self.bns = nn.ModuleList([{bns}])
        for i, bn in enumerate(self.bns):  # running statistics far from the identity
            g = torch.Generator().manual_seed(1234 + {seed} * 16 + i)
            with torch.no_grad():
{randomize}

{forward}
torch.manual_seed({seed})
model = Model().to({dtype}).{mode}()
x = torch.rand({shape}, generator=torch.Generator().manual_seed({seed})).to({dtype})
{inline}

def run(flag):
    """What torch.compile gives with the pass's flag set so, or the error it raises."""
    torch._dynamo.reset()
    torch._inductor.config.efficient_conv_bn_eval_fx_passes = flag
    try:
        with torch.no_grad():
            out = torch.compile(model)(x)
        torch.testing.assert_close(out, expected)
    except Exception as exc:
        while exc.__cause__ is not None:  # what torch's wrappers wrap
            exc = exc.__cause__
        return f"{{type(exc).__name__}}: {{exc}}".splitlines()[0][:300]
    return None


with torch.no_grad():
    expected = model(x)
on, off = run(True), run(False)
print("torch", torch.__version__)
print("pass on: ", on or "matches eager")
print("pass off:", off or "matches eager")
sys.exit(1 if on and not off else 0)
'''

RANDOMIZE = """\
                if bn.running_mean is not None:
                    bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.5)
                    var = torch.empty(bn.num_features).uniform_(-4.6, 0.7, generator=g)
                    bn.running_var.copy_(var.exp())
                if bn.weight is not None:
                    bn.weight.copy_(torch.randn(bn.num_features, generator=g))
                    bn.bias.copy_(torch.randn(bn.num_features, generator=g))"""


def _layer(ex: Example, in_ch: int) -> str:
    if ex.layer == "Linear":
        return f"nn.Linear({in_ch}, {ex.out_ch}, bias={ex.bias})"
    args = LAYER_ARGS.format(
        k=ex.kernel, s=ex.stride, p=repr(ex.padding), d=ex.dilation, g=ex.groups, b=ex.bias
    )
    if is_transposed(ex.layer):
        args += f", output_padding={ex.output_padding}"
    elif ex.padding_mode != "zeros":
        args += f", padding_mode={ex.padding_mode!r}"
    return f"nn.{ex.layer}({in_ch}, {ex.out_ch}, {args})"


def _bn(ex: Example) -> str:
    momentum = "None" if ex.bn_momentum is None else ex.bn_momentum
    return (
        f"nn.BatchNorm{max(ex.dims, 1)}d({ex.bn_features}, eps={ex.bn_eps}, momentum={momentum}"
        f", affine={ex.bn_affine}, track_running_stats={ex.bn_track})"
    )


def _example(example_id: str) -> tuple[Example, Cause | None]:
    table = Policy.current().causes
    cause = table.by_id.get(example_id)
    if cause is not None:
        if not cause.example:
            raise ConfigError(f"cause {cause.id} names no example; add one to causes.toml")
        example_id = cause.example
    if not example_id.startswith(f"{PREFIX}-"):
        ids = ", ".join(c.id for c in table.rows)
        raise ConfigError(
            f"--standalone writes a generated example ({PREFIX}-...) or a known cause's "
            f"({ids}); {example_id!r} is a case of the suite: use repro without --standalone"
        )
    try:
        ex = Example.from_id(example_id)
    except IdError as exc:
        raise ConfigError(str(exc)) from None
    plain = ex.call != "decomposed" and not ex.autocast and not ex.dynamic
    plain = plain and ex.dtype in ("float32", "float64") and ex.control in ("none", "train")
    if not plain:
        raise ConfigError(
            f"{ex.id}: a standalone script covers CPU models compiled plainly (float32 or "
            "float64, no autocast, dynamic shapes, pre-dispatch tracing or freezing); use "
            "repro without --standalone"
        )
    return ex, cause


def standalone_script(example_id: str, name: str = "repro.py") -> str:
    """The script for a generated example, or for a known cause's example."""
    ex, cause = _example(example_id)
    layers = ", ".join(_layer(ex, ex.in_ch if i == 0 else ex.out_ch) for i in range(ex.pairs))
    inline = ""
    if not ex.inline:
        inline = "torch._dynamo.config.inline_inbuilt_nn_modules = False  # the module path"
    title = cause.title if cause else f"{ex.id}: the compiled model differs from eager"
    return TEMPLATE.format(
        title=title,
        cause=f", cause {cause.id} (torch {cause.releases})" if cause else "",
        name=name,
        layers=layers,
        bns=", ".join(_bn(ex) for _ in range(ex.pairs)),
        seed=ex.stats_seed,
        randomize=RANDOMIZE,
        forward=textwrap.indent(forward_source(ex), "    "),
        dtype=f"torch.{ex.dtype}",
        mode="train" if ex.control == "train" else "eval",
        shape=tuple(ex.input_shape),
        inline=inline,
    )


def draft_issue(example_id: str, script: str, name: str = "repro.py") -> str:
    """A draft PyTorch issue for the script: title, environment, script, expected
    against actual, the releases affected, and the suspected code at a release tag."""
    ex, cause = _example(example_id)
    tag = f"v{RELEASES[NEWEST].torch}"
    where = f"https://github.com/pytorch/pytorch/blob/{tag}/torch/_inductor/fx_passes/efficient_conv_bn_eval.py"
    suspect = f"`{cause.suspect}` in [{where.rsplit('/', 1)[1]}]({where})" if cause else where
    affected = (
        f"torch {cause.releases} (the releases this project's matrix and replay saw it in; "
        f"`python -m convbn_compat replay {ex.id}` runs it in each release's environment)"
        if cause
        else f"not yet known: `python -m convbn_compat replay {ex.id}`"
    )
    links = "".join(f"\n- {link}" for link in (cause.links if cause else ()))
    return f"""# [Inductor] efficient_conv_bn_eval: {cause.title if cause else ex.id}

## Environment

torch: (`python -c "import torch; print(torch.__version__)"`), CPU, Python 3.11;
`torch._inductor.config.efficient_conv_bn_eval_fx_passes = True`.

## Reproducer

```python
{script.rstrip()}
```

## Expected and actual

Expected: the compiled model matches eager with the pass on, as it does with it off.
Actual: with the pass on the compile fails or differs (the script prints what), with it
off it matches; the script exits 1.

## Releases affected

{affected}.

## Suspected code

{suspect}.{links}
"""
