"""The outcome vocabulary: every case ends in exactly one of these."""

from __future__ import annotations

import enum

__all__ = ["Outcome", "Unsupported"]


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

    @classmethod
    def parse(cls, text: str) -> Outcome:
        try:
            return cls(text)
        except ValueError:
            raise ValueError(
                f"unknown outcome {text!r}; choose one of: {', '.join(o.value for o in cls)}"
            ) from None


class Unsupported(Exception):
    """Raised by the shim when the installed torch lacks a capability a case needs."""
