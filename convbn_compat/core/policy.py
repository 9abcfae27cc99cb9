"""The project's policy, loaded once per command: the expectations table (what each cell
should be) and the causes table (the known bugs). Every reader of results applies it
through here, once per run it reads: ``judge`` gives each record its cause by the one
rule (``causes.cause_of``), and ``searched_causes`` gives a search its causes by the one
rule for a representative (``causes.summarise``). The report's view, ``triage`` and
``propose`` read what this made; none of them loads a table or works out a cause again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from . import causes as known_causes
from . import expectations as expectation_table

__all__ = ["Policy"]


@dataclass(frozen=True)
class Policy:
    expectations: expectation_table.Expectations
    causes: known_causes.Causes

    @staticmethod
    @functools.cache
    def current() -> Policy:
        """Today's tables, read once in this process (a bad row is a ConfigError)."""
        return Policy(expectation_table.load(), known_causes.load())

    def judge(self, run) -> None:
        """Give every record of ``run`` (a ``results.Run``) its cause, once."""
        known_causes.assign(run, self.causes)

    def searched_causes(self, run) -> list:
        """A search's causes (``results.FoundCause``), from records ``judge`` judged."""
        return known_causes.summarise(run, self.causes)

    def title(self, cause_id: str) -> str | None:
        known = self.causes.by_id.get(cause_id)
        return known.title if known else None
