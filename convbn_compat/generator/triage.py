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
    untested: dict = field(default_factory=dict)
    """Feature name -> value: features whose removal makes no valid model, or that the
    time limit left untried. A row keeps them: it must not match more than was shown."""
    judged: int = 0
    """Examples the oracle judged for it (each once)."""
    complete: bool = True

    def when(self, outcome: str, exception: str | None) -> dict:
        """The fingerprint as a cause row's ``when``: each essential (and untested)
        feature with every value it can take but the plain one, so that one fault seen
        with reflect and with circular padding is one cause."""
        kept = {**self.untested, **self.essential}
        out = {k: list(features.BY_NAME[k].domain) for k in sorted(kept)}
        out["outcome"] = [outcome]
        if exception:
            out["exception"] = [exception]
        return out

    @property
    def text(self) -> str:
        """``conv+padding_mode``: the features the failure cannot do without (and any
        that could not be tried, marked ``?``)."""
        parts = sorted(self.essential) + [f"{k}?" for k in sorted(self.untested)]
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
    seen: dict[str, object] = {}

    def still_fails(candidate: Example) -> bool | None:
        if candidate.id not in seen:  # asked again at the fixed point: no second run
            if deadline is not None and time.monotonic() >= deadline:
                return None
            seen[candidate.id] = judge(candidate)
        got = seen[candidate.id]
        return None if got is None else same_failure(got, verdict)

    current, complete = _reduce(example, still_fails)
    result = Fingerprint(current, complete=complete)
    for feat in features.present(current):
        smaller = features.remove(current, feat)
        # At the fixed point every valid removal was judged and lost the failure (the
        # judge caches, so asking again costs nothing).
        fails = still_fails(smaller) if smaller is not None else None
        if fails is False:
            result.essential[feat.name] = feat.value(current)
        else:
            result.untested[feat.name] = feat.value(current)
    result.judged = sum(1 for v in seen.values() if v is not None)
    return result


def _reduce(example: Example, still_fails) -> tuple[Example, bool]:
    """Take features away one at a time while the failure stays, to a fixed point; and
    whether every removal could be tried."""
    current = example
    changed = True
    while changed:
        changed = False
        for feat in features.present(current):
            smaller = features.remove(current, feat)
            if smaller is None:
                continue
            fails = still_fails(smaller)
            if fails is None:
                return current, False
            if fails:
                current, changed = smaller, True
                break
    return current, True
