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
import re
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal

from metaresp import formatting as fmt
from metaresp.estimates import heterogeneity_text
from metaresp.forestdata import CumulativeRow, ForestData, PooledRow, StudyRow, Subgroup

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "draw_cumulative",
    "draw_forest",
    "format_heterogeneity",
    "format_subgroup_test",
    "outcome_axis_label",
    "save_cumulative",
    "save_forest",
]

FIG_WIDTH_IN = 7.0
"""A journal's full page width (two-column journals: about 7 in / 178 mm)."""
FONT_SIZE = 7.0
"""Points; the smallest size most journals accept for figure text is 6-7 pt."""
ROW_HEIGHT_IN = 0.19
MONO_FONT = "DejaVu Sans Mono"
"""Bundled with matplotlib, so always present; the table aligns columns with spaces."""
SANS_FONT = "DejaVu Sans"
MIN_FONT_SIZE = 6.0
MIN_PLOT_WIDTH_IN = 1.6
"""Narrowest plot column before the figure is widened beyond FIG_WIDTH_IN."""
MARGIN_IN = 0.08
GAP_IN = 0.10
LEFT_GAP_IN = 0.20
"""Room for half a square (9 pt) or a diamond tip at 0% between the table and the plot."""
MONO_ADVANCE_EM = 0.602
"""Advance width of every DejaVu Sans Mono glyph, in em."""
TEXT_SLACK = 1.02

RATE_HEADER = "Rate (%)"
"""Header over the point estimates, which are printed in percent."""
POOLED_LABEL = "Random effects model"
PI_LABEL = "Prediction interval"
NOT_POOLED_LABEL = "One study: shown, not pooled"
_NBSP = "\u00a0"

_OUTCOME_AXIS = {
    "ORR": "Overall response rate (%)",
    "VGPR+": "Very good partial response or better (%)",
    "CR+": "Complete response or better (%)",
}

RowKind = Literal["study", "pooled", "single", "pi", "text", "blank", "cumulative"]


# --------------------------------------------------------------------------- formatting


def outcome_axis_label(outcome: str) -> str:
    """The x-axis title for an outcome code (``ORR``, ``VGPR+``, ``CR+``)."""
    return _OUTCOME_AXIS.get(outcome, f"{outcome} (%)")


def format_heterogeneity(row: PooledRow) -> str:
    """``Heterogeneity: I² = 45.0%, τ² = 0.2100, Cochran's Q = 7.30, df = 4, p = 0.12``.

    I² in percent and τ² on the model's (logit) scale, as ``meta`` prints them
    (:func:`metaresp.estimates.heterogeneity_text`); "" when nothing is given.
    """
    text = heterogeneity_text(row)
    return f"Heterogeneity: {text}" if text else ""


def format_subgroup_test(q: float, df: int, pvalue: float) -> str:
    """``Test for subgroup differences: Q = 5.21, df = 3, p = 0.16``."""
    return f"Test for subgroup differences: {fmt.subgroup_test(q, df, pvalue)}"


# --------------------------------------------------------------------------- containment


RENDER_RC: Any = {  # rcParams keys (typed as Any: matplotlib types them as literals)
    # Hinting snaps glyphs to the pixel grid: it matters on screens at 100 dpi, not in
    # 300 dpi figures, and turning it off makes rendering about a fifth faster.
    "text.hinting": "no_hinting",
    # SVG text stays text: searchable, editable, and faster to write than glyph outlines.
    "svg.fonttype": "none",
}


@contextmanager
def _contained(fig: Figure | None = None) -> Iterator[Any]:
    """Import and run ``forestplot`` without letting it change process-wide state.

    Restores on exit: ``warnings.filters`` (it installs a blanket "ignore"), the NumPy
    floating-point error state (it calls ``np.seterr(all="ignore")``) and
    ``matplotlib.rcParams`` (it rewrites ``font.monospace``). Warnings raised by the
    package's own code are dropped (our input is validated before it gets there). While
    inside, ``forestplot.graph_utils.plt`` is a shim whose ``gcf()`` returns ``fig``, so
    text is measured on the figure being drawn and pyplot creates no figure.
    Not thread-safe (neither is the package).
    """
    import matplotlib
    import numpy as np
    from matplotlib.category import UnitData

    with warnings.catch_warnings(), np.errstate(), matplotlib.rc_context(RENDER_RC):
        import forestplot
        import forestplot.graph_utils as graph_utils
        from matplotlib.ticker import MaxNLocator

        warnings.filterwarnings("ignore", module=r"forestplot(\.|$)")
        original_plt = graph_utils.plt
        # The categorical y axis parses every row label with dateutil only to warn that a
        # label looks like a number or a date; our labels are text by construction, and
        # that parsing was a tenth of the drawing time.
        original_check = UnitData.__dict__["_str_is_convertible"]
        UnitData._str_is_convertible = staticmethod(  # type: ignore[method-assign]
            lambda val: False
        )
        if fig is not None:
            graph_utils.plt = SimpleNamespace(gcf=lambda: fig, MaxNLocator=MaxNLocator)
        try:
            yield forestplot
        finally:
            graph_utils.plt = original_plt
            UnitData._str_is_convertible = original_check  # type: ignore[method-assign]


# --------------------------------------------------------------------------- table model


@dataclass
class _Row:
    kind: RowKind
    label: str
    estimate: float = math.nan  # percent
    low: float = math.nan
    high: float = math.nan
    left: tuple[str, ...] = ()
    right: tuple[str, ...] = ()
    marker_area: float = math.nan
    pooled: PooledRow | None = None
    text: str = ""
    y: float = math.nan


@dataclass
class _Section:
    name: str
    rows: list[_Row]


@dataclass
class _Table:
    title: str
    xlabel: str
    left_headers: tuple[str, ...]
    right_headers: tuple[str, ...]
    sections: list[_Section]
    footnotes: tuple[str, ...]
    grouped: bool
    reference: float | None = None  # percent; dotted vertical line
    fontsize: float = FONT_SIZE


def _check_unit(value: float, where: str, problems: list[str]) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0):
        problems.append(f"{where}: {value!r} is not a proportion in 0..1")


def _check_interval(est: float, lo: float, hi: float, where: str, problems: list[str]) -> None:
    before = len(problems)
    _check_unit(est, f"{where}.proportion", problems)
    _check_unit(lo, f"{where}.ci_low", problems)
    _check_unit(hi, f"{where}.ci_high", problems)
    if len(problems) == before and not lo <= est <= hi:
        problems.append(f"{where}: need ci_low <= proportion <= ci_high, got {lo}, {est}, {hi}")


def _validate(data: ForestData) -> None:
    problems: list[str] = []
    if not data.subgroups:
        problems.append("data.subgroups: empty; a forest plot needs at least one study")
    for i, sub in enumerate(data.subgroups):
        if not sub.studies:
            problems.append(f"data.subgroups[{i}] ({sub.name!r}).studies: empty")
        for j, st in enumerate(sub.studies):
            where = f"data.subgroups[{i}].studies[{j}] ({st.label!r})"
            _check_interval(st.proportion, st.ci_low, st.ci_high, where, problems)
            if not 0 <= st.events <= st.total:
                problems.append(f"{where}: events {st.events} outside 0..total ({st.total})")
        if sub.pooled is not None:
            _check_pooled(sub.pooled, f"data.subgroups[{i}].pooled", problems)
    if data.overall is not None:
        _check_pooled(data.overall, "data.overall", problems)
    if problems:
        raise ValueError("; ".join(problems))


def _check_pooled(row: PooledRow, where: str, problems: list[str]) -> None:
    _check_interval(row.proportion, row.ci_low, row.ci_high, where, problems)
    if (row.pi_low is None) != (row.pi_high is None):
        problems.append(f"{where}: give both pi_low and pi_high, or neither")
    elif row.pi_low is not None and row.pi_high is not None:
        _check_unit(row.pi_low, f"{where}.pi_low", problems)
        _check_unit(row.pi_high, f"{where}.pi_high", problems)


SIZE_NOTE = "Squares are sized by the number of patients: the model gives no study weights."
"""Footnote of a plot whose pooled studies do not all carry a weight (the GLMM)."""


def _weighted(data: ForestData) -> bool:
    """Whether every study of a pooled subgroup has a weight (then squares and a Weight
    column show weights; otherwise squares show study size, for every subgroup alike)."""
    pooled = [
        s
        for sub in data.subgroups
        if sub.pooled is None or not sub.pooled.single
        for s in sub.studies
    ]
    return bool(pooled) and all(s.weight is not None for s in pooled)


def _marker_areas(studies: Sequence[StudyRow], weighted: bool = True) -> dict[int, float]:
    """Square marker area (pt²) per study, area proportional to weight as in ``meta``
    (``weighted``), else to the number of patients.

    The heaviest (or largest) study in the plot gets a 9 pt side; the side never falls
    below 2.5 pt; with weights, a study without one gets a 4.5 pt side.
    """

    def size(s: StudyRow) -> float | None:
        value = s.weight if weighted else float(s.total)
        return value if value is not None and value > 0 else None

    sizes = [v for v in map(size, studies) if v is not None]
    vmax = max(sizes) if sizes else 0.0
    out: dict[int, float] = {}
    for s in studies:
        v = size(s)
        side = max(2.5, 9.0 * math.sqrt(v / vmax)) if v is not None and vmax > 0 else 4.5
        out[id(s)] = side * side
    return out


def _weight_text(weight: float | None) -> str:
    return "" if weight is None else f"{fmt.number(weight, 1)}%"


def _pooled_rows(row: PooledRow, weight_text: str) -> list[_Row]:
    label = row.label.strip() or POOLED_LABEL
    rows = [
        _Row(
            "pooled",
            label,
            100 * row.proportion,
            100 * row.ci_low,
            100 * row.ci_high,
            left=(str(row.events), str(row.total)),
            right=(
                fmt.percent(row.proportion, sign=False),
                fmt.interval(row.ci_low, row.ci_high),
                weight_text,
            ),
            pooled=row,
        )
    ]
    if row.pi_low is not None and row.pi_high is not None:
        rows.append(
            _Row(
                "pi",
                PI_LABEL,
                math.nan,
                100 * row.pi_low,
                100 * row.pi_high,
                left=("", ""),
                right=("", fmt.interval(row.pi_low, row.pi_high), ""),
                pooled=row,
            )
        )
    het = format_heterogeneity(row)
    if het:
        rows.append(_Row("text", "", left=("", ""), right=("", "", ""), text=het))
    return rows


def _forest_table(data: ForestData) -> _Table:
    all_studies = [s for sub in data.subgroups for s in sub.studies]
    weighted = _weighted(data)
    areas = _marker_areas(all_studies, weighted)
    grouped = len(data.subgroups) > 1 or bool(data.subgroups[0].name.strip())
    sections: list[_Section] = []
    for i, sub in enumerate(data.subgroups):
        rows = [_study_row(s, areas[id(s)]) for s in sub.studies]
        rows.extend(_subgroup_summary(sub))
        if i < len(data.subgroups) - 1 or data.overall is not None:
            rows.append(_Row("blank", "", left=("", ""), right=("", "", "")))
        sections.append(_Section(sub.name.strip() or f"Subgroup {i + 1}", rows))
    tail = sections[-1].rows
    if data.overall is not None:
        tail.extend(_pooled_rows(data.overall, ""))
    if data.subgroup_test is not None:
        t = data.subgroup_test
        text = format_subgroup_test(t.q, t.df, t.pvalue)
        tail.append(_Row("text", "", left=("", ""), right=("", "", ""), text=text))
    notes = (data.model_note, *data.footnotes, *(() if weighted else (SIZE_NOTE,)))
    footnotes = tuple(f for f in notes if f.strip())
    reference = 100 * data.overall.proportion if data.overall is not None else None
    right_headers: tuple[str, ...] = (RATE_HEADER, fmt.ci_label(data.level), "Weight")
    if not weighted:
        # a model without weights (the GLMM), also beside a fallback that has them:
        # no Weight column at all rather than one filled for some subgroups only
        right_headers = right_headers[:2]
        for section in sections:
            for row in section.rows:
                row.right = row.right[:2]
    return _Table(
        title=data.title,
        xlabel=data.xlabel or outcome_axis_label(data.outcome),
        left_headers=("Events", "Total"),
        right_headers=right_headers,
        sections=sections,
        footnotes=footnotes,
        grouped=grouped,
        reference=reference,
    )


def _study_row(s: StudyRow, area: float) -> _Row:
    return _Row(
        "study",
        s.label,
        100 * s.proportion,
        100 * s.ci_low,
        100 * s.ci_high,
        left=(str(s.events), str(s.total)),
        right=(
            fmt.percent(s.proportion, sign=False),
            fmt.interval(s.ci_low, s.ci_high),
            _weight_text(s.weight),
        ),
        marker_area=area,
    )


def _subgroup_summary(sub: Subgroup) -> list[_Row]:
    p = sub.pooled
    if p is None:
        return []
    if not p.pooled or p.k < 2:
        return [_Row("single", NOT_POOLED_LABEL, left=("", ""), right=("", "", ""))]
    has_weights = any(s.weight is not None for s in sub.studies)
    return _pooled_rows(p, "100.0%" if has_weights else "")


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


_RUN = re.compile(r"\S+(?: \S+)*")
"""A cell of a space-padded table line: text whose words are one space apart (columns are
at least two spaces apart; no-break spaces, which only make labels unique, count as blank)."""


def _split_columns(ax: Axes, fig: Figure) -> None:
    """Redraw every space-padded table line as one text per cell.

    ``forestplot`` writes each row as one monospace string (label and left columns as a y
    tick label, the right columns as one text) and aligns columns with runs of spaces.
    SVG viewers collapse runs of spaces (SVG has no ``white-space: pre`` by default), so
    in a browser the columns run together, and a reader without DejaVu Sans Mono gets
    other glyph widths. Here each cell becomes its own text, anchored where the padded
    string put it: the first cell of a tick label (the study label, a group header or
    "Study") by its left edge, every other cell (numbers and their headers, which are
    right-justified) by its right edge, so ``text-anchor: end`` keeps the columns aligned
    whatever font the viewer substitutes. x is in inches from the figure's left edge and
    y is the row's data coordinate, so the positions hold at any dpi.
    """
    from matplotlib.text import Text
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(fig.dpi_scale_trans, ax.transData)
    to_inches = fig.dpi_scale_trans.inverted()

    def redraw(t: Text, y_data: float, first_left: bool) -> None:
        text = t.get_text()
        if not text.strip():
            return
        anchor_px = t.get_transform().transform(t.get_unitless_position())
        advance_px = MONO_ADVANCE_EM * float(t.get_fontsize()) * fig.dpi / 72.0
        mono = MONO_FONT in t.get_fontfamily()
        ha = t.get_horizontalalignment()
        width_px = len(text) * advance_px if mono else 0.0
        start_px = float(anchor_px[0]) - {"left": 0.0, "center": width_px / 2}.get(ha, width_px)
        runs = list(_RUN.finditer(text)) if mono else []
        if not runs:  # proportional text (group headers): one cell as it stands
            runs = []
            cells = [(text.strip(), start_px, "left")]
        else:
            cells = []
            for i, m in enumerate(runs):
                left = first_left and i == 0
                edge = m.start() if left else m.end()
                cells.append((m.group(), start_px + edge * advance_px, "left" if left else "right"))
        for cell, x_px, align in cells:
            x_in = float(to_inches.transform((x_px, 0.0))[0])
            ax.text(
                x_in,
                y_data,
                cell,
                transform=trans,
                ha=align,
                va=t.get_verticalalignment(),
                fontsize=t.get_fontsize(),
                fontfamily=t.get_fontfamily(),
                fontweight=t.get_fontweight(),
                fontstyle=t.get_fontstyle(),
                color=t.get_color(),
                clip_on=False,
            )

    padded = [t for t in ax.texts if MONO_FONT in t.get_fontfamily()]
    labels = [lab for lab in ax.get_yticklabels() if lab.get_visible()]
    for lab in labels:
        redraw(lab, float(lab.get_position()[1]), first_left=True)
    for t in padded:
        y = float(ax.yaxis.convert_units(t.get_position()[1]))  # type: ignore[no-untyped-call]
        redraw(t, y, first_left=False)
        t.remove()
    ax.tick_params(axis="y", which="both", labelleft=False, labelright=False)


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


def _cumulative_table(
    rows: Sequence[CumulativeRow | tuple[str, int, float, float, float]],
    title: str,
    outcome: str,
    model_note: str,
) -> _Table:
    items = [r if isinstance(r, CumulativeRow) else CumulativeRow(*r) for r in rows]
    if not items:
        raise ValueError("rows: empty; a cumulative forest plot needs at least one step")
    problems: list[str] = []
    for i, r in enumerate(items):
        _check_interval(r.proportion, r.ci_low, r.ci_high, f"rows[{i}] ({r.label!r})", problems)
        if r.k < 1:
            problems.append(f"rows[{i}] ({r.label!r}).k: {r.k} is not a positive count")
    if problems:
        raise ValueError("; ".join(problems))
    table_rows = [
        _Row(
            "cumulative",
            f"+ {r.label}",
            100 * r.proportion,
            100 * r.ci_low,
            100 * r.ci_high,
            left=(str(r.k),),
            right=(fmt.percent(r.proportion, sign=False), fmt.interval(r.ci_low, r.ci_high)),
            marker_area=4.5 * 4.5,
        )
        for r in items
    ]
    notes = (
        "Each row pools every study down to and including that row, in date order.",
        "The first row is one study through the model, so its interval is the model's, "
        "not the exact interval the forest plot shows for that study.",
    )
    return _Table(
        title=title,
        xlabel=outcome_axis_label(outcome),
        left_headers=("k",),
        right_headers=(RATE_HEADER, fmt.ci_label(items[0].level)),
        sections=[_Section("", table_rows)],
        footnotes=tuple(f for f in (model_note, *notes) if f.strip()),
        grouped=False,
    )


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
