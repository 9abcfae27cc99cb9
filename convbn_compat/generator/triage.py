"""From a failing example to its cause: delta debugging, provisional causes, proposed rows.

A minimal example (shrunk by Hypothesis) can still carry features its failure does not
need, and it does not say which of its features it does need. ``fingerprint`` takes each
feature away in turn (``core/features.py``), keeps every removal after which the example
still fails the same way, and repeats until nothing more goes. The features that are left
and cannot go are the failure's fingerprint: what a cause row's ``when`` says.

A failure no known row recognises gets a provisional cause: by crash state for an error
that the pass raised (exception, the pass's innermost function and source line), else by
its fingerprint. Examples with the same provisional cause are one new cause. Each new
cause becomes a proposed row for ``core/causes.toml`` (``causes.proposed_rows``).

Torch-free: the judge is passed in (the oracle, or a stand-in in the unit tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core import features
from ..core.generated import Example

__all__ = ["Fingerprint", "fingerprint", "same_failure"]


def same_failure(verdict, reference) -> bool:
    """Whether ``verdict`` is the failure ``reference`` is: same blame, outcome and
    exception type."""
    return (
        verdict is not None
        and verdict.outcome.is_failure
        and (verdict.blame, verdict.outcome) == (reference.blame, reference.outcome)
        and (verdict.exception or "") == (reference.exception or "")
    )


@dataclass
class Fingerprint:
    example: Example
    """The example with every feature removed that its failure does not need."""
    essential: dict = field(default_factory=dict)
    """Feature name -> value: taking it away loses the failure."""
    untested: list = field(default_factory=list)
    """Features whose removal makes no valid model, or that the time limit left untried."""
    judged: int = 0
    complete: bool = True

    def when(self, outcome: str, exception: str | None) -> dict:
        """The fingerprint as a cause row's ``when``."""
        out = {k: [v] for k, v in self.essential.items() if v is not None}
        out["outcome"] = [outcome]
        if exception:
            out["exception"] = [exception]
        return out

    @property
    def text(self) -> str:
        """``conv+padding_mode=reflect``: true features by name, others with their value."""
        parts = [k if v is True else f"{k}={v}" for k, v in sorted(self.essential.items())]
        return "+".join(parts) or "plain"


def fingerprint(
    example: Example,
    verdict,
    judge: Callable[[Example], object],
    deadline: float | None = None,
) -> Fingerprint:
    """Delta debugging over the example's features (one at a time, to a fixed point).

    ``judge(example)`` returns the oracle's verdict, or None where it could not run (a
    spent budget). ``deadline`` (``time.monotonic()``) bounds the whole search."""
    judged = 0

    def still_fails(candidate: Example) -> bool | None:
        nonlocal judged
        if deadline is not None and time.monotonic() >= deadline:
            return None
        judged += 1
        got = judge(candidate)
        return None if got is None else same_failure(got, verdict)

    current, complete = example, True
    changed = True
    while changed:
        changed = False
        for feat in features.present(current):
            smaller = features.remove(current, feat)
            if smaller is None:
                continue
            fails = still_fails(smaller)
            if fails is None:
                complete = False
                break
            if fails:
                current, changed = smaller, True
                break
    result = Fingerprint(current, complete=complete)
    for feat in features.present(current):
        smaller = features.remove(current, feat)
        # At the fixed point every valid removal was judged and lost the failure (the
        # judge caches, so asking again costs nothing).
        fails = still_fails(smaller) if smaller is not None else None
        if fails is False:
            result.essential[feat.name] = feat.value(current)
        else:
            result.untested.append(feat.name)
    result.judged = judged
    return result
