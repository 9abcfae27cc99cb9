"""The TOML tables are typed as they load (issue #30): a hand edit that TOML reads but
that would fail later, or match the wrong thing, is refused at once with one line that
names the file, the row and the key, what it holds and what to write instead; and two
expectation rows that can name one cell are refused at load."""

from __future__ import annotations

import re

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from convbn_compat import __main__ as cli
from convbn_compat.core import causes, expectations
from convbn_compat.core.errors import ConfigError, Exit
from convbn_compat.core.tables import shared_release

from .test_cli import ROOT, one_line_error

CAUSES = causes.DEFAULT_FILE.read_text(encoding="utf-8")
EXPECTATIONS = expectations.DEFAULT_FILE.read_text(encoding="utf-8")
# The last cause's lines, and the first expectation's, as committed: what an edit changes.
KW_LINKS = 'links = ["https://github.com/pytorch/pytorch/issues/196165"]\ncase = "Bug196165'
KW_WHEN = 'when = { call = ["fkw", "fallkw", "fmixed"], outcome = ["error", "wrong-result"] }'
KW_LINE = "line = 'conv_node\\.args'"
KW = "[[cause]] #4 (conv-args-by-keyword)"


def _refused(tmp_path, name: str, text: str, load) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_the_committed_tables_load_typed():
    table = causes.load()
    assert [c.id for c in table.rows] == [
        "convtranspose-groups",
        "linear-3d-input",
        "bn-fewer-than-8-args",
        "conv-args-by-keyword",
    ]
    for cause in table.rows:
        assert isinstance(cause.releases, SpecifierSet)
        assert isinstance(cause.links, tuple)
        assert all(isinstance(link, str) and link.startswith("https://") for link in cause.links)
        assert all(isinstance(v, list) for v in cause.when.values())
        assert (cause.line is None) == (not cause.crash)
    keyword = table.by_id["conv-args-by-keyword"]
    assert isinstance(keyword.line, re.Pattern)
    assert keyword.crash["line"] == keyword.line.pattern == r"conv_node\.args"
    rows = expectations.load().rows
    assert len(rows) == EXPECTATIONS.count("[[expect]]")
    for row in rows:
        assert isinstance(row.releases, SpecifierSet)
        assert row.cases
        assert all(isinstance(p, str) for p in row.cases)
        assert set(row.devices) <= {"cpu", "cuda"}


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        # An unquoted release is a TOML number.
        (
            'releases = ">=2.5"\n' + KW_LINKS,
            "releases = 2.5\n" + KW_LINKS,
            f"{KW}: 'releases' is a number (2.5); write a quoted PEP 440 specifier: "
            'releases = ">=2.5"',
        ),
        # A string of links iterates letter by letter.
        (
            KW_LINKS,
            KW_LINKS.replace('["https', '"https').replace('"]', '"'),
            f"{KW}: 'links' is a string; write a list of strings: links = [",
        ),
        (KW_LINKS, KW_LINKS.replace('"]', '", 7]'), f"{KW}: 'links' item 2 is a number (7)"),
        # `when` must be a table of lists: a string `in` matches substrings.
        (KW_WHEN, 'when = "fkw"', f"{KW}: 'when' is a string; write a table: when = {{"),
        (
            KW_WHEN,
            'when = { call = "fkw" }',
            f"{KW}: 'when.call' is a string; write a list of values from module,",
        ),
        (KW_WHEN, 'when = { call = ["kw"] }', f"{KW}: 'when.call' item 1 is 'kw', unknown"),
        (KW_WHEN, "when = { call = [] }", f"{KW}: 'when.call' is an empty list"),
        (KW_WHEN, 'when = { colour = ["red"] }', f"{KW}: 'when.colour' is no feature"),
        # Each feature's values have its own type: `1 in [True]` would hold.
        (
            KW_WHEN,
            "when = { transposed = [1] }",
            f"{KW}: 'when.transposed' item 1 is a number (1); write a list of booleans",
        ),
        (
            KW_WHEN,
            "when = { input_rank = [true] }",
            f"{KW}: 'when.input_rank' item 1 is a boolean (true); write a list of integers",
        ),
        # The crash state's regex compiles at load.
        (
            KW_LINE,
            "line = 'conv_node(args'",
            f"{KW}: 'crash.line' is 'conv_node(args', which does not compile (missing ), "
            "unterminated subpattern at position 9); write a regular expression",
        ),
        (KW_LINE, "line = 8", f"{KW}: 'crash.line' is a number (8)"),
        (KW_LINE, "line = 'x', frame = 3", f"{KW}: 'crash.frame' is no key; keys:"),
        (", line = 'conv_node\\.args'", "", f"{KW}: 'crash.line' is missing; write"),
        (
            'crash = { exception = "AssertionError", function = '
            "\"efficient_conv_bn_eval_graph_transform_inlined\", line = 'conv_node\\.args' }",
            'crash = "AssertionError"',
            f"{KW}: 'crash' is a string; write a table of exception, function, line: crash = {{",
        ),
        # Required, unknown, empty and duplicate.
        (
            'case = "Bug196165-convkwargs-Conv2d-bn-module"\n',
            "",
            f"{KW}: 'case' is missing; write a string: case = ",
        ),
        ('title = "Arguments', 'titel = "Arguments', f"{KW}: 'titel' is no key; did you mean"),
        (
            'case = "Bug196165-convkwargs-Conv2d-bn-module"',
            'case = "  "',
            f"{KW}: 'case' is empty; write a string",
        ),
        (
            'id = "conv-args-by-keyword"',
            'id = "linear-3d-input"',
            "[[cause]] #4 (linear-3d-input): 'id' is 'linear-3d-input', as is row #2's; "
            "give each row its own id",
        ),
        ('id = "conv-args-by-keyword"', 'id = ""', "[[cause]] #4: 'id' is empty"),
        (
            'releases = ">=2.5"\n' + KW_LINKS,
            'releases = "2.5+"\n' + KW_LINKS,
            f"{KW}: 'releases' is '2.5+', which is no specifier",
        ),
    ],
    ids=lambda v: v if len(v) < 40 else v[:40],
)
def test_a_hand_edited_cause_row_is_refused_naming_row_key_and_fix(tmp_path, old, new, says):
    message = _refused(tmp_path, "causes.toml", _edit(CAUSES, old, new), causes.load)
    assert message.startswith(says), message


EXPECT = """
[[expect]]
releases = "<2.4"
cases = "*-decomposed"
outcome = "not-fused"
reason = "no aten patterns"
"""


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ('"<2.4"', "2.4", "'releases' is a number (2.4); write a quoted PEP 440 specifier"),
        ('"*-decomposed"', "3", "'cases' is a number (3); write a string, or a list of strings"),
        ('"*-decomposed"', "[]", "'cases' is an empty list"),
        ('"*-decomposed"', '["*-decomposed", ""]', "'cases' item 2 is empty"),
        ('reason = "no aten patterns"', 'reason = "x"\ndevices = "cuda"', "'devices' is a string"),
        ('reason = "no aten patterns"', 'reason = "x"\ndevices = ["gpu"]', "'devices' item 1"),
        (
            'reason = "no aten patterns"',
            'reason = "x"\nlinks = "https://github.com/pytorch/pytorch/pull/1"',
            "'links' is a string; write a list of strings: links = [",
        ),
        ('outcome = "not-fused"\n', "", "'outcome' is missing"),
        ('outcome = "not-fused"', "outcome = false", "'outcome' is a boolean (false)"),
        ('reason = "no aten patterns"', 'reason = """\n  """', "'reason' is empty"),
    ],
)
def test_a_hand_edited_expectation_row_is_refused_naming_row_and_key(tmp_path, old, new, says):
    message = _refused(tmp_path, "expectations.toml", _edit(EXPECT, old, new), expectations.load)
    assert message.startswith(f"[[expect]] #1: {says}"), message


def _rows(*rows: tuple[str, str, str]) -> str:
    """``[[expect]]`` rows of (releases, cases, devices), written as TOML values."""
    return "".join(
        f'\n[[expect]]\nreleases = "{releases}"\ncases = {cases}\ndevices = {devices}\n'
        f'outcome = "not-fused"\nreason = "r"\n'
        for releases, cases, devices in rows
    )


BOTH = '["cpu", "cuda"]'


@pytest.mark.parametrize(
    ("first", "second", "names"),
    [
        (
            ("<2.4", '"*-decomposed"', BOTH),
            ("<2.3", '"ConvOp-*"', '["cuda"]'),
            "both name ConvOp-bias-Conv1d-bn-decomposed on cuda in torch 2.2.2",
        ),
        # Ranges that meet only where the release table has no release.
        (
            ("<2.4", '"*-decomposed"', BOTH),
            (">=2.3.9", '"*-decomposed"', '["cpu"]'),
            "on cpu in torch 2.3.9 (releases '<2.4' and '>=2.3.9')",
        ),
        # Generated examples that no committed case is: the first is a Linear's and a
        # Conv1d's, the second a Conv2d's, and both name Conv2d's with keywords.
        (
            ("<2.5", '"Gen-*-fkw-*"', BOTH),
            (">=2.2", '["Gen-Conv2d-*"]', '["cpu"]'),
            "both name Gen-Conv2d-fkw-",
        ),
    ],
)
def test_overlapping_expectation_rows_are_refused_at_load(tmp_path, first, second, names):
    message = _refused(tmp_path, "expectations.toml", _rows(first, second), expectations.load)
    assert message.startswith(
        "[[expect]] #2: 'releases', 'cases' and 'devices' overlap row #1's: "
    ), message
    assert names in message
    assert message.endswith("make the rows disjoint: narrow one's releases, cases or devices")


@pytest.mark.parametrize(
    "second",
    [
        (">=2.4", '"*-decomposed"', BOTH),  # the ranges meet nowhere
        ("<2.4.1,>2.4", '"*-decomposed"', BOTH),  # no X.Y.Z between 2.4.0 and 2.4.1
        ("<2.4", '"*-module"', BOTH),  # no case both name
        ("<2.4", '"Gen-*-fpos-*"', BOTH),  # a generated id has one call style
        ("<2.4", '"*-decomposed"', '["cuda"]'),  # nor one device both list
    ],
)
def test_rows_that_cannot_name_one_cell_load(tmp_path, second):
    first = ("<2.4", '["*ConvOp-*-decomposed", "Gen-*-decomposed-*"]', '["cpu"]')
    path = tmp_path / "expectations.toml"
    path.write_text(_rows(first, second))
    assert len(expectations.load(path).rows) == 2


@pytest.mark.parametrize(
    ("a", "b", "shared"),
    [
        ("<2.4", ">=2.4", None),
        ("<2.4.1", ">2.4", None),
        (">=2.5,<2.13", "==2.12.*", "2.12.1"),
        ("==2.11.*", ">2.11.0", "2.11.1"),
        (">2.15.0", "", "2.16.0"),  # the nightly's release, before any other
        (">2.15.0,<2.16", "", "2.15.1"),
        ("==2.5", "~=2.5.1", None),  # ==2.5 is 2.5.0 alone
    ],
)
def test_shared_release_finds_a_release_in_both_ranges(a, b, shared):
    found = shared_release(SpecifierSet(a), SpecifierSet(b))
    assert found == (Version(shared) if shared else None)


def test_triage_with_a_bad_causes_table_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "causes.toml"
    bad.write_text(
        _edit(CAUSES, KW_LINKS, KW_LINKS.replace('["https', '"https').replace('"]', '"'))
    )
    monkeypatch.setattr(causes, "DEFAULT_FILE", bad)
    results = ROOT / "docs/fuzz/fuzz-2.15-cpu-10min-fresh-clone.json"
    code = cli.main(["triage", str(results)])
    out, err = capsys.readouterr()
    line = one_line_error(err)
    assert code == Exit.BAD_INPUT
    assert not out
    assert line == f"convbn-compat: {bad}: {KW}: 'links' is a string; write a list of strings: " + (
        'links = ["https://github.com/..."]'
    )
