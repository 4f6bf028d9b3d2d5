"""Forest-plot SVGs, alone and inside the HTML report, rendered by a real browser.

SVG viewers collapse runs of spaces, so a table that aligns its columns with spaces runs
together in a browser while the PNG looks right. These tests load the SVG in Chromium
(Debian's system browser, driven by Playwright; no browser is downloaded) and measure
the rendered text: the cells of one row must not overlap, and each number must end where
its column header ends, as in the PNG.

Skipped, with the reason shown, where Chromium or the Playwright package is absent.
"""

from __future__ import annotations

import base64
import itertools
import re
from pathlib import Path
from typing import Any

import test_forest
from metaresp import forest, report

Box = tuple[str, float, float, float, float]
"""A rendered text element: its text, left, right, top and bottom in CSS pixels."""

_BOXES_JS = """() => Array.from(document.querySelectorAll('text')).map(t => {
    const r = t.getBoundingClientRect();
    return [t.textContent, r.left, r.right, r.top, r.bottom];
})"""


def rendered_boxes(browser: Any, svg: Path) -> list[Box]:
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    try:
        page.goto(svg.resolve().as_uri())
        boxes = page.evaluate(_BOXES_JS)
    finally:
        page.close()
    return [
        (str(t), float(a), float(b), float(c), float(d))
        for t, a, b, c, d in boxes
        if str(t).strip()
    ]


def row_of(boxes: list[Box], needle: str) -> list[Box]:
    """The boxes on the same line as the box whose text is ``needle`` (sorted by x)."""
    hit = next(b for b in boxes if b[0].strip() == needle)
    middle = (hit[3] + hit[4]) / 2
    return sorted((b for b in boxes if b[3] < middle < b[4]), key=lambda b: b[1])


def overlapping_cells(boxes: list[Box]) -> list[tuple[str, str]]:
    """Pairs of texts on one line whose boxes overlap by more than half a pixel."""
    bad = []
    for a, b in itertools.combinations(boxes, 2):
        same_line = a[3] < (b[3] + b[4]) / 2 < a[4] or b[3] < (a[3] + a[4]) / 2 < b[4]
        if same_line and a[1] < b[2] - 0.5 and b[1] < a[2] - 0.5:
            bad.append((a[0], b[0]))
    return bad


def test_forest_svg_columns_stay_apart_and_aligned_in_chromium(
    browser: Any, tmp_path: Path
) -> None:
    png, svg = tmp_path / "f.png", tmp_path / "f.svg"
    forest.save_forest(test_forest.make_data(), png, svg, dpi=100)
    boxes = rendered_boxes(browser, svg)
    assert overlapping_cells(boxes) == []
    # The first study, 5/7: each number is a text of its own, left to right.
    row = row_of(boxes, "71.4")
    cells = [b[0].strip() for b in row]
    assert cells == [test_forest.LONG_FIRST, "5", "7", "71.4", "29.0 to 96.3", "18.2%"]
    # ... and ends where its column header ends (numbers and headers are right-aligned).
    headers = row_of(boxes, "Events")
    ends = {b[0].strip(): b[2] for b in headers}
    for header, cell in zip(
        ("Events", "Total", "Rate (%)", "95% CI", "Weight"), row[1:], strict=True
    ):
        assert abs(ends[header] - cell[2]) < 1.0, (header, cell)
    # the label starts where the header "Study" starts, indented under its group
    assert row[0][1] > next(b for b in headers if b[0].strip() == "Study")[1]


def test_alignment_check_can_fail(browser: Any, tmp_path: Path) -> None:
    """A row drawn the old way (one space-padded string) fails the checks above."""
    svg = tmp_path / "padded.svg"
    svg.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="600" height="60">'
        '<text x="10" y="20" style="font: 10px monospace">Study      Events  Total</text>'
        '<text x="10" y="40" style="font: 10px monospace">Merz 2024       12     17</text>'
        "</svg>",
        encoding="utf-8",
    )
    row = row_of(rendered_boxes(browser, svg), "Merz 2024       12     17")
    assert [b[0] for b in row] == ["Merz 2024       12     17"]  # one text: columns merged
    overlapping = rendered_boxes(browser, _two_texts(tmp_path))
    assert overlapping_cells(overlapping) == [("12.5", "17.25")]


def _two_texts(tmp_path: Path) -> Path:
    svg = tmp_path / "overlap.svg"
    svg.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="40">'
        '<text x="10" y="20" style="font: 10px monospace">12.5</text>'
        '<text x="20" y="20" style="font: 10px monospace">17.25</text></svg>',
        encoding="utf-8",
    )
    return svg


def test_cumulative_svg_cells_do_not_overlap(browser: Any, tmp_path: Path) -> None:
    rows = [
        ("Cohen 2019 · CAR T re-infusion", 1, 0.4, 0.05, 0.85),
        ("Trudel 2021 · cevostamab", 2, 0.45, 0.2, 0.72),
        (test_forest.LONG, 3, 0.55, 0.3, 0.77),
    ]
    svg = tmp_path / "c.svg"
    forest.save_cumulative(rows, tmp_path / "c.png", svg, dpi=100, title="Cumulative")
    boxes = rendered_boxes(browser, svg)
    assert overlapping_cells(boxes) == []
    assert [b[0].strip() for b in row_of(boxes, "55.0")] == [
        f"+ {test_forest.LONG}",
        "3",
        "55.0",
        "30.0 to 77.0",
    ]


def test_svgs_embedded_in_the_report_render_with_separate_columns(
    browser: Any, tmp_path: Path
) -> None:
    data = test_forest.make_data()
    png, svg = tmp_path / "f.png", tmp_path / "f.svg"
    forest.save_forest(data, png, svg, dpi=100)
    page = report.render_report(
        title="t",
        corpus_version="v",
        analyses=[
            report.ReportAnalysis(
                "a", forest=data, figures=(report.ReportFigure.from_files("f", png, svg),)
            )
        ],
    )
    embedded = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page)
    assert len(embedded) == 1
    out = tmp_path / "embedded.svg"
    out.write_bytes(base64.b64decode(embedded[0]))
    boxes = rendered_boxes(browser, out)
    assert overlapping_cells(boxes) == []
    assert [b[0].strip() for b in row_of(boxes, "71.4")][1:] == [
        "5",
        "7",
        "71.4",
        "29.0 to 96.3",
        "18.2%",
    ]


def test_report_does_not_overflow_at_800_px(browser: Any, tmp_path: Path) -> None:
    data = test_forest.make_data()
    png, svg = tmp_path / "f.png", tmp_path / "f.svg"
    forest.save_forest(data, png, svg, dpi=100)
    html = tmp_path / "report.html"
    report.write_report(
        html,
        title="t",
        corpus_version="v",
        analyses=[
            report.ReportAnalysis(
                "a", forest=data, figures=(report.ReportFigure.from_files("f", png, svg),)
            )
        ],
    )
    page = browser.new_page(viewport={"width": 800, "height": 1000})
    try:
        page.goto(html.resolve().as_uri())
        page_width, view_width = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        tables = page.evaluate("""() => Array.from(document.querySelectorAll('table')).map(
            t => [t.getBoundingClientRect().right, t.parentElement.clientWidth,
                  t.parentElement.getBoundingClientRect().right])""")
    finally:
        page.close()
    assert page_width <= view_width
    assert tables
    for right, _, parent_right in tables:  # the pooled table fits: no scrolling inside
        assert right <= parent_right + 0.5
