"""Pooled tables of a plan run: CSV, XLSX (openpyxl) and Markdown.

One row per analysis and subgroup (and per overall estimate and test for subgroup
differences): k, patients, pooled %, CI, PI, I², τ², the Q test, the model and the number
of records set aside. A second table lists every record set aside with its reason. The
CSV and XLSX keep numbers as numbers (percentages on the 0-100 scale); the Markdown is
for reading. Files are written atomically (a temporary file in the same folder, then
``os.replace``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaresp import formatting as fmt
from metaresp._cellsafe import formula_safe, formula_safe_frame
from metaresp.analysis import AnalysisResult, GroupResult
from metaresp.estimates import (
    FEW_STUDIES,
    EstimateRow,
    RowKind,
    estimate_row,
    few_studies_note,
    row_sentences,
    said_once,
)
from metaresp.files import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "POOLED_COLUMNS",
    "SET_ASIDE_COLUMNS",
    "estimate_rows",
    "markdown",
    "model_text",
    "pooled_frame",
    "pooled_rows",
    "set_aside_frame",
    "set_aside_rows",
    "write_csv",
    "write_markdown",
    "write_tables",
    "write_xlsx",
]

POOLED_COLUMNS: tuple[str, ...] = (
    "analysis",
    "title",
    "outcome",
    "subgroup",
    "row",
    "k",
    "few_studies",
    "patients",
    "responders",
    "pooled_pct",
    "ci_low_pct",
    "ci_high_pct",
    "pi_low_pct",
    "pi_high_pct",
    "mean_pct",
    "mean_ci_low_pct",
    "mean_ci_high_pct",
    "prob_above_pct",
    "i2_pct",
    "tau2",
    "q",
    "q_df",
    "q_pvalue",
    "model",
    "set_aside",
    "records",
    "note",
)
SET_ASIDE_COLUMNS: tuple[str, ...] = ("analysis", "subgroup", "record", "label", "reason")


def _pct(value: float | None) -> float | None:
    return None if value is None or fmt.is_missing(value) else 100.0 * value


def model_text(g: GroupResult) -> str:
    """The model a subgroup was actually fitted with (a GLMM fallback shows as REML)."""
    return estimate_row(g, level=0.95).model_text


def _row(result: AnalysisResult, g: GroupResult, kind: RowKind) -> EstimateRow:
    """The one estimate row of subgroup (or overall) ``g`` of an analysis."""
    aside = sum(1 for s in result.set_aside if s.subgroup == g.name) if kind == "subgroup" else None
    a = result.analysis
    return estimate_row(
        g, level=a.model.level, requested=a.model, analysis=a.name, kind=kind, set_aside=aside
    )


def _csv_row(result: AnalysisResult, row: EstimateRow) -> dict[str, Any]:
    """An estimate row as a row of ``pooled.csv`` (percentages 0-100)."""
    a = result.analysis
    est: dict[str, Any] = {
        "pooled_pct": _pct(row.proportion),
        "ci_low_pct": _pct(row.ci_low),
        "ci_high_pct": _pct(row.ci_high),
    }
    if not row.single:
        est.update(
            {
                "pi_low_pct": _pct(row.pi_low),
                "pi_high_pct": _pct(row.pi_high),
                "mean_pct": _pct(row.mean_proportion),
                "mean_ci_low_pct": _pct(row.mean_ci_low),
                "mean_ci_high_pct": _pct(row.mean_ci_high),
                "prob_above_pct": _pct(row.prob_above),
                "i2_pct": row.i2,
                "tau2": row.tau2,
                "q": row.q,
                "q_df": row.q_df,
                "q_pvalue": row.q_pvalue,
            }
        )
    notes = [few_studies_note(row.k)] if row.few_studies else []
    notes.append("; ".join(row.notes) if row.notes else "; ".join(row.warnings))
    return {
        "analysis": a.name,
        "title": a.title,
        "outcome": a.outcome,
        "subgroup": row.subgroup,
        "row": row.kind,
        "k": row.k,
        "few_studies": row.few_studies,
        "patients": row.patients,
        "responders": row.responders,
        **est,
        "model": row.model_text,
        "set_aside": row.set_aside,
        "records": "; ".join(row.records),
        "note": "; ".join(n for n in notes if n),
    }


def estimate_rows(result: AnalysisResult) -> list[EstimateRow]:
    """The estimate rows of one analysis: each subgroup, then the overall estimate."""
    p = result.pooled
    rows = [_row(result, g, "subgroup") for g in p.groups]
    if p.overall is not None:
        rows.append(_row(result, p.overall, "overall"))
    return rows


def pooled_rows(results: Sequence[AnalysisResult]) -> list[dict[str, Any]]:
    """Rows of the pooled table (dicts keyed by :data:`POOLED_COLUMNS`)."""
    rows: list[dict[str, Any]] = []
    for result in results:
        p = result.pooled
        rows.extend(_csv_row(result, row) for row in estimate_rows(result))
        if p.test is not None:
            rows.append(
                {
                    "analysis": result.analysis.name,
                    "title": result.analysis.title,
                    "outcome": result.analysis.outcome,
                    "subgroup": "Test for subgroup differences",
                    "row": "subgroup-test",
                    "q": p.test.q,
                    "q_df": p.test.df,
                    "q_pvalue": p.test.pvalue,
                    "model": "between-subgroup Q (fixed-effect test on subgroup estimates)",
                    "note": "subgroups: " + ", ".join(p.test.subgroups),
                }
            )
        if result.empty:
            rows.append(
                {
                    "analysis": result.analysis.name,
                    "title": result.analysis.title,
                    "outcome": result.analysis.outcome,
                    "row": "empty",
                    "set_aside": len(result.set_aside),
                    "note": "no record can be pooled in this analysis",
                }
            )
    return [{c: row.get(c) for c in POOLED_COLUMNS} for row in rows]


def set_aside_rows(results: Sequence[AnalysisResult]) -> list[dict[str, Any]]:
    """Every record set aside, with its analysis, subgroup and reason."""
    return [
        {
            "analysis": r.analysis.name,
            "subgroup": s.subgroup,
            "record": s.record_id,
            "label": s.label,
            "reason": s.reason,
        }
        for r in results
        for s in r.set_aside
    ]


def pooled_frame(results: Sequence[AnalysisResult]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(pooled_rows(results), columns=list(POOLED_COLUMNS))


def set_aside_frame(results: Sequence[AnalysisResult]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(set_aside_rows(results), columns=list(SET_ASIDE_COLUMNS))


# --------------------------------------------------------------------------- writing


def write_csv(
    results: Sequence[AnalysisResult], path: Path, set_aside_path: Path | None = None
) -> None:
    """The pooled table (and, when a path is given, the set-aside table) as UTF-8 CSV."""
    frame = formula_safe_frame(pooled_frame(results))
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    if set_aside_path is not None:
        aside = formula_safe_frame(set_aside_frame(results))
        atomic_write(set_aside_path, lambda tmp: aside.to_csv(tmp, index=False))


def write_xlsx(results: Sequence[AnalysisResult], path: Path) -> None:
    """A workbook with sheets ``Pooled`` and ``Set aside`` (frozen headers, fitted widths)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheets = [
        ("Pooled", POOLED_COLUMNS, pooled_rows(results)),
        ("Set aside", SET_ASIDE_COLUMNS, set_aside_rows(results)),
    ]
    first = True
    for title, columns, rows in sheets:
        ws = book.active if first else book.create_sheet()
        assert ws is not None
        first = False
        ws.title = title
        ws.append(list(columns))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in rows:
            ws.append([_excel_value(row[c]) for c in columns])
        ws.freeze_panes = "A2"
        for i, column in enumerate(columns, start=1):
            width = max([len(column), *(len(str(row[column] or "")) for row in rows)])
            ws.column_dimensions[get_column_letter(i)].width = min(60, width + 2)
        if title == "Pooled":
            for col in (
                "pooled_pct",
                "ci_low_pct",
                "ci_high_pct",
                "pi_low_pct",
                "pi_high_pct",
                "mean_pct",
                "mean_ci_low_pct",
                "mean_ci_high_pct",
                "prob_above_pct",
                "i2_pct",
            ):
                idx = columns.index(col) + 1
                for (cell,) in ws.iter_rows(min_row=2, min_col=idx, max_col=idx):
                    cell.number_format = "0.0"
    atomic_write(path, lambda tmp: book.save(tmp))


def _excel_value(value: Any) -> Any:
    """Text that Excel would read as a formula is written with a leading apostrophe
    (:func:`metaresp._cellsafe.formula_safe`, as in the CSV tables)."""
    if isinstance(value, str):
        return formula_safe(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(results: Sequence[AnalysisResult]) -> str:
    """A readable Markdown document: one section per analysis."""
    lines: list[str] = ["# Pooled response rates", ""]
    for result in results:
        a = result.analysis
        lines += [
            f"## {a.title}",
            "",
            f"Analysis `{a.name}` · outcome {a.outcome} · "
            f"{', '.join(a.population)} · {', '.join(a.setting)} · {', '.join(a.unit)}",
            "",
            f"Model: {a.model.describe()}.",
            "",
        ]
        rows = estimate_rows(result)
        if rows:
            level = a.model.level
            # a Bayesian analysis reports credible intervals (single studies keep exact CIs)
            interval = a.model.interval_abbrev
            lines += [
                f"| Subgroup | k | Responders/patients | Pooled ({fmt.ci_label(level, interval)}) "
                f"| {fmt.ci_label(level, 'PI')} (%) | I² | τ² | Heterogeneity test "
                "| Model | Set aside |",
                "|---|---:|---:|---|---|---:|---:|---|---|---:|",
            ]
            for r in rows:
                name = f"**{r.subgroup}**" if r.kind == "overall" else r.subgroup
                k = f"{r.k}†" if r.few_studies else str(r.k)
                single = r.single
                lines.append(
                    "| "
                    + " | ".join(
                        _md_cell(c)
                        for c in (
                            name,
                            k,
                            fmt.counts(r.responders, r.patients),
                            fmt.estimate_interval(r.proportion, r.ci_low, r.ci_high),
                            fmt.interval(r.pi_low, r.pi_high),
                            fmt.MISSING if single else fmt.i2(r.i2),
                            fmt.MISSING if single else fmt.tau2(r.tau2),
                            fmt.MISSING
                            if single
                            else fmt.q_test(r.q, r.q_df, r.q_pvalue, r.q_kind),
                            r.model_text,
                            "" if r.set_aside is None else str(r.set_aside),
                        )
                    )
                    + " |"
                )
            lines.append("")
            where: dict[str, list[str]] = {}
            for r in rows:
                for note in row_sentences(r):
                    where.setdefault(note, []).append(_md_cell(r.subgroup))
            for note in said_once(where):
                lines += [note, ""]
            for r in rows:
                if r.threshold is not None and not fmt.is_missing(r.prob_above):
                    lines += [
                        f"{_md_cell(r.subgroup)}: probability that the response rate exceeds "
                        f"{fmt.percent(r.threshold)}: {fmt.percent(r.prob_above)}.",
                        "",
                    ]
            if any(r.few_studies for r in rows):
                lines += [
                    f"† Pooled from {FEW_STUDIES} or fewer studies: with so few studies "
                    "no interval keeps exactly its 95% promise in every scenario of the "
                    "coverage simulation (docs/simulation; the Bayesian interval errs on "
                    "the wide side and rests on its prior); interpret with caution.",
                    "",
                ]
        else:
            lines += ["No record can be pooled in this analysis.", ""]
        test = result.pooled.test
        if test is not None:
            lines += [
                "Test for subgroup differences: "
                f"{fmt.subgroup_test(test.q, test.df, test.pvalue)}.",
                "",
            ]
        for note in result.pooled.notes:
            lines += [note, ""]
        if result.set_aside:
            lines += ["Records set aside:", ""]
            lines += [
                f"- `{s.record_id}` ({_md_cell(s.label)})"
                f"{f' [{s.subgroup}]' if s.subgroup else ''}: {_md_cell(s.reason)}"
                for s in result.set_aside
            ]
            lines.append("")
    return "\n".join(lines)


def write_markdown(results: Sequence[AnalysisResult], path: Path) -> None:
    text = markdown(results)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_tables(results: Sequence[AnalysisResult], folder: Path) -> list[Path]:
    """``pooled.csv``, ``set-aside.csv``, ``pooled.xlsx`` and ``pooled.md`` in ``folder``."""
    paths = [
        folder / "pooled.csv",
        folder / "set-aside.csv",
        folder / "pooled.xlsx",
        folder / "pooled.md",
    ]
    write_csv(results, paths[0], paths[1])
    write_xlsx(results, paths[2])
    write_markdown(results, paths[3])
    return paths
