"""The forest plot's table cells: widths measured in the sans-serif face, the columns'
positions, label wrapping by width, and the drawing of every cell as its own text.

``forestplot`` lays out the rows (one categorical y position per row, group headers in
their place, squares and whiskers); it aligns its text columns by padding one monospace
string per row with spaces, which a browser collapses in SVG and which spends the width
of the widest monospace glyph on every character. Here the cells are placed instead:

- widths are the sum of the DejaVu Sans advance widths of the characters
  (:func:`text_width_in`; unhinted, as drawn at 300 dpi and in SVG). The sum leaves out
  kerning, which narrows the labels and numbers drawn here (a typical label: 145.9 pt
  summed, 144.4 pt as laid out), so a width errs on the wide side;
- a label is drawn by its left edge, every number and its header by its right edge
  (``text-anchor: end`` in SVG), so columns stay aligned in a viewer that substitutes
  another font;
- columns are :data:`COL_GAP_IN` apart; the plot takes the width left between the label
  and number columns on the left and the number columns on the right, at least
  :data:`MIN_PLOT_WIDTH_IN` (only then is the figure wider than :data:`FIG_WIDTH_IN`);
- labels are wrapped to the width left when the plot has :data:`PLOT_WIDTH_IN`
  (:func:`label_room_in`), over lines as even as possible, "Author year ·" ending its
  line when that costs no extra line (:func:`wrap_to_width`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from metaresp._forest_table import _Row, _Table

FIG_WIDTH_IN = 7.0
"""A journal's full page width (two-column journals: about 7 in / 178 mm)."""
SANS_FONT = "DejaVu Sans"
"""Bundled with matplotlib, so always present; every text of the figure is set in it."""
MIN_PLOT_WIDTH_IN = 1.4
"""Narrowest plot column before the figure is widened beyond FIG_WIDTH_IN."""
MARGIN_IN = 0.08
GAP_IN = 0.10
LEFT_GAP_IN = 0.20
"""Room for half a square (9 pt) or a diamond tip at 0% between the table and the plot."""

COL_GAP_IN = 0.10
"""Space between two table columns (about one and a half digits at 8 pt)."""
INDENT_IN = 0.12
"""Indent of the rows of a subgroup under its bold header."""
PLOT_WIDTH_IN = 1.9
"""Plot width the labels are wrapped for; a table with short labels gets a wider plot."""
MIN_LABEL_IN = 1.5
"""Narrowest label column labels are wrapped to, whatever the number columns take."""
MAX_LABEL_LINES = 5


@cache
def _advances(bold: bool, italic: bool) -> dict[str, float]:
    """Advance widths (em) of the characters met so far in one DejaVu Sans face."""
    return {}


@cache
def _font(bold: bool, italic: bool) -> object:
    from matplotlib.font_manager import FontProperties, findfont, get_font

    prop = FontProperties(
        family=SANS_FONT,
        weight="bold" if bold else "normal",
        style="italic" if italic else "normal",
    )
    return get_font(findfont(prop))


_EM_PT = 100.0
"""Size at which advances are read (matplotlib's font objects are shared and resized by
every renderer, so the size is set before each read)."""


def text_width_in(text: str, size: float, bold: bool = False, italic: bool = False) -> float:
    """Width of ``text`` in inches at ``size`` points (advance widths, no kerning)."""
    table = _advances(bold, italic)
    missing = [ch for ch in set(text) if ch not in table]
    if missing:
        from matplotlib.ft2font import LoadFlags

        font: Any = _font(bold, italic)
        font.set_size(_EM_PT, 72)
        for ch in missing:
            glyph = font.load_char(ord(ch), flags=LoadFlags.NO_HINTING)
            table[ch] = glyph.linearHoriAdvance / 65536.0 / _EM_PT
    return sum(table[ch] for ch in text) * size / 72.0


SEPARATOR = "·"
"""Between a study's author and year and what the row holds ("Merz 2024 · Teclistamab")."""


def wrap_to_width(
    text: str, width_in: float, size: float, bold: bool = False, max_lines: int = MAX_LABEL_LINES
) -> list[str]:
    """``text`` over as few lines as fit ``width_in``, at most ``max_lines`` (the last one
    ending in "…" when the text is cut), as even as possible (the narrowest width that
    still needs that many lines). A label "Author year · what" breaks after the "·" when
    that takes no more lines. A "·" never starts a line; a word wider than the width gets
    its own line.
    """
    words = _tokens(text)
    if not words or _width(words, size, bold) <= width_in:
        return [" ".join(words)]
    even = _even_lines(words, width_in, size, bold)
    ends = [i for i, w in enumerate(words[:-1]) if w.endswith(f" {SEPARATOR}")]
    if ends:
        cut = ends[0]
        head = words[: cut + 1]
        if _width(head, size, bold) <= width_in:
            split = [" ".join(head), *_even_lines(words[cut + 1 :], width_in, size, bold)]
            if len(split) <= len(even):
                even = split
    return _cut(even, width_in, size, bold, max_lines)


def _tokens(text: str) -> list[str]:
    """The words of ``text``, a "·" joined to the word before it."""
    out: list[str] = []
    for word in text.split():
        if word == SEPARATOR and out:
            out[-1] = f"{out[-1]} {word}"
        else:
            out.append(word)
    return out


def _width(words: Sequence[str], size: float, bold: bool) -> float:
    return text_width_in(" ".join(words), size, bold)


def _greedy(widths: Sequence[float], space: float, limit: float) -> list[list[int]]:
    """Word indices to lines, each filled while the next word fits ``limit``."""
    lines: list[list[int]] = [[]]
    used = 0.0
    for i, w in enumerate(widths):
        extra = w if not lines[-1] else space + w
        if lines[-1] and used + extra > limit:
            lines.append([i])
            used = w
        else:
            lines[-1].append(i)
            used += extra
    return lines


def fill_to_width(text: str, width_in: float, size: float, bold: bool = False) -> list[str]:
    """``text`` filled line by line to ``width_in`` (titles, footnotes): as many words on
    each line as fit, as many lines as that needs."""
    words = text.split()
    if not words:
        return [""]
    widths = [text_width_in(w, size, bold) for w in words]
    lines = _greedy(widths, text_width_in(" ", size, bold), width_in)
    return [" ".join(words[i] for i in line) for line in lines]


def _even_lines(words: Sequence[str], width_in: float, size: float, bold: bool) -> list[str]:
    space = text_width_in(" ", size, bold)
    widths = [text_width_in(w, size, bold) for w in words]
    n = len(_greedy(widths, space, width_in))
    lo, hi = max(widths), width_in
    if lo < hi:
        for _ in range(30):  # the narrowest limit that still needs n lines: even lines
            mid = (lo + hi) / 2
            if len(_greedy(widths, space, mid)) <= n:
                hi = mid
            else:
                lo = mid
    limit = max(hi, max(widths))
    return [" ".join(words[i] for i in line) for line in _greedy(widths, space, limit)]


def _cut(lines: list[str], width_in: float, size: float, bold: bool, max_lines: int) -> list[str]:
    """``lines``, cut to ``max_lines`` with "…" at the end of the last."""
    if len(lines) <= max_lines:
        return lines
    lines = [*lines[: max_lines - 1], " ".join(lines[max_lines - 1 :])]
    last = lines[-1].split()
    while len(last) > 1 and text_width_in(" ".join(last) + " …", size, bold) > width_in:
        last.pop()
    lines[-1] = " ".join(last) + " …"
    return lines


def _row_bold(row: _Row) -> bool:
    return row.kind == "pooled"


def _column_widths(
    rows: Sequence[_Row], headers: tuple[str, ...], side: str, size: float
) -> list[float]:
    out = []
    for c, header in enumerate(headers):
        widths = [text_width_in(header, size, bold=True)]
        for r in rows:
            cells = getattr(r, side)
            if c < len(cells) and cells[c]:
                widths.append(text_width_in(cells[c], size, bold=_row_bold(r)))
        out.append(max(widths))
    return out


def _blocks(table: _Table, rows: Sequence[_Row]) -> tuple[list[float], list[float]]:
    size = table.fontsize
    return (
        _column_widths(rows, table.left_headers, "left", size),
        _column_widths(rows, table.right_headers, "right", size),
    )


def _numbers_in(left: Sequence[float], right: Sequence[float]) -> float:
    """Width of the number columns with their gaps (both sides), margins and plot gaps."""
    return (
        2 * MARGIN_IN
        + sum(COL_GAP_IN + w for w in left)
        + LEFT_GAP_IN
        + GAP_IN
        + sum(right)
        + COL_GAP_IN * max(0, len(right) - 1)
    )


def whole_plot(table: _Table) -> tuple[float, Columns]:
    """The label width and the columns of a whole plot's table, for its pages."""
    rows = _rows(table)
    return label_room_in(table, rows), columns(table)


def label_room_in(table: _Table, rows: Sequence[_Row]) -> float:
    """Width the labels of ``rows`` wrap to: the page width less the number columns and a
    plot of :data:`PLOT_WIDTH_IN` (and the indent, in a grouped table)."""
    left, right = _blocks(table, rows)
    indent = INDENT_IN if table.grouped else 0.0
    room = FIG_WIDTH_IN - _numbers_in(left, right) - PLOT_WIDTH_IN - indent
    return max(MIN_LABEL_IN, room)


@dataclass(frozen=True)
class Columns:
    """Where the table's cells go, in inches from the figure's left edge."""

    width: float
    label_x: float
    indent: float
    left_edges: tuple[float, ...]
    """Right edge of each left-hand number column."""
    plot: tuple[float, float]
    right_edges: tuple[float, ...]


def _rows(table: _Table) -> list[_Row]:
    return [r for sec in table.sections for r in sec.rows]


def columns(table: _Table) -> Columns:
    """The columns of ``table``: labels, left numbers, plot, right numbers (its
    ``layout`` when one is set)."""
    if isinstance(table.layout, Columns):
        return table.layout
    rows = _rows(table)
    size = table.fontsize
    left, right = _blocks(table, rows)
    indent = INDENT_IN if table.grouped else 0.0
    label_w = max(
        [
            text_width_in("Study", size, bold=True),
            *(
                indent + text_width_in(r.label, size, bold=_row_bold(r), italic=r.kind == "single")
                for r in rows
                if r.label.strip() and r.kind != "text"
            ),
        ]
    )
    plot_w = FIG_WIDTH_IN - _numbers_in(left, right) - label_w
    width = FIG_WIDTH_IN + max(0.0, MIN_PLOT_WIDTH_IN - plot_w)
    plot_w = max(plot_w, MIN_PLOT_WIDTH_IN)
    x = MARGIN_IN + label_w
    left_edges = []
    for w in left:
        x += COL_GAP_IN + w
        left_edges.append(x)
    x0 = x + LEFT_GAP_IN
    x1 = x0 + plot_w
    x = x1 + GAP_IN
    right_edges = []
    for c, w in enumerate(right):
        x += (COL_GAP_IN if c else 0.0) + w
        right_edges.append(x)
    return Columns(width, MARGIN_IN, indent, tuple(left_edges), (x0, x1), tuple(right_edges))


def draw_cells(
    table: _Table, ax: Axes, fig: Figure, cols: Columns, header_y: float, groups: dict[str, float]
) -> None:
    """Draw the header row, the group headers (``groups``: name → y) and every row's
    cells (at ``row.y``) as texts: x in inches from the figure's left edge, y in the
    axes' data coordinates (so the positions hold at any dpi)."""
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(fig.dpi_scale_trans, ax.transData)
    size = table.fontsize

    def put(
        x: float, y: float, text: str, ha: str, bold: bool = False, italic: bool = False
    ) -> None:
        if not text:
            return
        ax.text(
            x,
            y,
            text,
            transform=trans,
            ha=ha,
            va="center",
            fontsize=size,
            fontfamily=SANS_FONT,
            fontweight="bold" if bold else "normal",
            fontstyle="italic" if italic else "normal",
            clip_on=False,
        )

    put(cols.label_x, header_y, "Study", "left", bold=True)
    for header, x in zip(table.left_headers, cols.left_edges, strict=True):
        put(x, header_y, header, "right", bold=True)
    for header, x in zip(table.right_headers, cols.right_edges, strict=True):
        put(x, header_y, header, "right", bold=True)
    for name, y in groups.items():
        put(cols.label_x, y, name, "left", bold=True)
    for row in _rows(table):
        if math.isnan(row.y):
            continue
        bold = _row_bold(row)
        if row.kind == "text":
            put(cols.label_x + cols.indent, row.y, row.text, "left")
            continue
        put(cols.label_x + cols.indent, row.y, row.label, "left", bold, row.kind == "single")
        for cell, x in zip(row.left, cols.left_edges, strict=False):
            put(x, row.y, cell, "right", bold)
        for cell, x in zip(row.right, cols.right_edges, strict=False):
            put(x, row.y, cell, "right", bold)


__all__ = [
    "COL_GAP_IN",
    "INDENT_IN",
    "PLOT_WIDTH_IN",
    "Columns",
    "columns",
    "draw_cells",
    "fill_to_width",
    "label_room_in",
    "text_width_in",
    "whole_plot",
    "wrap_to_width",
]
