"""What the wheel carries, and where the package finds its files when it is installed
rather than run from the checkout (tests/install/test_wheel.py installs it for real)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from convbn_compat.core import releases
from convbn_compat.core.errors import Exit
from convbn_compat.core.releases import NEWEST, RELEASES
from tests.unit.test_cli import one_line_error, run

if sys.version_info >= (3, 11):
    import tomllib
else:  # remove when Python>=3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "convbn_compat"
NOT_A_CHECKOUT = "has no noxfile.py; run it from a convbn-compat checkout"


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_the_wheel_lists_every_folder_of_the_package_and_the_constraints():
    folders = {
        ".".join(p.relative_to(ROOT).parts)
        for p in [PACKAGE, *PACKAGE.rglob("*")]
        if p.is_dir() and p.name != "__pycache__"
    }
    config = _setuptools()
    assert set(config["packages"]) == folders | {"convbn_compat.constraints"}
    assert config["package-dir"] == {"convbn_compat.constraints": "constraints"}
    assert config["package-data"]["convbn_compat.constraints"] == ["torch-*.txt"]


def test_a_checkout_reads_its_own_constraints_files():
    assert releases.checkout() == ROOT
    assert RELEASES[NEWEST].constraints == ROOT / "constraints" / f"torch-{NEWEST}.txt"


def test_an_installed_wheel_reads_the_constraints_files_it_carries(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"  # the wheel's layout: no noxfile above the package
    monkeypatch.setattr(releases, "PROJECT_ROOT", site)
    monkeypatch.setattr(releases, "PACKAGE_DIR", site / "convbn_compat")
    assert releases.checkout() is None
    assert RELEASES["2.2"].constraints == site / "convbn_compat" / "constraints" / "torch-2.2.txt"


@pytest.mark.parametrize("flavour", ["cpu", "cuda"])
def test_sessions_install_under_the_checkouts_constraints_file(flavour, monkeypatch):
    from convbn_compat.sessions.install import _plan

    monkeypatch.delenv("CONVBN_TORCH_INDEX", raising=False)
    _, torch_args, project_args, _ = _plan(RELEASES[NEWEST], flavour, "uv")
    relative = ["-c", f"constraints/torch-{NEWEST}.txt"]  # nox runs from the checkout
    assert torch_args[1:3] == relative
    assert project_args == ["-e", ".[test]", *relative]


FUZZ_NEW = (
    "docs/fuzz/superseded/fuzz-installed-cuda-h200-torch-2.11.0-cu130-before-float64-check.json"
)


@pytest.mark.parametrize(
    "argv",
    [
        ["bisect", "ConvOp-bias-Conv2d-bn-module", "--older", "2.2", "--newer", "2.4"],
        ["replay", "--releases", "2.4,2.15"],
        ["propose", ROOT / FUZZ_NEW],  # a run with a new cause: it gets past the reading
    ],
    ids=lambda argv: argv[0],
)
def test_what_needs_the_checkout_refuses_in_one_line_elsewhere(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == Exit.BAD_INPUT
    assert f"{argv[0]} builds each release's environment" in one_line_error(err)
    assert f"{tmp_path} {NOT_A_CHECKOUT}" in err
    assert list(tmp_path.iterdir()) == []  # nothing written before it refused
