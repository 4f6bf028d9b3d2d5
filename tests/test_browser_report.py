"""The shipped run's report.html in headless Chromium: the summary of findings in the
first screen, a certainty word on every row, nothing wider than an 800 px window, and
every embedded forest-plot SVG with its columns apart.

All tests share one browser and the session's run of the shipped plan (``shipped_run``);
skipped, with the reason shown, where Chromium or the Playwright package is absent.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import pytest

from factories import ShippedRun
from test_browser_svg import overlapping_cells

LEVELS = ("High", "Moderate", "Low", "Very low")


def shipped(test: Callable[..., None]) -> Callable[..., None]:
    return pytest.mark.slow(pytest.mark.xdist_group("shipped")(test))


def open_report(browser: Any, run: ShippedRun, width: int, height: int = 800) -> Any:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto((run.out / "report.html").resolve().as_uri())
    return page


@shipped
def test_summary_of_findings_is_in_the_first_screen(browser: Any, shipped_run: ShippedRun) -> None:
    page = open_report(browser, shipped_run, 1280)
    try:
        top = page.evaluate("document.querySelector('table.sof').getBoundingClientRect().top")
        rows = page.evaluate(
            """() => Array.from(document.querySelectorAll('table.sof')[0]
                .querySelectorAll('tbody tr')).map(tr => [
                    tr.cells[0].innerText, tr.cells[2].innerText, tr.cells[4].innerText,
                    tr.getBoundingClientRect().top])"""
        )
    finally:
        page.close()
    assert top < 800
    assert len(rows) >= 2
    # the first class's pooled rate, its interval and its certainty are on the first screen
    _name, rate, _certainty, row_top = rows[0]
    assert row_top < 800
    assert re.search(r"\d+\.\d% \(\d+\.\d to \d+\.\d\)", rate), rate
    for _, _, certainty, _ in rows:
        assert any(certainty.strip().endswith(level) for level in LEVELS), certainty


@shipped
def test_nothing_overflows_at_800_px(browser: Any, shipped_run: ShippedRun) -> None:
    page = open_report(browser, shipped_run, 800)
    try:
        width = page.evaluate("document.documentElement.scrollWidth")
        # open every collapsed part: the tables inside must fit as well
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        opened = page.evaluate("document.documentElement.scrollWidth")
    finally:
        page.close()
    assert width <= 800
    assert opened <= 800


def _embedded_svgs(html: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    ]


@shipped
def test_every_embedded_svg_keeps_its_columns_apart(browser: Any, shipped_run: ShippedRun) -> None:
    svgs = _embedded_svgs((shipped_run.out / "report.html").read_text(encoding="utf-8"))
    assert svgs
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    js = """() => Array.from(document.querySelectorAll('text')).map(t => {
        const r = t.getBoundingClientRect();
        return [t.textContent, r.left, r.right, r.top, r.bottom];
    })"""
    bad: dict[int, list[tuple[str, str]]] = {}
    try:
        for i, svg in enumerate(svgs):
            # text boxes are measurable in an inline SVG document (not inside an <img>)
            page.set_content(svg.decode("utf-8"))
            boxes = [
                (str(t), float(a), float(b), float(c), float(d))
                for t, a, b, c, d in page.evaluate(js)
                if str(t).strip()
            ]
            found = overlapping_cells(boxes)
            if found:
                bad[i] = found
    finally:
        page.close()
    assert bad == {}
