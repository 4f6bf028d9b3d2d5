"""Meta-regressions the analysis plan asks for (``regressions:``), run on the records an
analysis pooled, and what ``metaresp run`` writes for them.

Each entry names a primary analysis and moderators among the record fields of
:data:`metaresp._plan_spec.REGRESSION_FIELDS`: ``year`` enters as a number, the others as
categories (``subgroup`` is the record's subgroup in the analysis's grouping). The records
are those the analysis pooled (one cohort, one vote within each subgroup); a cohort that sits
in two subgroups is kept once, in the first. A regression that cannot be fitted (too few
studies, a missing year, a moderator with one value, a GLMM without a finite maximum) is
reported with the reason instead of stopping the run. The outputs:

- ``regressions.csv``: one row per coefficient of every regression;
- an entry per regression under ``regressions`` in ``summary.json``;
- ``figures/regression-<name>.png`` and ``.svg``: a bubble plot against the first numeric
  moderator, when there is one.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaresp._plan_spec import RegressionSpec
from metaresp.analysis import AnalysisResult
from metaresp.errors import MetarespError, StatisticalWarning
from metaresp.records import Record
from metaresp.regression import RegressionResult, regress

__all__ = [
    "REGRESSIONS_CSV",
    "RegressionOutcome",
    "regression_state",
    "run_regressions",
    "write_regressions",
]

REGRESSIONS_CSV = "regressions.csv"
_NUMERIC = frozenset({"year"})


@dataclass(frozen=True)
class RegressionOutcome:
    """One plan regression: the records it used and its fit, or why there is none."""

    spec: RegressionSpec
    outcome: str
    records: tuple[Record, ...]
    fit: RegressionResult | None
    error: str | None
    notes: tuple[str, ...]
    values: dict[str, list[Any]] = field(default_factory=dict)
    """Each moderator's value per record, in the order of ``records``."""


def _value(record: Record, field: str, subgroup: str) -> Any:
    if field == "subgroup":
        return subgroup
    if field == "year":
        return float("nan") if record.year is None else record.year
    if field in ("agent", "modality", "target"):
        return "+".join(sorted(record.attributes.get(field, frozenset()))) or "none"
    return str(getattr(record, field))


def _one(spec: RegressionSpec, result: AnalysisResult) -> RegressionOutcome:
    chosen: list[tuple[Record, str]] = []
    cohorts: set[str] = set()
    notes: list[str] = []
    for group in result.pooled.groups:
        for record in group.records:
            if record.cohort in cohorts:
                notes.append(f"{record.label}: its cohort is already in the regression (kept once)")
                continue
            cohorts.add(record.cohort)
            chosen.append((record, group.name))
    records = tuple(r for r, _ in chosen)
    events = [r.events for r in records if r.events is not None]
    totals = [r.total for r in records if r.total is not None]
    mods: dict[str, list[Any]] = {
        str(m): [_value(r, m, g) for r, g in chosen] for m in spec.moderators
    }
    model = spec.resolved_model()
    fit: RegressionResult | None = None
    error: str | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StatisticalWarning)
            fit = regress(
                events,
                totals,
                mods,
                transform=model.transform,
                estimator=model.estimator,
                ci=model.ci,
                level=model.level,
                nagq=model.nagq,
                labels=[r.label for r in records],
            )
    except (MetarespError, ValueError) as exc:
        error = str(exc).replace("\n", "; ")
    return RegressionOutcome(
        spec, result.analysis.outcome, records, fit, error, tuple(notes), values=mods
    )


def run_regressions(
    specs: Sequence[RegressionSpec], results: Sequence[AnalysisResult]
) -> list[RegressionOutcome]:
    """Every regression of the plan, on the results of its analysis."""
    by_name = {r.analysis.name: r for r in results}
    return [_one(spec, by_name[spec.analysis]) for spec in specs]


def regression_state(outcomes: Sequence[RegressionOutcome]) -> list[dict[str, Any]]:
    """The ``regressions`` entries of ``summary.json`` (plain JSON values)."""
    out: list[dict[str, Any]] = []
    for o in outcomes:
        entry: dict[str, Any] = {
            "regression": o.spec.name,
            "title": o.spec.title,
            "analysis": o.spec.analysis,
            "outcome": o.outcome,
            "moderators": list(o.spec.moderators),
            "model": o.spec.resolved_model().to_dict(),
            "records": [rid for r in o.records for rid in r.pooled_ids],
            "error": o.error,
            "notes": list(o.notes),
        }
        if o.fit is not None:
            d = o.fit.to_dict()
            for key in (
                "k",
                "p",
                "coefficients",
                "tau2",
                "r2",
                "i2",
                "qm",
                "qm_df",
                "qm_pvalue",
                "qe",
                "qe_df",
                "qe_pvalue",
                "qe_kind",
                "dropped",
                "warnings",
            ):
                entry[key] = d[key]
        out.append(entry)
    return out


_CSV_COLUMNS = [
    "regression",
    "analysis",
    "outcome",
    "estimator",
    "ci",
    "k",
    "coefficient",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "pvalue",
    "tau2",
    "r2",
    "qm",
    "qm_pvalue",
    "qe",
    "qe_pvalue",
    "warnings",
]


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def write_regressions(folder: Path, outcomes: Sequence[RegressionOutcome]) -> list[Path]:
    """Write ``regressions.csv`` and the bubble plots into ``folder``; the files written."""
    from metaresp.bubble import save_bubble_plot

    written = [folder / REGRESSIONS_CSV]
    with written[0].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(_CSV_COLUMNS)
        for o in outcomes:
            model = o.spec.resolved_model()
            head = [o.spec.name, o.spec.analysis, o.outcome, model.estimator, model.ci]
            if o.fit is None:
                blank = [""] * (len(_CSV_COLUMNS) - len(head) - 2)
                writer.writerow([*head, len(o.records), *blank, f"not fitted: {o.error}"])
                continue
            f = o.fit
            notes = " | ".join((*f.warnings, *o.notes))
            for i, name in enumerate(f.names):
                writer.writerow(
                    [
                        *head,
                        f.k,
                        name,
                        _fmt(f.estimates[i]),
                        _fmt(f.ses[i]),
                        _fmt(f.ci_lows[i]),
                        _fmt(f.ci_highs[i]),
                        _fmt(f.pvalues[i]),
                        _fmt(f.tau2),
                        _fmt(f.r2),
                        _fmt(f.qm),
                        _fmt(f.qm_pvalue),
                        _fmt(f.qe),
                        _fmt(f.qe_pvalue),
                        notes,
                    ]
                )
    for o in outcomes:
        numeric = [m for m in o.spec.moderators if m in _NUMERIC]
        if o.fit is None or not numeric or numeric[0] not in o.fit.names:
            continue
        png = folder / "figures" / f"regression-{o.spec.name}.png"
        png.parent.mkdir(exist_ok=True)
        title = o.spec.title or f"{o.outcome}: meta-regression on {numeric[0]}"
        for path in (png, png.with_suffix(".svg")):
            save_bubble_plot(o.fit, path, moderator=numeric[0], title=title)
            written.append(path)
    return written
