"""Command line: ``python -m convbn_compat <command>``."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from .core.cells import DEVICES
from .core.errors import ConfigError, Exit

DESCRIPTION = """\
convbn-compat: in which PyTorch releases does Inductor's efficient conv-bn eval pass
work? The Nox sessions run the suite (nox -s tests-2.15-cpu); this command reads,
reports, reproduces and bisects what they found."""

EXAMPLES = """\
examples:
  convbn-compat report results/ -o report/          matrix.md, summary.md, matrix.json, matrix.html
  convbn-compat report results/ --baseline old/matrix.json   exit 1 on a new failure
  convbn-compat table docs/results -o docs/matrix.md
  convbn-compat cases --subset found
  convbn-compat repro ConvOp-bias-Conv2d-bn-decomposed --release 2.3 -o repro.py
  convbn-compat bisect Bug169011-bn3args-Conv2d-bn-module --older 2.4 --newer 2.15
  convbn-compat replay --releases 2.4,2.15
  convbn-compat triage results/fuzz-2.15-cpu.json    one line a cause; exit 4 on a new one
  convbn-compat propose results/fuzz-2.15-cpu.json --discard   new causes' release ranges
  convbn-compat env --json

"""


def version() -> str:
    from . import __version__

    return __version__


def _files_intact(dist) -> str | None:
    """The first file of ``dist``'s RECORD that is missing or has another size, if any."""
    for file in dist.files or ():
        if file.size is None:  # RECORD itself, and bytecode compiled after the install
            continue
        path = file.locate()
        try:
            if path.stat().st_size != file.size:
                return f"{file} has {path.stat().st_size} bytes, {file.size} installed"
        except OSError:
            return f"{file} is missing"
    return None


def _env_quick(args: argparse.Namespace) -> int:
    """Check torch's installed files against its RECORD, without importing it: a second
    instead of the seconds an import takes, for `nox -R` before every rerun."""
    from importlib import metadata

    from .core.versions import torch_release

    try:
        dist = metadata.distribution("torch")
    except metadata.PackageNotFoundError:
        problem = "it is not installed"
    else:
        problem = _files_intact(dist)
    if problem:
        print(
            f"convbn-compat: torch in {sys.executable} is broken ({problem}); rebuild the "
            "environment (run nox without -R)",
            file=sys.stderr,
        )
        return Exit.BAD_INPUT
    version = dist.version
    if args.expect_torch and torch_release(version) != torch_release(args.expect_torch):
        print(
            f"convbn-compat: this environment has torch {version}, but the release table "
            f"pins {args.expect_torch}; recreate it (run nox without -R, or with "
            "--reuse-venv=no)",
            file=sys.stderr,
        )
        return Exit.BAD_INPUT
    print(f"torch {version}: every installed file in place (not imported)")
    return Exit.OK


def _env(args: argparse.Namespace) -> int:
    from .core.versions import torch_release

    if args.quick:
        return _env_quick(args)
    try:
        import torch

        from .core.results import environment_info
        from .shim import inductor

        info = environment_info()
        info["has_pass"] = inductor.has_pass()
    except Exception as exc:  # ImportError, OSError (a lost .so), AttributeError (lost files)
        print(
            f"convbn-compat: torch in {sys.executable} is broken, it does not import or "
            f"lacks parts ({type(exc).__name__}: {exc}); rebuild the environment (run nox "
            "without -R)",
            file=sys.stderr,
        )
        return Exit.BAD_INPUT
    gpus = ", ".join(f"{g['name']} (sm {g['capability']})" for g in info["gpus"]) or "none"
    if args.json:  # JSON alone, for a program to read
        print(json.dumps(info, indent=1))
    else:
        print(
            f"torch {info['torch']} | CUDA {info['cuda'] or 'none (CPU build)'} | "
            f"Python {info['python']} | GPUs: {gpus} | pass present: {info['has_pass']}"
        )
    if args.expect_torch and torch_release(torch.__version__) != torch_release(args.expect_torch):
        print(
            f"convbn-compat: this environment has torch {torch.__version__}, but the release "
            f"table pins {args.expect_torch}; recreate it (run nox without -R, or with "
            "--reuse-venv=no)",
            file=sys.stderr,
        )
        return Exit.BAD_INPUT
    return Exit.OK


def check_output_file(output: Path | None) -> None:
    """``-o FILE``: a file to write (replaced if it exists) in a folder that exists and
    takes a new file; refused with one line before the command's work, not after it."""
    if output is not None:
        from .core.output import check_file

        check_file(output)


def _emit(text: str, output: Path | None, hint: str = "") -> int:
    """Write ``text`` to ``output`` (whole, or the previous file stays) if given, else
    to stdout."""
    if output:
        from .core.output import write_file

        write_file(output, text)
        print(f"wrote {output}{hint}")
    else:
        print(text, end="")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from .core.results import SCHEMA_FILE
    from .core.schema_doc import schema_markdown

    check_output_file(args.output)
    text = schema_markdown() if args.markdown else SCHEMA_FILE.read_text(encoding="utf-8")
    return _emit(text, args.output)


def _table(args: argparse.Namespace) -> int:
    from .report.write import table

    check_output_file(args.output)
    return _emit(table(args.results, device=args.device), args.output)


def _report(args: argparse.Namespace) -> int:
    from .report.write import main_report

    return main_report(
        args.results or [Path("results")], args.output, args.baseline, tuple(args.no_fail_on)
    )


def _cases(args: argparse.Namespace) -> int:
    from .core.cases import CASES

    for case in CASES:
        if args.subset in (None, case.subset):
            links = " ".join(case.links)
            print(
                f"{case.id}\t{case.subset}\t{','.join(case.devices)}\t{case.about}\t{links}".rstrip()
            )
    return 0


def _repro(args: argparse.Namespace) -> int:
    from .tools.repro import repro_script

    check_output_file(args.output)
    if args.standalone:
        return _standalone(args)
    text = repro_script(args.case, args.device, args.release, tf32=args.tf32)
    return _emit(text, args.output, "; run it with the Python of a torch environment")


def _standalone(args: argparse.Namespace) -> int:
    """The torch-only script, and beside it (with -o) a draft issue in Markdown."""
    from .tools.standalone import draft_issue, standalone_script

    name = args.output.name if args.output else "repro.py"
    script = standalone_script(args.case, name)
    if args.output is None:
        return _emit(script, None)
    _emit(script, args.output, "; it needs only torch, and exits 1 where the bug shows")
    return _emit(draft_issue(args.case, script, name), args.output.with_suffix(".md"))


def _checkout_here(command: str) -> Path:
    """The checkout to build release environments in: this folder, if it is one. bisect,
    replay and propose run the repository's Nox sessions, which an installed wheel lacks;
    they refuse, in one line, before anything is written or built."""
    from .tools.repro import nox_command

    root = Path.cwd()
    if not (root / "noxfile.py").is_file():
        raise ConfigError(
            f"{command} builds each release's environment with the repository's Nox "
            f"sessions, and {root} has no noxfile.py; run it from a convbn-compat checkout"
        )
    nox_command()  # refuses, saying how to install it, where there is no nox to run
    return root


def _bisect(args: argparse.Namespace) -> int:
    from .tools.repro import bisect

    root = _checkout_here("bisect")
    return bisect(args.case, args.older, args.newer, args.device, root)


def _replay(args: argparse.Namespace) -> int:
    from .core.cases import CASES, FOUND
    from .tools.repro import release_range, replay, replay_markdown

    check_output_file(args.output)
    ids = args.cases or [c.id for c in CASES if c.subset == FOUND]
    keys = args.releases.split(",") if args.releases else None
    seen = replay(ids, args.device, _checkout_here("replay"), keys)
    for case_id, row in seen.items():
        print(f"{case_id}: wrong or failing {release_range(row)}")
    if args.output:
        return _emit(replay_markdown(seen, args.device), args.output)
    return 0


def _triage(args: argparse.Namespace) -> int:
    from .tools.propose import triage_lines

    lines, new, complete = triage_lines(args.results, args.markdown)
    print("\n".join(lines))
    if new:
        return Exit.NEW_CAUSE
    return Exit.OK if complete else Exit.FINDINGS


def _propose(args: argparse.Namespace) -> int:
    from .tools.propose import new_causes, propose

    check_output_file(args.output)
    new_causes(args.results)  # a bad file is refused before any environment is built
    root = _checkout_here("propose")
    keys = args.releases.split(",") if args.releases else None
    out = propose(args.results, args.output, args.device, keys, root, args.discard)
    print(f"proposed rows with their release ranges: {out}")
    return 0


def _bisect_replay_and_triage(sub) -> None:
    """The commands that run cases across releases, and read a fuzz run's causes."""
    bis = sub.add_parser("bisect", help="find the first release where a case changes outcome")
    bis.add_argument("case")
    # The older release need not be the good one: a fix is bisected as a regression is.
    bis.add_argument("--older", "--good", required=True, metavar="X.Y", help="one release")
    bis.add_argument("--newer", "--bad", required=True, metavar="X.Y", help="a later one")
    bis.add_argument("--device", default="cpu", choices=DEVICES)
    bis.set_defaults(func=_bisect)
    rep = sub.add_parser(
        "replay",
        help="run cases' standalone reproducers in every release's environment: the "
        "release range of each (default: the found cases)",
    )
    rep.add_argument("cases", nargs="*", help="case or generated example ids")
    rep.add_argument("--device", default="cpu", choices=DEVICES)
    rep.add_argument("--releases", metavar="X.Y,X.Y", help="only these releases")
    rep.add_argument("-o", "--output", type=Path, help="write a Markdown table here")
    rep.set_defaults(func=_replay)
    tri = sub.add_parser(
        "triage",
        help="a fuzz run's causes, one line each, against the causes table as it is now; "
        f"exit {Exit.NEW_CAUSE:d} where one is new, {Exit.FINDINGS:d} where the run did not finish",
    )
    tri.add_argument("results", type=Path, help="the fuzz run's results file")
    tri.add_argument("--markdown", action="store_true", help="a Markdown table (job summaries)")
    tri.set_defaults(func=_triage)
    prop = sub.add_parser(
        "propose",
        help="replay a fuzz run's NEW causes in every release and write their proposed "
        "causes.toml rows with the release range",
    )
    prop.add_argument("results", type=Path, help="the fuzz run's results file")
    prop.add_argument("--device", default="cpu", choices=DEVICES)
    prop.add_argument("--releases", metavar="X.Y,X.Y", help="only these releases")
    prop.add_argument(
        "--discard",
        action="store_true",
        help="remove each environment it had to build once its release is done "
        "(one on disk at a time)",
    )
    prop.add_argument(
        "-o", "--output", type=Path, help="rows file (default: <results>-proposed-causes.toml)"
    )
    prop.set_defaults(func=_propose)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convbn-compat",
        description=DESCRIPTION,
        epilog=EXAMPLES + Exit.help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    env = sub.add_parser("env", help="print the torch, CUDA and devices under test")
    env.add_argument("--expect-torch", metavar="X.Y.Z", help="fail unless this torch is installed")
    env.add_argument("--json", action="store_true", help="print the details as JSON instead")
    env.add_argument(
        "--quick",
        action="store_true",
        help="check torch's installed files and version without importing it",
    )
    env.set_defaults(func=_env)
    schema = sub.add_parser(
        "schema", help="print the results files' JSON Schema (or, --markdown, its document)"
    )
    schema.add_argument("--markdown", action="store_true", help="docs/results-schema.md")
    schema.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    schema.set_defaults(func=_schema)
    table = sub.add_parser("table", help="lay results files out as a Markdown matrix")
    table.add_argument("results", nargs="+", type=Path, help="results JSON files")
    table.add_argument("--device", default="cpu", choices=DEVICES)
    table.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    table.set_defaults(func=_table)
    report = sub.add_parser(
        "report", help="merge results into matrix.md, summary.md, matrix.json and matrix.html"
    )
    report.add_argument(
        "results", nargs="*", type=Path, help="results files or folders (default: results/)"
    )
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("report"),
        help="folder for the four files (default: report/)",
    )
    report.add_argument(
        "--baseline",
        type=Path,
        help="earlier matrix.json or results folder; exit 1 on a new failure",
    )
    report.add_argument(
        "--no-fail-on",
        action="append",
        default=[],
        metavar="RELEASE",
        help="report new failures of this release without failing (nightly)",
    )
    report.set_defaults(func=_report)
    cases = sub.add_parser("cases", help="list case ids (subset, devices, what, links)")
    cases.add_argument("--subset", choices=("upstream", "extended", "found"))
    cases.set_defaults(func=_cases)
    repro = sub.add_parser("repro", help="write a standalone script that reproduces a case")
    repro.add_argument("case", help="case id, e.g. ConvOp-bias-Conv2d-bn-decomposed")
    repro.add_argument("--device", default="cpu", choices=DEVICES)
    repro.add_argument("--tf32", action="store_true", help="with TF32 on (cuda)")
    repro.add_argument(
        "--standalone",
        action="store_true",
        help="a script of at most 60 lines that imports only torch, for an upstream issue, "
        "and a draft issue beside it (-o X.py writes X.md); CASE is a generated example or "
        "a known cause's id",
    )
    repro.add_argument("--release", help="release whose install commands head the script")
    repro.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    repro.set_defaults(func=_repro)
    _bisect_replay_and_triage(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"convbn-compat: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    except KeyboardInterrupt:
        print("convbn-compat: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug of ours: say so, and keep the traceback for the report
        traceback.print_exc()
        print(
            f"convbn-compat {version()}: internal error (exit {Exit.CRASH:d}); this is a bug, "
            "please report it with the traceback above",
            file=sys.stderr,
        )
        return Exit.CRASH


if __name__ == "__main__":
    sys.exit(main())
