"""``docs/results-schema.md``, written from the shipped schema (``results.schema.json``):
the schema is the one source of every field's type and meaning, and a unit test holds
the committed document to what this writes (``python -m convbn_compat schema
--markdown -o docs/results-schema.md`` rewrites it)."""

from __future__ import annotations

import json

from .results import SCHEMA, SCHEMA_FILE, SCHEMA_VERSION

__all__ = ["schema_markdown"]

INTRO = f"""\
# Results file schema: `{SCHEMA}`, version {SCHEMA_VERSION}

<!-- Written by `python -m convbn_compat schema --markdown -o docs/results-schema.md`
from convbn_compat/core/results.schema.json; edit the schema, not this file. -->

Every run writes `<results dir>/<run>.json`: the results dir is `results/` unless
`--convbn-results` (or `CONVBN_RESULTS_DIR` for the Nox sessions) says otherwise, and
`<run>` is `--convbn-run`, the Nox session's name (`tests-2.4-cuda`) or, for a plain
pytest run, `pytest-torch-<version>`. The file is replaced atomically after every case,
so a reader never sees half a file and a run that dies keeps every case it finished.

**Reruns lose nothing.** A run of part of a session (`-k`, node ids, `--lf`, a run
stopped with Ctrl-C) writes into the session's existing file when it tests the same
torch build on the same GPUs: each cell it runs replaces that cell's record, every other
cell stays. `runs` lists every run that wrote into the file (when, what it selected,
whether it was interrupted) and each case names its run. `complete` is true when the
file holds every cell of the full suite for its devices, and false while a run is still
writing (so a run killed outright leaves it false). A file of another build or GPUs is
kept as `<run>.json.replaced-<time>` and a new one begins. A tool's run (fuzz, reach,
benefit) is one search or one measurement: it begins a new file, the earlier one kept
aside the same way. One run writes a file at a time.

**One reader.** `convbn_compat.core.results.load_run` reads every file: it refuses
NaN and Infinity (which JSON cannot hold), a key twice in one object, nesting deeper than
any file of ours, then checks the whole document against the shipped JSON Schema
([`convbn_compat/core/results.schema.json`](../convbn_compat/core/results.schema.json),
`$id` and `schema_version` inside), then what a schema cannot say: the release matches
the torch tested, each cell is in the file once, a case's `run` is in `runs`, a kind's
section belongs to its kind. Each refusal is exit 2 and one line naming the file, the
field and what to do. Version 1 files (no `runs`) are read as one run; a newer version is
refused with "upgrade convbn-compat". The report takes a cell that two files hold from
the one whose run started later, whatever the files are called, and names both.

**Why `jsonschema`.** The schema is a plain JSON Schema (draft 2020-12) so that tools
that are not ours (a dashboard, a CI script) can check a file without our code. To
validate it we use `jsonschema`, the reference implementation for Python: it reads
that standard file as it is (no second description of the format to keep in step), its
errors carry the path of the field at fault, which the one-line messages are built
from, and it is a small pure-Python package with wheels of its few dependencies for
every Python and platform the torch environments use, installing beside any torch
release without touching torch's own pins. pydantic would have meant a second source of
truth (models that generate a schema) and a compiled core pinned to newer
`typing-extensions`; fastjsonschema generates code and stops at draft 7.
"""


OUTRO = """\
## The report's matrix.json (`convbn-compat/matrix`, version 2)

Not a results file: what `report` writes from many. `columns`: one per (release,
flavour, device, kind, GPU), each with `key` (`2.4/cpu/cuda-tf32`; other kinds append
`/fuzz` or `/reach`), `release`, `flavour`, `device`, `kind`, `torch`, `session`,
`sources` (every file merged into it; `source` is the first), `complete`. `cells`: case
id -> column key -> the case's record. `incomplete`, `missing` (cells a complete run
would have), `skipped` (files of a folder that are not results files, each with why),
`superseded` (cells two files held, and which file's record was kept: its run started
later), `benefit` (one row per benefit run, with `regression` where the memory saved fell
by more than a third from the release before), and with `--baseline`, `baseline.cells`:
every cell's class against it.
"""


def _type(spec: dict) -> str:
    if "$ref" in spec:
        return f"object ({spec['$ref'].rsplit('/', 1)[-1]})"
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    if "enum" in spec:
        return " or ".join(f"`{json.dumps(v)}`" for v in spec["enum"])
    if "oneOf" in spec:
        return " or ".join(_type(s) for s in spec["oneOf"])
    kinds = spec.get("type", "any")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    words = []
    for kind in kinds:
        if kind == "array" and "items" in spec:
            words.append(f"list of {_type(spec['items'])}")
        elif kind == "object" and isinstance(spec.get("additionalProperties"), dict):
            words.append(f"map to {_type(spec['additionalProperties'])}")
        else:
            words.append(kind)
    return " or ".join(words)


def _table(title: str, obj: dict) -> list[str]:
    required = set(obj.get("required", ()))
    lines = [f"## {title}", "", obj.get("description", "").rstrip(".") + ".", ""]
    lines += ["| key | type | required | meaning |", "|---|---|---|---|"]
    for key, spec in obj["properties"].items():
        meaning = spec.get("description", "").replace("|", "\\|")
        if "minimum" in spec:
            meaning += f" (at least {spec['minimum']})"
        mark = "yes" if key in required else ""
        lines.append(f"| `{key}` | {_type(spec).replace('|', '/')} | {mark} | {meaning} |")
    return [*lines, ""]


SECTIONS = (
    ("environment", "environment"),
    ("install", "install"),
    ("run", "run (an entry of `runs`)"),
    ("selection", "selection"),
    ("case", "case (an entry of `cases`)"),
    ("fuzz", "fuzz"),
    ("triaged", "triaged (a value of `fuzz.triage`)"),
    ("found_cause", "found_cause (an entry of `fuzz.causes`)"),
    ("benefit", "benefit"),
    ("benefit_config", "benefit_config (a value of `benefit.configs`)"),
)


def schema_markdown() -> str:
    """The document, from the schema file the package ships."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    lines = [INTRO]
    lines += _table("The top level", schema)
    for name, title in SECTIONS:
        lines += _table(title, schema["$defs"][name])
    lines.append(OUTRO)
    return "\n".join(lines).rstrip() + "\n"
