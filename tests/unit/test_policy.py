"""Policy applied once: each command reads the causes and expectations tables once,
and gives every cell its cause by the one rule, however many cells and files it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from convbn_compat.__main__ import main
from convbn_compat.core import causes, expectations, policy

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "docs" / "fuzz" / "fuzz-2.15-cpu-10min-fresh-clone.json"


@pytest.fixture
def loads(monkeypatch):
    """How often each table was read from its file, and by the cause rule its cells met."""
    counts = {"causes": 0, "expectations": 0, "cause_of": 0}

    def counting(name, real):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(causes, "load", counting("causes", causes.load))
    monkeypatch.setattr(expectations, "load", counting("expectations", expectations.load))
    monkeypatch.setattr(causes, "cause_of", counting("cause_of", causes.cause_of))
    policy._load.cache_clear()
    yield counts
    policy._load.cache_clear()


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "docs/results", "docs/fuzz", "docs/reach", "docs/benefit", "-o", "{tmp}/r"],
        ["table", "docs/results"],
        ["triage", str(FUZZ)],
    ],
    ids=["report", "table", "triage"],
)
def test_each_command_reads_each_table_once(loads, tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(ROOT)
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    capsys.readouterr()
    assert code in (0, 1)
    assert (loads["causes"], loads["expectations"]) == (1, 1)


def test_every_cell_gets_its_cause_once(loads, tmp_path, monkeypatch, capsys):
    """The report judges each record once, when it is read; the view and the renderers
    read what that gave."""
    from convbn_compat.report.model import expand

    monkeypatch.chdir(ROOT)
    runs, _ = expand([Path("docs/results"), Path("docs/fuzz")])
    cells = sum(len(r.records) for r in runs)
    loads["cause_of"] = 0
    assert main(["report", "docs/results", "docs/fuzz", "-o", str(tmp_path / "r")]) in (0, 1)
    capsys.readouterr()
    assert loads["cause_of"] == cells
