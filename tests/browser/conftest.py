"""The website's build and the course in a real browser: what `.ci/run` runs as its second step.

These tests need what the README's test command does not install (the `site` and `browser` extras, and a
Chromium from the system's packages) and take minutes, so they run only when asked for with
MMLESSON_BROWSER_TESTS=1, as .ci/run does after the README's test command:

    MMLESSON_BROWSER_TESTS=1 .venv/bin/python -m pytest tests/browser

Anywhere else (the README's `pytest`, which collects tests/) each of them is skipped, with that reason. Asked
for, a test that needs Playwright or Chromium is skipped, with the reason, where either is missing; Playwright
is pointed at the system's Chromium (`playwright install` would download a browser of its own, which cannot
be done here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ASKED = os.environ.get("MMLESSON_BROWSER_TESTS") == "1"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ASKED:
        return
    skip = pytest.mark.skip(
        reason="website and browser tests run in .ci/run's second step "
        "(MMLESSON_BROWSER_TESTS=1 python -m pytest tests/browser, with the site and browser extras)"
    )
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


def chromium() -> str | None:
    """The system's Chromium: $MMLESSON_CHROMIUM, else the first Chromium or Chrome on PATH."""
    chosen = os.environ.get("MMLESSON_CHROMIUM")
    if chosen:
        return chosen if Path(chosen).is_file() else None
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Chromium, driven by Playwright; skipped, with the reason, where either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (pip install -e '.[browser]')")
    executable = chromium()
    if executable is None:
        pytest.skip(
            "no Chromium on this machine (apt-get install chromium fonts-noto-cjk; or set MMLESSON_CHROMIUM)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"], timeout=60_000
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def built_site() -> Path:
    """_site/ as `python site/build.py` wrote it; built here when it is missing ($MMLESSON_SITE: another)."""
    site = Path(os.environ.get("MMLESSON_SITE", ROOT / "_site"))
    if not (site / "index.html").is_file():
        done = subprocess.run(
            [sys.executable, str(ROOT / "site" / "build.py"), "--out", str(site)],
            capture_output=True, text=True, timeout=600, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    return site


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the screenshots for a person to look at go: $MMLESSON_SCREENSHOTS, else _site_screenshots/."""
    folder = Path(os.environ.get("MMLESSON_SCREENSHOTS", ROOT / "_site_screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
