"""A real headless browser for tests: Debian's chromium, driven by Playwright (PyPI), never a
browser that Playwright downloads.

`launch()` raises `ServerUnavailable` (tests/servers.py) when chromium or playwright is
missing: the fixtures turn that into a skip, or a failure under CI (ROUTER_REQUIRE_SERVERS=1),
where .ci/run installs chromium first.
"""

from __future__ import annotations

import os
import shutil

from tests.servers import ServerUnavailable

CHROMIUM = os.environ.get("ROUTER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    path = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is None:
        raise ServerUnavailable(f"{CHROMIUM} not found: apt-get install chromium")
    return path


def launch(playwright):
    """A headless chromium browser (the caller closes it)."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=ARGS)


def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        raise ServerUnavailable("playwright is not installed: pip install -e '.[dev]'") from None
    return start()
