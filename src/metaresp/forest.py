"""Forest plots of pooled proportions, RevMan/``meta`` style, drawn through ``forestplot``.

The `forestplot` package (0.4.1) lays out the rows: one categorical y position per row,
group headers in their place, the per-study squares and whiskers. This module adds what a
meta-analysis plot needs and the package lacks: pooled diamonds, prediction-interval
bars, heterogeneity and subgroup-test lines, spacer rows, the table's cells, the x axis
in percent, the title and the footnote.

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

Table text: ``forestplot`` places the rows, the group headers, the squares and whiskers;
the cells are then drawn one text each (:mod:`metaresp._forest_cells`): widths measured
in DejaVu Sans, labels by their left edge, numbers and their headers by their right edge,
so a browser shows what the PNG shows. 8 pt on a 7 in figure; long labels wrap over up to
five even lines; group headers are drawn in full across their empty row; a plot taller
than a page is split into pages (:mod:`metaresp._forest_pages`) whose columns stand alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaresp._forest_cells import Columns, columns, draw_cells, fill_to_width, whole_plot
from metaresp._forest_pages import cumulative_pages, page_paths, split_pages
from metaresp._forest_render import RENDER_RC, _contained
from metaresp._forest_table import (
    FIG_WIDTH_IN,
    FONT_SIZE,
    MARGIN_IN,
    MIN_FONT_SIZE,
    NOT_POOLED_LABEL,
    ROW_HEIGHT_IN,
    SANS_FONT,
    SIZE_NOTE,
    _cumulative_table,
    _forest_table,
    _Row,
    _Table,
    _unique,
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
    "forest_pages",
    "format_heterogeneity",
    "format_subgroup_test",
    "outcome_axis_label",
    "save_cumulative",
    "save_forest",
]


# --------------------------------------------------------------------------- rendering


def _table_frame(table: _Table) -> tuple[Any, dict[str, _Row], dict[str, str]]:
    """The rows as ``forestplot`` takes them, the rows by their key, and the group
    headers by the (unique) name they were given to ``forestplot``."""
    import pandas as pd

    taken: set[str] = set()
    group_names: list[str] = []
    headers: dict[str, str] = {}
    if table.grouped:
        for sec in table.sections:
            key = _unique(sec.name, taken, set())
            group_names.append(key)
            headers[key] = sec.name
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
            if table.grouped:
                rec["group"] = group_names[s]
            records.append(rec)
            i += 1
    return pd.DataFrame.from_records(records), by_key, headers


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
    bottom = 0.46 + FOOT_LINE_IN * foot_lines + (0.06 if foot_lines else 0.0)
    return top + ROW_HEIGHT_IN * _n_rows(table) + bottom


FOOT_LINE_IN = 0.145
"""Height of a footnote line: 8 pt at about 1.3 line spacing."""
TITLE_LINE_IN = 0.17
"""Height of a second (third, ...) title line: 8.5 pt bold at 1.25 line spacing, plus air."""


def _title_lines(table: _Table) -> list[str]:
    """The title (bold, 1.5 pt above the table text) filled to the page width."""
    if not table.title:
        return []
    width = FIG_WIDTH_IN - 2 * MARGIN_IN
    return fill_to_width(table.title, width, table.fontsize + 1.5, bold=True)


def _top(table: _Table) -> float:
    """Inches above the column headers: the title's lines, or a small margin."""
    lines = len(_title_lines(table))
    return 0.38 + TITLE_LINE_IN * (lines - 1) if lines else 0.12


def _wrap(text: str, width_in: float = FIG_WIDTH_IN - 2 * MARGIN_IN) -> list[str]:
    """A footnote filled to ``width_in`` (footnotes are set at the table's 8 pt)."""
    return fill_to_width(text, width_in, FONT_SIZE)


def _draw_table(table: _Table, ax: Axes | None) -> Axes:
    from matplotlib.figure import Figure

    own_figure = ax is None
    fig = _new_figure(FIG_WIDTH_IN, _height(table)) if ax is None else ax.get_figure(root=True)
    assert isinstance(fig, Figure)
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure(): give it an Agg canvas
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    frame, by_key, headers = _table_frame(table)
    if ax is None:
        ax = fig.add_axes((0.4, 0.1, 0.3, 0.8))
    with _contained(fig) as fp:
        # forestplot places the rows, the group headers, the squares and the whiskers;
        # the table's text is drawn afterwards, cell by cell (_forest_cells)
        prepared, ax = fp.forestplot(
            frame,
            estimate="estimate",
            ll="low",
            hl="high",
            varlabel="label",
            groupvar="group" if table.grouped else None,
            form_ci_report=False,
            ci_report=False,
            flush=False,
            variable_header="Study",
            ax=ax,
            return_df=True,
            xticks=[0, 20, 40, 60, 80, 100],
            xlim=(0, 100),
            xline=None,
            fontfamily=SANS_FONT,
            fontsize=table.fontsize,
            grouplab_size=table.fontsize,
            xtick_size=table.fontsize,
            markersize="msize",
            marker="s",
            markercolor="0.45",
            markeralpha=1.0,
            linecolor="black",
            lw=0.8,
        )
    _finish(table, ax, fig, prepared, by_key, own_figure)
    ticks = {lab.get_text(): float(lab.get_position()[1]) for lab in ax.get_yticklabels()}
    header_y = max(ticks.values(), default=float(len(prepared) - 1))
    groups = {full: ticks[key] for key, full in headers.items() if key in ticks}
    for t in list(ax.texts):
        t.remove()
    ax.tick_params(axis="y", which="both", left=False, labelleft=False, labelright=False)
    cols = columns(table)
    if not own_figure:
        cols = _fitted_to(cols, ax, fig)
    draw_cells(table, ax, fig, cols, header_y, groups)
    return ax


def _fitted_to(cols: Columns, ax: Axes, fig: Figure) -> Columns:
    """``cols`` moved so that the plot column is where the caller's axes are."""
    box = ax.get_position()
    x0, x1 = box.x0 * fig.get_figwidth(), box.x1 * fig.get_figwidth()
    shift_left, shift_right = x0 - cols.plot[0], x1 - cols.plot[1]
    return Columns(
        width=fig.get_figwidth(),
        label_x=cols.label_x + shift_left,
        indent=cols.indent,
        left_edges=tuple(x + shift_left for x in cols.left_edges),
        plot=(x0, x1),
        right_edges=tuple(x + shift_right for x in cols.right_edges),
    )


def _finish(
    table: _Table,
    ax: Axes,
    fig: Figure,
    prepared: Any,
    by_key: dict[str, _Row],
    own_figure: bool,
) -> None:
    from matplotlib.patches import Polygon, Rectangle

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


def _is_overall(row: _Row, table: _Table) -> bool:
    return table.reference is not None and row.pooled is not None and row is _last_pooled(table)


def _last_pooled(table: _Table) -> _Row | None:
    pooled = [r for sec in table.sections for r in sec.rows if r.kind == "pooled"]
    return pooled[-1] if pooled else None


def _layout(table: _Table, ax: Axes, fig: Figure) -> None:
    """Size the figure and place the plot between the table's columns
    (:func:`metaresp._forest_cells.columns`), with the header rule, title and footnotes.
    Every position is in inches, so the layout does not depend on dpi."""
    px_per_in = fig.dpi
    cols = columns(table)
    width = cols.width
    height = _height(table)
    fig.set_size_inches(width, height)
    top = _top(table)
    rows_h = ROW_HEIGHT_IN * _n_rows(table)
    bottom = height - top - rows_h
    x0, x1 = cols.plot
    ax.set_position((x0 / width, bottom / height, (x1 - x0) / width, rows_h / height))
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
            (0.06 + FOOT_LINE_IN * i) / height,
            line,
            ha="left",
            va="bottom",
            fontsize=max(MIN_FONT_SIZE, table.fontsize),
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
    with matplotlib.rc_context(RENDER_RC):
        with atomic_path(Path(png)) as tmp, tmp.open("wb") as fh:
            _write_png(fig, fh, dpi)
        if svg is not None:
            # no timestamp in the SVG, so reruns give identical files
            with atomic_path(Path(svg)) as tmp, tmp.open("wb") as fh:
                fig.savefig(fh, format="svg", dpi=dpi, facecolor="white", metadata={"Date": None})


def _write_png(fig: Figure, fh: Any, dpi: int) -> None:
    """Draw ``fig`` at ``dpi`` and write it as PNG: greyscale when every pixel is grey
    (most forest plots; a third of the RGBA encoding time and size), else RGB. The
    figure is opaque white, so the alpha channel that ``savefig`` writes carries nothing.
    A fast zlib level: these are figures, not archives."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    old_dpi = fig.dpi
    fig.set_dpi(dpi)
    try:
        canvas = FigureCanvasAgg(fig)
        canvas.draw()  # type: ignore[no-untyped-call]
        rgba = np.asarray(canvas.buffer_rgba())  # type: ignore[no-untyped-call]
        red, green, blue = rgba[..., 0], rgba[..., 1], rgba[..., 2]
        if np.array_equal(red, green) and np.array_equal(green, blue):
            image = Image.fromarray(np.ascontiguousarray(red), "L")
        else:
            image = Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB")
        image.save(fh, format="png", compress_level=1, dpi=(dpi, dpi))
    finally:
        fig.set_dpi(old_dpi)


def _save_axes(ax: Axes, png: Path, svg: Path | None, dpi: int) -> None:
    """Save the figure of ``ax`` (see :func:`_save`), then free it."""
    fig = ax.get_figure()
    assert fig is not None
    try:
        _save(fig, Path(png), None if svg is None else Path(svg), dpi)  # type: ignore[arg-type]
    finally:
        fig.clear()


def forest_pages(data: ForestData) -> list[ForestData]:
    """``data`` as pages no taller than a page (:func:`metaresp._forest_pages.split_pages`)."""

    return split_pages(data, _height)


def save_forest(data: ForestData, png: Path, svg: Path | None = None, dpi: int = 300) -> list[Path]:
    """Draw ``data`` and write it as PNG (``dpi``) and, when ``svg`` is given, SVG; a plot
    taller than a page is split (:func:`forest_pages`) into ``NAME.png``,
    ``NAME-p2.png``, ... (and the same SVGs). Returns the PNG paths, in page order.

    Each file is written to a temporary file in the same folder and moved into place
    with ``os.replace``, so a reader never sees a half-written figure.
    """
    pages = forest_pages(data)
    room, layout = whole_plot(_forest_table(data))
    paths = page_paths(Path(png), len(pages))
    for i, (page, (page_png, page_svg)) in enumerate(zip(pages, paths, strict=True)):
        table = _forest_table(page, data, room)
        table.layout = layout
        table.footnotes = table.footnotes if i == len(pages) - 1 else ()
        target = None if svg is None else (Path(svg) if i == 0 else page_svg)
        _save_axes(_draw_table(table, None), page_png, target, dpi)
    return [p for p, _ in paths]


def save_cumulative(
    rows: Sequence[CumulativeRow | tuple[str, int, float, float, float]],
    png: Path,
    svg: Path | None = None,
    dpi: int = 300,
    *,
    title: str = "",
    outcome: str = "ORR",
    model_note: str = "",
) -> list[Path]:
    """Draw a cumulative forest plot (:func:`draw_cumulative`) and write PNG (and SVG);
    a plot taller than a page is split into pages of whole steps, named as
    :func:`save_forest` names them, with the columns of the whole plot. Returns the PNG
    paths, in page order."""
    table = _cumulative_table(rows, title, outcome, model_note)
    layout = columns(table)
    pages = cumulative_pages(table, _height)
    paths = page_paths(Path(png), len(pages))
    for i, (page, (page_png, page_svg)) in enumerate(zip(pages, paths, strict=True)):
        page.layout = layout
        target = None if svg is None else (Path(svg) if i == 0 else page_svg)
        _save_axes(_draw_table(page, None), page_png, target, dpi)
    return [p for p, _ in paths]
