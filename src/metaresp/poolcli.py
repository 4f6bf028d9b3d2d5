"""The work behind ``metaresp pool``: read a table, check it, pool it, describe it.

Any CSV or XLSX table with a column of events and a column of totals, one row per study
(like R's ``metaprop(event, n, studlab, subgroup = ...)``). Every problem in the table is
one line naming the file, the row (as the spreadsheet numbers it: the header is row 1)
and the column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaresp import formatting as fmt
from metaresp._messages import bounded_repr
from metaresp.analysis import (
    ALL_STUDIES,
    GroupedPool,
    GroupResult,
    Record,
    exact_ci,
    forest_data,
    pool_groups,
)
from metaresp.errors import InputError
from metaresp.estimates import estimate_row, model_dict
from metaresp.limits import MAX_PLOT_ROWS, count_problem
from metaresp.models import allowed
from metaresp.plan import Model, ModelSettings, resolve_model

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "LABEL_COLUMNS",
    "label_column",
    "pooled_json",
    "pooled_text",
    "read_table",
    "run_pool",
    "table_records",
]

_OPTIONS = {
    "--transform": allowed("transform"),
    "--estimator": allowed("estimator"),
    "--ci": allowed("ci"),
}


def read_table(path: Path, sheet: str | None = None) -> pd.DataFrame:
    """Read a CSV or XLSX file as text cells; one-line :class:`InputError` when it cannot."""
    import pandas as pd

    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a table")
    suffix = path.suffix.lower()
    _check_table_size(path, suffix)
    try:
        if suffix in (".csv", ".txt", ".tsv"):
            sep = "\t" if suffix == ".tsv" else None
            frame = pd.read_csv(
                path,
                sep=sep,
                engine="python",
                dtype=str,
                keep_default_na=False,
                encoding="utf-8-sig",
            )
        elif suffix in (".xlsx", ".xlsm"):
            frame = pd.read_excel(path, sheet_name=sheet or 0, dtype=object, engine="openpyxl")
        else:
            raise InputError(
                f"{path}: not a CSV or XLSX file (suffix {suffix or 'none'!r}); "
                "save it as .csv or .xlsx"
            )
    except InputError:
        raise
    except ValueError as exc:
        if sheet is not None and "not found" in str(exc).lower():
            raise InputError(f"{path}: no worksheet named {sheet!r}") from None
        raise InputError(f"{path}: cannot read the table ({_first_line(exc)})") from None
    except Exception as exc:  # parser and zip errors: a one-line message, not a traceback
        raise InputError(
            f"{path}: cannot read the table ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _check_table_size(path: Path, suffix: str) -> None:
    """The limits of :mod:`metaresp.limits` before the table is parsed: the file size,
    and for a workbook every part's unpacked size and the number of cells."""
    import zipfile

    from metaresp.limits import MAX_TABLE_BYTES
    from metaresp.workbook._layout import MAX_FILE_BYTES
    from metaresp.workbook._open import scan_zip

    size = path.stat().st_size
    limit = MAX_FILE_BYTES if suffix in (".xlsx", ".xlsm") else MAX_TABLE_BYTES
    if size > limit:
        raise InputError(
            f"{path}: {size / 2**20:.0f} MiB is larger than the {limit // 2**20} MiB a table "
            "may have; too large to pool"
        )
    if suffix in (".xlsx", ".xlsm"):
        try:
            with zipfile.ZipFile(path) as archive:
                scan_zip(archive, str(path), max_rows=None)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise InputError(f"{path}: cannot read the table (damaged zip: {exc})") from None


def _cli_words(message: str) -> str:
    """An engine message in command-line words: ``transform="logit"`` -> ``--transform
    logit``, a leading ``tau_prior:`` -> ``--tau-prior:``."""
    import re

    names = r"(transform|estimator|ci|level|nagq|tau_prior|mu_prior)"
    message = re.sub(
        names + r"""\s*=\s*['"]?([\w.-]+)['"]?""",
        lambda m: f"--{m.group(1).replace('_', '-')} {m.group(2)}",
        message,
    )
    return re.sub("^" + names + ":", lambda m: f"--{m.group(1).replace('_', '-')}:", message)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _whole(value: Any) -> int | None:
    """A non-negative whole number from a cell ('12', 12, 12.0), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip().replace(",", "")
    if len(text) > 40:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


def table_records(
    frame: pd.DataFrame,
    source: str,
    events: str,
    totals: str,
    labels: str | None = None,
    by: str | None = None,
) -> dict[str, list[Record]]:
    """Rows of the table as records grouped by the ``by`` column (one group without it)."""
    problems: list[str] = []
    columns = list(frame.columns)
    named = [("--events", events), ("--totals", totals), ("--labels", labels), ("--by", by)]
    for i, (opt_a, col_a) in enumerate(named):
        for opt_b, col_b in named[i + 1 :]:
            if col_a is not None and col_a == col_b:
                problems.append(
                    f"{source}: {opt_a} and {opt_b} both name the column {col_a!r}; "
                    "give each its own column"
                )
    if problems:
        raise InputError(problems)
    for option, name in (
        ("--events", events),
        ("--totals", totals),
        ("--labels", labels),
        ("--by", by),
    ):
        if name is not None and name not in columns:
            problems.append(
                f"{source}: {option}: no column {name!r} (columns: "
                f"{', '.join(repr(c) for c in columns)})"
            )
    if problems:
        raise InputError(problems)
    if len(frame) == 0:
        raise InputError(f"{source}: the table has no rows")
    groups: dict[str, list[Record]] = {}
    for i, row in enumerate(frame.to_dict("records")):
        where = f"{source}: row {i + 2}"
        counts: dict[str, int] = {}
        for name in (events, totals):
            cell = row[name]
            if _blank(cell):
                problems.append(f"{where}, column {name!r}: empty cell")
                continue
            value = _whole(cell)
            if value is None:
                problems.append(
                    f"{where}, column {name!r}: {bounded_repr(cell)} is not a whole number"
                )
            elif count_problem(value) is not None:
                problems.append(f"{where}, column {name!r}: {count_problem(value)}")
            else:
                counts[name] = value
        if events in counts and totals in counts:
            x, n = counts[events], counts[totals]
            if n == 0:
                problems.append(f"{where}, column {totals!r}: total is 0")
            elif x > n:
                problems.append(f"{where}: events {x} > total {n} (columns {events!r}, {totals!r})")
        label = str(row[labels]).strip() if labels and not _blank(row[labels]) else f"Row {i + 2}"
        group = ALL_STUDIES
        if by is not None:
            if _blank(row[by]):
                problems.append(f"{where}, column {by!r}: empty subgroup")
                continue
            group = str(row[by]).strip()
        if len(counts) == 2 and not any(
            p.startswith(f"{where}:") or p.startswith(f"{where},") for p in problems
        ):
            groups.setdefault(group, []).append(
                Record(
                    record_id=f"row-{i + 2}",
                    study=label,
                    group_id=f"row-{i + 2}",
                    group=group,
                    cohort=f"row-{i + 2}",
                    outcome="",
                    population="",
                    setting="",
                    unit="",
                    events=counts[events],
                    total=counts[totals],
                    label=label,
                )
            )
    if problems:
        raise InputError(problems)
    if not groups:
        raise InputError(f"{source}: no row with events and a total to pool")
    return groups


#: Column names taken as study labels when ``--labels`` is not given (case-insensitive),
#: in this order of preference.
LABEL_COLUMNS = ("study", "label", "author")


def label_column(frame: pd.DataFrame) -> str | None:
    """The column of study labels: the first of :data:`LABEL_COLUMNS` present in the table
    (case-insensitive); ``None`` when there is none (rows are then labelled "Row 2"...)."""
    by_lower = {str(c).lower(): str(c) for c in frame.columns}
    for name in LABEL_COLUMNS:
        if name in by_lower:
            return by_lower[name]
    return None


def _check_options(
    transform: str | None, estimator: str | None, ci: str | None, level: float
) -> ModelSettings:
    problems = []
    for option, value in (("--transform", transform), ("--estimator", estimator), ("--ci", ci)):
        if value is not None and value not in _OPTIONS[option]:
            problems.append(f"{option}: {value!r} is not one of {', '.join(_OPTIONS[option])}")
    if not 0.5 < level < 1:
        problems.append(f"--level: {level} must lie between 0.5 and 1 (e.g. 0.95)")
    if problems:
        raise InputError(problems)
    return ModelSettings.model_validate(
        {"transform": transform, "estimator": estimator, "ci": ci, "level": level}
    )


# --------------------------------------------------------------------------- output


NO_WEIGHTS_NOTE = (
    "n/a: the {model} gives the studies no inverse-variance weights (each study enters "
    "through its own binomial likelihood)."
)


def _no_weights(g: GroupResult) -> bool:
    return g.result is not None and g.result.weights is None


def _study_lines(g: GroupResult, level: float) -> list[str]:
    """The per-study table: counts, proportion, exact interval, weight ("n/a" without)."""
    width = max(12, *(len(r.label) for r in g.records))
    ci_head = fmt.ci_label(level) + " (exact)"
    rows: list[tuple[str, str, str, str, str, str]] = []
    weights = g.result.weights if g.result is not None else None
    for i, r in enumerate(g.records):
        x, n = r.events or 0, r.total or 0
        low, high = exact_ci(x, n, level)
        if g.result is None:
            w = fmt.MISSING
        else:
            w = "n/a" if weights is None else f"{fmt.number(weights[i], 1)}%"
        rows.append((r.label, str(x), str(n), fmt.percent(x / n), fmt.interval(low, high), w))
    ci_w = max(len(ci_head), *(len(row[4]) for row in rows))
    lines = [
        f"{'study':<{width}}  {'events':>6}  {'total':>6}  {'prop.':>7}  "
        f"{ci_head:>{ci_w}}  {'weight':>6}"
    ]
    lines.extend(
        f"{a:<{width}}  {b:>6}  {c:>6}  {d:>7}  {e:>{ci_w}}  {f:>6}" for a, b, c, d, e, f in rows
    )
    return lines


def _group_text(
    g: GroupResult,
    model: Model,
    *,
    header: bool,
    table: bool = True,
    prediction: bool | None = None,
) -> list[str]:
    from metaresp import resulttext

    lines = _study_lines(g, model.level) if table else []
    res = g.result
    if res is None:
        return [*lines, "one study: shown, not pooled"]
    lines.append(f"pooled: k = {res.k}, {fmt.counts(g.events, g.patients)}")
    if not header:
        if res.fallback or res.fitted != model:
            lines.append(f"model fitted: {resulttext.model_header(res)}")
        lines.extend(resulttext.fallback_lines(res, style="cli"))
    lines.extend(resulttext.result_lines(res, prediction=prediction))
    reason = res.fallback_reason if res.fallback else None
    lines.extend(f"warning: {w}" for w in res.warnings if not (reason and reason in w))
    return lines


def _weights_note(pooled: GroupedPool) -> list[str]:
    for g in (*pooled.groups, pooled.overall):
        if g is not None and _no_weights(g) and g.result is not None:
            name = "Bayesian model" if g.result.fitted.family == "bayes" else "GLMM"
            return [NO_WEIGHTS_NOTE.format(model=name)]
    return []


def pooled_text(pooled: GroupedPool, by: str | None, prediction: bool | None = None) -> str:
    """Readable text: the model fitted, per-study tables, the pooled lines as metaprop
    prints them, the subgroup test."""
    from metaresp import resulttext

    single = by is None and len(pooled.groups) == 1 and pooled.groups[0].result is not None
    if single:
        res = pooled.groups[0].result
        assert res is not None
        lines = [f"Model: {resulttext.model_header(res)}"]
        lines.extend(resulttext.fallback_lines(res, style="cli"))
    else:
        lines = [f"Model: {pooled.model.describe()}"]
    lines.append("")
    for g in pooled.groups:
        if by is not None:
            lines.append(f"{by} = {g.name}")
        lines.extend(_group_text(g, pooled.model, header=single, prediction=prediction))
        lines.append("")
    if pooled.overall is not None and pooled.overall.result is not None:
        lines.append("overall (all rows)")
        lines.extend(
            _group_text(
                pooled.overall, pooled.model, header=False, table=False, prediction=prediction
            )
        )
        lines.append("")
    if pooled.test is not None:
        t = pooled.test
        lines.append(
            f"test for subgroup differences: {fmt.subgroup_test(t.q, t.df, t.pvalue)} "
            "(fixed-effect test on the subgroup estimates, each subgroup with its own τ²)"
        )
    lines.extend(pooled.notes)
    lines.extend(_weights_note(pooled))
    return "\n".join(lines).rstrip()


def _group_json(g: GroupResult, model: Model) -> dict[str, Any]:
    studies = []
    level = model.level
    weights = g.result.weights if g.result is not None else None
    for i, r in enumerate(g.records):
        x, n = r.events or 0, r.total or 0
        low, high = exact_ci(x, n, level)
        studies.append(
            {
                "label": r.label,
                "events": x,
                "total": n,
                "proportion": x / n,
                "ci_low": low,
                "ci_high": high,
                "weight": None if weights is None else weights[i],
            }
        )
    row = estimate_row(g, level=level, requested=model)
    return {
        "name": g.name,
        "k": g.k,
        "events": g.events,
        "total": g.patients,
        "studies": studies,
        "pooled": None
        if g.result is None
        else _clean(
            {
                k: v
                for k, v in g.result.to_dict().items()
                if k not in ("yi", "vi", "events", "totals", "labels")
            }
        ),
        "fitted": None if row.fitted is None else model_dict(row.fitted),
        "fallback": row.fallback,
        "fallback_reason": row.fallback_reason,
        "q_kind": None if row.single else row.q_kind,
        "note": g.note or None,
    }


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def pooled_json(pooled: GroupedPool, by: str | None) -> dict[str, Any]:
    model = model_dict(pooled.model)
    if by is None:
        return {"model": model, **_group_json(pooled.groups[0], pooled.model)}
    return {
        "model": model,
        "by": by,
        "subgroups": [_group_json(g, pooled.model) for g in pooled.groups],
        "overall": None if pooled.overall is None else _group_json(pooled.overall, pooled.model),
        "subgroup_test": None
        if pooled.test is None
        else {"q": pooled.test.q, "df": pooled.test.df, "pvalue": pooled.test.pvalue},
        "notes": list(pooled.notes),
    }


def run_pool(
    table: Path,
    *,
    events: str,
    totals: str,
    labels: str | None = None,
    by: str | None = None,
    transform: str | None = None,
    estimator: str | None = None,
    ci: str | None = None,
    level: float = 0.95,
    sheet: str | None = None,
    overall: bool = True,
    plot: Path | None = None,
    as_json: bool = False,
    nagq: int | None = None,
    tau_prior: str | None = None,
    mu_prior: str | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    prediction: bool | None = None,
) -> str:
    """Everything ``metaresp pool`` does; returns the text to print.

    ``title`` and ``xlabel`` name the plot (default: no title, "Proportion (%)")."""
    settings = _check_options(transform, estimator, ci, level)
    settings = settings.model_copy(
        update={"nagq": nagq, "tau_prior": tau_prior, "mu_prior": mu_prior}
    )
    try:
        model = resolve_model(settings)
    except ValueError as exc:
        raise InputError(f"model options: {_cli_words(str(exc))}") from None
    if sheet is not None and table.suffix.lower() not in (".xlsx", ".xlsm"):
        raise InputError(
            f"{table}: --sheet {sheet!r} is for XLSX workbooks; a {table.suffix or 'plain'} "
            "file has no worksheets (leave --sheet out)"
        )
    frame = read_table(table, sheet)
    if labels is None:
        labels = label_column(frame)
        if labels in (events, totals, by):
            labels = None
    groups = table_records(frame, str(table), events, totals, labels, by)
    if plot is not None:
        _check_plot_rows(sum(len(g) for g in groups.values()))
    try:
        pooled = pool_groups(groups, model, overall=overall and by is not None)
    except InputError as exc:
        raise InputError([_cli_words(p) for p in exc.problems]) from None
    if plot is not None:
        _plot(pooled, plot, title=title or "", xlabel=xlabel or "Proportion (%)")
    if as_json:
        return json.dumps(pooled_json(pooled, by), indent=2, ensure_ascii=False)
    return pooled_text(pooled, by, prediction)


def _check_plot_rows(rows: int) -> None:
    if rows > MAX_PLOT_ROWS:
        raise InputError(
            f"--plot: the table has {rows} rows; a forest plot draws at most {MAX_PLOT_ROWS} "
            "(pool without --plot, or plot a part of the table)"
        )


def _plot(pooled: GroupedPool, path: Path, title: str, xlabel: str) -> None:
    from metaresp.forest import save_forest

    if path.suffix.lower() not in (".png", ".svg"):
        raise InputError(f"--plot: {path}: give a .png or .svg file name")
    if not path.parent.exists():
        raise InputError(f"--plot: {path.parent}: folder not found")
    _check_plot_rows(sum(len(g.records) for g in pooled.groups))
    data = replace(
        forest_data(pooled, title=title, outcome="Proportion", footnotes=_notes(pooled)),
        xlabel=xlabel,
    )
    if path.suffix.lower() == ".svg":
        png = path.with_suffix(".png")
        save_forest(data, png, path)
        png.unlink()
    else:
        save_forest(data, path)


def _notes(pooled: GroupedPool) -> Sequence[str]:
    return list(pooled.notes)
