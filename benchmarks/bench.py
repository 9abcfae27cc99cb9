"""Speed and cost of the matrix, measured side by side in one run (`nox -s bench`).

Every comparison runs its two sides in the same invocation, alternating, on the same
machine, `--reps` times, and reports medians and the ratio of medians:

  env     environment for one release: this project's session install (uv, hardlinked
          from its cache) against `python -m venv` + `pip install`, each cold (empty
          package cache) and warm (cache kept); the disk each new environment costs
  suite   the release's 112 upstream CPU cases: the project's session (pytest-xdist over
          the machine's cores) against upstream's loop (benchmarks/upstream_loop.py: one
          process, sequential), each cold (empty compile cache) and warm (cache kept)
  startup torch's import time and the environment build, with bytecode compiled at
          install (uv --compile-bytecode) and without, each import with
          PYTHONDONTWRITEBYTECODE=1 (as on this machine and in many images) and unset
  rerun   one case rerun with `nox -R` (the environment reused, nothing installed), with
          PYTHONDONTWRITEBYTECODE=1 and unset
  matrix  the whole CPU matrix: every release's full CPU suite, one release after
          another, each cold then warm, its environment removed before the next; how
          the total grows with the number of releases. Once (`--reps` does not apply:
          one pass over 14 releases took 77 minutes on 2 cores); each
          release's row is saved as it finishes (`<scratch>/matrix-progress.json`),
          with the cells of each run whose outcome, fire count or rewrites differ
          from the committed results (docs/results)

It appends a dated record to docs/benchmarks.md (`--record`) and writes the raw numbers
as JSON next to it. Torch comes from the default index (CONVBN_TORCH_INDEX=default).
A run stopped with Ctrl-C or `kill` still records the parts that ended and the matrix's
finished releases; `--from-progress` records what a run killed harder had saved.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convbn_compat.core.releases import NEWEST, RELEASED, RELEASES  # noqa: E402
from convbn_compat.core.results import load_run  # noqa: E402
from convbn_compat.sessions.environments import WRITE_BYTECODE  # noqa: E402

TARGETS = {
    "suite_cold_ratio": 0.6,
    "suite_warm_ratio": 0.25,
    "env_warm_seconds": 10.0,
    "env_warm_speedup_vs_pip": 5.0,
    "rerun_seconds": 8.0,
}


def _run(cmd, env=None, cwd=ROOT, check=True) -> tuple[float, str]:
    started = time.perf_counter()
    merged = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env={k: v for k, v in merged.items() if v is not None},  # None: unset it
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if check and proc.returncode != 0:
        raise SystemExit(
            f"benchmark step failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return seconds, proc.stdout


def _install_only(envdir: Path, session: str, env: dict) -> float:
    """Build ``session``'s environment under ``envdir`` the project's way; seconds taken."""
    cmd = [sys.executable, "-m", "nox", "--envdir", envdir, "-s", session, "--install-only"]
    return _run(cmd, env)[0]


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def _median(xs):
    return round(statistics.median(xs), 2)


def bench_env(release, reps: int, scratch: Path) -> dict:
    """Project install (uv via nox) vs venv + pip; cold and warm package caches."""
    session = release.session("cpu")
    common = {"CONVBN_TORCH_INDEX": "default", "CONVBN_RESULTS_DIR": str(scratch / "res")}
    pip_env = {
        # The machine's global pip config caps torch below the newest release; a plain
        # pip user would not have it, so the baseline ignores config files.
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    constraints = str(release.constraints)
    out = {k: [] for k in ("uv_cold", "uv_warm", "pip_cold", "pip_warm")}
    disk = {k: [] for k in ("uv_cold_cache", "uv_env", "pip_env", "pip_cache")}
    for rep in range(reps):
        # uv cold: a new, empty cache on the same disk, so hardlinks are possible.
        cache = scratch / f"uv-cache-{rep}"
        envdir = scratch / "envs"
        s = _install_only(envdir, session, {**common, "UV_CACHE_DIR": str(cache)})
        out["uv_cold"].append(s)
        disk["uv_cold_cache"].append(_dir_bytes(cache))
        shutil.rmtree(envdir)
        shutil.rmtree(cache)
        # uv warm: the machine's cache, as every session after the first uses it.
        before = _free_bytes(scratch)
        s = _install_only(envdir, session, common)
        out["uv_warm"].append(s)
        disk["uv_env"].append(before - _free_bytes(scratch))
        shutil.rmtree(envdir)
        # pip cold then warm: one fresh pip cache per rep, kept for the warm install.
        pip_cache = scratch / f"pip-cache-{rep}"
        for kind in ("pip_cold", "pip_warm"):
            venv = scratch / "pip-venv"
            before = _free_bytes(scratch)
            started = time.perf_counter()
            _run([sys.executable, "-m", "venv", venv])
            py = venv / "bin" / "python"
            env = {**pip_env, "PIP_CACHE_DIR": str(pip_cache)}
            _run([py, "-m", "pip", "install", "-q", release.requirement(), "-c", constraints], env)
            _run([py, "-m", "pip", "install", "-q", "-e", ".[test]", "-c", constraints], env)
            out[kind].append(time.perf_counter() - started)
            if kind == "pip_cold":
                disk["pip_env"].append(before - _free_bytes(scratch) - _dir_bytes(pip_cache))
                disk["pip_cache"].append(_dir_bytes(pip_cache))
            shutil.rmtree(venv)
        # pip writes nothing to its cache when the index sends uncacheable responses
        # (this machine's PyPI mirror does): then warm is as cold, and there is no folder.
        shutil.rmtree(pip_cache, ignore_errors=True)
        print(
            f"  env rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in out.items()),
            flush=True,
        )
    return {"seconds": out, "bytes": disk}


def _dir_bytes(path: Path) -> int:
    seen, total = set(), 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _suite_cmd(py: Path, run: str, results: Path, *select: str) -> list:
    """The project's CPU suite in environment ``py``, over every core (pytest-xdist)."""
    return [py, "-m", "pytest", "tests/test_matrix.py", *select, "--convbn-devices=cpu",
            f"--convbn-run={run}", f"--convbn-results={results}",
            "-n", "auto", "-q", "-p", "no:cacheprovider"]  # fmt: skip


def bench_suite(release, reps: int, scratch: Path) -> dict:
    """112 upstream CPU cases: the project's session vs upstream's sequential loop."""
    session = release.session("cpu")
    envdir = scratch / "suite-envs"
    common = {"CONVBN_TORCH_INDEX": "default", "CONVBN_RESULTS_DIR": str(scratch / "res")}
    _install_only(envdir, session, common)
    py = envdir / session.replace(".", "-") / "bin" / "python"
    out = {k: [] for k in ("project_cold", "project_warm", "upstream_cold", "upstream_warm")}
    detail = {"project": [], "upstream": []}
    for rep in range(reps):
        for side in ("project", "upstream"):
            cache = scratch / f"inductor-{side}-{rep}"
            env = {
                **common,
                "TORCHINDUCTOR_CACHE_DIR": str(cache),
                "PYTHONPATH": str(ROOT),
                **WRITE_BYTECODE,  # as the sessions run their commands
            }
            for temp in ("cold", "warm"):
                if side == "project":
                    s, _ = _run(
                        _suite_cmd(py, "bench-project", scratch / "res", "-m", "upstream"), env
                    )
                    data = load_run(scratch / "res" / "bench-project.json")
                    info = {
                        "case_seconds": round(sum(r.seconds or 0 for r in data.records), 1),
                        "outcomes": _count(_word(r) for r in data.records),
                    }
                else:
                    s, stdout = _run([py, str(ROOT / "benchmarks" / "upstream_loop.py")], env)
                    info = json.loads(stdout)
                    info.pop("fires")
                out[f"{side}_{temp}"].append(s)
                detail[side].append({"rep": rep, "temp": temp, "wall": round(s, 1), **info})
                print(f"  suite rep {rep + 1}: {side} {temp} {s:.1f} s", flush=True)
            shutil.rmtree(cache)
    return {"seconds": out, "detail": detail, "envdir": str(envdir)}


MATRIX_PROGRESS = "matrix-progress.json"


def bench_matrix(releases, scratch: Path, progress: Path) -> dict:
    """Every release's CPU suite, one after another, cold then warm."""
    common = {"CONVBN_TORCH_INDEX": "default", "CONVBN_RESULTS_DIR": str(scratch / "res")}
    rows = []
    for release in releases:
        session = release.session("cpu")
        envdir = scratch / "matrix-envs"
        cache = scratch / "inductor-matrix"
        row = {"release": release.key, "torch": release.torch}
        row["env"] = round(_install_only(envdir, session, common), 1)
        py = envdir / session.replace(".", "-") / "bin" / "python"
        for temp in ("cold", "warm"):
            name = f"bench-matrix-{release.key}-{temp}"
            env = {
                **common,
                "TORCHINDUCTOR_CACHE_DIR": str(cache),
                "PYTHONPATH": str(ROOT),
                **WRITE_BYTECODE,  # as the sessions run their commands
            }
            seconds, _ = _run(_suite_cmd(py, name, scratch / "res"), env, check=False)
            data = load_run(scratch / "res" / f"{name}.json")
            row[temp] = round(seconds, 1)
            row[f"{temp}_outcomes"] = _count(_word(r) for r in data.records)
            row[f"{temp}_complete"] = data.complete
            row[f"{temp}_differs"] = _differs_from_committed(release.key, data)
        shutil.rmtree(envdir)
        shutil.rmtree(cache)
        rows.append(row)
        progress.write_text(json.dumps(rows, indent=1) + "\n")
        print(
            f"  matrix {release.key}: env {row['env']} s, cold {row['cold']} s, "
            f"warm {row['warm']} s",
            flush=True,
        )
    return {"rows": rows}


def _word(record) -> str | None:
    return record.outcome.value if record.outcome else None


def _cells(records) -> dict:
    return {r.cell: (_word(r), r.fire_count, r.graph_rewrites) for r in records}


def _differs_from_committed(key: str, data) -> list[str]:
    """The cells whose outcome, fire count or graph rewrites differ from the committed
    results of that release (docs/results), or that those results lack."""
    committed = {}
    for path in sorted((ROOT / "docs" / "results").glob(f"tests-{key}-cpu*.json")):
        committed.update(_cells(load_run(path).records))
    return [
        f"{cell[0]}-{cell[1]}" for cell, seen in _cells(data.records).items()
        if committed.get(cell) != seen
    ]  # fmt: skip


def matrix_totals(rows: list[dict]) -> dict:
    """Running totals, release by release, and the mean cost each release adds."""
    cumulative, total = [], 0.0
    for row in rows:
        total += row["env"] + row["cold"] + row["warm"]
        cumulative.append(round(total, 1))
    n = len(rows) or 1
    env, cold, warm = (sum(r[k] for r in rows) for k in ("env", "cold", "warm"))
    return {
        "releases": len(rows),
        "env": round(env, 1),
        "cold": round(cold, 1),
        "warm": round(warm, 1),
        "cumulative": cumulative,
        "per_release_cold": round(cold / n, 1),
        "per_release_warm": round(warm / n, 1),
        "warm_over_cold": round(warm / max(cold, 1e-9), 3),
    }


def _count(items) -> dict:
    counts: dict = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def bench_rerun(release, reps: int, scratch: Path, envdir: Path) -> dict:
    """One case again through nox -R: the environment reused, nothing installed."""
    session = release.session("cpu")
    common = {"CONVBN_TORCH_INDEX": "default", "CONVBN_RESULTS_DIR": str(scratch / "res")}
    # One cell, by its full pytest id: `-k` would also pick the cells whose ids contain it.
    case = "tests/test_matrix.py::test_conv_bn_eval[ConvOp-bias-Conv2d-bn-module-cpu]"
    rerun = [sys.executable, "-m", "nox", "--envdir", envdir, "-R", "-s", session, "--", case]
    # Once untimed: a developer reruns a case of a cell they ran before, so the
    # environment's compile cache already holds it.
    first, _ = _run(rerun, common)
    out = {"rerun": [], "rerun_bytecode_var_unset": []}
    for _ in range(reps):
        out["rerun"].append(_run(rerun, {**common, "PYTHONDONTWRITEBYTECODE": "1"})[0])
        out["rerun_bytecode_var_unset"].append(_run(rerun, {**common, **WRITE_BYTECODE})[0])
    return {"seconds": out, "case": case, "first_run": round(first, 1)}


def _save_progress(raw: dict, path: Path) -> None:
    """Every part's numbers as soon as it ends: a later part that fails loses nothing."""
    path.write_text(json.dumps(raw, indent=1) + "\n")


IMPORT = "import torch, torch._inductor.compile_fx"


def bench_startup(release, reps: int, scratch: Path) -> dict:
    """Environment build with and without bytecode (uv, warm cache), and torch's import
    time in each, with PYTHONDONTWRITEBYTECODE set and unset."""
    uv = shutil.which("uv") or "uv"
    names = ("build_bytecode", "build_no_bytecode")
    names += tuple(
        f"import_{b}_{v}"
        for b in ("bytecode", "no_bytecode")
        for v in ("var_set", "var_unset_first", "var_unset_again")
    )
    out = {k: [] for k in names}
    constraints = str(release.constraints)
    for _ in range(reps):
        for bytecode in (True, False):
            tag = "bytecode" if bytecode else "no_bytecode"
            venv = scratch / f"startup-{tag}"
            shutil.rmtree(venv, ignore_errors=True)
            flag = ["--compile-bytecode"] if bytecode else []
            env = {"UV_COMPILE_BYTECODE": None, "UV_LINK_MODE": "hardlink"}
            started = time.perf_counter()
            _run([uv, "venv", "-q", "--python", release.python, venv], env)
            py = venv / "bin" / "python"
            _run([uv, "pip", "install", "-q", "--python", py, *flag, release.requirement(),
                  "-c", constraints], env)  # fmt: skip
            _run([uv, "pip", "install", "-q", "--python", py, *flag, "-e", ".[test]",
                  "-c", constraints], env)  # fmt: skip
            out[f"build_{tag}"].append(time.perf_counter() - started)
            set_ = {"PYTHONDONTWRITEBYTECODE": "1"}
            unset = WRITE_BYTECODE
            # Set first: nothing is written, so the unset runs still find no bytecode.
            out[f"import_{tag}_var_set"].append(_run([py, "-c", IMPORT], set_, cwd=scratch)[0])
            out[f"import_{tag}_var_unset_first"].append(
                _run([py, "-c", IMPORT], unset, cwd=scratch)[0]
            )
            out[f"import_{tag}_var_unset_again"].append(
                _run([py, "-c", IMPORT], unset, cwd=scratch)[0]
            )
            shutil.rmtree(venv)
        print("  startup: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in out.items()), flush=True)
    return {"seconds": out}


def summarize(raw: dict) -> dict:
    med = {
        k: _median(v) for part in raw["parts"].values() for k, v in part.get("seconds", {}).items()
    }
    ratios = {}
    if "project_cold" in med:
        ratios["suite_cold_ratio"] = round(med["project_cold"] / med["upstream_cold"], 3)
        ratios["suite_warm_ratio"] = round(med["project_warm"] / med["upstream_cold"], 3)
        ratios["suite_warm_vs_upstream_warm"] = round(med["project_warm"] / med["upstream_warm"], 3)
    if "uv_warm" in med:
        ratios["env_warm_seconds"] = med["uv_warm"]
        ratios["env_warm_speedup_vs_pip"] = round(med["pip_warm"] / med["uv_warm"], 1)
        ratios["env_cold_speedup_vs_pip"] = round(med["pip_cold"] / med["uv_cold"], 1)
    if "rerun" in med:
        ratios["rerun_seconds"] = med["rerun"]
    if "import_bytecode_var_set" in med:
        ratios["import_speedup_bytecode_var_set"] = round(
            med["import_no_bytecode_var_set"] / med["import_bytecode_var_set"], 2
        )
        ratios["build_bytecode_extra_seconds"] = round(
            med["build_bytecode"] - med["build_no_bytecode"], 1
        )
    summary = {"medians": med, "ratios": ratios}
    if "matrix" in raw["parts"]:
        summary["matrix"] = matrix_totals(raw["parts"]["matrix"]["rows"])
    return summary


def _verdict(name: str, value: float) -> str:
    target = TARGETS.get(name)
    if name == "env_warm_speedup_vs_pip":
        ok = value >= target
        return f"{'met' if ok else 'MISSED'} (target at least {target}x)"
    if target is None:
        return "reported"
    ok = value <= target
    if ok:
        return f"met (target at most {target})"
    return f"MISSED by {value / target:.2f}x (target at most {target})"


def _title(raw: dict) -> str:
    if set(raw["parts"]) == {"matrix"}:
        return f"the whole CPU matrix ({len(raw['parts']['matrix']['rows'])} releases), once"
    return f"torch {raw['torch']} (release {raw['release']}), {raw['reps']} runs each, medians"


def _seconds_markdown(raw: dict, summary: dict) -> list[str]:
    med, ratios = summary["medians"], summary["ratios"]
    lines = ["| measurement | median (s) | runs (s) |", "|---|---|---|"] if med else []
    for part in raw["parts"].values():
        for k, v in part.get("seconds", {}).items():
            lines.append(f"| {k} | {med[k]} | {', '.join(f'{x:.1f}' for x in v)} |")
    if ratios:
        lines += ["", "| ratio or target | value | verdict |", "|---|---|---|"]
    for k, v in ratios.items():
        lines.append(f"| {k} | {v} | {_verdict(k, v) if k in TARGETS else 'reported'} |")
    return lines


def _env_markdown(env: dict) -> list[str]:
    b = env["bytes"]
    return [
        "",
        "Disk: uv cold cache "
        f"{_gb(statistics.median(b['uv_cold_cache']))} for this release; a further "
        f"environment hardlinked from it adds {_gb(statistics.median(b['uv_env']))}; "
        f"a pip environment adds {_gb(statistics.median(b['pip_env']))} plus "
        f"{_gb(statistics.median(b['pip_cache']))} of pip cache.",
    ]


def _suite_markdown(suite: dict) -> list[str]:
    lines = [
        "",
        "Where the suite's time goes (each run):",
        "",
        "| side | run | wall s | summed case s | import s | outcomes |",
        "|---|---|---|---|---|---|",
    ]
    for side, runs in suite["detail"].items():
        for r in runs:
            lines.append(
                f"| {side} | {r['rep'] + 1} {r['temp']} | {r['wall']} | "
                f"{r['case_seconds']} | {r.get('import_seconds', '')} | "
                f"{r['outcomes']} |"
            )
    return lines


def record_markdown(raw: dict, summary: dict) -> str:
    lines = [
        f"## {raw['date']}: {_title(raw)}",
        "",
        f"Machine: {raw['machine']}. Command: `{raw['command']}`."
        + (f" {raw['stopped']}" if raw.get("stopped") else ""),
        "",
        *_seconds_markdown(raw, summary),
    ]
    if "env" in raw["parts"]:
        lines += _env_markdown(raw["parts"]["env"])
    if "suite" in raw["parts"]:
        lines += _suite_markdown(raw["parts"]["suite"])
    if "matrix" in raw["parts"]:
        lines += _matrix_markdown(raw["parts"]["matrix"]["rows"], summary["matrix"])
    return "\n".join(lines) + "\n"


def _matrix_markdown(rows: list[dict], totals: dict) -> list[str]:
    lines = [
        "",
        "The whole CPU matrix, one pass (each release's full CPU suite, pytest-xdist over "
        "the cores; env = building its environment from uv's cache):",
        "",
        "| release | torch | env s | cold s | warm s | warm/cold | running total s | "
        "outcomes (cold) | warm same | cells unlike the committed results (cold, warm) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row, running in zip(rows, totals["cumulative"]):
        same = row["cold_outcomes"] == row["warm_outcomes"]
        if not (row["cold_complete"] and row["warm_complete"]):
            same = "incomplete"
        lines.append(
            f"| {row['release']} | {row['torch']} | {row['env']} | {row['cold']} | "
            f"{row['warm']} | {row['warm'] / row['cold']:.2f} | {running} | "
            f"{row['cold_outcomes']} | {same} | {_unlike(row, 'cold')}, {_unlike(row, 'warm')} |"
        )
    lines += [
        "",
        f"Totals for {totals['releases']} releases: environments {totals['env']} s, cold "
        f"{totals['cold']} s, warm {totals['warm']} s (warm/cold {totals['warm_over_cold']}). "
        f"Each release adds its own time: {totals['per_release_cold']} s cold and "
        f"{totals['per_release_warm']} s warm on average.",
    ]
    return lines


def _unlike(row: dict, temp: str) -> str:
    differs = row.get(f"{temp}_differs")
    if differs is None:
        return "not compared"  # rows recorded before the comparison existed
    return str(len(differs)) if len(differs) > 3 else (", ".join(differs) or "0")


def _gb(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


PARTS = ("env", "startup", "suite", "rerun", "matrix")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/bench.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--release", default=NEWEST, choices=list(RELEASES))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--parts",
        default="env,startup,suite,rerun",
        help="comma-separated: env, startup, suite, rerun, matrix (default: all but matrix)",
    )
    parser.add_argument(
        "--releases",
        help="comma-separated releases for the matrix part (default: every release but nightly)",
    )
    parser.add_argument("--record", type=Path, help="append the record to this Markdown file")
    parser.add_argument(
        "--from-progress",
        action="store_true",
        help="measure nothing: record what a stopped run saved in --scratch",
    )
    parser.add_argument(
        "--scratch",
        type=Path,
        default=ROOT / ".bench",
        help="work folder on the same disk as uv's cache (default .bench/)",
    )
    return parser


def _checked(parser: argparse.ArgumentParser, args) -> tuple[list[str], list[str]]:
    """(parts, releases) of a command line, or the parser's error naming the bad one."""
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    keys = [k.strip() for k in (args.releases or "").split(",") if k.strip()] or list(RELEASED)
    bad = [k for k in keys if k not in RELEASES]
    if bad:
        parser.error(f"--releases: unknown {bad}; choose from {', '.join(RELEASES)}")
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return parts, keys


def _run_parts(raw: dict, parts: list[str], keys: list[str], args, scratch: Path) -> None:
    """Measure each asked-for part in turn, saving each as it ends."""
    release = RELEASES[args.release]
    progress = args.scratch / "bench-progress.json"
    measures = {
        "env": ("env: project (uv) vs venv + pip, cold and warm", bench_env),
        "startup": (
            "startup: bytecode at install or not; the variable set or unset",
            bench_startup,
        ),
        "suite": ("suite: project session vs upstream's sequential loop", bench_suite),
    }
    envdir = None
    for part in [p for p in PARTS if p in parts]:
        raw["current"] = part
        if part in measures:
            print(measures[part][0], flush=True)
            raw["parts"][part] = measures[part][1](release, args.reps, scratch)
            if part == "suite":
                envdir = Path(raw["parts"]["suite"].pop("envdir"))
        elif part == "rerun":
            print("rerun: one case with nox -R", flush=True)
            if envdir is None:
                envdir = scratch / "suite-envs"
                _install_only(envdir, release.session("cpu"), {"CONVBN_TORCH_INDEX": "default"})
            raw["parts"]["rerun"] = bench_rerun(release, args.reps, scratch, envdir)
        else:
            print(f"matrix: {len(keys)} releases, cold then warm, one by one", flush=True)
            raw["parts"]["matrix"] = bench_matrix(
                [RELEASES[k] for k in keys], scratch, args.scratch / MATRIX_PROGRESS
            )
            continue
        _save_progress({k: v for k, v in raw.items() if k != "current"}, progress)


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    parts, keys = _checked(parser, args)
    release = RELEASES[args.release]
    args.scratch.mkdir(parents=True, exist_ok=True)
    raw = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "release": release.key,
        "torch": release.torch,
        "reps": args.reps,
        "command": "python benchmarks/bench.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "requested": parts,
        "parts": {},
    }
    if args.from_progress:
        return _write_record(_from_progress(args.scratch), args.record)
    # An older run's rows must not join this run's record if it is stopped.
    (args.scratch / MATRIX_PROGRESS).unlink(missing_ok=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as Ctrl-C does
    try:
        with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
            _run_parts(raw, parts, keys, args, Path(tmp))
    except KeyboardInterrupt:
        # Keep what was measured: the parts that ended, and the matrix's finished rows.
        part = raw.pop("current", "")
        raw = _from_progress(args.scratch, raw)
        print(f"interrupted during the {part} part; recording what ended", file=sys.stderr)
        _write_record(raw, args.record)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    raw.pop("current", None)
    return _write_record(raw, args.record)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _from_progress(scratch: Path, raw: dict | None = None) -> dict:
    """The record of a run that was stopped: its ended parts (bench-progress.json) and
    the releases its matrix part finished (matrix-progress.json)."""
    if raw is None:
        path = scratch / "bench-progress.json"
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--from-progress: no saved run in {path} ({exc})") from None
    else:
        raw = {**raw, "parts": dict(raw["parts"])}
    rows_path = scratch / MATRIX_PROGRESS
    requested = raw.get("requested") or _parts_of(raw["command"])
    if "matrix" not in raw["parts"] and "matrix" in requested and rows_path.is_file():
        rows = json.loads(rows_path.read_text())
        raw["parts"]["matrix"] = {"rows": rows}
    ended = ", ".join(raw["parts"]) or "none"
    matrix = raw["parts"].get("matrix")
    finished = f" (the matrix: {len(matrix['rows'])} releases finished)" if matrix else ""
    raw["stopped"] = f"It was stopped before the end; what it had saved: {ended}{finished}."
    return raw


def _parts_of(command: str) -> list[str]:
    """The --parts of a recorded command (records saved before "requested" was kept)."""
    words = command.split()
    if "--parts" not in words or words.index("--parts") + 1 >= len(words):
        return ["env", "startup", "suite", "rerun"]
    return words[words.index("--parts") + 1].split(",")


def _write_record(raw: dict, record: Path | None) -> int:
    summary = summarize(raw)
    raw.update(summary)
    text = record_markdown(raw, summary)
    print(text)
    if record:
        record.parent.mkdir(parents=True, exist_ok=True)
        if not record.exists():
            record.write_text(
                "# Benchmark records\n\nAppended by `nox -s bench`; newest "
                "last. Raw numbers: benchmarks.json.\n\n"
            )
        with record.open("a") as fh:
            fh.write("\n" + text)
        raw_path = record.with_suffix(".json")
        history = json.loads(raw_path.read_text()) if raw_path.exists() else []
        history.append(raw)
        raw_path.write_text(json.dumps(history, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
