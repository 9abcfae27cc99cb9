"""``python -m convbn_compat.generator.fuzz``: search generated examples for bugs of the pass.

The search runs in rounds. Each round is one Hypothesis run of ``ROUND`` examples with
its own seed (the session's seed, then the round number), so the same seed gives the
same examples. An example's verdict comes from the oracle (``checks.oracle``) and is kept
for the whole search, so shrinking never compiles an example twice. Failures are
grouped by signature (blame, outcome, exception type, layer, call style): the first
example of a signature not seen before makes Hypothesis shrink it, and the round ends
with that signature's minimal example. Every minimal example is saved in Hypothesis's
example database too, and the next search replays the database first.

The results file is in the matrix's schema (``convbn-compat/results``), one record per
signature, so ``report`` reads it beside the matrix sessions' files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, Verbosity, given, reject, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from ..core import results
from ..core.cases import GENERATED
from ..core.cells import DEVICES
from ..core.errors import Exit
from ..core.generated import Example
from ..core.outcomes import Blame
from ..core.record import CaseRecord, Status
from .strategies import examples

__all__ = ["Fuzzer", "Signature", "main"]

ROUND = 20
"""Examples a round generates before the next seed: small, so a time budget is kept."""
SHRINK_SHARE = 0.25
"""At most this share of the budget (and at least 60 s) goes to shrinking one failure."""


@dataclass(frozen=True, order=True)
class Signature:
    """One bug: failures that share it are the same bug, found again."""

    blame: str
    outcome: str
    exception: str
    layer: str
    call: str

    def __str__(self) -> str:
        return f"{self.blame}/{self.outcome}/{self.exception}/{self.layer}/{self.call}"


def signature(ex: Example, verdict) -> Signature | None:
    if not verdict.outcome.is_failure:
        return None
    return Signature(
        verdict.blame.value, verdict.outcome.value, verdict.exception or "-", ex.layer, ex.call
    )


class _NewBug(Exception):
    """Raised inside Hypothesis for the signature a round is shrinking."""


_BUG_CLASSES: dict[Signature, type] = {}


def _bug_class(sig: Signature) -> type:
    # One class per signature: Hypothesis tells bugs apart by exception type, so a
    # database replay reports each saved signature on its own.
    if sig not in _BUG_CLASSES:
        _BUG_CLASSES[sig] = type(f"Bug{len(_BUG_CLASSES)}", (_NewBug,), {"signature": sig})
    return _BUG_CLASSES[sig]


@dataclass
class Finding:
    signature: Signature
    example: Example
    verdict: object
    first_seen: str
    shrunk: bool = False
    count: int = 0


@dataclass
class Fuzzer:
    device: str
    seed: int
    budget_s: float
    max_examples: int | None
    database: Path | None
    judge: object = None
    """The oracle, ``judge(example, device) -> Verdict``: checks.oracle.judge (main passes
    it), or a stand-in in the unit tests. Required."""
    progress: object = print
    log: Path | None = None
    """Where every verdict goes, one JSON line each (``--verdicts``)."""
    round_start: int = 0
    round_step: int = 1
    """Worker i of N runs rounds i, i+N, i+2N...: the examples are those of one worker."""
    verdicts: dict = field(default_factory=dict)
    findings: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    examples_run: int = 0
    rounds: int = 0
    _target: Signature | None = None
    _skipped: bool = False
    _stop_at: float = 0.0
    _last_note: float = 0.0

    # -- the test body Hypothesis runs -------------------------------------------

    def _evaluate(self, ex: Example):
        if ex.id in self.verdicts:
            return self.verdicts[ex.id]
        if time.monotonic() >= self._stop_at or self._examples_spent():
            self._skipped = True
            return None  # past the budget: new examples are not run
        verdict = self.judge(ex, self.device)
        self.verdicts[ex.id] = verdict
        self.examples_run += 1
        if self.log is not None:
            line = {"id": ex.id, "outcome": verdict.outcome.value, "blame": verdict.blame.value}
            line.update(fires=verdict.fires, fires_off=verdict.fires_off, graphs=verdict.graphs)
            line.update(seconds=verdict.seconds)
            with self.log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
        key = verdict.outcome.value if verdict.blame is not Blame.INVALID else "invalid"
        self.counts[key] = self.counts.get(key, 0) + 1
        sig = signature(ex, verdict)
        if sig is not None:
            finding = self.findings.get(sig)
            if finding is None:
                finding = self.findings[sig] = Finding(sig, ex, verdict, ex.id)
                self._note(f"new failure {sig}: {ex.id}", force=True)
            finding.count += 1  # once per distinct example
        self._note()
        return verdict

    def _body(self, ex: Example, replay: bool = False) -> None:
        verdict = self._evaluate(ex)
        if verdict is None:
            return
        if verdict.blame is Blame.INVALID:
            reject()  # eager refused it: tell Hypothesis, which steers away from it
        sig = signature(ex, verdict)
        if sig is None:
            return
        if replay:
            raise _bug_class(sig)(sig)
        if self._target is None and not self.findings[sig].shrunk:
            self._target = sig
            self._stop_at = min(self._deadline(), time.monotonic() + self._shrink_cap())
        if sig == self._target:
            # Hypothesis runs the minimal example last, so the last one raised is it.
            self.findings[sig].example, self.findings[sig].verdict = ex, verdict
            raise _bug_class(sig)(sig)

    # -- budget and progress -------------------------------------------------------

    def _deadline(self) -> float:
        return self.started + self.budget_s

    def _examples_spent(self) -> bool:
        return self.max_examples is not None and self.examples_run >= self.max_examples

    def _shrink_cap(self) -> float:
        return max(60.0, SHRINK_SHARE * self.budget_s)

    def spent(self) -> bool:
        return time.monotonic() >= self._deadline() or self._examples_spent()

    def _note(self, text: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_note < 10:
            return
        self._last_note = now
        counts = ", ".join(f"{v} {k}" for k, v in sorted(self.counts.items()))
        bugs = sum(1 for s in self.findings if s.blame == Blame.PASS.value)
        line = (
            f"[fuzz {now - self.started:6.0f} s] {self.examples_run} examples ({counts}); "
            f"{len(self.findings)} failure signatures, {bugs} blamed on the pass"
        )
        self.progress(f"{line}{' | ' + text if text else ''}")

    # -- the search ----------------------------------------------------------------

    def _settings(self, phases, multiple: bool) -> settings:
        return settings(
            max_examples=ROUND,
            database=DirectoryBasedExampleDatabase(str(self.database)) if self.database else None,
            phases=phases,
            report_multiple_bugs=multiple,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
            print_blob=False,
        )

    def _test(self, replay: bool):
        def fuzz_pass(ex: Example) -> None:
            self._body(ex, replay)

        # Hypothesis keys its database by the test function's source; the device
        # tells the CPU's examples from the GPU's, so a replay reads only its own.
        fuzz_pass._hypothesis_internal_add_digest = self.device.encode()
        return given(examples(self.device))(fuzz_pass)

    def replay_database(self) -> None:
        """Run every example saved by earlier searches (their minimal failures)."""
        if not self.database or not self.database.exists():
            return
        self._stop_at = self._deadline()
        test = self._settings((Phase.reuse,), multiple=True)(self._test(replay=True))
        try:
            test()
        except Exception as exc:  # ExceptionGroup or one bug: each is already minimal
            for sig in _signatures_in(exc):
                self.findings[sig].shrunk = True
        self._note("replayed the example database", force=True)

    def search(self) -> None:
        if self.round_start == 0:  # one worker replays the database for all
            self.replay_database()
        while not self.spent():
            self._target = None
            self._stop_at = self._deadline()
            # The seed inside, the settings outside: @seed alone turns the database off
            # (a seeded run is reproducible without it); here it must still save.
            index = self.round_start + self.rounds * self.round_step
            seeded = seed(self.seed * 100_003 + index)(self._test(replay=False))
            test = self._settings((Phase.generate, Phase.shrink), multiple=False)(seeded)
            self._skipped = False
            self.rounds += 1
            try:
                test()
            except _NewBug as exc:
                finding = self.findings[exc.signature]
                # Minimal only if the budget cut no shrink step short.
                finding.shrunk = not self._skipped
                self._note(f"minimal example for {exc.signature}: {finding.example.id}", True)
            except Exception as exc:
                self._note(f"round {self.rounds} stopped: {type(exc).__name__}: {exc}", True)
                raise
        self._note("budget spent", force=True)


def _signatures_in(exc: BaseException) -> list[Signature]:
    if isinstance(exc, _NewBug):
        return [exc.signature]
    return [s for inner in getattr(exc, "exceptions", ()) for s in _signatures_in(inner)]


# -- results file --------------------------------------------------------------------


def finding_record(finding: Finding, table, torch_version: str) -> CaseRecord:
    """A signature's record: its minimal example's verdict, its expectation, and how the
    search found it."""
    record = CaseRecord.from_verdict(finding.verdict, GENERATED)
    record = dataclasses.replace(
        record,
        id=finding.example.id,
        signature=str(finding.signature),
        examples_with_signature=finding.count,
        first_example=finding.first_seen,
        shrunk=finding.shrunk,
    )
    return table.apply(record, torch_version, Status.FOUND)


def write_results(fuzzer: Fuzzer, writer: results.ResultsWriter, complete: bool) -> None:
    from ..core import expectations

    table = expectations.load()
    torch_version = writer.data["environment"]["torch"]
    findings = sorted(
        fuzzer.findings.values(), key=lambda f: (f.signature.blame != "pass", f.signature)
    )
    writer.data["cases"] = [finding_record(f, table, torch_version).to_json() for f in findings]
    elapsed = time.monotonic() - fuzzer.started
    writer.data["fuzz"] = {
        "seed": fuzzer.seed,
        "budget_s": fuzzer.budget_s,
        "max_examples": fuzzer.max_examples,
        "database": str(fuzzer.database) if fuzzer.database else None,
        "rounds": fuzzer.rounds,
        "examples": fuzzer.examples_run,
        "elapsed_s": round(elapsed, 1),
        "examples_per_minute": round(60 * fuzzer.examples_run / max(elapsed, 1e-9), 1),
        "counts": fuzzer.counts,
        "signatures": len(fuzzer.findings),
        "blamed_on_pass": sum(1 for s in fuzzer.findings if s.blame == Blame.PASS.value),
    }
    assign_causes(writer.data)
    writer.data["fuzz"]["causes"] = causes_of(writer.data)
    writer.finish(complete=complete, exitstatus=0 if complete else 1)


def _quiet_torch() -> None:
    # Inductor logs each failed compile's traceback at ERROR; the verdict keeps its cause.
    logging.getLogger("torch").setLevel(logging.CRITICAL)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m convbn_compat.generator.fuzz",
        description="Search generated layer -> BatchNorm models for bugs of the pass, "
        "shrink each failure to a minimal example and group failures by signature.",
    )
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    parser.add_argument("--minutes", type=float, default=10.0, help="time budget (default 10)")
    parser.add_argument("--max-examples", type=int, help="stop after this many examples too")
    parser.add_argument("--seed", type=int, default=0, help="the same seed, the same examples")
    parser.add_argument("--db", type=Path, help="Hypothesis example database folder")
    parser.add_argument("--out", type=Path, help="results file (default: <results>/<run>.json)")
    results.add_run_options(parser.add_argument)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes that search side by side, each with its share of the cores "
        "(default: one per core; 1 searches in this process)",
    )
    parser.add_argument(
        "--verdicts", type=Path, help="also append every example's verdict here (JSON lines)"
    )
    parser.add_argument("--round-start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--round-step", type=int, default=1, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.minutes <= 0 or (args.max_examples is not None and args.max_examples < 1):
        print("convbn-compat fuzz: --minutes and --max-examples must be positive", file=sys.stderr)
        return 2
    workers = args.workers or (os.cpu_count() or 1)
    if args.max_examples is not None:
        workers = min(workers, args.max_examples)
    run = results.tool_run(args, "fuzz")
    out = run.path
    db = args.db or Path(".hypothesis") / "convbn-fuzz" / f"{run.name}-{args.device}"
    if workers > 1:
        return _run_workers(args, run, workers, db)
    import torch

    from ..checks.oracle import judge
    from ..shim import devices

    _quiet_torch()
    if args.device == "cuda" and not devices.gpu_available():
        print(f"convbn-compat fuzz: {devices.gpu_skip_reason()}", file=sys.stderr)
        return 2
    threads = os.environ.get("CONVBN_WORKER_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    label = f"w{args.round_start} " if args.round_step > 1 else ""
    fuzzer = Fuzzer(
        args.device,
        args.seed,
        args.minutes * 60,
        args.max_examples,
        db,
        judge,
        progress=lambda line: print(f"{label}{line}", flush=True),
        log=args.verdicts,
        round_start=args.round_start,
        round_step=args.round_step,
    )
    writer = results.ResultsWriter(out, run.header("fuzz"))
    print(
        f"{label}fuzzing torch {torch.__version__} on {args.device}: {args.minutes:g} min"
        + (f", at most {args.max_examples} examples" if args.max_examples else "")
        + f", seed {args.seed}, database {db}",
        flush=True,
    )
    complete, status = False, Exit.OK
    try:
        fuzzer.search()
        complete = True
    finally:
        # Whatever happened, the findings so far are written.
        write_results(fuzzer, writer, complete)
        if args.round_step == 1:  # a worker of several leaves the summary to its parent
            status = _summary(writer.data, run.path)
    return int(status)


def _run_workers(args, run: results.RunIdentity, workers: int, db: Path) -> int:
    """Search in ``workers`` processes, then merge their findings into one file."""
    import subprocess
    import tempfile

    started = time.monotonic()
    cores = os.cpu_count() or 1
    env = dict(os.environ)
    # Each worker gets its share of the cores, and compiles in its own process; a user's
    # own settings win.
    env.setdefault("CONVBN_WORKER_THREADS", str(max(1, cores // workers)))
    if workers >= cores:
        env.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    parts = Path(tempfile.mkdtemp(prefix="convbn-fuzz-"))
    procs = []
    for i in range(workers):
        cmd = [
            sys.executable, "-m", "convbn_compat.generator.fuzz",
            "--device", args.device, "--minutes", str(args.minutes), "--seed", str(args.seed),
            "--db", str(db), "--convbn-run", run.name, "--workers", "1",
            "--round-start", str(i), "--round-step", str(workers),
            "--out", str(parts / f"w{i}.json"),
        ]  # fmt: skip
        if args.verdicts:
            cmd += ["--verdicts", str(args.verdicts)]
        if args.max_examples is not None:
            share = args.max_examples // workers + (i < args.max_examples % workers)
            cmd += ["--max-examples", str(share)]
        procs.append(subprocess.Popen(cmd, env=env))
    codes = []
    try:
        for proc in procs:
            codes.append(proc.wait())
    except KeyboardInterrupt:
        # The workers got the same Ctrl-C and write what they found; wait for them.
        codes = [proc.wait() for proc in procs]
    finally:
        merged = _merge(sorted(parts.glob("w*.json")), workers, time.monotonic() - started)
        writer = results.ResultsWriter(run.path, run.header("fuzz"))
        writer.data["cases"], writer.data["fuzz"] = merged["cases"], merged["fuzz"]
        assign_causes(writer.data)
        writer.data["fuzz"]["causes"] = causes_of(writer.data)
        complete = merged["complete"] and len(codes) == workers and not any(codes)
        writer.finish(complete=complete, exitstatus=0 if complete else 1)
        status = _summary(writer.data, run.path)
    return int(status) if complete else int(Exit.FINDINGS)


def _merge(paths: list[Path], workers: int, elapsed: float) -> dict:
    """One signature, one record: the shrunk and shortest example of any worker."""
    by_sig: dict[str, dict] = {}
    fuzz = {"workers": workers, "examples": 0, "rounds": 0, "counts": {}}
    complete = len(paths) == workers
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        complete = complete and data["complete"]
        part = data.get("fuzz", {})
        for key in ("examples", "rounds"):
            fuzz[key] += part.get(key, 0)
        for name, n in part.get("counts", {}).items():
            fuzz["counts"][name] = fuzz["counts"].get(name, 0) + n
        for key in ("seed", "budget_s", "database"):
            fuzz.setdefault(key, part.get(key))
        for case in data["cases"]:
            kept = by_sig.get(case["signature"])
            if kept is None:
                by_sig[case["signature"]] = dict(case)
                continue
            total = kept["examples_with_signature"] + case["examples_with_signature"]
            if (not case["shrunk"], len(case["id"])) < (not kept["shrunk"], len(kept["id"])):
                kept.update(case)
            kept["examples_with_signature"] = total
    fuzz["elapsed_s"] = round(elapsed, 1)
    fuzz["examples_per_minute"] = round(60 * fuzz["examples"] / max(elapsed, 1e-9), 1)
    fuzz["signatures"] = len(by_sig)
    fuzz["blamed_on_pass"] = sum(1 for c in by_sig.values() if c["blame"] == Blame.PASS.value)
    cases = sorted(by_sig.values(), key=lambda c: (c["blame"] != Blame.PASS.value, c["signature"]))
    return {"cases": cases, "fuzz": fuzz, "complete": complete}


def assign_causes(data: dict) -> None:
    """Give every finding its cause: a known one (``core/causes.toml``) or a provisional
    new one, grouped by crash state (exception and the pass's own frame) or, for a
    wrong result, by outcome and layer."""
    from ..core import causes
    from ..core.record import CaseRecord

    table = causes.load()
    torch_version = data["environment"]["torch"]
    for case in data["cases"]:
        record = CaseRecord.from_json(case)
        known = table.recognise(record, torch_version)
        if known is not None:
            case["cause"] = known.id
        elif case.get("blame") == Blame.PASS.value:
            case["cause"] = _provisional(record)


def _provisional(record) -> str:
    own = [f for f in record.frames or () if "fx_passes/efficient_conv_bn_eval.py" in f]
    if own:  # file:line in function: source, without the line number
        function, _, source = own[-1].split(" in ", 1)[1].partition(": ")
        return f"new:{record.exception}@{function}:{source[:60]}"
    layer = record.id.split("-")[1] if record.id.startswith("Gen-") else "?"
    return f"new:{record.outcome}/{record.exception or '-'}/{layer}"


def causes_of(data: dict) -> list[dict]:
    """One entry per cause of the findings blamed on the pass: known or new, how many
    examples, the smallest example, the release range and the link."""
    from ..core import causes

    table = causes.load()
    by_cause: dict[str, list[dict]] = {}
    for case in data["cases"]:
        if case.get("blame") == Blame.PASS.value:
            by_cause.setdefault(case.get("cause") or "new:?", []).append(case)
    out = []
    seen_on = f"seen on torch {data['environment']['torch']}"
    for cause_id, cases_ in sorted(by_cause.items(), key=lambda kv: kv[0].startswith("new")):
        known = table.by_id.get(cause_id)
        smallest = min(cases_, key=lambda c: len(c["id"]))
        out.append(
            {
                "cause": cause_id,
                "known": known is not None,
                "examples": sum(c.get("examples_with_signature") or 1 for c in cases_),
                "signatures": len(cases_),
                "representative": smallest["id"],
                "range": str(known.releases) if known else seen_on,
                "links": list(known.links) if known else [],
                "title": known.title if known else smallest["message"][:160],
            }
        )
    return out


def _summary(data: dict, out: Path) -> int:
    """The run's end: one line per cause; NEW_CAUSE where one is new, else OK."""
    fuzz = data["fuzz"]
    print(
        f"\n{fuzz['examples']} examples in {fuzz['rounds']} rounds, "
        f"{fuzz['examples_per_minute']} a minute; results: {out}"
    )
    found = causes_of(data)
    for entry in found:
        mark = "known" if entry["known"] else "NEW  "
        link = f" {entry['links'][0]}" if entry["links"] else ""
        print(
            f"  {mark} {entry['cause']}: {entry['examples']} examples in {entry['signatures']} "
            f"signatures, {entry['range']}{link}"
        )
        print(f"        {entry['representative']}")
    not_pass = [c for c in data["cases"] if c.get("blame") != Blame.PASS.value]
    if not_pass:
        print(f"  not the pass: {len(not_pass)} signatures (the flag-off compile fails too)")
    if not data["cases"]:
        print("  no failures")
    new = [e for e in found if not e["known"]]
    if new:
        print(f"{len(new)} NEW cause(s) (exit {Exit.NEW_CAUSE:d})")
        return Exit.NEW_CAUSE
    if found:
        print("every failure blamed on the pass has a known cause")
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
