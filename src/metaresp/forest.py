"""Forest plots of pooled proportions, RevMan/``meta`` style, drawn through ``forestplot``.

The `forestplot` package (0.4.1) lays out the table: one categorical y position per
row, the label and left annotation columns as monospace y tick labels, the right
annotation columns as text, the per-study squares and whiskers. This module adds what a
meta-analysis plot needs and the package lacks: pooled diamonds, prediction-interval
bars, heterogeneity and subgroup-test lines, spacer rows, the x axis in percent, the
title and the footnote.

Containment of the package's side effects (importing it calls
``warnings.filterwarnings("ignore")``, ``np.seterr(all="ignore")`` and rewrites
``rcParams["font.monospace"]``; drawing measures text on ``pyplot.gcf()``): every import
and call happens inside :func:`_contained`, which restores the warning filters, the NumPy
error state and ``matplotlib.rcParams`` on exit and points the package's ``pyplot``
handle at a shim whose ``gcf()`` is the figure being drawn, so no pyplot figure is ever
created. Figures made here are plain :class:`matplotlib.figure.Figure` objects with an
Agg canvas. Labels are made unique (identical labels would collapse onto one row) by
appending no-break spaces, which render as blanks.

Layout follows ``forest.meta`` of R's ``meta`` (Schwarzer): columns Study, Events,
Total, the plot, Rate (%), the CI at the plot's level, Weight; a diamond per subgroup; a
"Prediction interval" row (Higgins, Thompson & Spiegelhalter 2009); "Heterogeneity:
I² = …, τ² = …, Cochran's Q = …, df = …, p = …" (a Wald Q for the GLMM); "Test for
subgroup differences: Q = …, df = …, p = …". Every number is written by
:mod:`metaresp.formatting`. Without study weights (the GLMM) the squares show study size
and the footnote says so.

SVG: ``forestplot`` aligns columns by padding one string per row with spaces, which SVG
viewers collapse. After drawing, :func:`_split_columns` replaces each padded string by one
text per cell, anchored at its column's edge, so a browser shows what the PNG shows.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaresp._forest_render import RENDER_RC, _contained, _split_columns
from metaresp._forest_table import (
    _NBSP,
    FIG_WIDTH_IN,
    FONT_SIZE,
    GAP_IN,
    LEFT_GAP_IN,
    MARGIN_IN,
    MIN_FONT_SIZE,
    MIN_PLOT_WIDTH_IN,
    MONO_ADVANCE_EM,
    MONO_FONT,
    NOT_POOLED_LABEL,
    ROW_HEIGHT_IN,
    SANS_FONT,
    SIZE_NOTE,
    TEXT_SLACK,
    _cumulative_table,
    _forest_table,
    _Row,
    _Table,
    _validate,
    format_heterogeneity,
    format_subgroup_test,
    outcome_axis_label,
)
from metaresp.forestdata import CumulativeRow, ForestData

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FIG_WIDTH_IN",
    "MIN_FONT_SIZE",
    "NOT_POOLED_LABEL",
    "ROW_HEIGHT_IN",
    "SIZE_NOTE",
    "draw_cumulative",
    "draw_forest",
    "format_heterogeneity",
    "format_subgroup_test",
    "outcome_axis_label",
    "save_cumulative",
    "save_forest",
]


# --------------------------------------------------------------------------- rendering


def _unique(name: str, taken: set[str], groups: set[str]) -> str:
    """``name`` made different from every label already taken.

    Identical labels would share one categorical y position, so duplicates get trailing
    no-break spaces (blank when drawn). ``forestplot`` tells group headers from rows by
    comparing lower-cased, stripped text, so a row whose text equals a group name gets a
    visible " (row)" suffix instead.
    """
    candidate = " ".join(name.split())
    if candidate.casefold() in groups:
        candidate += " (row)"
    while candidate.casefold() in taken:
        candidate += _NBSP
    taken.add(candidate.casefold())
    return candidate


def _rjust_columns(rows: Sequence[_Row], headers: tuple[str, ...], side: str) -> list[list[str]]:
    """Right-justify each column to its widest cell (numbers align on the right)."""
    cells = [list(getattr(r, side)) for r in rows]
    for c, header in enumerate(headers):
        width = max([len(header), *(len(cs[c]) for cs in cells)])
        for cs in cells:
            cs[c] = cs[c].rjust(width)
    return cells


def _table_frame(table: _Table) -> tuple[Any, dict[str, _Row]]:
    import pandas as pd

    rows = [r for sec in table.sections for r in sec.rows]
    left = _rjust_columns(rows, table.left_headers, "left")
    right = _rjust_columns(rows, table.right_headers, "right")
    taken: set[str] = set()
    group_names: list[str] = []
    if table.grouped:
        group_names = [_unique(sec.name, taken, set()) for sec in table.sections]
    groups = {g.strip().casefold() for g in group_names}
    records: list[dict[str, Any]] = []
    by_key: dict[str, _Row] = {}
    i = 0
    for s, sec in enumerate(table.sections):
        for r in sec.rows:
            key = _unique(r.label, taken, groups)
            by_key[str(i)] = r
            rec: dict[str, Any] = {
                "label": key,
                "row_id": float(i),
                "estimate": r.estimate,
                "low": r.low if r.kind in ("study", "cumulative") else math.nan,
                "high": r.high if r.kind in ("study", "cumulative") else math.nan,
                "msize": r.marker_area,
            }
            for c in range(len(table.left_headers)):
                rec[f"l{c}"] = left[i][c]
            for c in range(len(table.right_headers)):
                rec[f"r{c}"] = right[i][c]
            if table.grouped:
                rec["group"] = group_names[s]
            records.append(rec)
            i += 1
    return pd.DataFrame.from_records(records), by_key


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _n_rows(table: _Table) -> int:
    n = sum(len(sec.rows) for sec in table.sections) + 1  # + column headers
    return n + (len(table.sections) if table.grouped else 0)


def _height(table: _Table) -> float:
    top = _top(table)
    foot_lines = sum(len(_wrap(f)) for f in table.footnotes)
    bottom = 0.46 + 0.13 * foot_lines + (0.06 if foot_lines else 0.0)
    return top + ROW_HEIGHT_IN * _n_rows(table) + bottom


TITLE_LINE_IN = 0.17
"""Height of a second (third, ...) title line: 8.5 pt bold at 1.25 line spacing, plus air."""


def _title_lines(table: _Table) -> list[str]:
    """The title wrapped to the page width (bold DejaVu Sans averages about 0.63 em)."""
    if not table.title:
        return []
    size = table.fontsize + 1.5
    chars = max(20, int((FIG_WIDTH_IN - 2 * MARGIN_IN) * 72 / (0.63 * size)))
    return textwrap.wrap(table.title, chars) or [table.title]


def _top(table: _Table) -> float:
    """Inches above the column headers: the title's lines, or a small margin."""
    lines = len(_title_lines(table))
    return 0.38 + TITLE_LINE_IN * (lines - 1) if lines else 0.12


def _wrap(text: str, width_in: float = FIG_WIDTH_IN - 2 * MARGIN_IN) -> list[str]:
    # DejaVu Sans averages about 0.55 em per character.
    chars = max(20, int(width_in * 72 / (0.58 * (FONT_SIZE - 0.5))))
    return textwrap.wrap(text, chars) or [""]


def _fit_font(table: _Table) -> None:
    """Largest font size (≤ FONT_SIZE, ≥ MIN_FONT_SIZE) at which the table fits 7 in.

    The table is monospace, so its width is characters × 0.602 em (DejaVu Sans Mono).
    """
    rows = [r for sec in table.sections for r in sec.rows]
    indent = 2 if table.grouped else 0
    names = [len(sec.name) for sec in table.sections] if table.grouped else []
    label = max([len("Study"), *names, *(len(r.label) + indent for r in rows)])

    def width(cells: tuple[str, ...], c: int, header: str) -> int:
        return max(len(header), len(cells[c]) if c < len(cells) else 0)

    left = label + sum(
        2 + max(width(r.left, c, h) for r in rows) for c, h in enumerate(table.left_headers)
    )
    right = sum(
        max(width(r.right, c, h) for r in rows) for c, h in enumerate(table.right_headers)
    ) + 2 * (len(table.right_headers) - 1)
    room = FIG_WIDTH_IN - 2 * MARGIN_IN - GAP_IN - LEFT_GAP_IN - MIN_PLOT_WIDTH_IN
    size = room * 72.0 / (MONO_ADVANCE_EM * TEXT_SLACK * (left + right) + 1e-9)
    table.fontsize = max(MIN_FONT_SIZE, min(FONT_SIZE, math.floor(size * 4) / 4))


def _draw_table(table: _Table, ax: Axes | None) -> Axes:
    from matplotlib.figure import Figure

    own_figure = ax is None
    _fit_font(table)
    fig = _new_figure(FIG_WIDTH_IN, _height(table)) if ax is None else ax.get_figure(root=True)
    assert isinstance(fig, Figure)
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure(): give it an Agg canvas
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    frame, by_key = _table_frame(table)
    if ax is None:
        ax = fig.add_axes((0.4, 0.1, 0.3, 0.8))
    left_cols = [f"l{c}" for c in range(len(table.left_headers))]
    # Headers right-justified like their numbers (forestplot left-justifies them).
    headers_left = [
        h.rjust(int(frame[c].str.len().max()))
        for c, h in zip(left_cols, table.left_headers, strict=True)
    ]
    right_cols = [f"r{c}" for c in range(len(table.right_headers))]
    headers_right = [
        h.rjust(int(frame[c].str.len().max()))
        for c, h in zip(right_cols, table.right_headers, strict=True)
    ]
    with _contained(fig) as fp:
        prepared, ax = fp.forestplot(
            frame,
            estimate="estimate",
            ll="low",
            hl="high",
            varlabel="label",
            groupvar="group" if table.grouped else None,
            annote=left_cols,
            annoteheaders=headers_left,
            rightannote=right_cols,
            right_annoteheaders=headers_right,
            variable_header="Study",
            ax=ax,
            return_df=True,
            xticks=[0, 20, 40, 60, 80, 100],
            xlim=(0, 100),
            xline=None,
            fontfamily=MONO_FONT,
            fontsize=table.fontsize,
            grouplab_size=table.fontsize,
            xtick_size=table.fontsize,
            markersize="msize",
            marker="s",
            markercolor="0.45",
            markeralpha=1.0,
            linecolor="black",
            lw=0.8,
            col_spacing=2,
        )
    _finish(table, ax, fig, prepared, by_key, own_figure)
    _split_columns(ax, fig)
    return ax


def _finish(
    table: _Table,
    ax: Axes,
    fig: Figure,
    prepared: Any,
    by_key: dict[str, _Row],
    own_figure: bool,
) -> None:
    from matplotlib.patches import Polygon, Rectangle
    from matplotlib.transforms import blended_transform_factory

    n = len(prepared)
    for _, rec in prepared.iterrows():
        if math.isfinite(rec["row_id"]):
            row = by_key[str(int(rec["row_id"]))]
            row.y = float(ax.yaxis.convert_units(rec["yticklabel"]))  # type: ignore[no-untyped-call]
    ax.set_ylim(-0.5, n - 0.5)
    ax.set_xlim(0, 100)
    ax.set_xlabel(table.xlabel, fontsize=table.fontsize, fontfamily=SANS_FONT, labelpad=3)
    ax.tick_params(axis="x", labelsize=table.fontsize, length=2.5, width=0.6, pad=2)
    ax.spines["bottom"].set_linewidth(0.6)
    for lab in ax.get_yticklabels():
        lab.set_fontsize(table.fontsize)
    # Row styling: pooled rows bold (as in meta), the not-pooled note italic.
    ticks = ax.get_yticklabels()
    for row in by_key.values():
        if math.isnan(row.y):
            continue
        tick = ticks[round(row.y)]
        if row.kind == "pooled":
            tick.set_fontweight("bold")
        elif row.kind == "single":
            tick.set_fontstyle("italic")
    # Right-hand texts written by forestplot: same size, vertically on their rows.
    for t in ax.texts:
        t.set_fontsize(table.fontsize)

    height = 0.32 if n < 25 else 0.30
    for row in by_key.values():
        if row.kind == "pooled" and row.pooled is not None:
            colour = "0.2" if _is_overall(row, table) else "0.55"
            ax.add_patch(
                Polygon(
                    [
                        (row.low, row.y),
                        (row.estimate, row.y + height),
                        (row.high, row.y),
                        (row.estimate, row.y - height),
                    ],
                    closed=True,
                    facecolor=colour,
                    edgecolor="black",
                    linewidth=0.6,
                    zorder=3,
                )
            )
        elif row.kind == "pi":
            ax.add_patch(
                Rectangle(
                    (row.low, row.y - 0.09),
                    row.high - row.low,
                    0.18,
                    facecolor="#c0392b",
                    edgecolor="none",
                    zorder=3,
                )
            )
    for artist in [*ax.collections, *ax.lines]:
        artist.set_clip_on(False)  # squares and whiskers at 0% or 100% stay whole
    if table.reference is not None:  # dotted line at the overall estimate, under the header
        ax.vlines(
            table.reference,
            -0.5,
            n - 1.5,
            colors="0.45",
            linewidth=0.6,
            linestyles=(0, (2, 2)),
            zorder=0,
        )

    if own_figure:
        _layout(table, ax, fig)
    # Text rows (heterogeneity, subgroup test) start at the label column's left edge.
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    x0 = min(
        (lab.get_window_extent(renderer).x0 for lab in ax.get_yticklabels() if lab.get_text()),
        default=ax.get_window_extent(renderer).x0,
    )
    indent = _char_width_px(fig, table.fontsize) * 2
    xfig = (x0 + indent) / (fig.get_figwidth() * fig.dpi)
    trans = blended_transform_factory(fig.transFigure, ax.transData)
    for row in by_key.values():
        if row.kind == "text" and row.text:
            ax.text(
                xfig,
                row.y,
                row.text,
                transform=trans,
                fontsize=table.fontsize,
                fontfamily=SANS_FONT,
                va="center",
                ha="left",
                clip_on=False,
            )


def _is_overall(row: _Row, table: _Table) -> bool:
    return table.reference is not None and row.pooled is not None and row is _last_pooled(table)


def _last_pooled(table: _Table) -> _Row | None:
    pooled = [r for sec in table.sections for r in sec.rows if r.kind == "pooled"]
    return pooled[-1] if pooled else None


def _char_width_px(fig: Figure, fontsize: float) -> float:
    return 0.6 * fontsize * fig.dpi / 72.0  # DejaVu Sans Mono advance is 0.602 em


def _layout(table: _Table, ax: Axes, fig: Figure) -> None:
    """Place the axes between the label columns and the right-hand columns.

    Widths are measured on this figure's renderer, so the gaps do not depend on dpi
    (``forestplot`` uses a pixel width as a pad in points). The figure widens beyond
    :data:`FIG_WIDTH_IN` only when the plot column would be narrower than
    :data:`MIN_PLOT_WIDTH_IN`.
    """
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    px_per_in = fig.dpi
    # Widths from the font's true advance, not from pixels: hinting rounds advances to
    # whole pixels, so a width measured at 100 dpi is wrong at 300 dpi (and in SVG).
    advance = MONO_ADVANCE_EM * table.fontsize / 72.0 * TEXT_SLACK
    labels = [lab for lab in ax.get_yticklabels() if lab.get_text().strip()]
    left_w = max(
        max(len(lab.get_text().rstrip()) * advance for lab in labels),
        max(lab.get_window_extent(renderer).width for lab in labels) / px_per_in * TEXT_SLACK,
    )
    right_w = max(
        (len(t.get_text().rstrip()) * advance for t in ax.texts if t.get_text().strip()),
        default=0.0,
    )
    width = max(
        FIG_WIDTH_IN, 2 * MARGIN_IN + left_w + LEFT_GAP_IN + MIN_PLOT_WIDTH_IN + right_w + GAP_IN
    )
    plot_w = width - 2 * MARGIN_IN - left_w - right_w - LEFT_GAP_IN - GAP_IN
    height = _height(table)
    fig.set_size_inches(width, height)
    top = _top(table)
    rows_h = ROW_HEIGHT_IN * _n_rows(table)
    bottom = height - top - rows_h
    left = MARGIN_IN + left_w + LEFT_GAP_IN
    ax.set_position((left / width, bottom / height, plot_w / width, rows_h / height))
    # Labels are drawn right of their anchor (ha="left"); the pad is in points.
    ax.yaxis.set_tick_params(pad=(left_w + LEFT_GAP_IN) * 72.0)
    # Right-hand columns: forestplot put them at x = 1.05 * xmax in data units.
    for t in ax.texts:
        t.set_x(100.0 * (1 + GAP_IN / plot_w))
    # Rule under the column headers, across the table (as in RevMan).
    header_bottom = ax.get_ylim()[1] - 1.0
    y_fig = ax.transData.transform((0.0, header_bottom))[1] / (height * px_per_in)
    fig.add_artist(
        _hline(MARGIN_IN / width, 1 - MARGIN_IN / width, y_fig, linewidth=0.5, color="0.3")
    )
    if table.title:
        fig.text(
            MARGIN_IN / width,
            1 - 0.1 / height,
            "\n".join(_title_lines(table)),
            ha="left",
            va="top",
            linespacing=1.25,
            fontsize=table.fontsize + 1.5,
            fontweight="bold",
            fontfamily=SANS_FONT,
        )
    lines = [line for f in table.footnotes for line in _wrap(f, width - 2 * MARGIN_IN)]
    for i, line in enumerate(reversed(lines)):
        fig.text(
            MARGIN_IN / width,
            (0.06 + 0.13 * i) / height,
            line,
            ha="left",
            va="bottom",
            fontsize=max(MIN_FONT_SIZE, table.fontsize - 0.5),
            fontfamily=SANS_FONT,
            color="0.25",
        )


def _hline(x0: float, x1: float, y: float, **kw: Any) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([x0, x1], [y, y], **kw)


# --------------------------------------------------------------------------- public API


def draw_forest(data: ForestData, ax: Axes | None = None) -> Axes:
    """Draw a forest plot of ``data`` and return its axes.

    With ``ax=None`` a new :class:`~matplotlib.figure.Figure` (Agg canvas, not registered
    with pyplot, so nothing to close) is made, 7 in wide and as tall as its rows need,
    and laid out completely. With an ``ax`` of your own the table is drawn on it and
    extends left and right of it; the figure size and axes position are yours to set.

    Rows: per subgroup a bold header, the studies (square area proportional to weight,
    exact CI whiskers), the "Random effects model" diamond, the prediction-interval bar
    and the heterogeneity line; then the overall diamond, its PI and heterogeneity, and
    the test for subgroup differences when given. Raises ``ValueError`` naming the field
    when a proportion is outside 0..1 or a CI does not contain its estimate.
    """
    _validate(data)
    return _draw_table(_forest_table(data), ax)


def draw_cumulative(
    rows: Sequence[CumulativeRow | tuple[str, int, float, float, float]],
    *,
    title: str = "",
    outcome: str = "ORR",
    model_note: str = "",
    ax: Axes | None = None,
) -> Axes:
    """Cumulative forest plot: the pooled estimate and CI after each study, in the given order.

    ``rows`` are :class:`~metaresp.forestdata.CumulativeRow` or plain
    ``(label, k, proportion, ci_low, ci_high)`` tuples, proportions on the 0-1 scale,
    already sorted by publication date (Lau et al. 1992's cumulative meta-analysis; R:
    ``metafor::cumul``, ``meta::metacum``). Figure handling as in :func:`draw_forest`.
    """
    return _draw_table(
        _cumulative_table(rows, title, outcome, model_note), None if ax is None else ax
    )


def _save(fig: Figure, png: Path, svg: Path | None, dpi: int) -> None:
    import matplotlib

    from metaresp.files import atomic_path

    if dpi < 50:
        raise ValueError(f"dpi: {dpi} is too low; use 300 for print (at least 50)")
    targets: list[tuple[Path, str]] = [(Path(png), "png")]
    if svg is not None:
        targets.append((Path(svg), "svg"))
    for path, kind in targets:
        # no timestamp in the SVG, so reruns give identical files
        # PNG: a fast zlib level (these are figures, not archives)
        extra: dict[str, Any] = (
            {"metadata": {"Date": None}} if kind == "svg" else {"pil_kwargs": {"compress_level": 1}}
        )
        with atomic_path(path) as tmp, tmp.open("wb") as fh, matplotlib.rc_context(RENDER_RC):
            fig.savefig(fh, format=kind, dpi=dpi, facecolor="white", **extra)


def _save_axes(ax: Axes, png: Path, svg: Path | None, dpi: int) -> None:
    """Save the figure of ``ax`` (see :func:`_save`), then free it."""
    fig = ax.get_figure()
    assert fig is not None
    try:
        _save(fig, Path(png), None if svg is None else Path(svg), dpi)  # type: ignore[arg-type]
    finally:
        fig.clear()


def save_forest(data: ForestData, png: Path, svg: Path | None = None, dpi: int = 300) -> None:
    """Draw ``data`` and write it as PNG (``dpi``) and, when ``svg`` is given, SVG.

    Each file is written to a temporary file in the same folder and moved into place
    with ``os.replace``, so a reader never sees a half-written figure.
    """
    _save_axes(draw_forest(data), png, svg, dpi)


def save_cumulative(
    rows: Sequence[CumulativeRow | tuple[str, int, float, float, float]],
    png: Path,
    svg: Path | None = None,
    dpi: int = 300,
    *,
    title: str = "",
    outcome: str = "ORR",
    model_note: str = "",
) -> None:
    """Draw a cumulative forest plot (:func:`draw_cumulative`) and write PNG (and SVG)."""
    _save_axes(
        draw_cumulative(rows, title=title, outcome=outcome, model_note=model_note), png, svg, dpi
    )
