"""Output that is whole or absent: the report's four files are replaced as a set, and
whatever stops the write (an exception at any step, Ctrl-C, SIGTERM, kill -9, a full
disk) leaves the previous report byte for byte and nothing temporary beside it. Every
bad ``-o`` is exit 2 with one line.

Two real reports (the committed runs in docs/) are rendered once, and the tests of the
set write their files again through ``write_folder``, which is what ``report`` calls;
the command-line tests read a one-release results file.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import filelock
import pytest

from convbn_compat.__main__ import main
from convbn_compat.core import output
from convbn_compat.core.errors import ConfigError, Exit
from convbn_compat.report.write import LOCK, main_report

from .test_report import results_file

ROOT = Path(__file__).resolve().parents[2]
REPORT = ("matrix.json", "matrix.md", "summary.md", "matrix.html")
NOTES = b"what the reader wrote beside the report\n"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, by its path there."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def hidden_beside(folder: Path) -> list[str]:
    """What a writer may leave: hidden entries beside the folder, temporary ones in it."""
    beside = [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]
    inside = [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != LOCK]
    return beside + inside


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, dict[str, str]]:
    """The previous report (the test runs) and the new one (with the searches)."""
    base = tmp_path_factory.mktemp("rendered")
    docs = ROOT / "docs"
    reports = {}
    for key, inputs in (("old", [docs / "results"]), ("new", [docs / "results", docs / "fuzz"])):
        main_report(inputs, base / key, None)
        reports[key] = {name: (base / key / name).read_text(encoding="utf-8") for name in REPORT}
    assert reports["old"] != reports["new"]
    return reports


@pytest.fixture
def previous(tmp_path, rendered) -> Path:
    """A report folder as the last run left it, with a reader's note and folder in it."""
    folder = tmp_path / "site" / "report"
    folder.parent.mkdir()
    output.write_folder(folder, rendered["old"], LOCK)
    (folder / "notes.txt").write_bytes(NOTES)
    (folder / "drafts").mkdir()
    (folder / "drafts" / "issue.md").write_bytes(NOTES)
    return folder


def assert_untouched(folder: Path, before: dict[str, bytes]) -> None:
    assert snapshot(folder) == before
    assert hidden_beside(folder) == []


def test_the_new_set_replaces_the_old_and_the_reader_s_files_stay(previous, rendered):
    notes, lock = (os.stat(previous / n).st_ino for n in ("notes.txt", LOCK))
    output.write_folder(previous, rendered["new"], LOCK)
    assert {n: (previous / n).read_text(encoding="utf-8") for n in REPORT} == rendered["new"]
    assert (previous / "notes.txt").read_bytes() == NOTES
    assert (previous / "drafts" / "issue.md").read_bytes() == NOTES
    # The same files, not copies: the lock must stay one file for writers to take turns.
    assert os.stat(previous / "notes.txt").st_ino == notes
    assert os.stat(previous / LOCK).st_ino == lock
    assert sorted(p.name for p in previous.iterdir()) == sorted(
        [*REPORT, LOCK, "notes.txt", "drafts"]
    )
    assert hidden_beside(previous) == []


def _raise_at(monkeypatch, step: str, error: BaseException) -> None:
    """Make the write fail at ``step``: the n-th file, linking the reader's files in, or
    the swap itself."""
    if step.startswith("file"):
        calls = []
        write_new = output._write_new

        def failing(path, text):
            calls.append(path)
            if len(calls) == int(step.split()[1]):
                raise error
            write_new(path, text)

        monkeypatch.setattr(output, "_write_new", failing)
    elif step == "links":
        monkeypatch.setattr(output.os, "link", _raising(error))
    else:
        monkeypatch.setattr(output, "_exchange", _raising(error))


def _raising(error: BaseException):
    def fail(*args, **kwargs):
        raise error

    return fail


STEPS = ["file 1", "file 2", "file 3", "file 4", "links", "swap"]


@pytest.mark.parametrize("error", [RuntimeError("a bug"), KeyboardInterrupt()], ids=repr)
@pytest.mark.parametrize("step", STEPS)
def test_a_write_stopped_at_any_step_leaves_the_previous_report(
    previous, rendered, monkeypatch, step, error
):
    before = snapshot(previous)
    _raise_at(monkeypatch, step, error)
    with pytest.raises(type(error)):
        output.write_folder(previous, rendered["new"], LOCK)
    assert_untouched(previous, before)


@pytest.mark.parametrize("step", STEPS[:4])
def test_a_full_disk_names_the_file_and_leaves_the_previous_report(
    previous, rendered, monkeypatch, step
):
    before = snapshot(previous)
    _raise_at(monkeypatch, step, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    with pytest.raises(ConfigError) as caught:
        output.write_folder(previous, rendered["new"], LOCK)
    name = list(rendered["new"])[int(step.split()[1]) - 1]
    assert str(caught.value) == (
        f"no space left writing {previous / name}; free space or choose another -o"
    )
    assert_untouched(previous, before)


def test_a_first_report_that_fails_leaves_no_folder(tmp_path, rendered, monkeypatch):
    _raise_at(monkeypatch, "file 3", KeyboardInterrupt())
    folder = tmp_path / "report"
    with pytest.raises(KeyboardInterrupt):
        output.write_folder(folder, rendered["new"], LOCK)
    assert list(tmp_path.iterdir()) == []


def test_without_a_one_step_swap_two_renames_do_it_and_undo_it(previous, rendered, monkeypatch):
    monkeypatch.setattr(output, "_exchange", lambda a, b: False)
    before = snapshot(previous)
    rename = os.rename
    calls = []

    def second_fails(a, b):
        calls.append(a)
        if len(calls) == 2:
            raise OSError(errno.EIO, "I/O error")
        rename(a, b)

    monkeypatch.setattr(output.os, "rename", second_fails)
    with pytest.raises(ConfigError, match="cannot write"):
        output.write_folder(previous, rendered["new"], LOCK)
    assert_untouched(previous, before)
    monkeypatch.setattr(output.os, "rename", rename)
    output.write_folder(previous, rendered["new"], LOCK)
    assert {n: (previous / n).read_text(encoding="utf-8") for n in REPORT} == rendered["new"]
    assert (previous / "drafts" / "issue.md").read_bytes() == NOTES
    assert hidden_beside(previous) == []


def test_through_a_link_the_folder_it_names_is_replaced(previous, rendered):
    link = previous.parent / "latest"
    link.symlink_to("report", target_is_directory=True)
    output.write_folder(link, rendered["new"], LOCK)
    assert link.is_symlink()
    assert (previous / "matrix.md").read_text(encoding="utf-8") == rendered["new"]["matrix.md"]
    assert (previous / "notes.txt").read_bytes() == NOTES


def _read_as_one(folder: Path) -> set[str] | None:
    """The first line of each file, read through one opening of the folder (a reader
    that wants one set holds the folder, not its name); None where the folder was
    emptied under it: a reader sees one report, or (late) none, never two mixed."""
    at = os.open(folder, os.O_RDONLY)
    try:
        seen = set()
        for name in REPORT:
            with open(name, encoding="utf-8", opener=lambda p, f: os.open(p, f, dir_fd=at)) as fh:
                seen.add(fh.readline())
        return seen
    except FileNotFoundError:
        return None
    finally:
        os.close(at)


def test_a_reader_of_the_folder_never_sees_two_reports_mixed(tmp_path):
    folder = tmp_path / "report"
    sets = [{n: f"{i}\n" * 5000 for n in REPORT} for i in range(2)]
    output.write_folder(folder, sets[0], LOCK)
    done = threading.Event()

    def write():
        for i in range(20):
            output.write_folder(folder, sets[i % 2], LOCK)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    whole = 0
    while not done.is_set():
        seen = _read_as_one(folder)
        assert seen is None or len(seen) == 1, seen
        whole += seen is not None
    writer.join()
    assert whole > 5
    assert hidden_beside(folder) == []


def test_a_writer_waits_its_turn_and_gives_up_with_one_line(previous, rendered, monkeypatch):
    before = snapshot(previous)
    monkeypatch.setattr(output, "LOCK_TIMEOUT_S", 0.2)
    with filelock.FileLock(str(previous / LOCK)), pytest.raises(ConfigError) as caught:
        output.write_folder(previous, rendered["new"], LOCK)
    assert str(caught.value) == (
        f"another writer has held {previous / LOCK} for 0.2 s; wait for it or choose another -o"
    )
    assert_untouched(previous, before)


# A writer in a process of its own, stopped by a real signal.
WRITER = """
import os, signal, sys, time
from pathlib import Path
from convbn_compat.core import output

source, folder, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
files = {n: (source / n).read_text(encoding="utf-8") for n in sys.argv[4:]}
write_new, rename = output._write_new, os.rename

def slow(path, text):
    write_new(path, text)
    print("wrote", path.name, flush=True)
    time.sleep(60)

def killed(*args):
    os.kill(os.getpid(), signal.SIGKILL)

def killed_at_the_second(a, b, calls=[]):
    calls.append(a)
    killed() if len(calls) == 2 else rename(a, b)

if mode == "slow":
    output._write_new = slow
elif mode == "before-settling":
    output._settle = killed
elif mode == "between-renames":
    output._exchange = lambda a, b: False
    output.os.rename = killed_at_the_second
output.write_folder(folder, files, ".matrix.lock")
"""


def _writer(source: Path, folder: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(source), str(folder), mode, *REPORT],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def new_source(tmp_path, rendered) -> Path:
    source = tmp_path / "new"
    source.mkdir()
    for name, text in rendered["new"].items():
        (source / name).write_text(text, encoding="utf-8")
    return source


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_mid_write_leaves_the_previous_report_and_nothing_else(
    previous, new_source, signum
):
    before = snapshot(previous)
    with _writer(new_source, previous, "slow") as writer:
        assert writer.stdout.readline().startswith("wrote")  # the first file is written
        writer.send_signal(signum)
        assert writer.wait(timeout=30) == -signum  # ended by the signal, after cleaning up
    assert_untouched(previous, before)


def test_what_a_killed_writer_left_is_cleared_by_the_next(previous, new_source, rendered):
    before = snapshot(previous)
    with _writer(new_source, previous, "slow") as writer:
        assert writer.stdout.readline().startswith("wrote")
        writer.kill()
    assert snapshot(previous) == before
    assert len(hidden_beside(previous)) == 1  # kill -9 cleans nothing; the next run does
    output.write_folder(previous, rendered["new"], LOCK)
    assert (previous / "matrix.json").read_text(encoding="utf-8") == rendered["new"]["matrix.json"]
    assert hidden_beside(previous) == []


@pytest.mark.parametrize("mode", ["before-settling", "between-renames"])
def test_a_writer_killed_inside_the_swap_leaves_one_whole_report(
    previous, new_source, rendered, mode
):
    """Killed after the swap, the new report is in place; between the two renames of the
    fallback, the next run puts the previous one back first. Either way nothing of the
    reader's is lost."""
    with _writer(new_source, previous, mode) as writer:
        assert writer.wait(timeout=30) == -signal.SIGKILL
    if mode == "before-settling":
        assert {n: (previous / n).read_text(encoding="utf-8") for n in REPORT} == rendered["new"]
    else:
        assert not previous.exists()
        output._put_back_interrupted(previous)
        assert {n: (previous / n).read_text(encoding="utf-8") for n in REPORT} == rendered["old"]
    output.write_folder(previous, rendered["new"], LOCK)
    assert (previous / "notes.txt").read_bytes() == NOTES
    assert (previous / "drafts" / "issue.md").read_bytes() == NOTES
    assert hidden_beside(previous) == []


# The command line: every bad -o is exit 2 and one line, before or instead of writing.
def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


BAD_FOLDERS = [
    # (-o, the words the line must have); {tmp} is the test's folder, holding a file `f`
    # and a link `gone` to nothing.
    ("", "-o is empty or '.'"),
    (".", "-o is empty or '.'"),
    ("..", "-o .. holds the current folder"),
    ("{tmp}/missing/report", "its parent folder {tmp}/missing does not exist"),
    ("{tmp}/f", "-o {tmp}/f is a file; name a folder"),
    ("{tmp}/f/report", "{tmp}/f is a file, not a folder"),
    ("{tmp}/gone", "-o {tmp}/gone is a link to {tmp}/nowhere, which does not exist"),
    ("/proc/report", "cannot write /proc/report"),
]


@pytest.fixture
def place(tmp_path, monkeypatch) -> Path:
    (tmp_path / "f").write_text("a file\n")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    (tmp_path / "results").mkdir()
    results_file(tmp_path / "results", "2.4", "2.4.1")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


@pytest.mark.parametrize(("where", "says"), BAD_FOLDERS)
def test_a_bad_report_folder_exits_2_with_one_line(capsys, place, where, says):
    before = sorted(place.rglob("*"))
    assert main(["report", str(place / "results"), "-o", where.format(tmp=place)]) == 2
    assert says.format(tmp=place) in _one_line(capsys)
    assert sorted(place.rglob("*")) == before


def test_a_mount_point_is_refused(capsys, place, monkeypatch):
    (place / "mounted").mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p).name == "mounted")
    assert main(["report", str(place / "results"), "-o", str(place / "mounted")]) == 2
    assert "is a mount point" in _one_line(capsys)


@pytest.mark.parametrize(
    ("failing", "says"),
    [
        ("mkdtemp", "cannot write {out} (Read-only file system); choose another -o"),
        ("_write_new", "no space left writing {out}/matrix.json; free space or choose another -o"),
    ],
)
def test_a_report_that_cannot_be_written_exits_2_and_keeps_the_previous(
    capsys, place, monkeypatch, failing, says
):
    out = place / "report"
    assert main(["report", str(place / "results"), "-o", str(out)]) == 0
    capsys.readouterr()
    before = snapshot(out)
    code = errno.EROFS if failing == "mkdtemp" else errno.ENOSPC
    owner = output.tempfile if failing == "mkdtemp" else output
    monkeypatch.setattr(owner, failing, _raising(OSError(code, os.strerror(code))))
    assert main(["report", str(place / "results"), "-o", str(out)]) == Exit.BAD_INPUT
    assert _one_line(capsys) == "convbn-compat: " + says.format(out=out)
    assert_untouched(out, before)


@pytest.mark.parametrize("command", ["report", "table"])
def test_a_removed_working_folder_is_one_line(capsys, place, command):
    """A shell that sat in a report folder is in the removed one once a report ran."""
    os.rmdir(place / "cwd")
    assert main([command, str(place / "results"), "-o", "out"]) == 2
    assert "the current folder no longer exists" in _one_line(capsys)


BAD_FILES = [
    ("", "-o is empty or '.'; name a file"),
    ("{tmp}", "-o {tmp} is a folder"),
    ("{tmp}/missing/t.md", "its folder {tmp}/missing does not exist"),
    ("{tmp}/f/t.md", "{tmp}/f is a file, not a folder"),
    ("{tmp}/gone", "-o {tmp}/gone is a link to {tmp}/nowhere, which does not exist"),
    ("/proc/t.md", "cannot write /proc/t.md"),
]


# Each command that writes one file, with what it reads ({tmp} as above). replay and
# propose check -o before their hours of work.
FILE_COMMANDS = {
    "table": ["{tmp}/results"],
    "repro": ["ConvOp-bias-Conv2d-bn-module"],
    "replay": ["ConvOp-bias-Conv2d-bn-module"],
    "propose": ["{tmp}/results/tests-2.4-cpu.json"],
}


@pytest.mark.parametrize("command", FILE_COMMANDS)
@pytest.mark.parametrize(("where", "says"), BAD_FILES)
def test_a_bad_output_file_exits_2_with_one_line(capsys, place, command, where, says):
    args = [a.format(tmp=place) for a in FILE_COMMANDS[command]]
    before = sorted(place.rglob("*"))
    assert main([command, *args, "-o", where.format(tmp=place)]) == 2
    assert says.format(tmp=place) in _one_line(capsys)
    assert sorted(place.rglob("*")) == before


FILE_FAILURES = [
    # A folder that refuses new files is found before the work; a full disk, writing.
    ("tempfile", "mkstemp", errno.EACCES, "cannot write {out} (Permission denied); choose"),
    ("os", "fsync", errno.ENOSPC, "no space left writing {out}; free space or choose"),
]


@pytest.mark.parametrize(("module", "failing", "code", "says"), FILE_FAILURES)
def test_an_output_file_that_cannot_be_written_exits_2_and_keeps_the_previous(
    capsys, place, monkeypatch, module, failing, code, says
):
    out = place / "t.md"
    out.write_text("the previous table\n")
    monkeypatch.setattr(
        getattr(output, module), failing, _raising(OSError(code, os.strerror(code)))
    )
    assert main(["table", str(place / "results"), "-o", str(out)]) == Exit.BAD_INPUT
    assert _one_line(capsys) == f"convbn-compat: {says.format(out=out)} another -o"
    assert out.read_text() == "the previous table\n"
    assert sorted(p.name for p in place.iterdir()) == ["cwd", "f", "gone", "results", "t.md"]


def test_an_output_file_through_a_link_writes_the_file_it_names(place):
    (place / "table.md").write_text("the previous table\n")
    (place / "latest.md").symlink_to("table.md")
    assert main(["table", str(place / "results"), "-o", str(place / "latest.md")]) == 0
    assert (place / "latest.md").is_symlink()
    assert (place / "table.md").read_text().startswith("# ")
    assert not [p.name for p in place.iterdir() if p.name.startswith(".")]
