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

from metaresp.analysis import AnalysisResult, GroupResult
from metaresp.files import atomic_write
from metaresp.forestdata import FEW_STUDIES, few_studies_note

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

POOLED_COLUMNS: tuple[str, ...] = (
    "analysis", "title", "outcome", "subgroup", "row", "k", "few_studies", "patients",
    "responders",
    "pooled_pct", "ci_low_pct", "ci_high_pct", "pi_low_pct", "pi_high_pct", "i2_pct", "tau2",
    "q", "q_df", "q_pvalue", "model", "set_aside", "records", "note",
)
SET_ASIDE_COLUMNS: tuple[str, ...] = ("analysis", "subgroup", "record", "label", "reason")


def _pct(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else 100.0 * value


def model_text(g: GroupResult) -> str:
    """The model a subgroup was actually fitted with (a GLMM fallback shows as REML)."""
    res = g.result
    if res is None:
        return "not pooled (one study)"
    text = f"{res.estimator} {res.transform}, {res.ci} CI"
    if any("fell back" in w for w in res.warnings):
        text += " (fallback)"
    return text


def _estimate_row(result: AnalysisResult, g: GroupResult, kind: str) -> dict[str, Any]:
    a = result.analysis
    res = g.result
    if res is None:
        from metaresp.analysis import exact_ci

        r = g.records[0]
        events, total = r.events or 0, r.total or 0
        low, high = exact_ci(events, total, a.model.level)
        est: dict[str, Any] = {"pooled_pct": 100.0 * events / total, "ci_low_pct": 100 * low,
                               "ci_high_pct": 100 * high}
    else:
        est = {
            "pooled_pct": _pct(res.proportion), "ci_low_pct": _pct(res.ci_low),
            "ci_high_pct": _pct(res.ci_high), "pi_low_pct": _pct(res.pi_low),
            "pi_high_pct": _pct(res.pi_high), "i2_pct": res.i2, "tau2": res.tau2,
            "q": res.q, "q_df": res.k - 1, "q_pvalue": res.q_pvalue,
        }
    aside = sum(1 for s in result.set_aside if s.subgroup == g.name) if kind == "subgroup" else None
    few = res is not None and res.k <= FEW_STUDIES
    notes = [few_studies_note(res.k)] if few and res is not None else []
    notes.append(g.note or ("; ".join(res.warnings) if res is not None else ""))
    return {
        "analysis": a.name, "title": a.title, "outcome": a.outcome, "subgroup": g.name,
        "row": kind, "k": g.k, "few_studies": few, "patients": g.patients,
        "responders": g.events, **est,
        "model": model_text(g), "set_aside": aside,
        "records": "; ".join(r.record_id for r in g.records),
        "note": "; ".join(n for n in notes if n),
    }


def pooled_rows(results: Sequence[AnalysisResult]) -> list[dict[str, Any]]:
    """Rows of the pooled table (dicts keyed by :data:`POOLED_COLUMNS`)."""
    rows: list[dict[str, Any]] = []
    for result in results:
        p = result.pooled
        for g in p.groups:
            rows.append(_estimate_row(result, g, "subgroup"))
        if p.overall is not None:
            rows.append(_estimate_row(result, p.overall, "overall"))
        if p.test is not None:
            rows.append({
                "analysis": result.analysis.name, "title": result.analysis.title,
                "outcome": result.analysis.outcome, "subgroup": "Test for subgroup differences",
                "row": "subgroup-test", "q": p.test.q, "q_df": p.test.df,
                "q_pvalue": p.test.pvalue,
                "model": "between-subgroup Q (fixed-effect test on subgroup estimates)",
                "note": "subgroups: " + ", ".join(p.test.subgroups),
            })
        if result.empty:
            rows.append({"analysis": result.analysis.name, "title": result.analysis.title,
                         "outcome": result.analysis.outcome, "row": "empty",
                         "set_aside": len(result.set_aside),
                         "note": "no record can be pooled in this analysis"})
    return [{c: row.get(c) for c in POOLED_COLUMNS} for row in rows]


def set_aside_rows(results: Sequence[AnalysisResult]) -> list[dict[str, Any]]:
    """Every record set aside, with its analysis, subgroup and reason."""
    return [{"analysis": r.analysis.name, "subgroup": s.subgroup, "record": s.record_id,
             "label": s.label, "reason": s.reason}
            for r in results for s in r.set_aside]


def pooled_frame(results: Sequence[AnalysisResult]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(pooled_rows(results), columns=list(POOLED_COLUMNS))


def set_aside_frame(results: Sequence[AnalysisResult]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(set_aside_rows(results), columns=list(SET_ASIDE_COLUMNS))


# --------------------------------------------------------------------------- writing


def write_csv(results: Sequence[AnalysisResult], path: Path,
              set_aside_path: Path | None = None) -> None:
    """The pooled table (and, when a path is given, the set-aside table) as UTF-8 CSV."""
    frame = pooled_frame(results)
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    if set_aside_path is not None:
        aside = set_aside_frame(results)
        atomic_write(set_aside_path, lambda tmp: aside.to_csv(tmp, index=False))


def write_xlsx(results: Sequence[AnalysisResult], path: Path) -> None:
    """A workbook with sheets ``Pooled`` and ``Set aside`` (frozen headers, fitted widths)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheets = [("Pooled", POOLED_COLUMNS, pooled_rows(results)),
              ("Set aside", SET_ASIDE_COLUMNS, set_aside_rows(results))]
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
            for col in ("pooled_pct", "ci_low_pct", "ci_high_pct", "pi_low_pct",
                        "pi_high_pct", "i2_pct"):
                idx = columns.index(col) + 1
                for (cell,) in ws.iter_rows(min_row=2, min_col=idx, max_col=idx):
                    cell.number_format = "0.0"
    atomic_write(path, lambda tmp: book.save(tmp))


def _excel_value(value: Any) -> Any:
    """Text that Excel would read as a formula is written with a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(results: Sequence[AnalysisResult]) -> str:
    """A readable Markdown document: one section per analysis."""
    lines: list[str] = ["# Pooled response rates", ""]
    for result in results:
        a = result.analysis
        lines += [f"## {a.title}", "", f"Analysis `{a.name}` · outcome {a.outcome} · "
                  f"{', '.join(a.population)} · {', '.join(a.setting)} · {', '.join(a.unit)}",
                  "", f"Model: {a.model.describe()}.", ""]
        rows = [r for r in pooled_rows([result]) if r["row"] in ("subgroup", "overall")]
        if rows:
            lines += ["| Subgroup | k | Patients | Pooled % (95% CI) | 95% PI | I² | τ² "
                      "| Q test | Model | Set aside |",
                      "|---|---:|---:|---|---|---:|---:|---|---|---:|"]
            for r in rows:
                ci = (f"{_f(r['pooled_pct'])} ({_f(r['ci_low_pct'])}–{_f(r['ci_high_pct'])})")
                pi = ("–" if r["pi_low_pct"] is None
                      else f"{_f(r['pi_low_pct'])}–{_f(r['pi_high_pct'])}")
                q = ("–" if r["q"] is None
                     else f"Q = {_f(r['q'], 2)}, df = {r['q_df']}, p = {_p(r['q_pvalue'])}")
                name = f"**{r['subgroup']}**" if r["row"] == "overall" else str(r["subgroup"])
                i2 = "–" if r["i2_pct"] is None else f"{_f(r['i2_pct'])}%"
                k = f"{r['k']}†" if r["few_studies"] else str(r["k"])
                lines.append("| " + " | ".join(_md_cell(c) for c in (
                    name, k, str(r["patients"]), ci, pi, i2,
                    _f(r["tau2"], 3), q, str(r["model"]),
                    "" if r["set_aside"] is None else str(r["set_aside"]))) + " |")
            lines.append("")
            if any(r["few_studies"] for r in rows):
                lines += [f"† Pooled from {FEW_STUDIES} or fewer studies: with so few studies "
                          "no interval method keeps its 95% promise in every scenario of the "
                          "coverage simulation (docs/simulation); interpret with caution.", ""]
        else:
            lines += ["No record can be pooled in this analysis.", ""]
        test = result.pooled.test
        if test is not None:
            lines += [f"Test for subgroup differences: Q = {test.q:.2f}, df = {test.df}, "
                      f"p = {_p(test.pvalue)}.", ""]
        for note in result.pooled.notes:
            lines += [note, ""]
        if result.set_aside:
            lines += ["Records set aside:", ""]
            lines += [f"- `{s.record_id}` ({_md_cell(s.label)})"
                      f"{f' [{s.subgroup}]' if s.subgroup else ''}: {_md_cell(s.reason)}"
                      for s in result.set_aside]
            lines.append("")
    return "\n".join(lines)


def write_markdown(results: Sequence[AnalysisResult], path: Path) -> None:
    text = markdown(results)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_tables(results: Sequence[AnalysisResult], folder: Path) -> list[Path]:
    """``pooled.csv``, ``set-aside.csv``, ``pooled.xlsx`` and ``pooled.md`` in ``folder``."""
    paths = [folder / "pooled.csv", folder / "set-aside.csv", folder / "pooled.xlsx",
             folder / "pooled.md"]
    write_csv(results, paths[0], paths[1])
    write_xlsx(results, paths[2])
    write_markdown(results, paths[3])
    return paths
