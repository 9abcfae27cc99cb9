"""The report of the committed results, in headless Chromium at 1400 and 400 px: the
summary leads, a cell's panel opens by click and by keyboard, and narrow screens work."""

from __future__ import annotations

from pathlib import Path

import pytest

from convbn_compat.__main__ import main
from convbn_compat.core.releases import RELEASES
from convbn_compat.report.model import build_matrix
from convbn_compat.report.view import RowGroup, build_view

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
BUG = "Bug169011-bn3args-Conv2d-bn-module"
WIDTHS = (1400, 400)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(RESULTS), "-o", str(out)]) == 0
    return out / "matrix.html"


def _load(browser, page: Path, width: int):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(width, 1000)
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.body.dataset.ready === '1'")
    )


def _css(browser, selector):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


@pytest.mark.parametrize("width", WIDTHS)
def test_summary_comes_first_and_counts_what_the_model_counts(browser, page, width):
    _load(browser, page, width)
    ordered = build_view(build_matrix([RESULTS])).rows
    cards = [c.text for c in _css(browser, "#summary .card")]
    counts = {g: sum(1 for r in ordered if r.group is g) for g in RowGroup}
    assert any(t.startswith(f"{counts[RowGroup.KNOWN]}\n") for t in cards), cards
    assert any(t.startswith(f"{counts[RowGroup.FUSED]}\n") for t in cards), cards
    # The summary sits above the matrix; the first matrix row is the worst one.
    summary_y = _css(browser, "#summary")[0].location["y"]
    assert summary_y < _css(browser, "#matrix")[0].location["y"]
    first = _css(browser, "#matrix tr.row")[0].get_attribute("data-case")
    assert first == ordered[0].case_id
    # All-fused rows are folded until asked for.
    assert not _css(browser, "#fused-rows tr.row")[0].is_displayed()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_cells_panel_opens_by_click_and_keyboard_and_reads_right(
    browser, page, width, screenshot_dir
):
    from selenium.webdriver.common.keys import Keys

    _load(browser, page, width)
    column = next(i for i, th in enumerate(_css(browser, "#matrix tr.rels th")) if th.text == "2.5")
    cell = _css(browser, f'tr[data-case="{BUG}"] td.cell[data-col="{column}"] button')[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
    cell.click()
    panel = _css(browser, "#panel")[0]
    assert panel.is_displayed()
    text = panel.text
    assert f"{BUG} @ 2.5/cpu/cpu" in text
    assert "error" in text
    assert f"python -m convbn_compat repro {BUG} --device cpu --release 2.5 -o repro.py" in text
    assert f'nox -s tests-2.5-cpu -- "tests/test_matrix.py::test_conv_bn_eval[{BUG}-cpu]"' in text
    assert "recorded by" in text
    links = [a.get_attribute("href") for a in panel.find_elements("css selector", "a")]
    assert "https://github.com/pytorch/pytorch/issues/169011" in links
    rect = browser.execute_script("return arguments[0].getBoundingClientRect().toJSON()", panel)
    assert rect["width"] <= width + 1  # inside the screen at every width
    browser.save_screenshot(str(screenshot_dir / f"report-panel-{width}.png"))
    # Escape closes it and gives focus back to the cell; Enter on the cell reopens it.
    panel.send_keys(Keys.ESCAPE)
    assert not panel.is_displayed()
    assert browser.switch_to.active_element == cell
    cell.send_keys(Keys.ENTER)
    assert panel.is_displayed()
    panel.send_keys(Keys.ESCAPE)


@pytest.mark.parametrize("width", WIDTHS)
def test_layout_fits_the_screen(browser, page, width, screenshot_dir):
    _load(browser, page, width)
    browser.save_screenshot(str(screenshot_dir / f"report-{width}.png"))
    # The page never scrolls sideways; the matrix scrolls inside its own box.
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 1, overflow
    case_th = _css(browser, "#matrix tr.row th.case")[0]
    assert case_th.size["width"] <= 0.5 * width  # leaves room for the cells
    # Grouped headers: lanes above releases, the GPU lane apart.
    lanes = [th.text for th in _css(browser, "#matrix tr.lanes th")]
    assert lanes[0] == "case"
    assert "CPU wheel on CPU" in lanes
    assert any("on GPU" in lane for lane in lanes)


# -- every kind of input: the committed results alone, with fuzz, reach and benefit, and a
# single fuzz file ------------------------------------------------------------------

DOCS = ROOT / "docs"
INPUTS = {
    "results": [RESULTS],
    "everything": [RESULTS, DOCS / "fuzz", DOCS / "reach", DOCS / "benefit"],
    "one-fuzz-file": [DOCS / "fuzz" / "fuzz-2.15-cpu-10min-fresh-clone.json"],
}


@pytest.fixture(scope="module", params=list(INPUTS))
def any_page(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"report-{request.param}")
    assert main(["report", *map(str, INPUTS[request.param]), "-o", str(out)]) in (0, 1)
    return request.param, out / "matrix.html"


def _sessions() -> set[str]:
    import json
    import subprocess
    import sys

    listed = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json", "-t", "matrix", "installed", "reach"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {s["session"] for s in json.loads(listed)}


@pytest.mark.parametrize("width", WIDTHS)
def test_every_input_reads_summary_first_and_works(browser, any_page, width, screenshot_dir):
    name, page = any_page
    _load(browser, page, width)
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors  # the script ran to the end on this input
    browser.save_screenshot(str(screenshot_dir / f"report-{name}-{width}.png"))
    # The summary comes first, and lists the releases newest first, in the table's order.
    summary_y = _css(browser, "#summary")[0].location["y"]
    tables = _css(browser, "table.matrix")
    assert tables
    assert all(summary_y < t.location["y"] for t in tables)
    releases = [d.text.split(" ")[0] for d in _css(browser, "#releases details > summary")]
    order = list(RELEASES)
    assert releases == sorted(releases, key=order.index, reverse=True)
    # No known cause counts as unexpected: the committed findings all have one, so no
    # cell of these pages is boxed red, and the page boxes what the model counts.
    view = build_view(build_matrix(INPUTS[name]))
    assert not view.unexpected
    assert len(_css(browser, "td.cell.unexpected")) == len(view.unexpected)
    # The filter hides the rows it does not match.
    rows = _css(browser, "table.matrix tr.row")
    query = _css(browser, "#q")[0]
    query.send_keys("no-such-case-anywhere")
    assert all(not r.is_displayed() for r in rows)
    query.clear()
    browser.execute_script("document.getElementById('q').dispatchEvent(new Event('input'))")
    # Every lane fits the page; each table scrolls inside its own box.
    for lane in _css(browser, "table.matrix tr.lanes th.lane-start"):
        assert lane.size["width"] <= width, lane.text
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 1, overflow
    # Every rerun command names a session nox lists.
    commands = browser.execute_script(
        "return JSON.parse(document.getElementById('report-data').textContent).commands"
    )
    named = {c["rerun"].split()[2] for c in commands.values() if c["rerun"].startswith("nox -s")}
    assert named <= _sessions()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_header_stays_in_view_when_the_matrix_scrolls(browser, any_page, width):
    _, page = any_page
    _load(browser, page, width)
    for toggle in _css(browser, "button.toggle-fused"):
        browser.execute_script("arguments[0].click()", toggle)  # unfold: a long table
    wrap = _css(browser, ".matrix-wrap")[0]
    head = _css(browser, "table.matrix thead tr.rels th")[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", wrap)
    before = head.location_once_scrolled_into_view
    browser.execute_script("arguments[0].scrollTop = 2000", wrap)
    top = browser.execute_script(
        "return [arguments[0], arguments[1]].map((e) => e.getBoundingClientRect().top)",
        head, wrap,
    )  # fmt: skip
    # A table shorter than its box does not scroll; its header is in view all the same.
    tall = browser.execute_script(
        "return arguments[0].scrollHeight > arguments[0].clientHeight", wrap
    )
    assert browser.execute_script("return arguments[0].scrollTop", wrap) > 0 or not tall
    # The release row of the header is still at the top of the box, not scrolled away.
    assert top[1] - 1 <= top[0] <= top[1] + 60, (top, before)


LEGIBLE = """
const table = document.getElementById('matrix');  // the matrix, not a search's table
if (!table) return [];
const cells = [...table.querySelectorAll('tbody th.case')]
  .filter(c => c.getBoundingClientRect().width > 0);
return cells.map(c => {
  const range = document.createRange();
  range.selectNodeContents(c);
  const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
  return {id: c.title, width: c.getBoundingClientRect().width, lines: lines,
          row: c.closest('tr').getBoundingClientRect().height,
          font: parseFloat(getComputedStyle(c).fontSize)};
});
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_the_matrix_case_ids_read_across_in_at_most_two_lines(browser, any_page, width):
    """The case column once shrank to 21 px, one letter a line (rows of 790 px): every
    shown id of the matrix now reads across in at most two lines, broken only at its
    hyphens, and its row is no taller than that."""
    _load(browser, any_page[1], width)
    cells = browser.execute_script(LEGIBLE)
    if any_page[0] == "one-fuzz-file":  # a search's own table: ids of up to 124 characters
        assert not cells
        return
    assert cells
    for cell in cells:
        assert cell["width"] >= 150, cell
        assert cell["lines"] <= 2, cell
        assert cell["row"] <= 2 * 1.4 * cell["font"] + 12, cell
    # A line ends only after a hyphen: never inside a word of the id.
    breaks = browser.execute_script(
        """
        const out = [];
        const table = document.getElementById('matrix');
        for (const c of table ? table.querySelectorAll('tbody th.case') : []) {
          if (!c.getBoundingClientRect().width) continue;
          const text = c.firstChild;
          if (!text || text.nodeType !== 3) continue;
          const range = document.createRange();
          let top = null;
          for (let i = 0; i < text.length; i++) {
            range.setStart(text, i); range.setEnd(text, i + 1);
            const t = Math.round(range.getBoundingClientRect().top);
            if (top !== null && t > top && text.data[i - 1] !== '-') out.push(c.title);
            top = t;
          }
        }
        return out;
        """
    )
    assert not breaks, breaks[:3]


def test_a_failure_not_of_the_pass_never_reads_as_expected(browser, tmp_path):
    """A generator finding that fails with the pass off too is labelled so in its panel."""
    out = tmp_path / "r"
    assert main(["report", str(DOCS / "fuzz"), "-o", str(out)]) in (0, 1)
    _load(browser, out / "matrix.html", 1400)
    text = browser.execute_script(
        """
        const data = JSON.parse(document.getElementById('report-data').textContent);
        for (const td of document.querySelectorAll('td.cell')) {
          const caseId = td.parentElement.dataset.case;
          const column = data.columns[Number(td.dataset.col)];
          if (!column) continue;
          const cell = (data.cells[caseId] || {})[column.key];
          if (cell && cell.blame === 'not-pass' && td.querySelector('button')) {
            td.querySelector('button').click();
            return document.getElementById('panel').innerText;
          }
        }
        return null;
        """
    )
    assert text is not None, "the committed searches have findings not of the pass"
    assert "fails with the pass off too" in text
    assert "as expected" not in text.split("verdict", 1)[1].split("\n")[1]
