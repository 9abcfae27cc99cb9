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
from pathlib import Path

from . import causes as known_causes
from . import expectations as expectation_table

__all__ = ["Policy"]


@dataclass(frozen=True)
class Policy:
    expectations: expectation_table.Expectations
    causes: known_causes.Causes

    @staticmethod
    def current() -> Policy:
        """Today's tables, read once in this process while their files stay as they
        are (a bad row is a ConfigError)."""
        files = (expectation_table.DEFAULT_FILE, known_causes.DEFAULT_FILE)
        return _load(*((Path(f), _stamp(f)) for f in files))

    def judge(self, run) -> None:
        """Give every record of ``run`` (a ``results.Run``) its cause, once."""
        known_causes.assign(run, self.causes)

    def searched_causes(self, run) -> list:
        """A search's causes (``results.FoundCause``), from records ``judge`` judged."""
        return known_causes.summarise(run, self.causes)

    def title(self, cause_id: str) -> str | None:
        known = self.causes.by_id.get(cause_id)
        return known.title if known else None


def _stamp(path) -> tuple[int, int] | None:
    try:
        stat = Path(path).stat()
    except OSError:
        return None  # the load names the missing file
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=4)
def _load(expectations_file: tuple, causes_file: tuple) -> Policy:
    return Policy(expectation_table.load(expectations_file[0]), known_causes.load(causes_file[0]))
