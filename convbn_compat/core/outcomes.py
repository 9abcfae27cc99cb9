"""The outcome vocabulary: every case ends in exactly one of these, and ``classify`` is
the one rule that turns a run into an outcome (the suite, the oracle and reach call it).
"""

from __future__ import annotations

import enum

__all__ = ["Blame", "FaultVerdict", "Outcome", "Unsupported", "classify"]


class Outcome(str, enum.Enum):
    FUSED = "fused"
    """Correct, and the pass fired exactly as often as expected."""
    NOT_FUSED = "not-fused"
    """Correct, but the pass fired a different number of times."""
    WRONG_RESULT = "wrong-result"
    """The compiled output differs from eager beyond tolerance."""
    ERROR = "error"
    """Compiling or running raised (or the interpreter died)."""
    UNSUPPORTED = "unsupported"
    """The release lacks something the case needs; the case did not run."""

    def __str__(self) -> str:
        return self.value

    @property
    def severity(self) -> int:
        """Worse outcomes rank higher; a rise along a lane is a regression."""
        return _SEVERITY[self]

    @property
    def symbol(self) -> str:
        """One character for tables (Markdown, HTML, the terminal)."""
        return _SYMBOL[self]

    @property
    def is_failure(self) -> bool:
        """Wrong or failing: a bug wherever it is not expected."""
        return self in (Outcome.WRONG_RESULT, Outcome.ERROR)

    @property
    def is_correct(self) -> bool:
        """The compiled output was right (fused or not)."""
        return self in (Outcome.FUSED, Outcome.NOT_FUSED)

    @classmethod
    def parse(cls, text: object) -> Outcome:
        try:
            return cls(text)
        except ValueError:
            raise ValueError(
                f"unknown outcome {text!r}; choose one of: {', '.join(o.value for o in cls)}"
            ) from None


_SEVERITY = {
    Outcome.FUSED: 0,
    Outcome.UNSUPPORTED: 0,
    Outcome.NOT_FUSED: 1,
    Outcome.WRONG_RESULT: 2,
    Outcome.ERROR: 3,
}
_SYMBOL = {
    Outcome.FUSED: "✓",
    Outcome.NOT_FUSED: "○",
    Outcome.WRONG_RESULT: "✗",
    Outcome.ERROR: "E",
    Outcome.UNSUPPORTED: "u",
}
NOT_RUN_SYMBOL = " "


class Blame(str, enum.Enum):
    """Whose fault a generated example's failure is: the oracle's verdict."""

    PASS = "pass"
    """Wrong or failing with the pass on, right with the same compile and the pass off."""
    NOT_PASS = "not-pass"
    """Wrong or failing with the pass off too: Inductor's or BatchNorm's own bug."""
    NONE = "none"
    """Right with the pass on: nothing to blame (fused or not)."""
    INVALID = "invalid"
    """Eager itself refused the model: not a test of the pass at all."""

    def __str__(self) -> str:
        return self.value


class FaultVerdict(str, enum.Enum):
    """What the suite did with one injected fault of the pass (``sensitivity``)."""

    CAUGHT = "caught"
    """A case failed: the suite noticed the fault."""
    MISSED = "missed"
    """Every case passed with the fault in place."""
    NOT_APPLICABLE = "not-applicable"
    """The fault's code is not in this release's pass."""
    HARNESS_ERROR = "harness-error"
    """The suite itself failed to run (a usage error, a crash of pytest): no verdict."""

    def __str__(self) -> str:
        return self.value


class Unsupported(Exception):
    """Raised by the shim when the installed torch lacks a capability a case needs."""


def classify(
    *, correct: bool, fires: int | None, expected: int, rewrites: int | None, wrong: str = ""
) -> tuple[Outcome, str]:
    """The outcome of a run that raised nothing, and why: the suite's rule in one place.

    ``fires`` is the pass's counter, ``rewrites`` the replacement calls found in the
    compiled graph (None where the release has no hook to look).
    """
    if not correct:
        return Outcome.WRONG_RESULT, wrong
    if fires != expected:
        return Outcome.NOT_FUSED, f"pass fired {fires} time(s), expected {expected}"
    if rewrites is not None and rewrites != fires:
        return Outcome.NOT_FUSED, (
            f"pass counted {fires} rewrite(s) but the compiled graph holds {rewrites}"
        )
    return Outcome.FUSED, ""
