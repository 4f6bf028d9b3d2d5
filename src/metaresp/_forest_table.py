"""The forest plot's table model: what each row of a forest or cumulative plot shows.

:func:`_forest_table` turns a :class:`~metaresp.forestdata.ForestData` into rows (studies,
pooled diamonds, prediction intervals, heterogeneity and subgroup-test lines, spacers),
sections and footnotes; :func:`_cumulative_table` does the same for a cumulative plot.
Input is validated first (:func:`_validate`). Drawing is :mod:`metaresp.forest`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from metaresp import formatting as fmt
from metaresp._forest_cells import (
    FIG_WIDTH_IN,
    GAP_IN,
    LEFT_GAP_IN,
    MARGIN_IN,
    MIN_PLOT_WIDTH_IN,
    SANS_FONT,
    label_room_in,
    wrap_to_width,
)
from metaresp.estimates import heterogeneity_text
from metaresp.forestdata import CumulativeRow, ForestData, PooledRow, StudyRow, Subgroup

FONT_SIZE = 8.0
"""Points at :data:`FIG_WIDTH_IN`: journals ask for figure text of at least 8 pt at the
printed size (a full-width figure is about 7 in)."""
ROW_HEIGHT_IN = 0.19
MIN_FONT_SIZE = 8.0

RATE_HEADER = "Rate (%)"
"""Header over the point estimates, which are printed in percent."""
POOLED_LABEL = "Random effects model"
PI_LABEL = "Prediction interval"
NOT_POOLED_LABEL = "One study: not pooled"
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
    layout: Any = None
    """The columns to draw with (:class:`metaresp._forest_cells.Columns`): a page of a
    longer plot takes the whole plot's, so that columns stand alike on every page."""


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


def _forest_table(
    data: ForestData, scale: ForestData | None = None, room: float | None = None
) -> _Table:
    """The table of ``data``; ``scale`` (the whole plot, when ``data`` is one page of it)
    sets the square sizes and whether there is a Weight column, alike on every page.
    Labels wrap to ``room`` inches (the whole plot's label column, so that every page
    wraps alike), by default to this table's own (:func:`_wrap_labels`)."""
    whole = data if scale is None else scale
    all_studies = [s for sub in whole.subgroups for s in sub.studies]
    weighted = _weighted(whole)
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
    table = _wrap_labels(
        _Table(
            title=data.title,
            xlabel=data.xlabel or outcome_axis_label(data.outcome),
            left_headers=("Events", "Total"),
            right_headers=right_headers,
            sections=sections,
            footnotes=footnotes,
            grouped=grouped,
            reference=reference,
        ),
        room,
    )
    return table


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


def _wrap_labels(table: _Table, room: float | None = None) -> _Table:
    """``table`` with study labels wider than ``room`` (by default the label column,
    :func:`metaresp._forest_cells.label_room_in`) wrapped over up to five lines: the
    numbers and the whisker on the first, the rest on text-only rows below."""
    if room is None:
        room = label_room_in(table, [r for sec in table.sections for r in sec.rows])
    for sec in table.sections:
        rows: list[_Row] = []
        for row in sec.rows:
            rows.append(row)
            if row.kind not in ("study", "cumulative"):
                continue
            lines = wrap_to_width(row.label, room, table.fontsize)
            row.label = lines[0]
            blank = ("",) * len(row.left), ("",) * len(row.right)
            rows.extend(_Row("blank", line, left=blank[0], right=blank[1]) for line in lines[1:])
        sec.rows = rows
    return table


def _subgroup_summary(sub: Subgroup) -> list[_Row]:
    p = sub.pooled
    if p is None:
        return []
    if not p.pooled or p.k < 2:
        return [_Row("single", NOT_POOLED_LABEL, left=("", ""), right=("", "", ""))]
    has_weights = any(s.weight is not None for s in sub.studies)
    return _pooled_rows(p, "100.0%" if has_weights else "")


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
        "The first row is one study: its exact interval, as in the forest plot.",
    )
    return _wrap_labels(
        _Table(
            title=title,
            xlabel=outcome_axis_label(outcome),
            left_headers=("k",),
            right_headers=(RATE_HEADER, fmt.ci_label(items[0].level)),
            sections=[_Section("", table_rows)],
            footnotes=tuple(f for f in (model_note, *notes) if f.strip()),
            grouped=False,
        )
    )


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


__all__ = [
    "FIG_WIDTH_IN",
    "FONT_SIZE",
    "GAP_IN",
    "LEFT_GAP_IN",
    "MARGIN_IN",
    "MIN_FONT_SIZE",
    "MIN_PLOT_WIDTH_IN",
    "NOT_POOLED_LABEL",
    "PI_LABEL",
    "POOLED_LABEL",
    "RATE_HEADER",
    "ROW_HEIGHT_IN",
    "SANS_FONT",
    "SIZE_NOTE",
    "_NBSP",
    "_Row",
    "_Section",
    "_Table",
    "_cumulative_table",
    "_forest_table",
    "_validate",
    "format_heterogeneity",
    "format_subgroup_test",
    "outcome_axis_label",
]
