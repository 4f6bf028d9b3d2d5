"""Plain data behind a forest plot, independent of how it is drawn.

The analysis layer fills these from fitted :class:`~metaresp.pooling.PoolResult`
objects; the plotting adapter (:mod:`metaresp.forest`) and the report only read
them. All proportions are on the 0-1 scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from metaresp.estimates import (
    FEW_STUDIES,
    EstimateRow,
    estimate_row,
    exact_interval,
    few_studies_note,
    plain_notes,
)

if TYPE_CHECKING:  # pragma: no cover
    from metaresp.analysis import GroupedPool, GroupResult

__all__ = [
    "FEW_STUDIES",
    "CumulativeRow",
    "ForestData",
    "PooledRow",
    "StudyRow",
    "Subgroup",
    "SubgroupTest",
    "build",
    "few_studies_note",
]


@dataclass(frozen=True)
class StudyRow:
    """One study (record) in a forest plot."""

    label: str
    """What the reader sees, e.g. ``"Merz 2024 · talquetamab"``; unique within a plot."""
    events: int
    total: int
    proportion: float
    ci_low: float
    """Exact (Clopper-Pearson) interval."""
    ci_high: float
    weight: float | None = None
    """Weight in percent within its subgroup's model; ``None`` when the model has none."""
    record_id: str = ""
    """Stable id of the record (study/group/setting/outcome), for tables and diffs."""
    year: int | None = None


PooledRow = EstimateRow
"""A pooled estimate (a diamond), or a single study shown but not pooled: the one
estimate row of every output (:class:`metaresp.estimates.EstimateRow`)."""


@dataclass(frozen=True)
class Subgroup:
    """A block of studies with its own pooled estimate."""

    name: str
    studies: tuple[StudyRow, ...]
    pooled: PooledRow | None = None


@dataclass(frozen=True)
class SubgroupTest:
    """Test for subgroup differences: between-subgroup Q (fixed-effect test on estimates)."""

    q: float
    df: int
    pvalue: float


@dataclass(frozen=True)
class ForestData:
    """Everything one forest plot shows."""

    title: str
    outcome: str
    """``ORR``, ``VGPR+`` or ``CR+``; the x axis reads e.g. "Overall response rate (%)"."""
    subgroups: tuple[Subgroup, ...]
    overall: PooledRow | None = None
    subgroup_test: SubgroupTest | None = None
    model_note: str = ""
    """Footnote naming the model, e.g. "Random effects, binomial-normal GLMM (logit), t CI"."""
    footnotes: tuple[str, ...] = field(default_factory=tuple)
    level: float = 0.95
    """Confidence level of every interval drawn (studies, diamonds); headers name it."""
    xlabel: str = ""
    """The x-axis title; "" for the outcome's (e.g. "Overall response rate (%)")."""


@dataclass(frozen=True)
class CumulativeRow:
    """One step of a cumulative meta-analysis: the pooled estimate after adding a study.

    Rows are drawn in the order given (the caller sorts them by publication date).
    """

    label: str
    """The study added at this step, e.g. ``"Merz 2024 · talquetamab"``."""
    k: int
    """Number of studies pooled at this step."""
    proportion: float
    ci_low: float
    ci_high: float
    level: float = 0.95
    """Confidence level of the interval; the plot's header names it."""


def study_order(g: GroupResult) -> list[int]:
    """Indices of ``g.records`` in the order a forest plot lists them: by report date
    (undated last), then label (author first), then the order pooled."""

    def key(i: int) -> tuple[tuple[int, int, int], str, int]:
        r = g.records[i]
        date = r.date if r.date[0] else ((r.year, 0, 0) if r.year else (9999, 0, 0))
        return date, r.label.casefold(), i

    return sorted(range(len(g.records)), key=key)


def build(
    pooled: GroupedPool, *, title: str, outcome: str, footnotes: Sequence[str] = ()
) -> ForestData:
    """Fill :class:`ForestData` from pooled subgroups: per-study rows (exact intervals at
    the model's level, by date then label, labels made unique per plot), one
    :func:`~metaresp.estimates.estimate_row` per diamond, the overall row and the test."""
    level = pooled.model.level
    used: set[str] = set()

    def unique(label: str) -> str:
        text, n = label, 2
        while text in used:
            text, n = f"{label} ({n})", n + 1
        used.add(text)
        return text

    subgroups: list[Subgroup] = []
    for g in pooled.groups:
        weights = g.result.weights if g.result is not None else None
        rows: list[StudyRow] = []
        for i in study_order(g):
            r = g.records[i]
            events, total = r.events or 0, r.total or 0
            low, high = exact_interval(events, total, level)
            rows.append(
                StudyRow(
                    label=unique(r.label),
                    events=events,
                    total=total,
                    proportion=events / total,
                    ci_low=low,
                    ci_high=high,
                    weight=None if weights is None else weights[i],
                    record_id=r.record_id,
                    year=r.year,
                )
            )
        row = estimate_row(g, level=level, requested=pooled.model, label="Pooled")
        if row.single:
            row = replace(row, label="One study, not pooled")
        elif row.fallback and row.fitted is not None:
            # the model and its interval are named in the footnote; the label stays short
            # enough for the study column of a 7 in figure
            row = replace(row, label=f"Pooled ({row.fitted.estimator} fallback)")
        subgroups.append(Subgroup(name=g.name, studies=tuple(rows), pooled=row))
    overall = (
        estimate_row(
            pooled.overall, level=level, requested=pooled.model, kind="overall", label="Overall"
        )
        if pooled.overall is not None
        else None
    )
    test = (
        SubgroupTest(q=pooled.test.q, df=pooled.test.df, pvalue=pooled.test.pvalue)
        if pooled.test is not None
        else None
    )
    notes = [f"Study intervals: exact (Clopper-Pearson) {100 * level:g}% CI.", *footnotes]
    pooled_rows = [s.pooled for s in subgroups if s.pooled is not None and s.pooled.pooled]
    notes.extend(plain_notes([*pooled_rows, *([overall] if overall is not None else [])]))
    return ForestData(
        title=title,
        outcome=outcome,
        subgroups=tuple(subgroups),
        overall=overall,
        subgroup_test=test,
        model_note=pooled.model.describe(),
        footnotes=tuple(notes),
        level=level,
    )
