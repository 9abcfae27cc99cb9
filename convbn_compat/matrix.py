"""Reading results files and laying them out as one matrix of releases against cases."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from .cases import CASES
from .outcomes import Outcome
from .releases import ConfigError
from .results import SCHEMA, SCHEMA_VERSION

__all__ = ["SYMBOL", "Run", "load_run", "markdown_table"]

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

    @property
    def label(self) -> str:
        env = self.data["environment"]
        return f"{env['torch']}"

    @property
    def torch(self) -> Version:
        try:
            return Version(self.data["environment"]["torch"])
        except InvalidVersion:
            return Version("0")

    def cells(self) -> dict[tuple[str, str, bool], dict]:
        return {(c["id"], c["device"], c["tf32"]): c for c in self.data["cases"]}


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


def markdown_table(runs: list[Run], device: str = "cpu", tf32: bool = False) -> str:
    """Outcome counts per release, then every case against every release."""
    # Runs of one torch (a full run plus a later run of new cases, say) share a column.
    columns: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.torch):
        columns.setdefault(run.label, []).append(run)
    labels = list(columns)
    cells = []
    for group in columns.values():
        merged: dict = {}
        for run in group:
            merged.update(run.cells())
        cells.append(merged)
    lines = ["| torch | " + " | ".join(o.value for o in Outcome) + " | complete |"]
    lines.append("|---" * (len(Outcome) + 2) + "|")
    for label, group, merged in zip(labels, columns.values(), cells):
        outcomes = [c["outcome"] for (_, dev, _), c in merged.items() if dev == device]
        counts = [str(outcomes.count(o.value)) for o in Outcome]
        complete = "yes" if all(r.data["complete"] for r in group) else "**no**"
        lines.append(f"| {label} | " + " | ".join(counts) + f" | {complete} |")
    legend = ", ".join(f"{sym} {o}" for o, sym in SYMBOL.items() if o) + ", blank: not run"
    lines += ["", f"Per case ({device}); {legend}.", ""]
    lines.append("| case | " + " | ".join(labels) + " |")
    lines.append("|---" * (len(labels) + 1) + "|")
    for case in CASES:
        key = (case.id, device, tf32)
        row = [SYMBOL[c.get(key, {}).get("outcome")] for c in cells]
        lines.append(f"| `{case.id}` | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def table_document(paths: list[Path], device: str = "cpu") -> str:
    runs = [load_run(p) for p in paths]
    today = _dt.date.today().isoformat()
    sources = ", ".join(f"`{Path(p).name}`" for p in paths)
    return (
        f"# Measured matrix ({device})\n\n"
        f"Generated on {today} by `python -m convbn_compat table` from {sources}. Each file "
        "was written by `CONVBN_TORCH_INDEX=default nox -s tests-X.Y-cpu` on the project's "
        "2-core x86_64 machine (PyPI's CUDA wheels, run on the CPU). Files of one torch "
        "share a column (`tests-X.Y-cpu-stats.json`: the `Stats-*` cases, added after "
        "the full run of that release, run with `-- -k Stats`).\n\n" + markdown_table(runs, device)
    )
