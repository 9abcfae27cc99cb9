"""The project's TOML tables (``expectations.toml``, ``causes.toml``): a file of
``[[rows]]``, each row typed as it loads.

Each table describes its row once, as data: a ``Table`` of ``Key`` s, each with its
``Kind`` (a string, a release specifier, a regex, a list of them, a table of lists, ...),
whether it is required, and its default. ``read_table`` checks every row against it and
gives back the typed values (a ``SpecifierSet``, a compiled pattern, tuples), so that a
hand-edited row that TOML reads but that would fail later, or match the wrong thing (an
unquoted ``releases = 2.5``, ``links = "https://..."`` iterated letter by letter, a
``when`` value tested with ``in`` on a string), is refused at once: a ``ConfigError`` of
one line that names the file, the row, the key, what it holds and what to write instead.
What a row's values mean (a case pattern that matches no case, two rows that overlap) is
checked by the table's own module, through ``refusal`` so that it reads the same.
"""

from __future__ import annotations

import copy
import difflib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from .errors import ConfigError
from .releases import RELEASED, RELEASES

if sys.version_info >= (3, 11):
    import tomllib
else:  # remove when the oldest Python we run is 3.11
    import tomli as tomllib

__all__ = [
    "Bool",
    "Choice",
    "Int",
    "Key",
    "Kind",
    "ListOf",
    "OneOrMore",
    "Regex",
    "Releases",
    "Table",
    "TableOf",
    "Text",
    "read_table",
    "refusal",
    "shared_release",
]


class Wrong(Exception):
    """A value that is not what its key holds: ``what`` it is, and (once known) what to
    ``write`` instead. ``key`` is the path below the row (``crash.line``)."""

    def __init__(self, what: str, write: str | None = None, key: str = "") -> None:
        super().__init__(what)
        self.what, self.write, self.key = what, write, key


def refusal(where: str, key: str, what: str, write: str | None = None) -> ConfigError:
    """The one form of every refusal of a row: ``FILE: [[t]] #N (id): 'key' what; write ...``."""
    return ConfigError(f"{where}: '{key}' {what}" + (f"; write {write}" if write else ""))


def _found(value: object) -> str:
    """What a value is, as TOML names it."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return "a string" if value.strip() else "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


# -- kinds: what one value may be, and its typed form ---------------------------------


class Kind:
    """What a key holds. ``noun`` and ``sample`` make the message's "write ..." part."""

    noun = "a value"
    plural = "values"
    sample = '"..."'

    def convert(self, value: object) -> object:
        raise NotImplementedError


class Text(Kind):
    """A string with something in it."""

    noun = "a string"
    plural = "strings"

    def convert(self, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Wrong(f"is {_found(value)}")
        return value


@dataclass(frozen=True)
class Choice(Text):
    """One of a few strings."""

    choices: tuple[str, ...]

    @property
    def noun(self) -> str:  # type: ignore[override]
        return f"one of {', '.join(self.choices)}"

    @property
    def plural(self) -> str:  # type: ignore[override]
        return f"values from {', '.join(self.choices)}"

    @property
    def sample(self) -> str:  # type: ignore[override]
        return f'"{self.choices[0]}"'

    def convert(self, value: object) -> str:
        text = super().convert(value)
        if text not in self.choices:
            raise Wrong(f"is {text!r}, unknown")
        return text


class Releases(Text):
    """A release range: a quoted PEP 440 specifier, read as a ``SpecifierSet``."""

    noun = "a quoted PEP 440 specifier"
    plural = "quoted PEP 440 specifiers"
    sample = '">=2.5"'

    def convert(self, value: object) -> SpecifierSet:
        text = super().convert(value)
        try:
            return SpecifierSet(text)
        except InvalidSpecifier:
            raise Wrong(f"is {text!r}, which is no specifier") from None


class Regex(Text):
    """A regular expression, compiled as it loads."""

    noun = "a regular expression that compiles (a TOML literal string keeps its backslashes)"
    plural = "regular expressions"
    sample = r"'assert len\(bn_node\.args\) == 8'"

    def convert(self, value: object) -> re.Pattern:
        text = super().convert(value)
        try:
            return re.compile(text)
        except re.error as exc:
            raise Wrong(f"is {text!r}, which does not compile ({exc})") from None


class Bool(Kind):
    noun = "true or false"
    plural = "booleans (true, false)"
    sample = "true"

    def convert(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise Wrong(f"is {_found(value)}")
        return value


class Int(Kind):
    noun = "an integer"
    plural = "integers"
    sample = "3"

    def convert(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Wrong(f"is {_found(value)}")
        return value


@dataclass(frozen=True)
class ListOf(Kind):
    """A list of one kind of item; ``nonempty`` refuses ``[]``."""

    item: Kind
    nonempty: bool = False

    plural = "lists"

    @property
    def noun(self) -> str:  # type: ignore[override]
        return f"a list of {self.item.plural}"

    @property
    def sample(self) -> str:  # type: ignore[override]
        return f"[{self.item.sample}]"

    def convert(self, value: object) -> list:
        if not isinstance(value, list):
            raise Wrong(f"is {_found(value)}")
        if self.nonempty and not value:
            raise Wrong("is an empty list")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(self.item.convert(item))
            except Wrong as wrong:
                raise Wrong(f"item {i + 1} {wrong.what}") from None
        return out


@dataclass(frozen=True)
class OneOrMore(ListOf):
    """One item, or a non-empty list of them; always a list once read."""

    nonempty: bool = True

    @property
    def noun(self) -> str:  # type: ignore[override]
        return f"{self.item.noun}, or {super().noun}"

    def convert(self, value: object) -> list:
        return super().convert([value] if isinstance(value, str) else value)


@dataclass(frozen=True)
class Key:
    """One key of a table: its kind, whether a row must have it, and its value where
    absent. ``sample`` is what the message shows after ``key = `` (the kind's own when
    empty); ``unique`` refuses two rows with the same value."""

    kind: Kind
    required: bool = False
    default: object = None
    sample: str = ""
    unique: bool = False

    def write(self, name: str) -> str:
        return f"{self.kind.noun}: {name} = {self.sample or self.kind.sample}"


def _unknown(name: str, known: Sequence[str], what: str) -> Wrong:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return Wrong(f"is no {what}; {hint}{what}s: {', '.join(known)}", "", name)


def _nested(wrong: Wrong, name: str, key: Key) -> Wrong:
    """``wrong``, raised below ``name``, named from the row: its key path and a hint."""
    path = f"{name}.{wrong.key}" if wrong.key else name
    return Wrong(wrong.what, key.write(name) if wrong.write is None else wrong.write, path)


@dataclass(frozen=True)
class Table(Kind):
    """A table of named keys: a row, or a table inside one (a cause's ``crash``)."""

    keys: dict[str, Key]
    name: str = "key"
    """What a key is called in messages: ``key``, ``feature``."""

    plural = "tables"

    @property
    def noun(self) -> str:  # type: ignore[override]
        return f"a table of {', '.join(self.keys)}"

    @property
    def sample(self) -> str:  # type: ignore[override]
        parts = (f"{k} = {v.sample or v.kind.sample}" for k, v in self.keys.items())
        return "{ " + ", ".join(parts) + " }"

    def convert(self, value: object) -> dict:
        if not isinstance(value, dict):
            raise Wrong(f"is {_found(value)}")
        for name in value:
            if name not in self.keys:
                raise _unknown(name, list(self.keys), self.name)
        out = {}
        for name, key in self.keys.items():
            if name not in value:
                if key.required:
                    raise Wrong("is missing", key.write(name), name)
                out[name] = copy.copy(key.default)  # a row's own {}, not every row's
                continue
            try:
                out[name] = key.kind.convert(value[name])
            except Wrong as wrong:
                raise _nested(wrong, name, key) from None
        return out


@dataclass(frozen=True)
class TableOf(Kind):
    """A table whose keys are names from a list, each with its own kind (a cause's
    ``when``: feature -> the values that make it)."""

    kinds: dict[str, Kind]
    name: str = "key"

    noun = "a table"
    plural = "tables"
    sample = "{ ... }"

    def convert(self, value: object) -> dict:
        if not isinstance(value, dict):
            raise Wrong(f"is {_found(value)}")
        out = {}
        for name, item in value.items():
            kind = self.kinds.get(name)
            if kind is None:
                raise _unknown(name, list(self.kinds), self.name)
            try:
                out[name] = kind.convert(item)
            except Wrong as wrong:
                raise _nested(wrong, name, Key(kind)) from None
        return out


# -- a file of rows -------------------------------------------------------------------


def read_table(path: Path | str, table: str, what: str, row: Table) -> list[tuple[dict, str]]:
    """Every ``[[table]]`` row of the file, typed by ``row``, each with where it is
    (``FILE: [[table]] #N (its id)``) for the table's own checks."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc}") from None
    raws = data.get(table, [])
    if not isinstance(raws, list) or not all(isinstance(r, dict) for r in raws):
        raise ConfigError(f"{path}: {table!r} must be an array of tables, written [[{table}]]")
    rows: list[tuple[dict, str]] = []
    seen: dict[tuple[str, object], int] = {}
    for number, raw in enumerate(raws, 1):
        given = raw.get("id")
        where = f"{path}: [[{table}]] #{number}"
        if isinstance(given, str) and given.strip():
            where += f" ({given})"
        try:
            typed = row.convert(raw)
        except Wrong as wrong:
            raise refusal(where, wrong.key, wrong.what, wrong.write) from None
        for name, key in row.keys.items():
            if key.unique and typed[name] is not None:
                first = seen.setdefault((name, typed[name]), number)
                if first != number:
                    what = f"is {typed[name]!r}, as is row #{first}'s; give each row its own {name}"
                    raise refusal(where, name, what)
        rows.append((typed, where))
    return rows


# -- release ranges ---------------------------------------------------------------------


def _around(spec: SpecifierSet) -> set[Version]:
    """The releases at and next to each bound of ``spec``: wherever two ranges meet, one
    of these is in both (rows read a torch version as its X.Y.Z release)."""
    out = set()
    for one in spec:
        text = one.version.removesuffix(".*")
        try:
            major, minor, patch = ([*Version(text).release, 0, 0])[:3]
        except ValueError:  # `===` compares text; nothing to stand next to
            continue
        for nearby in (
            (major, minor, patch),
            (major, minor, patch + 1),
            (major, minor, patch - 1),
            (major, minor + 1, 0),
            (major, minor - 1, 0),
            (major + 1, 0, 0),
            (major - 1, 0, 0),
        ):
            if min(nearby) >= 0:
                out.add(Version(".".join(map(str, nearby))))
    return out


def _nightly() -> Version:
    """The release a nightly counts as: the one after the newest in the table."""
    major, minor = (int(p) for p in RELEASED[-1].split("."))
    return Version(f"{major}.{minor + 1}.0")


SEEN = tuple(
    dict.fromkeys(
        [
            *(Version(RELEASES[k].torch) for k in RELEASED),
            *(Version(f"{k}.0") for k in RELEASED),
            _nightly(),
        ]
    )
)
"""The torch versions a row is asked about, the likeliest first: the release table's
pins, each release's first patch, and the nightly's release."""


def shared_release(a: SpecifierSet, b: SpecifierSet) -> Version | None:
    """A release both ranges hold, or None when they share none. The table's releases
    come first, so that a message names one of them; then every release next to a bound
    of either range, where two ranges that meet anywhere else meet too."""
    candidates = [*SEEN, *sorted(_around(a) | _around(b))]
    return next(
        (
            v
            for v in candidates
            if a.contains(v, prereleases=True) and b.contains(v, prereleases=True)
        ),
        None,
    )
