"""A real headless Chromium for the booking pages: Playwright, axe-core, keyboard, screenshots.

Debian's ``chromium`` (``/usr/bin/chromium``, or ``CHROMIUM``) is driven by Playwright for
Python; ``.ci/run`` installs both. axe-core (bundled by ``axe-playwright-python``) runs in
each page the tests open, and each page is photographed at a phone's width and a desktop's.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT

#: Where the tests write each page's screenshots (named in the README).
SCREENSHOTS = PROJECT_ROOT / "tests" / "client_pages" / "screenshots"
#: A phone and a desktop.
WIDTHS = (360, 1280)
#: axe-core impacts that fail a page (WCAG 2.2 AA, as the pages promise).
FAILING_IMPACTS = ("serious", "critical")
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def chromium_path() -> str | None:
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, with no network of its own but loopback."""
    executable = chromium_path()
    if executable is None:
        pytest.fail(
            "Chromium is needed for the booking pages' browser tests: run .ci/run, or "
            "`apt-get install chromium`, or set CHROMIUM to a Chromium binary"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A fresh browser profile at a phone's width, in the clinic's language."""
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 800}, locale="en-US")
    context.set_default_timeout(15_000)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    yield opened
    context.close()
    # A script error or a blocked script breaks the page for real clients, passed or not.
    assert not problems, problems


def accessible(page, exclude: list[str] | None = None) -> None:
    """Run axe-core in the page; fail on any serious or critical violation, naming each.

    ``exclude``: parts of the page that are not the platform's (the card fields, which
    Stripe.js draws in its own frame in production and the stand-in draws here).
    """
    from axe_playwright_python.sync_playwright import Axe

    context = {"exclude": [[selector] for selector in exclude]} if exclude else None
    results = Axe().run(
        page,
        context=context,
        options={"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]},
    )
    failing = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"])
        for v in results.response["violations"]
        if v["impact"] in FAILING_IMPACTS
    ]
    assert not failing, f"{page.url}: " + "; ".join(failing)


def photographed(page, name: str) -> list[Path]:
    """Save the whole page at each width in :data:`SCREENSHOTS`; return the files."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    saved = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        target = SCREENSHOTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}-{width}.png"
        page.screenshot(path=str(target), full_page=True)
        saved.append(target)
    page.set_viewport_size(size)
    return saved


def checked(page, name: str, exclude: list[str] | None = None) -> None:
    """What every page the tests open gets: axe-core, and its screenshots."""
    accessible(page, exclude)
    photographed(page, name)


def tab_to(page, selector: str, limit: int = 300) -> None:
    """Press Tab until ``selector`` has the keyboard focus, as a keyboard-only client would."""
    target = page.locator(selector).first
    for _ in range(limit):
        if target.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} cannot be reached with the Tab key on {page.url}")
