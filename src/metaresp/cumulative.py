"""Cumulative meta-analysis by publication date, one per pooled class of the plan.

For every pooled estimate of an analysis (each subgroup with k >= 2, and the overall pool
when there is one) the records are put in date order and pooled again after each one is
added, with the same model as the estimate (:meth:`metaresp.pooling.PoolResult.cumulative`,
metafor's ``cumul``; Lau et al. 1992, N Engl J Med 327:248). The first step is a single
study, not a pool: it shows that study's rate with its exact (Clopper-Pearson) interval,
the interval the forest plot and the tables give it, so that one study has one interval
everywhere.

Date order: a record's report date is the study's ``published`` (``YYYY``, ``YYYY-MM`` or
``YYYY-MM-DD``), else its ``year``; missing parts count as 0, so a report dated by year
only comes before the dated reports of that year. Ties are broken by the record's label,
then its id, so the order is reproducible.

:func:`write_cumulative` writes ``cumulative.csv`` (every step of every class) and lists one
cumulative forest plot per class of three or more studies, which ``metaresp run`` draws as
``figures/cumulative/<analysis>--<subgroup>.png`` and ``.svg``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaresp._cellsafe import formula_safe
from metaresp._names import slug
from metaresp.forestdata import CumulativeRow

if TYPE_CHECKING:  # pragma: no cover
    from metaresp.analysis import AnalysisResult, GroupResult, Record

__all__ = [
    "CSV_COLUMNS",
    "CSV_NAME",
    "FIGURE_FOLDER",
    "CumulativeFigure",
    "CumulativeStep",
    "csv_text",
    "cumulative_analysis",
    "cumulative_class",
    "date_order",
    "date_text",
    "figure_stem",
    "figures_of",
    "pooled_classes",
    "rows_for_plot",
    "slug",
    "write_csv",
    "write_cumulative",
]

CSV_NAME = "cumulative.csv"
FIGURE_FOLDER = Path("figures") / "cumulative"

CSV_COLUMNS: tuple[str, ...] = (
    "analysis",
    "subgroup",
    "step",
    "record",
    "label",
    "date",
    "k",
    "proportion",
    "ci_low",
    "ci_high",
    "pi_low",
    "pi_high",
    "tau2",
    "i2",
    "warnings",
)


@dataclass(frozen=True)
class CumulativeStep:
    """The pooled estimate after adding one record (proportions 0-1)."""

    analysis: str
    subgroup: str
    step: int
    record: str
    label: str
    date: str
    k: int
    proportion: float
    ci_low: float
    ci_high: float
    pi_low: float | None
    pi_high: float | None
    tau2: float
    i2: float
    warnings: str


def date_text(date: tuple[int, int, int]) -> str:
    """``(2024, 12, 5)`` -> ``"2024-12-05"``, ``(2023, 2, 0)`` -> ``"2023-02"``."""
    year, month, day = date
    if not year:
        return ""
    if not month:
        return f"{year:04d}"
    return f"{year:04d}-{month:02d}" if not day else f"{year:04d}-{month:02d}-{day:02d}"


def date_order(records: Sequence[Record]) -> list[int]:
    """Indices of ``records`` by report date, then label, then record id."""
    return sorted(
        range(len(records)), key=lambda i: (records[i].date, records[i].label, records[i].record_id)
    )


def _opt(value: object) -> float | None:
    if value is None or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def cumulative_class(analysis: str, group: GroupResult) -> list[CumulativeStep]:
    """The cumulative steps of one pooled class (empty when it was not pooled).

    Step 1 is one study: its exact interval, as in the forest plot (no model is fitted;
    nor is a note of one shown). The last step pools every study of the class: it is the
    class's own estimate (``group.result``), not a second fit of the same data. The steps
    between are the same model refitted on the studies up to that date."""
    from metaresp.estimates import exact_interval
    from metaresp.pooling import PoolResult

    result = group.result
    if result is None:
        return []
    order = date_order(group.records)
    steps: list[CumulativeStep] = []
    for step, index in enumerate(order, start=1):
        record = group.records[index]
        if step == 1:
            events, total = record.events or 0, record.total or 0
            low, high = exact_interval(events, total, result.fitted.level)
            row: dict[str, Any] = {
                "k": 1,
                "proportion": events / total,
                "ci_low": low,
                "ci_high": high,
                "tau2": 0.0,
                "i2": 0.0,
            }
        else:
            whole = step == len(order) and result.k == len(order)
            row = PoolResult._row(result if whole else result._refit(order[:step]))
        steps.append(
            CumulativeStep(
                analysis=analysis,
                subgroup=group.name,
                step=step,
                record=record.record_id,
                label=record.label,
                date=date_text(record.date),
                k=int(row["k"]),
                proportion=float(row["proportion"]),
                ci_low=float(row["ci_low"]),
                ci_high=float(row["ci_high"]),
                pi_low=_opt(row.get("pi_low")),
                pi_high=_opt(row.get("pi_high")),
                tau2=float(row["tau2"]),
                i2=float(row["i2"]),
                warnings=str(row.get("warnings") or ""),
            )
        )
    return steps


def pooled_classes(result: AnalysisResult) -> list[GroupResult]:
    """The pooled estimates of an analysis: subgroups with k >= 2, then the overall."""
    groups = [g for g in result.pooled.groups if g.result is not None]
    if result.pooled.overall is not None:
        groups.append(result.pooled.overall)
    return groups


def cumulative_analysis(result: AnalysisResult) -> dict[str, list[CumulativeStep]]:
    """subgroup name -> its cumulative steps, for every pooled class of one analysis."""
    name = result.analysis.name
    return {g.name: cumulative_class(name, g) for g in pooled_classes(result)}


def figure_stem(analysis: str, subgroup: str) -> str:
    """``post-cart-orr--bispecific-antibody``."""
    return f"{analysis}--{slug(subgroup)}"


def rows_for_plot(steps: Sequence[CumulativeStep], level: float = 0.95) -> list[CumulativeRow]:
    """Plot rows: the study added (with its date) and the estimate after it."""
    return [
        CumulativeRow(
            label=f"{s.label} ({s.date})" if s.date else s.label,
            k=s.k,
            proportion=s.proportion,
            ci_low=s.ci_low,
            ci_high=s.ci_high,
            level=level,
        )
        for s in steps
    ]


def csv_text(steps: Sequence[CumulativeStep]) -> str:
    """Every step as CSV (header :data:`CSV_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in steps:
        writer.writerow(
            [formula_safe(getattr(s, c)) if getattr(s, c) is not None else "" for c in CSV_COLUMNS]
        )
    return buffer.getvalue()


@dataclass(frozen=True)
class CumulativeFigure:
    """One cumulative forest plot to draw: where, and what."""

    png: Path
    rows: tuple[CumulativeRow, ...]
    title: str
    outcome: str
    model_note: str


def write_cumulative(
    folder: Path, results: Sequence[AnalysisResult], *, min_k: int = 3
) -> list[CumulativeFigure]:
    """Write ``cumulative.csv`` (every step of every pooled class) under ``folder`` and
    return the cumulative forest plots to draw: one per class of at least ``min_k``
    studies (with fewer, the plot would only repeat the forest plot)."""
    every: list[CumulativeStep] = []
    figures: list[CumulativeFigure] = []
    for result in results:
        steps = cumulative_analysis(result)
        every.extend(s for group in steps.values() for s in group)
        figures.extend(figures_of(folder, result, steps, min_k=min_k))
    write_csv(folder, every)
    return figures


def figures_of(
    folder: Path,
    result: AnalysisResult,
    steps: dict[str, list[CumulativeStep]],
    *,
    min_k: int = 3,
) -> list[CumulativeFigure]:
    """The cumulative plots of one analysis (its classes of at least ``min_k`` studies),
    given its steps (:func:`cumulative_analysis`)."""
    a = result.analysis
    figures: list[CumulativeFigure] = []
    for subgroup, group_steps in steps.items():
        if len(group_steps) < min_k:
            continue
        title = (
            f"{a.title}: cumulative by publication date"
            if subgroup == _all()
            else f"{a.title}, {subgroup}: cumulative by publication date"
        )
        figures.append(
            CumulativeFigure(
                png=Path(folder) / FIGURE_FOLDER / f"{figure_stem(a.name, subgroup)}.png",
                rows=tuple(rows_for_plot(group_steps, a.model.level)),
                title=title,
                outcome=a.outcome,
                model_note=a.model.describe(),
            )
        )
    return figures


def write_csv(folder: Path, steps: Sequence[CumulativeStep]) -> None:
    """Write ``cumulative.csv`` (and create the cumulative figure folder) under ``folder``."""
    folder = Path(folder)
    (folder / FIGURE_FOLDER).mkdir(parents=True, exist_ok=True)
    (folder / CSV_NAME).write_text(csv_text(steps), encoding="utf-8")


def _all() -> str:
    from metaresp.analysis import ALL_STUDIES

    return ALL_STUDIES
