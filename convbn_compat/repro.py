"""Standalone reproducers and bisection across the release table.

``repro`` writes a script that needs only torch: the case's model, built by the very
functions the suite uses (their source is copied in), and a compact runner making the
suite's checks. It prints ``OUTCOME: <outcome>`` in the suite's vocabulary.
"""

from __future__ import annotations

import inspect
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

from . import cases
from .cases import Case, get_case
from .outcomes import Outcome
from .releases import NIGHTLY, RELEASES, ConfigError, Release, get_release, torch_index

__all__ = ["bisect", "repro_script"]

_RUNNER = '''
def run_case(build, *, device, expected_fires, graph, syncbn, pass_enabled, train, dtype,
             channels_last, tf32):
    """The checks of convbn-compat's suite, in one function that needs only torch."""
    torch.manual_seed(0)
    dtype = getattr(torch, dtype)
    flag = "efficient_conv_bn_eval_fx_passes"
    if not hasattr(config, flag):
        return "unsupported", "torch._inductor.config has no " + flag
    patch = {flag: pass_enabled}
    if hasattr(config, "pre_grad_pass_timing"):  # run pre-grad passes on every compile
        patch["pre_grad_pass_timing"] = "early"
    if device == "cuda":
        matmul = torch.backends.cuda.matmul
        if hasattr(matmul, "fp32_precision"):
            matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = (
                "tf32" if tf32 else "ieee")
        else:
            matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    model, shape = build()
    eager = model.to(device=device, dtype=dtype).train(train)
    inp = torch.rand(shape, dtype=dtype).to(device)
    if channels_last:
        eager = eager.to(memory_format=torch.channels_last)
        inp = inp.contiguous(memory_format=torch.channels_last)
    compiled_mod = copy.deepcopy(eager)
    if syncbn:
        eager = nn.SyncBatchNorm.convert_sync_batchnorm(eager).train(train)
        compiled_mod = nn.SyncBatchNorm.convert_sync_batchnorm(compiled_mod).train(train)
    torch._dynamo.reset()
    low = dtype in (torch.float16, torch.bfloat16)

    def close(actual, expected, x):
        if actual.shape != expected.shape:
            shapes = (tuple(actual.shape), tuple(expected.shape))
            return "shapes differ: compiled %s, eager %s" % shapes
        if low:  # no more than 2x eager's distance from a float64 reference, + 1e-4
            with torch.no_grad():
                ref = copy.deepcopy(eager).double()(x.double())
            c = (actual.double() - ref).abs().max().item()
            e = (expected.double() - ref).abs().max().item()
            return None if c <= 2 * e + 1e-4 else "compiled %.3g from float64, eager %.3g" % (c, e)
        atol = 0.003 if (tf32 and device == "cuda" and dtype == torch.float32) else None
        try:
            torch.testing.assert_close(actual, expected, rtol=1.3e-6 if atol else None, atol=atol)
        except AssertionError as exc:
            return " ".join(str(exc).split())[:300]
        return None

    try:
        with config.patch(patch):
            if graph == "decomposed":
                from torch._dispatch.python import enable_python_dispatcher
                from torch.fx.experimental.proxy_tensor import make_fx
                with enable_python_dispatcher():
                    compiled_mod = make_fx(compiled_mod, pre_dispatch=True)(inp)
            compiled = torch.compile(compiled_mod)
            opt_e = torch.optim.SGD(eager.parameters(), lr=1e-3)
            opt_c = torch.optim.SGD(compiled_mod.parameters(), lr=1e-3)
            before = counters["inductor"]["efficient_conv_bn_eval"]
            out_e, out_c = eager(inp), compiled(inp)
            problem = close(out_c, out_e, inp)
            if problem is None:
                out_e.mean().backward()
                out_c.mean().backward()
                opt_e.step()
                opt_c.step()
                inp2 = torch.rand_like(inp)
                problem = close(compiled(inp2), eager(inp2), inp2)
            fires = counters["inductor"]["efficient_conv_bn_eval"] - before
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        return "error", "%s: %s" % (type(exc).__name__, first)
    if problem:
        return "wrong-result", problem
    if fires != expected_fires:
        return "not-fused", "pass fired %d time(s), expected %d" % (fires, expected_fires)
    return "fused", "pass fired %d time(s), output equals eager" % fires
'''


def _builder_source(case: Case) -> tuple[str, str]:
    """Source of the functions that build the case, and the expression that calls them."""
    build = case.build
    func, args, kwargs = build.func, build.args, build.keywords
    # Both builders may randomise BatchNorm state (the Stats cases use _upstream_model).
    main = cases._upstream_model if func is cases._upstream_model else cases._conv_bn
    needed = [cases._randomize_bn, main]
    src = "\n\n".join(textwrap.dedent(inspect.getsource(f)) for f in needed)
    if func is cases._upstream_model:
        src = f"_SPATIAL_DIMS = {cases._SPATIAL_DIMS!r}\n\n\n" + src
    call = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    return src, f"{func.__name__}({call})"


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


# The modules a generated example's reproducer carries, verbatim: the oracle that the
# fuzz sessions and the matrix run, and the shim it speaks through. All need only torch.
_EMBEDDED = ("outcomes", "devices", "inductor", "tracing", "generated", "cases", "genrunner")

_GENERATED_MAIN = """
import importlib.abc
import importlib.util
import sys


class _Embedded(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    \"\"\"Serves the convbn_compat modules embedded above, so the script needs only torch.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name in _SOURCES:
            return importlib.util.spec_from_loader(name, self, is_package=name == "convbn_compat")
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        code = compile(_SOURCES[module.__name__], "<embedded " + module.__name__ + ">", "exec")
        exec(code, module.__dict__)


sys.meta_path.insert(0, _Embedded())

if __name__ == "__main__":
    import torch

    from convbn_compat.generated import Example
    from convbn_compat.genrunner import build, judge

    example = Example.from_id(EXAMPLE)
    print("torch", torch.__version__)
    print("model:", build(example)[0])
    print("input shape:", example.input_shape)
    verdict = judge(example, DEVICE)
    print("pass on: fired", verdict.fires, "time(s), expected", verdict.expected_fires)
    if verdict.message_off:
        print("pass off:", verdict.message_off, "- fired", verdict.fires_off, "time(s)")
    print("BLAME:", verdict.blame.value)
    print("OUTCOME:", verdict.outcome.value, "-", verdict.message or "output equals eager")
"""


def _generated_body(case: Case, device: str) -> str:
    sources = {"convbn_compat": ""}
    for name in _EMBEDDED:
        # Read, not imported: writing a reproducer needs no torch.
        path = Path(__file__).with_name(f"{name}.py")
        sources[f"convbn_compat.{name}"] = path.read_text(encoding="utf-8")
    lines = [
        f"EXAMPLE = {case.example!r}",
        f"DEVICE = {device!r}",
        "# The convbn-compat modules that build and judge the example, verbatim: this script",
        "# runs exactly the checks of `nox -s fuzz-X.Y-cpu` and of the matrix.",
        "_SOURCES = {",
        *(f"    {name!r}: {text!r}," for name, text in sources.items()),
        "}",
    ]
    return "\n".join(lines) + "\n" + _GENERATED_MAIN


def repro_script(
    case_id: str, device: str = "cpu", release: str | None = None, tf32: bool = False
) -> str:
    case = get_case(case_id)
    if device not in case.devices:
        raise ConfigError(f"{case_id} runs on {', '.join(case.devices)}, not {device}")
    if tf32 and case.example:
        raise ConfigError(f"{case_id} is a generated example; they run with TF32 off")
    flavour = "cuda" if device == "cuda" else "cpu"
    rel = (
        get_release(release) if release else get_release([k for k in RELEASES if k != NIGHTLY][-1])
    )
    params = dict(
        device=device,
        expected_fires=case.expected_fires,
        graph=case.graph,
        syncbn=case.syncbn,
        pass_enabled=case.pass_enabled,
        train=case.train,
        dtype=case.dtype,
        channels_last=case.channels_last,
        tf32=tf32,
    )
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
    if case.example:
        return "\n".join(header) + "\n" + _generated_body(case, device)
    src, call = _builder_source(case)
    body = f"""import copy

import torch
import torch.nn.functional as F  # noqa: F401  (used by some models)
from torch import nn
from torch._dynamo.utils import counters
from torch._inductor import config

{src}

{_RUNNER}

if __name__ == "__main__":
    outcome, detail = run_case(lambda: {call}, **{params!r})
    print("torch", torch.__version__)
    print("OUTCOME:", outcome, "-", detail)
"""
    return "\n".join(header) + "\n" + body


def run_script(python: str, script: Path, timeout: float = 900) -> str:
    """Run a reproducer with an environment's Python; return its outcome word."""
    proc = subprocess.run(
        [python, str(script)], capture_output=True, text=True, timeout=timeout, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith("OUTCOME:"):
            return line.split()[1]
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return f"error (exit {proc.returncode}: {' | '.join(tail)})"


def environment_python(release: Release, flavour: str, root: Path) -> Path:
    """The Python of a session's environment, created (installed only) if it is missing."""
    session = release.session(flavour)
    python = root / ".nox" / session.replace(".", "-") / "bin" / "python"
    if not python.exists():
        print(f"creating {session} (nox --install-only) ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "nox", "-s", session, "--install-only"], cwd=root, check=True
        )
    return python


def bisect(case_id: str, good: str, bad: str, device: str = "cpu", root: Path = Path(".")) -> int:
    keys = [k for k in RELEASES if k != NIGHTLY]
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


BAD = (Outcome.WRONG_RESULT.value, Outcome.ERROR.value)


def release_range(outcomes: dict[str, str]) -> str:
    """'2.5 to 2.15', 'from 2.2, fixed in 2.13' ...: where a case is wrong or errors."""
    keys = list(outcomes)
    bad = [k for k in keys if outcomes[k] in BAD]
    if not bad:
        return "never wrong or failing"
    first = bad[0]
    after = keys[keys.index(first) :]
    fixed = next((k for k in after if outcomes[k] not in BAD), None)
    if fixed is None:
        return f"from {first} to {keys[-1]} (the newest tested): not fixed"
    return f"from {first}, fixed in {fixed}"


def replay(
    case_ids: list[str],
    device: str = "cpu",
    root: Path = Path("."),
    keys: list[str] | None = None,
    progress=print,
) -> dict[str, dict[str, str]]:
    """Each case's standalone reproducer, run in each release's environment.

    Environments are the sessions' own (``.nox/tests-X.Y-<flavour>``), created with
    ``nox --install-only`` where missing. Returns case id -> release -> outcome word.
    """
    cases_ = [get_case(c) for c in case_ids]
    keys = keys or [k for k in RELEASES if k != NIGHTLY]
    for k in keys:
        get_release(k)
    flavour = "cuda" if device == "cuda" else "cpu"
    script_dir = root / "results" / "replay"
    script_dir.mkdir(parents=True, exist_ok=True)
    seen: dict[str, dict[str, str]] = {c.id: {} for c in cases_}
    for key in keys:
        python = str(environment_python(RELEASES[key], flavour, root))
        for case in cases_:
            script = script_dir / f"{case.id}-{device}-{key}.py"
            script.write_text(repro_script(case.id, device, key))
            seen[case.id][key] = run_script(python, script)
            progress(f"  torch {RELEASES[key].torch}: {case.id}: {seen[case.id][key]}")
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
