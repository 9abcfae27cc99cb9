"""Standalone reproducers and bisection across the release table.

``repro`` writes a script that needs only torch: it carries the suite's own modules
(runner, case table, shim, the generator's oracle) verbatim and runs the case through
``runner.run_case``, exactly as the matrix does. It prints ``OUTCOME: <outcome>`` in the
suite's vocabulary.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from ..core.cases import Case, get_case
from ..core.errors import ConfigError
from ..core.outcomes import Outcome
from ..core.releases import NEWEST, RELEASED, RELEASES, Release, get_release, torch_index
from ..sessions.environments import env_dir, process_env

__all__ = ["bisect", "repro_script"]


def install_commands(release: Release, flavour: str) -> list[str]:
    """Commands that make an environment like the session's, without this project."""
    index = torch_index(release, flavour, env={})
    venv = f"venv-torch-{release.key}-{flavour}"
    pin = release.requirement()
    extra = " --pre" if release.is_nightly else ""
    helpers = [
        line.strip()
        for line in release.constraints.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [
        f"python{release.python} -m venv {venv} && . {venv}/bin/activate",
        f"pip install{extra} {shlex.quote(pin)} --index-url {index}"
        + "   # or from PyPI: pip install "
        + shlex.quote(pin),
        " ".join(["pip install numpy setuptools", *(shlex.quote(h) for h in helpers)]),
    ]


# The modules a reproducer carries, verbatim: the suite's runner, the generator's oracle,
# and every module of ours they import (tests/unit/test_repro_embedded.py checks that this
# list is closed under their imports). None needs more than torch.
_EMBEDDED = (
    "core.errors",
    "core.outcomes",
    "core.cells",
    "core.record",
    "core.generated",
    "core.forward",
    "core.cases",
    "shim.devices",
    "shim.inductor",
    "shim.tracing",
    "shim.paths",
    "checks.failures",
    "checks.judging",
    "checks.models",
    "checks.oracle",
    "suite.runner",
)
_PACKAGE = Path(__file__).resolve().parents[1]

_MAIN = """
import importlib.abc
import importlib.util
import sys


class _Embedded(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    \"\"\"Serves the convbn_compat modules embedded above, so the script needs only torch.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name in _SOURCES:
            return importlib.util.spec_from_loader(name, self, is_package=name in _PACKAGES)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        code = compile(_SOURCES[module.__name__], "<embedded " + module.__name__ + ">", "exec")
        exec(code, module.__dict__)


# Ahead of every other finder: an installed convbn_compat, of another version, is not used.
sys.meta_path.insert(0, _Embedded())

if __name__ == "__main__":
    import torch

    from convbn_compat.core.cases import get_case
    from convbn_compat.suite.runner import run_case

    case = get_case(CASE)
    print("torch", torch.__version__)
    if case.example:
        from convbn_compat.checks.models import build_example
        from convbn_compat.core.generated import Example

        example = Example.from_id(case.example)
        print("model:", build_example(example)[0])
        print("input shape:", example.input_shape)
    record = run_case(case, DEVICE, tf32=TF32)
    print("pass fired", record.fire_count, "time(s), expected", record.expected_count)
    if record.blame is not None:
        print("BLAME:", record.blame.value)
    print("OUTCOME:", record.outcome.value, "-", record.message or "output equals eager")
"""


def _body(case: Case, device: str, tf32: bool) -> str:
    packages = ["convbn_compat", *sorted({f"convbn_compat.{m.split('.')[0]}" for m in _EMBEDDED})]
    sources = dict.fromkeys(packages, "")
    for name in _EMBEDDED:
        # Read, not imported: writing a reproducer needs no torch.
        path = _PACKAGE.joinpath(*name.split(".")).with_suffix(".py")
        sources[f"convbn_compat.{name}"] = path.read_text(encoding="utf-8")
    lines = [
        f"CASE = {case.id!r}",
        f"DEVICE = {device!r}",
        f"TF32 = {tf32!r}",
        f"_PACKAGES = {tuple(packages)!r}",
        "# The convbn-compat modules that build, run and judge the case, verbatim: this",
        "# script runs exactly the checks of the matrix (and of `nox -s fuzz-X.Y-cpu`).",
        "_SOURCES = {",
        *(f"    {name!r}: {text!r}," for name, text in sources.items()),
        "}",
    ]
    return "\n".join(lines) + "\n" + _MAIN


def repro_script(
    case_id: str, device: str = "cpu", release: str | None = None, tf32: bool = False
) -> str:
    case = get_case(case_id)
    if device not in case.devices:
        raise ConfigError(f"{case_id} runs on {', '.join(case.devices)}, not {device}")
    if tf32 and device != "cuda":
        raise ConfigError(f"--tf32 is for CUDA cells; {case_id} on {device} has no TF32 cell")
    if tf32 and case.example:
        raise ConfigError(f"{case_id} is a generated example; they run with TF32 off")
    flavour = "cuda" if device == "cuda" else "cpu"
    rel = get_release(release or NEWEST)
    header = [
        f"# Reproducer: {case.id} on {device}{' with TF32' if tf32 else ''} "
        "(Inductor efficient conv-bn eval pass)",
        f"# Made by convbn-compat: `python -m convbn_compat repro {case.id} --device {device}"
        f" --release {rel.key}`.",
    ]
    if case.about:
        header.append(f"# What it checks: {case.about}.")
    header += [f"# Upstream report: {link}" for link in case.links]
    header.append(f"# Environment for torch {rel.torch or 'nightly'} ({flavour} wheel):")
    header += [f"#   {c}" for c in install_commands(rel, flavour)]
    header += [f"#   python {Path(case.id + '.py')}", ""]
    return "\n".join(header) + "\n" + _body(case, device, tf32)


def run_script(python: str, script: Path, timeout: float = 900) -> str:
    """Run a reproducer with an environment's Python; return its outcome word."""
    proc = subprocess.run(
        [python, str(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=process_env(),  # as the sessions do: the environment keeps its bytecode
    )
    for line in proc.stdout.splitlines():
        if line.startswith("OUTCOME:"):
            return line.split()[1]
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return f"error (exit {proc.returncode}: {' | '.join(tail)})"


def environment_python(release: Release, flavour: str, root: Path) -> Path:
    """The Python of a session's environment, created (installed only) if it is missing."""
    session = release.session(flavour)
    python = env_dir(root, session) / "bin" / "python"
    if not python.exists():
        print(f"creating {session} (nox --install-only) ...", flush=True)
        proc = subprocess.run([*nox_command(), "-s", session, "--install-only"], cwd=root)
        if proc.returncode != 0:
            raise ConfigError(
                f"`nox -s {session} --install-only` failed (exit {proc.returncode}; its output "
                "is above): the release's environment could not be built"
            )
    return python


def nox_command() -> list[str]:
    """How to run nox here: this Python's module where it has one, else nox on PATH."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("nox") is not None:
        return [sys.executable, "-m", "nox"]
    if shutil.which("nox"):
        return ["nox"]
    raise ConfigError(
        "bisect and replay need nox, which is neither importable here nor on PATH; install "
        "it: python3 -m pip install 'nox[uv]>=2025.2.9'"
    )


def bisect(case_id: str, good: str, bad: str, device: str = "cpu", root: Path = Path(".")) -> int:
    keys = list(RELEASED)
    for k in (good, bad):
        get_release(k)
        if k not in keys:
            raise ConfigError(f"bisect between released versions; {k!r} is not one")
    # Either order: the search is for where the outcome changes, a fix or a regression.
    lo, hi = sorted((keys.index(good), keys.index(bad)))
    if lo == hi:
        raise ConfigError(f"bisect needs two different releases; both are {good}")
    flavour = "cuda" if device == "cuda" else "cpu"
    script_dir = root / "results" / "bisect"
    script_dir.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = {}

    def outcome(key: str) -> str:
        if key not in seen:
            script = script_dir / f"{case_id}-{device}-{key}.py"
            script.write_text(repro_script(case_id, device, key))
            seen[key] = run_script(str(environment_python(RELEASES[key], flavour, root)), script)
            print(f"  torch {RELEASES[key].torch}: {seen[key]}", flush=True)
        return seen[key]

    start = outcome(keys[lo])
    if outcome(keys[hi]) == start:
        print(f"{case_id}: {start} at both {keys[lo]} and {keys[hi]}; no boundary to find")
        return 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if outcome(keys[mid]) == start:
            lo = mid
        else:
            hi = mid
    first = keys[hi]
    print(
        f"first release whose outcome differs: {first} ({outcome(first)}; {keys[lo]} gives {start})"
    )
    print(
        f"reproduce: python -m convbn_compat repro {case_id} --device {device} "
        f"--release {first} -o {case_id}.py"
    )
    return 0


def _failing(word: str) -> bool:
    """Whether a reproducer's outcome word is wrong or failing ("error (exit ...)", a
    script that died before it said, is neither)."""
    return word in {o.value for o in Outcome if o.is_failure}


def first_and_fix(outcomes: dict[str, str]) -> tuple[str | None, str | None]:
    """The first release (in the outcomes' order) where a case is wrong or errors, and
    the first after it where it no longer is (None where it stays broken)."""
    keys = list(outcomes)
    first = next((k for k in keys if _failing(outcomes[k])), None)
    if first is None:
        return None, None
    after = keys[keys.index(first) :]
    return first, next((k for k in after if not _failing(outcomes[k])), None)


def release_range(outcomes: dict[str, str]) -> str:
    """'2.5 to 2.15', 'from 2.2, fixed in 2.13' ...: where a case is wrong or errors."""
    first, fixed = first_and_fix(outcomes)
    if first is None:
        return "never wrong or failing"
    if fixed is None:
        keys = list(outcomes)
        return f"from {first} to {keys[-1]} (the newest tested): not fixed"
    return f"from {first}, fixed in {fixed}"


def replay(
    case_ids: list[str],
    device: str = "cpu",
    root: Path = Path("."),
    keys: list[str] | None = None,
    progress=print,
    discard: bool = False,
) -> dict[str, dict[str, str]]:
    """Each case's standalone reproducer, run in each release's environment.

    Environments are the sessions' own (``.nox/tests-X.Y-<flavour>``), created with
    ``nox --install-only`` where missing; ``discard`` removes those it created once their
    release is done, so only one is on disk at a time. Returns case id -> release ->
    outcome word.
    """
    cases_ = [get_case(c) for c in case_ids]
    keys = keys or list(RELEASED)
    for k in keys:
        get_release(k)
    flavour = "cuda" if device == "cuda" else "cpu"
    script_dir = root / "results" / "replay"
    script_dir.mkdir(parents=True, exist_ok=True)
    seen: dict[str, dict[str, str]] = {c.id: {} for c in cases_}
    for key in keys:
        env = env_dir(root, RELEASES[key].session(flavour))
        existed = env.exists()
        python = str(environment_python(RELEASES[key], flavour, root))
        try:
            for case in cases_:
                script = script_dir / f"{case.id}-{device}-{key}.py"
                script.write_text(repro_script(case.id, device, key))
                seen[case.id][key] = run_script(python, script)
                progress(f"  torch {RELEASES[key].torch}: {case.id}: {seen[case.id][key]}")
        finally:
            if discard and not existed:
                shutil.rmtree(env, ignore_errors=True)
                progress(f"  removed {env} (--discard)")
    return seen


def replay_markdown(seen: dict[str, dict[str, str]], device: str) -> str:
    keys = list(next(iter(seen.values()), {}))
    lines = [
        f"Each case's standalone reproducer (`python -m convbn_compat repro ID --device "
        f"{device} --release X.Y`), run with the Python of each release's environment "
        "(`python -m convbn_compat replay`). Outcome words as in the matrix.",
        "",
        "| case | " + " | ".join(keys) + " | wrong or failing |",
        "|---|" + "---|" * (len(keys) + 1),
    ]
    for case_id, row in seen.items():
        cells = " | ".join(row[k] if len(row[k]) < 20 else "error (script)" for k in keys)
        lines.append(f"| `{case_id}` | {cells} | {release_range(row)} |")
    return "\n".join(lines) + "\n"
