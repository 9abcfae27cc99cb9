"""A real browser for the report: Debian's headless Chromium, driven by Selenium.

Chromium and its driver come from the system (``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them), Selenium from the ``browser`` extra. Under
CI a missing browser fails the run; elsewhere the tests are skipped with that command.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

INSTALL = "apt-get install chromium chromium-driver"


def pytest_addoption(parser):
    parser.addoption(
        "--screenshots",
        type=Path,
        default=None,
        help="save the report's screenshots here (docs/ to update the committed ones)",
    )


def _find(*names: str) -> str | None:
    return next((path for path in map(shutil.which, names) if path), None)


@pytest.fixture(scope="session")
def browser():
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if not (chromium and driver_path):
        message = f"no Chromium or chromedriver on PATH; install them: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's errors
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--hide-scrollbars", "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(flag)
    # An explicit driver: Selenium Manager would try to download one.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshot_dir(request, tmp_path_factory) -> Path:
    folder = request.config.getoption("--screenshots")
    if folder is None:
        return tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
