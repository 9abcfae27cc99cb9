"""Entry points: the ways a user's model reaches Inductor, as data (no torch here).

Each is one cell of the reach lane of a release: does the pass fire there, and is the
result right? ``reach`` runs them; the expectations table names them by ``id``
(``Reach-aoti``) as it names cases.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

__all__ = ["ENTRY_POINTS", "PAIRS", "PREFIX", "EntryPoint", "get_entry"]

PREFIX = "Reach"
SUBSET = "reach"
"""The subset an entry point's record names."""
PAIRS = 2
"""Conv-BatchNorm pairs in the reach model: the pass's expected rewrites."""


@dataclass(frozen=True)
class EntryPoint:
    name: str
    about: str
    backward: bool = True
    """Forward and backward (fine-tuning with frozen BN), or inference only."""
    expected_fires: int = PAIRS
    cache: str | None = None
    """A warm rerun on this cache: compiled, forgotten by Dynamo, compiled again."""

    @property
    def id(self) -> str:
        return f"{PREFIX}-{self.name}"


ENTRY_POINTS = (
    EntryPoint("default", "torch.compile(model), forward and backward"),
    EntryPoint("dynamic", "torch.compile(model, dynamic=True)"),
    EntryPoint(
        "no-inline",
        "torch._dynamo.config.inline_inbuilt_nn_modules = False (the default before 2.5)",
    ),
    EntryPoint("no-grad", "inference under torch.no_grad()", backward=False),
    EntryPoint("inference-mode", "inference under torch.inference_mode()", backward=False),
    EntryPoint(
        "freezing",
        "inductor freezing on, inference: the pass must stay away (it checks config.freezing)",
        backward=False,
        expected_fires=0,
    ),
    EntryPoint(
        "aoti",
        "torch.export, then AOTInductor (compiled ahead of time, loaded back)",
        backward=False,
    ),
    EntryPoint(
        "warm-fx-graph",
        "a second compile on Inductor's FX graph cache, at the release's default "
        "pre-grad pass timing",
        cache="fx-graph",
    ),
    EntryPoint(
        "warm-aot-autograd",
        "a second compile on the AOTAutograd cache, at the release's default pre-grad pass timing",
        cache="aot-autograd",
    ),
)
IDS = tuple(e.id for e in ENTRY_POINTS)


def get_entry(name: str) -> EntryPoint:
    for entry in ENTRY_POINTS:
        if name in (entry.name, entry.id):
            return entry
    raise ConfigError(
        f"no entry point {name!r}; entry points: {', '.join(e.name for e in ENTRY_POINTS)}"
    )
