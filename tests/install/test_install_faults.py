"""Bad input and broken installs, caused for real through `nox`.

Each test runs a matrix session in a scratch `--envdir` against a real fault: a closed
port or a silent listener on loopback, a local index that lacks torch next to one that
serves an impostor, a torch with a file deleted, a Python that does not exist.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from convbn_compat.core.releases import NEWEST, RELEASES

pytest.importorskip("nox", reason="needs nox: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[2]
RELEASE = RELEASES[NEWEST]
SESSION = RELEASE.session("cpu")


def _nox(tmp_path: Path, *args: str, timeout: float = 600, **env: str | None):
    full = dict(os.environ, CONVBN_RESULTS_DIR=str(tmp_path / "results"))
    full.pop("CI", None)  # nox's CI detection would turn skips into errors
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "--envdir", str(tmp_path / "envs"), *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        # Nox itself refuses a session the table does not generate (`nox -l` lists them).
        (["-s", "tests-2.99-cpu"], {}, "Sessions not found: tests-2.99-cpu"),
        (["-s", "tests-2.4-gpu"], {}, "Sessions not found: tests-2.4-gpu"),
        (["-s", SESSION], {"CONVBN_TORCH_INDEX": "pypi.org"}, "is neither 'default' nor a URL"),
    ],
)
def test_unknown_input_lists_the_choices_before_anything_is_built(tmp_path, args, env, says):
    code, out, _ = _nox(tmp_path, *args, **env)
    assert code == 3
    assert says in out
    assert not (tmp_path / "envs").exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed on exit: connections are refused


def test_unreachable_index_fails_fast_naming_it_and_leaves_no_usable_env(tmp_path):
    index = f"http://127.0.0.1:{_closed_port()}/simple"
    code, out, seconds = _nox(tmp_path, "-s", SESSION, CONVBN_TORCH_INDEX=index)
    assert code == 1
    assert seconds < 120
    assert f"could not install {RELEASE.requirement()} from {index}" in out
    # The half-built environment is never taken for a working one.
    code, out, _ = _nox(tmp_path, "-R", "-s", SESSION, CONVBN_TORCH_INDEX=index)
    assert code == 1
    assert "is not a complete environment" in out
    assert "Run the session without -R" in out


def test_silent_index_times_out_within_the_configured_bound(tmp_path):
    with socket.socket() as sock:  # accepts connections, never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        index = f"http://127.0.0.1:{sock.getsockname()[1]}/simple"
        code, out, seconds = _nox(
            tmp_path, "-s", SESSION, CONVBN_TORCH_INDEX=index, CONVBN_INDEX_TIMEOUT="2"
        )
    assert code == 1
    # 2 s per request, 3 tries, backoff between them.
    assert seconds < 60
    assert "timed out" in out
    assert f"could not install {RELEASE.requirement()} from {index}" in out


def _impostor_wheel(folder: Path) -> str:
    """A wheel named like the pinned torch, as a dependency-confusion attack would be."""
    name = f"torch-{RELEASE.torch}-py3-none-any.whl"
    dist = f"torch-{RELEASE.torch}.dist-info"
    files = {
        "torch/__init__.py": "IMPOSTOR = True\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: torch\nVersion: {RELEASE.torch}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(folder / name, "w") as whl:
        for path, text in files.items():
            whl.writestr(path, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
            record.append(f"{path},sha256={digest.rstrip(b'=').decode()},{len(text)}")
        whl.writestr(f"{dist}/RECORD", "\n".join([*record, f"{dist}/RECORD,,"]) + "\n")
    return name


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def _serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


def _site_packages(tmp_path: Path) -> Path:
    # The one environment the run made: nox hashes its name where the path gets long.
    return next((tmp_path / "envs").glob("*/lib/python*/site-packages"))


def test_torch_comes_only_from_the_chosen_index(tmp_path):
    chosen = tmp_path / "chosen"  # an index without torch: every lookup is a 404
    (chosen / "simple").mkdir(parents=True)
    other = tmp_path / "other"  # another index with a same-named impostor
    (other / "simple" / "torch").mkdir(parents=True)
    wheel = _impostor_wheel(other / "simple" / "torch")
    (other / "simple" / "torch" / "index.html").write_text(f'<a href="{wheel}">{wheel}</a>\n')
    with _serve(chosen) as chosen_url, _serve(other) as other_url:
        code, out, _ = _nox(
            tmp_path,
            "-s",
            SESSION,
            CONVBN_TORCH_INDEX=chosen_url,
            UV_EXTRA_INDEX_URL=other_url,
            PIP_EXTRA_INDEX_URL=other_url,
            UV_INDEX=other_url,
        )
    assert code == 1
    assert f"could not install {RELEASE.requirement()} from {chosen_url}" in out
    site = _site_packages(tmp_path)
    assert not (site / "torch").exists()


def test_broken_torch_is_refused_under_reuse_and_rebuilt_otherwise(tmp_path):
    # The real release from the installer's default index; collection imports torch.
    run = ("-s", SESSION, "--", "--collect-only", "-q", "-n", "0")
    code, out, _ = _nox(tmp_path, *run, CONVBN_TORCH_INDEX="default")
    assert code == 0, out[-3000:]
    site = _site_packages(tmp_path)
    (site / "torch" / "__init__.py").unlink()  # unlink: the installer's cache keeps its copy

    code, out, _ = _nox(tmp_path, "-R", *run, CONVBN_TORCH_INDEX="default")
    assert code == 1
    assert "is broken" in out
    assert "collected" not in out  # never tested as if it were fine

    # -r reuses the environment but installs: the installer sees torch as present, the
    # check sees it broken, and torch is reinstalled. (Without -r nox recreates it.)
    code, out, _ = _nox(tmp_path, "-r", *run, CONVBN_TORCH_INDEX="default")
    assert code == 0, out[-3000:]
    assert "is broken; reinstalling it" in out
    assert (site / "torch" / "__init__.py").is_file()


def test_missing_python_is_a_skip_with_its_reason_unless_ci(tmp_path):
    args = ("-s", SESSION, "--force-python", "3.4")
    code, out, _ = _nox(tmp_path, *args, UV_PYTHON_DOWNLOADS="never")
    assert code == 0
    assert "skipped: Python interpreter 3.4 not found" in out
    code, out, _ = _nox(tmp_path, *args, UV_PYTHON_DOWNLOADS="never", CI="true")
    assert code == 1
    assert "failed: Python interpreter 3.4 not found" in out
