"""Reading results files: the checks every reader needs, and the outcome symbols."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .outcomes import Outcome
from .releases import ConfigError
from .results import SCHEMA, SCHEMA_VERSION

__all__ = ["SYMBOL", "NotResults", "Run", "load_run", "read_json"]

SYMBOL = {
    Outcome.FUSED.value: "✓",
    Outcome.NOT_FUSED.value: "○",
    Outcome.WRONG_RESULT.value: "✗",
    Outcome.ERROR.value: "E",
    Outcome.UNSUPPORTED.value: "u",
    None: " ",
}
DEVICES = ("cpu", "cuda")


class NotResults(ConfigError):
    """Valid JSON, but some other document (a matrix, a sensitivity run): a folder may
    hold it beside results files, and a reader of the folder skips it."""


@dataclass
class Run:
    path: Path
    data: dict

    @property
    def kind(self) -> str:
        """``tests`` for a matrix run, ``fuzz`` for a generator's search."""
        return self.data.get("kind") or "tests"


def read_json(path: Path, what: str) -> object:
    """Parse a JSON file, or raise a ConfigError that names it and says what to do."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}): it is corrupt or not a convbn-compat file; regenerate or remove it"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not valid JSON (truncated or corrupt?): {exc}; "
            "regenerate or remove it"
        ) from None


def load_run(path: Path) -> Run:
    """Read one results file, refusing anything this version cannot read correctly."""
    path = Path(path)
    data = read_json(path, "results file")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else None
        found = f" (its schema is {schema!r})" if schema else ""
        raise NotResults(
            f"{path} is not a convbn-compat results file{found}; it needs schema {SCHEMA!r}"
        )
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ConfigError(
            f"{path} has schema version {version!r}; this convbn-compat reads up to "
            f"{SCHEMA_VERSION}: upgrade convbn-compat to read it"
        )
    for key in ("environment", "cases", "complete"):
        if key not in data:
            raise ConfigError(f"results file {path} lacks {key!r}; regenerate it")
    env = data["environment"]
    if not isinstance(env, dict) or not isinstance(env.get("torch"), str):
        raise ConfigError(
            f"results file {path}: its environment lacks 'torch' (the version under test), "
            "so its cells have no column; regenerate it"
        )
    if not isinstance(data["cases"], list):
        raise ConfigError(f"results file {path}: 'cases' is not a list; regenerate it")
    for i, case in enumerate(data["cases"]):
        _check_case(path, i, case)
    return Run(path, data)


def _check_case(path: Path, index: int, case: object) -> None:
    where = f"results file {path}: case #{index + 1}"
    if not isinstance(case, dict) or not isinstance(case.get("id"), str):
        raise ConfigError(f"{where} has no 'id'; regenerate the file")
    where += f" ({case['id']})"
    if case.get("device") not in DEVICES:
        raise ConfigError(f"{where} has device {case.get('device')!r}, not one of {DEVICES}")
    for key in ("outcome", "expected_outcome"):
        if key not in case:
            raise ConfigError(
                f"{where} lacks {key!r} (null is allowed: a case that did not run); "
                "regenerate the file"
            )
        value = case[key]
        if value is not None:
            try:
                Outcome.parse(value)
            except ValueError as exc:
                raise ConfigError(f"{where}: {key}: {exc}") from None
