"""The project's TOML tables (``expectations.toml``, ``causes.toml``): reading a file of
``[[rows]]`` and checking a row's keys and release range, in one place, so that each
table's own module says only what its rows mean."""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # remove when the oldest Python we run is 3.11
    import tomli as tomllib

__all__ = ["checked_row", "read_rows"]


def read_rows(path: Path | str, table: str, what: str) -> list[tuple[dict, str]]:
    """Every ``[[table]]`` row of the file, each with where it is (``FILE: [[table]] #N``)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc}") from None
    rows = data.get(table, [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"{path}: {table!r} must be an array of tables, written [[{table}]]")
    return [(raw, f"{path}: [[{table}]] #{i + 1}") for i, raw in enumerate(rows)]


def checked_row(
    raw: dict, where: str, allowed: set[str], required: tuple[str, ...]
) -> SpecifierSet:
    """Refuses unknown and empty required keys; returns the row's ``releases`` range."""
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    for key in required:
        if not str(raw.get(key, "")).strip():
            raise ConfigError(f"{where}: missing {key!r}")
    try:
        return SpecifierSet(raw["releases"])
    except InvalidSpecifier as exc:
        raise ConfigError(f"{where}: releases {raw['releases']!r} is no specifier: {exc}") from None
