"""``report.pdf``: the HTML report printed by headless Chromium (its print style sheet).

Chromium is found on the ``PATH`` (``chromium`` or ``chromium-browser``) and driven by
Playwright; nothing is downloaded. Before printing, the summary-of-findings tables that
the screen keeps collapsed are opened, so the PDF holds every primary analysis; the
long record lists stay collapsed (they are in ``set-aside.csv`` and ``pooled.csv``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["BROWSERS", "find_chromium", "pdf_unavailable", "write_pdf"]

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
"""Executable names tried, in order."""

_OPEN_FOR_PRINT = """() => document.querySelectorAll(
    'details.more-findings, details.more-findings details').forEach(d => d.open = true)"""


def find_chromium() -> str | None:
    """The path of a Chromium executable on ``PATH``, or ``None``."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def pdf_unavailable() -> str | None:
    """Why a PDF cannot be written here (one line), or ``None`` when it can."""
    if find_chromium() is None:
        return "no Chromium on PATH (install the chromium package)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


def write_pdf(html: Path, pdf: Path) -> Path:
    """Print ``html`` to ``pdf`` (A4, the report's print styles, backgrounds kept)."""
    from playwright.sync_api import sync_playwright

    browser_path = find_chromium()
    if browser_path is None:
        raise FileNotFoundError("chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=browser_path, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(html.resolve().as_uri(), wait_until="load")
            page.evaluate(_OPEN_FOR_PRINT)
            page.emulate_media(media="print")
            tmp = pdf.with_name(pdf.name + ".tmp")
            page.pdf(path=str(tmp), format="A4", print_background=True, prefer_css_page_size=True)
            tmp.replace(pdf)
        finally:
            browser.close()
    return pdf
