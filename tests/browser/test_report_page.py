"""The report of the committed results, in headless Chromium at 1400 and 400 px: the
summary leads, a cell's panel opens by click and by keyboard, and narrow screens work."""

from __future__ import annotations

from pathlib import Path

import pytest

from convbn_compat.__main__ import main
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
    assert f"nox -s tests-2.5-cpu -- -k '{BUG}'" in text
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
