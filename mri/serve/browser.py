"""Headless Chromium for the page's browser tests and screenshot: Debian's chromium driven by Playwright.

Playwright's own browser builds cannot be downloaded here, so the system's /usr/bin/chromium is launched
(`apt-get install chromium`), with everything that would reach the network switched off.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")


def find_chromium() -> Path | None:
    """/usr/bin/chromium, or a chromium on PATH; None when there is none."""
    if CHROMIUM.is_file():
        return CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


@contextmanager
def chromium_page(width: int = 1200, height: int = 900) -> Iterator[playwright.sync_api.Page]:  # noqa: F821
    """A fresh page of a headless Chromium; FileNotFoundError naming the install command when there is none."""
    from playwright.sync_api import sync_playwright  # dev extra: only the tests and tools need it

    executable = find_chromium()
    if executable is None:
        raise FileNotFoundError("no chromium: install it with `apt-get install -y chromium`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=list(CHROMIUM_ARGS))
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()
