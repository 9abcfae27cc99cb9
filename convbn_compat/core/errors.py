"""Errors a user can act on, and what the command line's exit status means.

Small and free of imports on purpose: a reproducer script embeds it.
"""

from __future__ import annotations

import enum
import textwrap

__all__ = ["ConfigError", "Exit", "NotResults"]


class ConfigError(ValueError):
    """Bad input from the user: the message says what is wrong and what to do."""


class NotResults(ConfigError):
    """Valid JSON, but some other document (a matrix, a sensitivity run): a folder may
    hold it beside results files, and a reader of the folder skips it."""


class Exit(enum.IntEnum):
    OK = 0
    FINDINGS = 1
    BAD_INPUT = 2
    CRASH = 3
    NEW_CAUSE = 4

    @property
    def meaning(self) -> str:
        return _MEANING[self]

    @classmethod
    def help(cls) -> str:
        return "exit status:\n" + "\n".join(
            textwrap.fill(c.meaning, 88, initial_indent=f"  {c.value}  ", subsequent_indent="     ")
            for c in cls
        )


_MEANING = {
    Exit.OK: "done, nothing to report",
    Exit.FINDINGS: "done, and found something: a cell of any kind of run (tests, fuzz, "
    "reach) whose outcome the expectations table does not predict, a new failure against "
    "the baseline (outside --no-fail-on), an incomplete run, a bisect with no boundary",
    Exit.BAD_INPUT: "bad input or usage: a missing or unreadable file, an unknown case or "
    "release, a broken torch environment (the message says which, and what to do)",
    Exit.CRASH: "a bug of convbn-compat itself (a traceback follows; please report it)",
    Exit.NEW_CAUSE: "fuzz and triage: a failure blamed on the pass that no known cause "
    "(core/causes.toml) recognises; its findings carry a provisional cause",
}
