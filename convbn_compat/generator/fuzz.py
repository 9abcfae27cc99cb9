"""``python -m convbn_compat.generator.fuzz``: search generated examples for bugs of the pass.

The search runs in rounds. Each round is one Hypothesis run of ``ROUND`` examples with
its own seed (the session's seed, then the round number), so the same seed gives the
same examples. An example's verdict comes from the oracle (``checks.oracle``) and is kept
for the whole search, so shrinking never compiles an example twice. Failures are
grouped by signature (blame, outcome, exception type, layer, call style), and each
failure blamed on the pass gets its cause as it is judged: a known cause
(``core/causes.toml``), or a new one (``triage``). The first example of a cause not seen
before makes Hypothesis shrink it, and the round ends with that cause's minimal example;
a new wrong result's minimal example is then delta-debugged into its fingerprint, which
later examples are recognised by. Once a cause has been seen ``--cause-budget`` times,
the examples its features predict are mostly not run, so the search spends its time
where no cause is known. Every minimal example is saved in Hypothesis's example database
too, and the next search replays the database first.

The results file is in the matrix's schema (``convbn-compat/results``), one record per
signature, so ``report`` reads it beside the matrix sessions' files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, Verbosity, given, reject, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from ..core import causes as known_causes
from ..core import features as example_features
from ..core import results
from ..core.cases import GENERATED
from ..core.cells import DEVICES
from ..core.errors import Exit
from ..core.generated import Example
from ..core.outcomes import Blame
from ..core.policy import Policy
from ..core.record import CaseRecord, Status
from . import triage
from .strategies import examples

__all__ = ["Fuzzer", "Signature", "main"]

ROUND = 20
"""Examples a round generates before the next seed: small, so a time budget is kept."""
SHRINK_SHARE = 0.25
"""At most this share of the budget (and at least 60 s) goes to shrinking one failure."""
CAUSE_BUDGET = 20
"""Examples of one cause after which the search mostly steers away from it."""
STILL_RUN = 8
"""One in this many examples that a saturated cause predicts still runs: a new cause
that hides behind a known one's features can still be found."""


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
    """Raised inside Hypothesis for the cause (or signature) a round is shrinking."""


_BUG_CLASSES: dict[str, type] = {}


def _bug_class(key: str) -> type:
    # One class per key: Hypothesis tells bugs apart by exception type, so a database
    # replay reports each saved cause on its own.
    if key not in _BUG_CLASSES:
        _BUG_CLASSES[key] = type(f"Bug{len(_BUG_CLASSES)}", (_NewBug,), {"key": key})
    return _BUG_CLASSES[key]


@dataclass
class Finding:
    """A signature: how many examples had it, and its smallest example."""

    signature: Signature
    example: Example
    verdict: object
    first_seen: str
    shrunk: bool = False
    count: int = 0
    cause: str | None = None


@dataclass
class CauseSeen:
    """A cause met in this search: its examples, and its shrunk representative."""

    key: str
    example: Example
    verdict: object
    count: int = 0
    shrunk: bool = False
    fingerprint: triage.Fingerprint | None = None
    row: known_causes.Cause | None = None
    """A new cause's provisional row: later examples are recognised by it."""


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
    torch_version: str = ""
    """The release under test: known causes count only within their release range."""
    cause_budget: int = CAUSE_BUDGET
    no_inline: bool = True
    """Whether the release has the ``noinline`` route (``shim.paths``): where it has not,
    such examples would only read ``unsupported``, so none is drawn."""
    verdicts: dict = field(default_factory=dict)
    findings: dict = field(default_factory=dict)
    """(signature, cause) -> Finding: one record each, so that two causes that share a
    signature (a layer and call style) stay apart."""
    causes: dict = field(default_factory=dict)
    """Cause key (a known cause's id, a new cause's provisional id, or ``sig:`` and the
    signature of a failure not triaged yet) -> CauseSeen."""
    counts: dict = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    examples_run: int = 0
    steered: int = 0
    rounds: int = 0
    _table: object = None
    _target: str | None = None
    _skipped: bool = False
    _triaging: bool = False
    _stop_at: float = 0.0
    _last_note: float = 0.0

    def __post_init__(self) -> None:
        self._table = Policy.current().causes

    # -- causes --------------------------------------------------------------------

    def _rows(self) -> list:
        """Known rows in this release's range, then this search's provisional rows."""
        version = self.torch_version
        known = [c for c in self._table.rows if version and c.in_range(version)]
        return known + [seen.row for seen in self.causes.values() if seen.row is not None]

    def cause_key(self, ex: Example, verdict) -> str:
        """The cause of a failure: known, provisional, or its signature until triaged."""
        record = dataclasses.replace(CaseRecord.from_verdict(verdict, GENERATED), id=ex.id)
        rows = self._rows()
        if verdict.blame is Blame.PASS:
            known = known_causes.Causes(rows).recognise(record, self.torch_version or "0.0")
            if known is not None:
                return known.id
            if known_causes.crash_state(verdict.frames, verdict.exception) is not None:
                return known_causes.provisional_cause(record)
        return f"sig:{signature(ex, verdict)}"

    def _steer_away(self, ex: Example) -> bool:
        """Whether to skip ``ex``: a cause seen ``cause_budget`` times predicts it."""
        if self._target is not None or self._triaging or self.cause_budget <= 0:
            return False
        saturated = {k for k, seen in self.causes.items() if seen.count >= self.cause_budget}
        if not saturated:
            return False
        found = example_features.of_example(ex)
        predicted = any(c.predicts(found) for c in self._rows() if c.id in saturated)
        return predicted and zlib.crc32(ex.id.encode()) % STILL_RUN != 0

    def _triage(self, seen: CauseSeen) -> None:
        """A new wrong result's minimal example: its fingerprint, and its provisional
        cause, which later examples are recognised by."""
        if seen.verdict.blame is not Blame.PASS or not seen.key.startswith("sig:"):
            return
        if self.causes.get(seen.key) is not seen:
            return  # an earlier triage recognised it already
        now = time.monotonic()
        deadline = now + min(self._shrink_cap(), max(60.0, self._deadline() - now))
        self._triaging, saved = True, self._stop_at
        self._stop_at = deadline
        try:
            fp = triage.fingerprint(
                seen.example, seen.verdict, lambda ex: self._evaluate(ex), deadline
            )
        finally:
            self._triaging, self._stop_at = False, saved
        record = dataclasses.replace(
            CaseRecord.from_verdict(seen.verdict, GENERATED), id=seen.example.id
        )
        new_key = known_causes.provisional_cause(record, fp.text)
        self._note(
            f"fingerprint {fp.text} ({fp.judged} examples judged"
            f"{'' if fp.complete else ', cut short'}): {new_key}",
            force=True,
        )
        old = self.causes.pop(seen.key)
        merged = self.causes.get(new_key)
        if merged is None:
            merged = self.causes[new_key] = dataclasses.replace(old, key=new_key)
            merged.row = known_causes.Cause(
                new_key, "", known_causes.SpecifierSet(), (), fp.example.id,
                when=fp.when(str(seen.verdict.outcome), seen.verdict.exception),
            )  # fmt: skip
        else:
            merged.count += old.count
        merged.fingerprint = merged.fingerprint or fp
        for finding in self.findings.values():
            if finding.cause == seen.key:
                finding.cause = new_key
        self._rekey()
        self._regroup()

    def _rekey(self) -> None:
        """Failures met before a new cause was known that its row now recognises."""
        for finding in self.findings.values():
            if not (finding.cause or "").startswith("sig:"):
                continue
            key = self.cause_key(finding.example, finding.verdict)
            if key == finding.cause:
                continue
            old = self.causes.pop(finding.cause, None)
            if key in self.causes and old is not None:
                self.causes[key].count += old.count
            elif old is not None:
                self.causes[key] = dataclasses.replace(old, key=key, row=None)
            finding.cause = key

    # -- the test body Hypothesis runs -------------------------------------------

    def _evaluate(self, ex: Example):
        if ex.id in self.verdicts:
            return self.verdicts[ex.id]
        if time.monotonic() >= self._stop_at or (self._examples_spent() and not self._triaging):
            self._skipped = True
            return None  # past the budget: new examples are not run
        if self._steer_away(ex):
            self.steered += 1
            return _STEERED
        verdict = self.judge(ex, self.device)
        self.verdicts[ex.id] = verdict
        self.examples_run += 1
        key = verdict.outcome.value if verdict.blame is not Blame.INVALID else "invalid"
        self.counts[key] = self.counts.get(key, 0) + 1
        sig = signature(ex, verdict)
        cause = self.cause_key(ex, verdict) if sig is not None else None
        if self.log is not None:
            line = {"id": ex.id, "outcome": verdict.outcome.value, "blame": verdict.blame.value}
            line.update(fires=verdict.fires, fires_off=verdict.fires_off, graphs=verdict.graphs)
            line.update(seconds=verdict.seconds, cause=cause)
            with self.log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
        if sig is not None:
            finding = self.findings.get((sig, cause))
            if finding is None:
                finding = Finding(sig, ex, verdict, ex.id, cause=cause)
                self.findings[(sig, cause)] = finding
                self._note(f"new failure {sig}: {ex.id} ({cause})", force=True)
            elif not finding.shrunk and len(ex.id) < len(finding.example.id):
                finding.example, finding.verdict = ex, verdict  # the smallest seen
            finding.count += 1  # once per distinct example
            seen = self.causes.get(cause)
            if seen is None:
                seen = self.causes[cause] = CauseSeen(cause, ex, verdict)
            seen.count += 1
        self._note()
        return verdict

    def _body(self, ex: Example, replay: bool = False) -> None:
        verdict = self._evaluate(ex)
        if verdict is None:
            return
        if verdict is _STEERED or verdict.blame is Blame.INVALID:
            reject()  # not run, or eager refused it: Hypothesis steers away from it
        sig = signature(ex, verdict)
        if sig is None:
            return
        key = self.cause_key(ex, verdict)
        if replay:
            raise _bug_class(key)(key)
        seen = self.causes.get(key)
        if self._target is None and seen is not None and not seen.shrunk:
            self._target = key
            self._stop_at = min(self._deadline(), time.monotonic() + self._shrink_cap())
        if key == self._target:
            # Hypothesis runs the minimal example last, so the last one raised is it.
            self.causes[key].example, self.causes[key].verdict = ex, verdict
            raise _bug_class(key)(key)

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
        bugs = len({s for s, _ in self.findings if s.blame == Blame.PASS.value})
        steered = f", {self.steered} steered away" if self.steered else ""
        line = (
            f"[fuzz {now - self.started:6.0f} s] {self.examples_run} examples ({counts}"
            f"{steered}); {len({s for s, _ in self.findings})} failure signatures, {bugs} "
            "blamed on the "
            f"pass, {sum(1 for k in self.causes if not k.startswith('sig:'))} causes"
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
        return given(examples(self.device, no_inline=self.no_inline))(fuzz_pass)

    def replay_database(self) -> None:
        """Run every example saved by earlier searches (their minimal failures)."""
        if not self.database or not self.database.exists():
            return
        self._stop_at = self._deadline()
        test = self._settings((Phase.reuse,), multiple=True)(self._test(replay=True))
        try:
            test()
        except Exception as exc:  # ExceptionGroup or one bug: each is already minimal
            for key in _keys_in(exc):
                if key in self.causes:
                    self.causes[key].shrunk = True
        for seen in list(self.causes.values()):
            if seen.shrunk:
                self._triage(seen)
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
                seen = self.causes[exc.key]
                # Minimal only if the budget cut no shrink step short.
                seen.shrunk = not self._skipped
                self._mark_shrunk(seen)
                self._note(f"minimal example for {exc.key}: {seen.example.id}", True)
                self._triage(seen)
            except Exception as exc:
                self._note(f"round {self.rounds} stopped: {type(exc).__name__}: {exc}", True)
                raise
        self._note("budget spent", force=True)

    def run_examples(self, chosen: list[Example]) -> None:
        """Judge these examples and triage what fails, as a search would, without
        drawing or shrinking any (a new cause's first example stands for it)."""
        self._target, self._stop_at = None, float("inf")
        for ex in chosen:
            self._evaluate(ex)
        for seen in list(self.causes.values()):
            self._triage(seen)

    def _regroup(self) -> None:
        """Findings whose cause changed (a new cause recognised them): one per
        (signature, cause) again, their counts added, the smallest example kept."""
        regrouped: dict = {}
        for finding in self.findings.values():
            key = (finding.signature, finding.cause)
            kept = regrouped.get(key)
            if kept is None:
                regrouped[key] = finding
                continue
            kept.count += finding.count
            mine = known_causes.rank(finding.example.id, finding.shrunk)
            if mine < known_causes.rank(kept.example.id, kept.shrunk):
                kept.example, kept.verdict, kept.shrunk = (
                    finding.example,
                    finding.verdict,
                    finding.shrunk,
                )
        self.findings = regrouped

    def _mark_shrunk(self, seen: CauseSeen) -> None:
        """The cause's minimal example stands for its signature too."""
        sig = signature(seen.example, seen.verdict)
        finding = self.findings.get((sig, seen.key))
        if finding is not None and seen.shrunk:
            finding.example, finding.verdict, finding.shrunk = seen.example, seen.verdict, True


_STEERED = object()
"""What ``_evaluate`` returns for an example it chose not to run."""


def _keys_in(exc: BaseException) -> list[str]:
    if isinstance(exc, _NewBug):
        return [exc.key]
    return [k for inner in getattr(exc, "exceptions", ()) for k in _keys_in(inner)]


# -- results file --------------------------------------------------------------------


def finding_record(finding: Finding, table, torch_version: str) -> CaseRecord:
    """A signature's record: its smallest example's verdict, its expectation, its cause,
    and how the search found it."""
    record = CaseRecord.from_verdict(finding.verdict, GENERATED)
    record = dataclasses.replace(
        record,
        id=finding.example.id,
        signature=str(finding.signature),
        examples_with_signature=finding.count,
        first_example=finding.first_seen,
        shrunk=finding.shrunk,
    )
    if finding.signature.blame == Blame.PASS.value and not (finding.cause or "").startswith(
        "sig:"  # not triaged (its shrink was cut short): causes.cause_of gives it one
    ):
        record = dataclasses.replace(record, cause=finding.cause)
    return table.apply(record, torch_version, Status.FOUND)


def _triage_json(fuzzer: Fuzzer) -> dict:
    """Each cause the search met: its representative, whether it was shrunk, and for a
    new one what a proposed row needs (fingerprint, ``when``, crash state)."""
    out = {}
    for key, seen in fuzzer.causes.items():
        if key.startswith("sig:") or seen.verdict.blame is not Blame.PASS:
            continue
        entry = {"representative": seen.example.id, "shrunk": seen.shrunk, "examples": seen.count}
        fp = seen.fingerprint
        if fp is not None:
            entry.update(
                fingerprint=fp.text,
                when=fp.when(str(seen.verdict.outcome), seen.verdict.exception),
                untested=fp.untested,
                judged=fp.judged,
                complete=fp.complete,
                representative=fp.example.id,
            )
        state = known_causes.crash_state(seen.verdict.frames, seen.verdict.exception)
        if state is not None:
            entry["suspect"] = state[0]
            if key.startswith("new:"):
                entry["crash"] = {
                    "exception": seen.verdict.exception,
                    "function": state[0],
                    "line": re.escape(state[1]),
                }
        out[key] = entry
    return out


def write_results(fuzzer: Fuzzer, writer: results.ResultsWriter, complete: bool) -> None:
    policy = Policy.current()
    doc = writer.doc
    findings = sorted(
        fuzzer.findings.values(), key=lambda f: (f.signature.blame != "pass", f.signature)
    )
    writer.set_records([finding_record(f, policy.expectations, doc.torch) for f in findings])
    elapsed = time.monotonic() - fuzzer.started
    doc.fuzz = results.FuzzSection(
        seed=fuzzer.seed,
        budget_s=fuzzer.budget_s,
        max_examples=fuzzer.max_examples,
        database=str(fuzzer.database) if fuzzer.database else None,
        rounds=fuzzer.rounds,
        examples=fuzzer.examples_run,
        steered=fuzzer.steered,
        cause_budget=fuzzer.cause_budget,
        elapsed_s=round(elapsed, 1),
        examples_per_minute=round(60 * fuzzer.examples_run / max(elapsed, 1e-9), 1),
        counts=dict(fuzzer.counts),
        signatures=len({s for s, _ in fuzzer.findings}),
        blamed_on_pass=len({s for s, _ in fuzzer.findings if s.blame == Blame.PASS.value}),
        triage={k: results.Triaged.from_json(v) for k, v in _triage_json(fuzzer).items()},
    )
    policy.judge(doc)
    doc.fuzz.causes = policy.searched_causes(doc)
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
    parser.add_argument(
        "--cause-budget",
        type=int,
        default=CAUSE_BUDGET,
        help="examples of one cause after which the search runs only 1 in "
        f"{STILL_RUN} of those its features predict (default {CAUSE_BUDGET}; 0: never steer)",
    )
    parser.add_argument(
        "--proposed",
        type=Path,
        help="where a run with NEW causes writes their proposed causes.toml rows "
        "(default: next to the results file, <run>-proposed-causes.toml)",
    )
    parser.add_argument("--round-start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--round-step", type=int, default=1, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.minutes <= 0 or (args.max_examples is not None and args.max_examples < 1):
        print("convbn-compat fuzz: --minutes and --max-examples must be positive", file=sys.stderr)
        return 2
    if args.cause_budget < 0:
        print("convbn-compat fuzz: --cause-budget must be 0 (never steer) or more", file=sys.stderr)
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
    from ..shim import devices, paths

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
        torch_version=torch.__version__,
        cause_budget=args.cause_budget,
        no_inline=paths.has_no_inline_route(),
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
            status = _summary(writer.doc, run.path, args.proposed)
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
    results.ResultsWriter.check(run.path)  # before the search, not after it
    parts = Path(tempfile.mkdtemp(prefix="convbn-fuzz-"))
    procs = []
    for i in range(workers):
        cmd = [
            sys.executable, "-m", "convbn_compat.generator.fuzz",
            "--device", args.device, "--minutes", str(args.minutes), "--seed", str(args.seed),
            "--db", str(db), "--convbn-run", run.name, "--workers", "1",
            "--round-start", str(i), "--round-step", str(workers),
            "--cause-budget", str(args.cause_budget),
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
        env = merged["environment"]
        writer = results.ResultsWriter(run.path, run.header("fuzz"), env, kind="fuzz")
        writer.set_records(merged["cases"])
        writer.doc.fuzz = merged["fuzz"]
        policy = Policy.current()
        policy.judge(writer.doc)
        writer.doc.fuzz.causes = policy.searched_causes(writer.doc)
        complete = merged["complete"] and len(codes) == workers and not any(codes)
        writer.finish(complete=complete, exitstatus=0 if complete else 1)
        status = _summary(writer.doc, run.path, args.proposed)
    return int(status) if complete else int(Exit.FINDINGS)


def _merge(paths: list[Path], workers: int, elapsed: float) -> dict:
    """One signature, one record: the shrunk and shortest example of any worker."""
    by_sig: dict[tuple, CaseRecord] = {}
    fuzz = results.FuzzSection(workers=workers, examples=0, rounds=0, steered=0, counts={})
    triaged: dict[str, results.Triaged] = {}
    complete = len(paths) == workers
    environment = None
    for path in paths:
        part_run = results.load_run(path)
        environment = environment or part_run.environment
        complete = complete and part_run.complete
        part = part_run.fuzz or results.FuzzSection()
        for key in ("examples", "rounds", "steered"):
            setattr(fuzz, key, getattr(fuzz, key) + (getattr(part, key) or 0))
        _merge_triage(triaged, part.triage or {})
        for name, n in part.counts.items():
            fuzz.counts[name] = fuzz.counts.get(name, 0) + n
        for key in ("seed", "budget_s", "database", "cause_budget"):
            if getattr(fuzz, key) is None:
                setattr(fuzz, key, getattr(part, key))
        for case in part_run.records:
            key = (case.signature, case.cause)  # two causes of one signature
            kept = by_sig.get(key)
            if kept is None:
                by_sig[key] = case
                continue
            total = (kept.examples_with_signature or 0) + (case.examples_with_signature or 0)
            if known_causes.rank(case.id, case.shrunk) < known_causes.rank(kept.id, kept.shrunk):
                kept = case
            by_sig[key] = dataclasses.replace(kept, examples_with_signature=total)
    fuzz.elapsed_s = round(elapsed, 1)
    fuzz.examples_per_minute = round(60 * fuzz.examples / max(elapsed, 1e-9), 1)
    fuzz.signatures = len({sig for sig, _ in by_sig})
    blamed = {c.signature for c in by_sig.values() if c.blame is Blame.PASS}
    fuzz.blamed_on_pass = len(blamed)
    fuzz.triage = triaged
    cases = sorted(by_sig.values(), key=lambda c: (c.blame is not Blame.PASS, c.signature or ""))
    if environment is None:  # no worker wrote anything: what this process sees
        environment = results.Environment.from_json(results.environment_info())
    return {"cases": cases, "fuzz": fuzz, "complete": complete, "environment": environment}


def _merge_triage(triaged: dict, part: dict) -> None:
    """One cause, one entry: the shrunk and shortest representative of any worker."""
    for key, entry in part.items():
        kept = triaged.get(key)
        if kept is None:
            triaged[key] = dataclasses.replace(entry)
            continue
        total = (kept.examples or 0) + (entry.examples or 0)
        mine = known_causes.rank(entry.representative, entry.shrunk)
        if mine < known_causes.rank(kept.representative, kept.shrunk):
            kept = triaged[key] = dataclasses.replace(entry)
        kept.examples = total


def _summary(doc: results.Run, out: Path, proposed: Path | None = None) -> int:
    """The run's end: one line per cause; NEW_CAUSE where one is new, else OK. New
    causes' proposed rows go next to the results file."""
    fuzz = doc.fuzz
    steered = fuzz.steered or 0
    print(
        f"\n{fuzz.examples} examples in {fuzz.rounds} rounds, "
        f"{fuzz.examples_per_minute} a minute"
        + (f", {steered} more steered away from known causes" if steered else "")
        + f"; {fuzz.signatures} signatures; results: {out}"
    )
    found = fuzz.causes or []
    for entry in found:
        mark = "known" if entry.known else "NEW  "
        link = f" {entry.links[0]}" if entry.links else ""
        print(
            f"  {mark} {entry.cause}: {entry.examples} examples in {entry.signatures} "
            f"signatures, {entry.range}{link}"
        )
        shrunk = "" if entry.shrunk else " (not shrunk)"
        print(f"        {entry.representative}{shrunk}")
        if entry.fingerprint:
            print(f"        fingerprint: {entry.fingerprint}")
    not_pass = [c for c in doc.records if c.blame is not Blame.PASS]
    if not_pass:
        print(f"  not the pass: {len(not_pass)} signatures (the flag-off compile fails too)")
    if not doc.records:
        print("  no failures")
    new = [e for e in found if not e.known]
    if new:
        rows = proposed or out.with_name(f"{out.stem}-proposed-causes.toml")
        results.atomic_write_text(rows, known_causes.proposed_rows(found))
        print(f"{len(new)} NEW cause(s) (exit {Exit.NEW_CAUSE:d}); proposed rows: {rows}")
        print(f"  their release range: python -m convbn_compat propose {out}")
        return Exit.NEW_CAUSE
    if found:
        print("every failure blamed on the pass has a known cause")
    return Exit.OK


if __name__ == "__main__":
    sys.exit(results.tool_main(main))
