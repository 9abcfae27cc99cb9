"""``python -m convbn_compat propose RESULTS``: a run's new causes, replayed in every
release, as rows for ``core/causes.toml`` with their release range.

A fuzz run that finds a NEW cause writes a proposed row beside its results, with the one
release it saw. This runs each new cause's representative in every release's environment
(``replay``), turns where it is wrong or fails into the row's ``releases``, and writes the
rows again. Environments it had to build are removed after use with ``--discard``, so a
machine (or a CI job) with room for one environment at a time can replay all of them.
"""

from __future__ import annotations

from pathlib import Path

from ..core import causes
from ..core.errors import ConfigError
from ..core.policy import Policy
from ..core.results import FoundCause, FuzzSection, Run, atomic_write_text, load_run
from .repro import _failing, first_and_fix, release_range, replay

__all__ = ["new_causes", "propose", "release_specifier"]


def release_specifier(outcomes: dict[str, str]) -> str:
    """The PEP 440 range of the releases where the outcomes are wrong or failing, for a
    cause's ``releases``: ``>=2.5,<2.13``, ``>=2.2``; empty where none is."""
    first, fixed = first_and_fix(outcomes)
    if first is None:
        return ""
    if fixed is None:
        return f">={first}"
    keys = list(outcomes)
    back = [k for k in keys[keys.index(fixed) :] if _failing(outcomes[k])]
    if back:  # broken again after a fix: the row would need two ranges; say so
        bad = [k for k in keys if _failing(outcomes[k])]
        raise ConfigError(
            f"wrong or failing in {', '.join(bad)}: not one range (fixed in {fixed}, then "
            f"again in {back[0]}); write its releases by hand"
        )
    return f">={first},<{fixed}"


def _read(results: Path) -> tuple[Run, list[FoundCause]]:
    """A fuzz run, judged against the tables as they are now (a cause added since the
    run reads as known; files from before causes existed read too), and its causes."""
    run = load_run(results)
    if run.kind != "fuzz":
        raise ConfigError(
            f"{results} is not a fuzz run's results (its kind is {run.kind!r}); name a file "
            "that `nox -s fuzz-X.Y-cpu` wrote"
        )
    policy = Policy.current()
    policy.judge(run)
    return run, policy.searched_causes(run)


def new_causes(results: Path) -> list[FoundCause]:
    """The causes a fuzz run found that no row of ``causes.toml`` knows (now)."""
    new = [e for e in _read(results)[1] if not e.known]
    if not new:
        raise ConfigError(f"{results}: its run found no new cause; nothing to propose")
    return new


def propose(
    results: Path,
    out: Path | None = None,
    device: str = "cpu",
    keys: list[str] | None = None,
    root: Path = Path("."),
    discard: bool = False,
    progress=print,
) -> Path:
    """Replay each new cause of a fuzz run and write its proposed rows; returns where."""
    new = new_causes(results)
    # One replay for all: each environment is built (and discarded) once.
    examples = list(dict.fromkeys(e.representative for e in new))
    replayed = replay(examples, device, root, keys, progress=progress, discard=discard)
    for entry in new:
        seen = replayed[entry.representative]
        entry.replay = release_range(seen)
        died = [k for k, word in seen.items() if word.startswith("error (exit")]
        if died:
            entry.replay += f"; the script died in {', '.join(died)} (read those by hand)"
        try:
            entry.releases = release_specifier(seen) or None
        except ConfigError as exc:
            entry.replay += f"; {exc}"
        progress(f"{entry.cause}: wrong or failing {entry.replay}")
    target = out or results.with_name(f"{results.stem}-proposed-causes.toml")
    atomic_write_text(target, causes.proposed_rows(new))
    return target


def triage_lines(results: Path, markdown: bool = False) -> tuple[list[str], int, bool]:
    """A fuzz run's causes, one line each, read against the causes table as it is now
    (a cause added since the run reads as known); how many are new; whether the run
    finished."""
    run, entries = _read(results)
    fuzz = run.fuzz or FuzzSection()
    new = [e for e in entries if not e.known]
    minutes = (fuzz.elapsed_s or 0) / 60
    figures = (
        f"torch {run.torch}: {fuzz.examples or 0} examples in "
        f"{minutes:.1f} min ({fuzz.examples_per_minute or 0} a minute, seed "
        f"{fuzz.seed}, {fuzz.workers or 1} workers), "
        f"{fuzz.signatures or 0} signatures, {len(entries)} causes, {len(new)} new"
    )
    lines = [f"## Fuzz causes: {run.session}", "", figures, ""]
    if markdown:
        lines += [
            "| cause | examples | signatures | range | representative |",
            "|---|---|---|---|---|",
        ]
    for e in entries:
        word = "known" if e.known else "NEW"
        link = f" {e.links[0]}" if e.links else ""
        if markdown:
            lines.append(
                f"| {'known' if e.known else '**NEW**'} `{e.cause}`{link} | {e.examples} | "
                f"{e.signatures} | {e.range} | `{e.representative}` |"
            )
        else:
            lines.append(
                f"{word:5} {e.cause}: {e.examples} examples in {e.signatures} "
                f"signatures, {e.range}{link}; {e.representative}"
            )
    if not entries:
        lines.append("no failure blamed on the pass")
    complete = run.complete
    if not complete:
        lines += ["", "the search did not finish: what it found so far is above"]
    if not markdown:
        lines = [line for line in lines if not line.startswith("## ")]
    return [line for line in lines if line or markdown], len(new), complete
