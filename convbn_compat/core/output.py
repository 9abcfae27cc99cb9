"""What a command writes with ``-o``: one file, or a folder of files, whole or not at all.

A report is four files read together, so it is written as a set. Every file goes into
a fresh folder beside the report's, and one step (``renameat2(RENAME_EXCHANGE)`` on
Linux, ``renamex_np(RENAME_SWAP)`` on macOS) swaps the two folders' names. A reader, or
a crash at any instant, sees the whole previous report or the whole new one. Where the
file system has no such step, two renames do it, and between them (microseconds, with
Ctrl-C and SIGTERM held back) the folder is absent; a run killed there (``kill -9``)
leaves the previous folder under a hidden name, and the next run puts it back.

The folder is replaced, not edited: a shell whose working folder it was sits in the
removed one (``cd`` again). What else the folder holds (a reader's notes, the lock)
is kept. A problem with the path is a ``ConfigError`` of one line that names it and
says what to do.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import filecmp
import functools
import os
import re
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import filelock

from .errors import ConfigError
from .results import atomic_write_text

__all__ = [
    "check_file",
    "current_folder",
    "output_error",
    "refuse_bad_parent",
    "refuse_dangling_link",
    "write_file",
    "write_folder",
]

LOCK_TIMEOUT_S = 120


def output_error(path: Path, exc: OSError) -> ConfigError:
    """The one line for an ``OSError`` met writing ``path``."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return ConfigError(f"no space left writing {path}; free space or choose another -o")
    return ConfigError(f"cannot write {path} ({exc.strerror or exc}); choose another -o")


def refuse_bad_parent(path: Path, missing: str) -> None:
    """Refuse ``path`` whose folder is not one: ``missing`` is the message where it does
    not exist; where a file stands in its place, the message names the file."""
    if path.parent.is_dir():
        return
    for above in path.parents:
        if above.exists() and not above.is_dir():
            raise ConfigError(f"-o {path}: {above} is a file, not a folder; choose another path")
    raise ConfigError(missing)


def refuse_dangling_link(path: Path, what: str = "path") -> None:
    """Refuse a link to nothing: writing through it would make its target appear."""
    if path.is_symlink() and not path.exists():
        raise ConfigError(
            f"-o {path} is a link to {os.readlink(path)}, which does not exist; "
            f"remove the link or choose another {what}"
        )


def current_folder() -> Path:
    """The working folder, refused with one line where it was removed (a shell that sat
    in a report folder, which a report has replaced since)."""
    try:
        return Path.cwd()
    except FileNotFoundError:
        raise ConfigError(
            "the current folder no longer exists (a report folder, replaced since?); cd "
            "into it again"
        ) from None


def check_file(path: Path) -> None:
    """``-o FILE``: a file to write (replaced if it exists; through a link, the file it
    names) in a folder that exists and takes a new file. Checked before the work, so
    a command that runs for hours does not fail at its end."""
    if path == Path("."):  # argparse's Path makes `-o ''` this too
        raise ConfigError("-o is empty or '.'; name a file to write")
    if not path.is_absolute():
        current_folder()
    refuse_dangling_link(path)
    if path.is_dir():
        raise ConfigError(f"-o {path} is a folder; name a file to write")
    refuse_bad_parent(
        path,
        f"-o {path}: its folder {path.parent} does not exist; create it first or choose "
        "another path",
    )
    into = Path(os.path.realpath(path)).parent
    try:  # a read-only file system, a folder of another user's, /proc
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=into)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise output_error(path, exc) from None


def write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole (the previous file stays where it cannot)."""
    check_file(path)
    try:
        with _sigterm_raises():
            atomic_write_text(Path(os.path.realpath(path)), text)
    except OSError as exc:
        raise output_error(path, exc) from None


def write_folder(path: Path, files: dict[str, str], lock: str) -> None:
    """Make the folder ``path`` hold ``files`` (name: text), all of them new or all as
    before. Writers of one folder take turns on the file ``lock`` in it."""
    folder = Path(os.path.realpath(path))  # a link to a folder: that folder, the link stays
    try:
        _put_back_interrupted(folder)
        created = not folder.exists()
        folder.mkdir(exist_ok=True)
        with _sigterm_raises(), filelock.FileLock(str(folder / lock), timeout=LOCK_TIMEOUT_S):
            _write_locked(folder, files, created, lock, shown=path)
    except filelock.Timeout:
        raise ConfigError(
            f"another writer has held {path / lock} for {LOCK_TIMEOUT_S} s; wait for it "
            "or choose another -o"
        ) from None
    except OSError as exc:
        raise output_error(path, exc) from None


def _write_locked(
    folder: Path, files: dict[str, str], created: bool, lock: str, shown: Path
) -> None:
    _clear_leftovers(folder, files)
    staged = None
    swapped = False
    prefix = _leftover_prefix(folder, "new")
    try:
        with _uninterrupted():
            staged = Path(tempfile.mkdtemp(prefix=prefix, dir=folder.parent))
        _fill(staged, folder, files, shown)
        with _uninterrupted():
            previous = _swap(staged, folder)
            swapped = True
            _settle(previous, folder, files)
        _fsync_folder(folder.parent)
    except BaseException:
        with _uninterrupted():
            if staged is not None and not swapped:
                shutil.rmtree(staged, ignore_errors=True)
            if created and not swapped and set(os.listdir(folder)) <= {lock}:
                # A first report that failed leaves no folder, as it found none.
                with contextlib.suppress(OSError):
                    os.unlink(folder / lock)
                    os.rmdir(folder)
        raise


def _write_new(path: Path, text: str) -> None:
    """One file of the set, on disk before the swap makes it visible."""
    with open(path, "x", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _fill(staged: Path, folder: Path, files: dict[str, str], shown: Path) -> None:
    os.chmod(staged, stat.S_IMODE(os.stat(folder).st_mode))  # mkdtemp's is private
    for name, text in files.items():
        try:
            _write_new(staged / name, text)
        except OSError as exc:
            raise output_error(shown / name, exc) from None
    # The folder's other files (a reader's notes, the lock, whose file must stay one for
    # writers to take turns) are linked in, so the new folder has them from its first
    # instant; folders, and files where links are refused, move in after the swap.
    with os.scandir(folder) as entries:
        for entry in entries:
            if not _is_report_own(entry.name, files) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.link(entry.path, staged / entry.name)
    _fsync_folder(staged)


def _swap(staged: Path, folder: Path) -> Path:
    """Give ``staged`` the name ``folder``; returns where the previous folder now is."""
    if _exchange(staged, folder):
        return staged
    previous = folder.parent / f"{_leftover_prefix(folder, 'old')}{secrets.token_hex(6)}"
    os.rename(folder, previous)
    try:
        os.rename(staged, folder)
    except BaseException:
        os.rename(previous, folder)
        raise
    return previous


def _settle(previous: Path, folder: Path, files: Collection[str]) -> None:
    """Empty ``previous`` (the folder ``folder`` replaced, or a run's leftover) and remove
    it. The report's own files go; a link to a file ``folder`` holds, or a copy of it,
    goes; anything else moves into ``folder``. Nothing of a reader's is deleted: what
    cannot move (a name ``folder`` holds for something else) stays, and so does
    ``previous``, for the reader to sort out."""
    with os.scandir(previous) as entries:
        for entry in entries:
            there = folder / entry.name
            with contextlib.suppress(OSError):
                if _is_report_own(entry.name, files):
                    _remove(Path(entry.path))
                elif not os.path.lexists(there):
                    os.rename(entry.path, there)
                elif _same_file(entry, there):
                    os.unlink(entry.path)
    with contextlib.suppress(OSError):
        os.rmdir(previous)


def _same_file(entry: os.DirEntry, there: Path) -> bool:
    """``entry`` is ``there`` (a link to it), or a file of the same bytes: dropping it
    loses nothing (the lock, where links are refused, is an empty file in both)."""
    if os.path.samestat(entry.stat(follow_symlinks=False), os.lstat(there)):
        return True
    plain = entry.is_file(follow_symlinks=False) and there.is_file() and not there.is_symlink()
    return plain and filecmp.cmp(entry.path, there, shallow=False)


def _is_report_own(name: str, files: Collection[str]) -> bool:
    # `.matrix.md.x8k2…`: a temporary file of the per-file writer earlier versions used.
    return name in files or any(name.startswith(f".{f}.") for f in files)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _leftover_prefix(folder: Path, role: str) -> str:
    return f".{folder.name}.{role}-{os.getpid()}-"


def _leftovers(folder: Path, role: str) -> list[Path]:
    """Folders a killed writer of ``folder`` left beside it (its process is gone)."""
    pattern = re.compile(rf"\.{re.escape(folder.name)}\.{role}-(\d+)-\w+")
    with os.scandir(folder.parent) as entries:
        return [
            Path(entry.path)
            for entry in entries
            if (found := pattern.fullmatch(entry.name))
            and entry.is_dir(follow_symlinks=False)
            and not _alive(int(found[1]))
        ]


def _alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would end the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _put_back_interrupted(folder: Path) -> None:
    """A run killed between the two renames left no ``folder``, and the previous one
    beside it: put that back before anything else."""
    if os.path.lexists(folder):
        return
    previous = sorted(_leftovers(folder, "old"), key=lambda p: p.stat().st_mtime)
    if previous:
        os.rename(previous[-1], folder)


def _clear_leftovers(folder: Path, files: Collection[str]) -> None:
    """What killed writers left beside ``folder``: their staged files go, and anything
    of a reader's in them goes back into ``folder``."""
    for role in ("new", "old"):
        for leftover in _leftovers(folder, role):
            _settle(leftover, folder, files)


def _fsync_folder(folder: Path) -> None:
    """Make the names in ``folder`` durable (a crash of the machine keeps the swap)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# Swapping two names in one step. Where the kernel or the file system lacks it:
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}
_AT_FDCWD = -100  # Linux
_RENAME_EXCHANGE = 2  # Linux, <linux/fs.h>
_RENAME_SWAP = 2  # macOS, <stdio.h>


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` in one step; False where there is no such step."""
    call = _exchange_call()
    if call is None:
        return False
    if call(os.fsencode(a), os.fsencode(b)) == 0:
        return True
    err = ctypes.get_errno()
    if err in _NO_EXCHANGE:
        return False
    raise OSError(err, os.strerror(err), str(b))


@functools.cache
def _exchange_call() -> Callable[[bytes, bytes], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    path, flags = ctypes.c_char_p, ctypes.c_uint
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        renameat2 = libc.renameat2
        renameat2.argtypes = [ctypes.c_int, path, ctypes.c_int, path, flags]
        renameat2.restype = ctypes.c_int
        return lambda a, b: renameat2(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE)
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        renamex_np = libc.renamex_np
        renamex_np.argtypes = [path, path, flags]
        renamex_np.restype = ctypes.c_int
        return lambda a, b: renamex_np(a, b, _RENAME_SWAP)
    return None


# Signals: a write that SIGTERM stops cleans up as one that Ctrl-C stops does.
class _Terminated(BaseException):
    """SIGTERM arrived during a write; it ends the process once the write cleaned up."""


def _raise_terminated(signum, frame) -> None:
    raise _Terminated


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises inside the block, so its clean-up runs, then ends the process as
    SIGTERM would have (status 143 in a shell). Only where SIGTERM has its default
    action and in the main thread: a program that handles SIGTERM keeps its handler."""
    mine = threading.current_thread() is threading.main_thread()
    if not mine or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for stream in (sys.stdout, sys.stderr):  # what was printed is not lost with it
            with contextlib.suppress(Exception):
                stream.flush()
        signal.raise_signal(signal.SIGTERM)
        raise  # not reached: the signal ended the process
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back until the block ends: the swap and the clean-up are
    never left half done. (Only ``kill -9`` or a power cut stops them.)"""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
