"""Reading results files: the checks every reader needs, and the outcome symbols."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .outcomes import Outcome
from .releases import ConfigError
from .results import SCHEMA, SCHEMA_VERSION

__all__ = ["SYMBOL", "Run", "load_run"]

SYMBOL = {
    Outcome.FUSED.value: "✓",
    Outcome.NOT_FUSED.value: "○",
    Outcome.WRONG_RESULT.value: "✗",
    Outcome.ERROR.value: "E",
    Outcome.UNSUPPORTED.value: "u",
    None: " ",
}


@dataclass
class Run:
    path: Path
    data: dict


def load_run(path: Path) -> Run:
    """Read one results file, refusing anything this version cannot read correctly."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read results file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"results file {path} is not valid JSON (truncated or corrupt?): {exc}"
        ) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ConfigError(f"{path} is not a convbn-compat results file (no schema {SCHEMA!r})")
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ConfigError(
            f"{path} has schema version {version!r}; this convbn-compat reads up to "
            f"{SCHEMA_VERSION}: upgrade convbn-compat to read it"
        )
    for key in ("environment", "cases", "complete"):
        if key not in data:
            raise ConfigError(f"results file {path} lacks {key!r}")
    return Run(path, data)
