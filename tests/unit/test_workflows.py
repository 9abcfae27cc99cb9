"""The scheduled workflow's job matrix is the release table, and nothing else."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from convbn_compat.core.releases import FLAVOURS, RELEASES

yaml = pytest.importorskip("yaml", reason="needs pyyaml: pip install -e '.[dev]'")
pytest.importorskip("nox", reason="needs nox: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "matrix.yml"


def _workflow():
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_matrix_equals_release_table(tmp_path):
    """Run the workflow's own `list` step and read what it gives the matrix jobs."""
    steps = _workflow()["jobs"]["sessions"]["steps"]
    script = next(s["run"] for s in steps if s.get("id") == "list")
    output = tmp_path / "github_output"
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "GITHUB_OUTPUT": str(output),
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
    }
    subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, env=env, check=True)
    lists = dict(line.split("=", 1) for line in output.read_text().splitlines())
    for flavour in FLAVOURS:
        listed = yaml.safe_load(lists[flavour])
        assert listed == [r.session(flavour) for r in RELEASES.values()], flavour


def test_jobs_take_their_matrix_from_that_step_and_never_fail_fast():
    jobs = _workflow()["jobs"]
    for flavour in FLAVOURS:
        strategy = jobs[flavour]["strategy"]
        assert strategy["fail-fast"] is False
        assert (
            strategy["matrix"]["session"]
            == f"${{{{ fromJSON(needs.sessions.outputs.{flavour}) }}}}"
        )
    assert jobs["cuda"]["env"]["CONVBN_REQUIRE_GPU"] == "1"
    assert "nightly" in jobs["cpu"]["continue-on-error"]
    assert jobs["report"]["if"] == "always()"


def test_schedule_and_manual_dispatch():
    on = _workflow()[True]  # YAML 1.1 reads the key `on` as True
    assert on["schedule"][0]["cron"]
    assert "workflow_dispatch" in on


FUZZ = ROOT / ".github" / "workflows" / "fuzz.yml"


def _fuzz_workflow():
    return yaml.safe_load(FUZZ.read_text())


def test_fuzz_workflow_searches_the_newest_release_and_nightly(tmp_path):
    from convbn_compat.core.releases import NEWEST, NIGHTLY

    steps = _fuzz_workflow()["jobs"]["sessions"]["steps"]
    script = next(s["run"] for s in steps if s.get("id") == "list")
    output = tmp_path / "github_output"
    env = {**os.environ, "GITHUB_OUTPUT": str(output)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, env=env, check=True)
    lists = dict(line.split("=", 1) for line in output.read_text().splitlines())
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json", "-t", "fuzz"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    sessions = {s["session"] for s in yaml.safe_load(listed)}
    for flavour in FLAVOURS:
        want = [RELEASES[k].session(flavour, "fuzz") for k in (NEWEST, NIGHTLY)]
        assert yaml.safe_load(lists[flavour]) == want
        assert set(want) <= sessions, flavour


@pytest.mark.parametrize(("status", "fails"), [("0", False), ("4", True), ("1", True), ("", True)])
def test_fuzz_jobs_fail_only_on_a_new_cause_or_an_unfinished_search(status, fails):
    for job in ("cpu", "cuda"):
        steps = _fuzz_workflow()["jobs"][job]["steps"]
        verdict = next(s for s in steps if s.get("name", "").startswith("Fail on"))
        assert verdict["if"] == "always()"
        assert verdict["env"]["STATUS"] == "${{ steps.causes.outputs.status }}"
        proc = subprocess.run(
            ["bash", "-e", "-c", verdict["run"]], env={**os.environ, "STATUS": status},
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert (proc.returncode != 0) is fails, (job, status, proc.stdout)
        propose = next(s for s in steps if "propose" in s.get("run", ""))
        assert propose["if"] == "always() && steps.causes.outputs.status == '4'"
