"""A self-contained HTML report for guideline panels.

One file, no external assets: figures are embedded as ``data:`` URIs (SVG when given,
else PNG), the style sheet is inline, there is no script. Every piece of text that comes
from the data is passed through :func:`html.escape`. The page holds: the title and
corpus version, a methods paragraph with full references that a panel can paste, per
analysis its pooled table and figures, the records included and the records set aside
with their reasons, and the warnings (few studies, single studies, fallbacks).

Input (all plain data, nothing is recomputed here):

- :class:`ReportAnalysis` per analysis: ``title``, optional ``description``, optional
  ``forest`` (:class:`~metaresp.forestdata.ForestData`; when ``table`` is ``None`` the
  pooled table is derived from it by :func:`pooled_table`, and its pooled rows'
  ``warnings`` are listed), optional ``table`` (a ``pandas.DataFrame`` shown as given,
  columns in order), ``figures`` (:class:`ReportFigure`) and ``warnings``.
- ``included``: ``pandas.DataFrame``, one row per record pooled; required columns
  ``analysis`` and ``record_id``; any other columns (e.g. ``subgroup``, ``study``,
  ``agent``, ``unit``, ``responders``, ``evaluable``) are shown as given, in order.
- ``excluded``: ``pandas.DataFrame``, one row per record set aside; required columns
  ``record_id`` and ``reason``; others shown as given (e.g. ``analysis``, ``study``).
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaresp import formatting as fmt
from metaresp import grade
from metaresp._report_css import CSS as _CSS
from metaresp._report_sections import (
    REFERENCES,
    Fallback,
    ReportHeader,
    methods_paragraph,
    set_aside_html,
)
from metaresp.estimates import FEW_STUDIES, EstimateRow, few_studies_note, plain_words
from metaresp.files import write_text_atomic
from metaresp.forestdata import ForestData

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from metaresp.grade import Rating
    from metaresp.models import ModelSpec
    from metaresp.sof import FindingsTable

__all__ = [
    "REFERENCES",
    "Certainty",
    "Changes",
    "ReportAnalysis",
    "ReportFigure",
    "ReportHeader",
    "analysis_warnings",
    "generated_methods",
    "pooled_table",
    "render_report",
    "write_report",
]


@dataclass(frozen=True)
class ReportFigure:
    """A figure to embed: SVG bytes (preferred, scales crisply) or PNG bytes."""

    caption: str
    png: bytes | None = None
    svg: bytes | None = None

    @classmethod
    def from_files(
        cls, caption: str, png: Path | None = None, svg: Path | None = None
    ) -> ReportFigure:
        """Read the figure files written by :func:`metaresp.forest.save_forest`."""
        return cls(
            caption,
            None if png is None else Path(png).read_bytes(),
            None if svg is None else Path(svg).read_bytes(),
        )


@dataclass(frozen=True)
class ReportAnalysis:
    """One analysis of the plan: its pooled table, figures and warnings."""

    title: str
    description: str = ""
    forest: ForestData | None = None
    table: pd.DataFrame | None = None
    figures: tuple[ReportFigure, ...] = ()
    warnings: tuple[str, ...] = ()
    name: str = ""
    """The analysis's name in the plan (e.g. ``class-first-salvage-orr``)."""
    role: str = "primary"
    """``primary`` or ``sensitivity``."""
    sensitivity_of: str | None = None
    """For a sensitivity analysis: its primary's name."""
    other_family: bool = False
    """This sensitivity analysis is its primary pooled with the other model family."""


@dataclass(frozen=True)
class Certainty:
    """How the summary of findings rates certainty: the review's population (``code`` as
    in the corpus, ``words`` for the methods) and a panel's overrides, per analysis name
    and subgroup, as ``(rating, reason)``."""

    population: str | None = None
    words: str | None = None
    overrides: Mapping[str, Mapping[str, tuple[Rating, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Changes:
    """What changed since the published state: the changelog paragraph and the full diff
    text; ``None`` paragraph: there is no published state."""

    paragraph: str | None
    detail: str = ""
    against: str = "the published state"


# --------------------------------------------------------------------------- tables


def _columns(level: float) -> tuple[str, ...]:
    return (
        "Subgroup",
        "k",
        "Events",
        "Patients",
        "Pooled %",
        fmt.ci_label(level),
        fmt.ci_label(level, "PI"),
        "I²",
        "τ²",
        "Heterogeneity test",
        "Note",
    )


def pooled_table(forest: ForestData) -> pd.DataFrame:
    """One row per subgroup (and the overall estimate) from a forest plot's data.

    Columns: ``Subgroup``, ``k``, ``Events``, ``Patients``, ``Pooled %``, ``95% CI``,
    ``95% PI`` (the headers name the plot's level), ``I²``, ``τ²``, ``Heterogeneity test``
    (Cochran's or Wald Q with df and p), ``Note``; every value written by
    :mod:`metaresp.formatting`. τ² on the model's (logit) scale.
    """
    import pandas as pd

    columns = _columns(forest.level)
    rows: list[dict[str, Any]] = []

    def add(name: str, row: EstimateRow) -> None:
        pooled = not row.single
        rows.append(
            dict(
                zip(
                    columns,
                    (
                        name,
                        row.k,
                        row.events,
                        row.total,
                        fmt.percent(row.proportion, sign=False),
                        fmt.interval(row.ci_low, row.ci_high),
                        fmt.interval(row.pi_low, row.pi_high) if pooled else "",
                        fmt.i2(row.i2) if pooled else "",
                        fmt.tau2(row.tau2) if pooled else "",
                        fmt.q_test(row.q, row.q_df, row.q_pvalue, row.q_kind) if pooled else "",
                        (
                            "one study: shown, not pooled (exact CI)"
                            if not pooled
                            else f"† {row.k} studies: read with caution"
                            if row.few_studies
                            else ""
                        ),
                    ),
                    strict=True,
                )
            )
        )

    for sub in forest.subgroups:
        if sub.pooled is not None:
            add(sub.name, sub.pooled)
    if forest.overall is not None:
        add("Overall", forest.overall)
    if forest.subgroup_test is not None:
        t = forest.subgroup_test
        rows.append(
            {
                "Subgroup": "Test for subgroup differences",
                "Heterogeneity test": fmt.subgroup_test(t.q, t.df, t.pvalue),
            }
        )
    return pd.DataFrame([[r.get(c, "") for c in columns] for r in rows], columns=list(columns))


def analysis_warnings(analysis: ReportAnalysis) -> list[str]:
    """The analysis's own warnings, its pooled rows' warnings, and few-study flags."""
    out = list(analysis.warnings)
    forest = analysis.forest
    if forest is not None:
        named = [(s.name, s.pooled) for s in forest.subgroups if s.pooled is not None]
        if forest.overall is not None:
            named.append(("Overall", forest.overall))
        for name, row in named:
            out.extend(f"{name}: {plain_words(w)}" for w in row.warnings)
            if row.few_studies and not row.single:
                out.append(f"{name}: {few_studies_note(row.k)}")
            if row.single:
                out.append(f"{name}: one study, shown, not pooled")
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------- HTML


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


_NUMBER_LIKE = re.compile(r"^[<>≤≥]?\s?(?:[-+\d.,–() %]|\bto\b)*\d(?:[-+\d.,–() %]|\bto\b)*$")
"""Numbers, percentages and intervals like ``21.0 to 95.0``: right-aligned, unwrapped."""


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "<td></td>"
    if isinstance(value, bool):
        return f"<td>{_e(value)}</td>"
    if isinstance(value, int | float):
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return f'<td class="num">{_e(text)}</td>'
    if _NUMBER_LIKE.match(str(value)):
        return f'<td class="num">{_e(value)}</td>'
    return f"<td>{_e(value)}</td>"


def _frame_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = "\n".join(
        "<tr>" + "".join(_cell(v) for v in row) + "</tr>"
        for row in frame.itertuples(index=False, name=None)
    )
    return (
        f'<div class="wide"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
        "</tbody>\n</table></div>"
    )


def _figure_html(fig: ReportFigure) -> str:
    if fig.svg is not None:
        src = "data:image/svg+xml;base64," + base64.b64encode(fig.svg).decode("ascii")
    elif fig.png is not None:
        src = "data:image/png;base64," + base64.b64encode(fig.png).decode("ascii")
    else:
        raise ValueError(f"figures: {fig.caption!r} has neither png nor svg bytes")
    return (
        f'<figure><img src="{src}" alt="{_e(fig.caption)}">'
        f"<figcaption>{_e(fig.caption)}</figcaption></figure>"
    )


def _require(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{name}: missing column(s) {', '.join(missing)}; required: {', '.join(columns)}"
        )


def _list(items: Sequence[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<ul{attr}>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _summary_lines(
    analyses: Sequence[ReportAnalysis],
    per_analysis: Sequence[Sequence[str]],
    warnings: Sequence[str],
) -> list[str]:
    """The few lines a panel must read before the numbers: the run's own warnings, how
    many estimates rest on few studies, single studies and model fallbacks."""
    pooled = few = single = fallback = 0
    for a in analyses:
        if a.forest is None:
            continue
        rows = [s.pooled for s in a.forest.subgroups if s.pooled is not None]
        if a.forest.overall is not None:
            rows.append(a.forest.overall)
        for row in rows:
            if row.single:
                single += 1
                continue
            pooled += 1
            few += row.few_studies
            fallback += row.fallback
    lines = list(dict.fromkeys(warnings))
    lines.append(
        f"{few} of {pooled} pooled estimates rest on {FEW_STUDIES} or fewer studies. With so "
        "few studies no interval keeps exactly its 95% promise in every scenario of the "
        "coverage simulation (see Methods; the Bayesian interval errs on the wide side and "
        "rests on its prior): read them as summaries of those studies, not as estimates of "
        "a class effect."
    )
    if single:
        lines.append(f"{single} subgroup(s) hold a single study: shown, not pooled.")
    if fallback:
        lines.append(
            f"{fallback} pooled estimate(s) could not be fitted with the requested "
            "model and use a fallback model; each such estimate names it, and the "
            "reasons are listed with its analysis' notes."
        )
    noted = sum(1 for notes in per_analysis if notes)
    if noted:
        lines.append(f"{noted} analyses carry notes and warnings: see each analysis.")
    return lines


def _rows_of(forest: ForestData) -> list[EstimateRow]:
    rows = [s.pooled for s in forest.subgroups if s.pooled is not None]
    if forest.overall is not None:
        rows.append(forest.overall)
    return rows


def _models(analyses: Sequence[ReportAnalysis], primary: bool) -> list[ModelSpec]:
    out: list[ModelSpec] = []
    for a in analyses:
        if a.forest is None or (a.role == "primary") != primary:
            continue
        out.extend(r.requested for r in _rows_of(a.forest) if r.requested is not None)
    return list(dict.fromkeys(out))


def generated_methods(analyses: Sequence[ReportAnalysis], certainty: Certainty) -> str:
    """The methods paragraph from the models the analyses used (each once), the fallbacks
    that happened with their causes, and the certainty rules."""
    fallbacks = [
        Fallback(
            a.name or a.title,
            row.subgroup or row.label,
            plain_words(row.fallback_reason or ""),
            plain_words(row.fitted.label()),
        )
        for a in analyses
        if a.forest is not None
        for row in _rows_of(a.forest)
        if row.fallback and row.fitted is not None
    ]
    return methods_paragraph(
        _models(analyses, True) or _models(analyses, False),
        _models(analyses, False),
        fallbacks,
        grade.rules_text(certainty.words or certainty.population),
    )


def _findings(analyses: Sequence[ReportAnalysis], certainty: Certainty) -> list[FindingsTable]:
    """One summary-of-findings table per primary analysis (the other family beside it)."""
    from metaresp.sof import findings_table

    others = {
        a.sensitivity_of: a for a in analyses if a.other_family and a.sensitivity_of is not None
    }
    out: list[FindingsTable] = []
    for a in analyses:
        if a.role != "primary" or a.forest is None:
            continue
        other = others.get(a.name)
        other_name = ""
        if other is not None and other.forest is not None:
            fitted = [r.requested for r in _rows_of(other.forest) if r.requested is not None]
            other_name = (
                "Bayesian model"
                if fitted and fitted[0].estimator == "BAYES"
                else "other model"
                if not fitted
                else fitted[0].label()
            )
        table = findings_table(
            a.name,
            a.title,
            a.forest,
            other=None if other is None else other.forest,
            other_name=other_name,
            population=certainty.population,
            overrides=certainty.overrides.get(a.name),
        )
        out.append(table)
    return out


def _changes_html(changes: Changes | None) -> str:
    if changes is None:
        return ""
    if changes.paragraph is None:
        body = (
            f"<p>No published state to compare with ({_e(changes.against)}): every "
            "estimate is new.</p>"
        )
    else:
        body = f"<p>{_e(changes.paragraph)}</p>"
        if changes.detail:
            body += (
                "<details><summary>Every change, estimate by estimate</summary>"
                f"<pre>{_e(changes.detail)}</pre></details>"
            )
    return f'<h2 id="changes">What changed since the published state</h2>{body}'


def render_report(
    *,
    title: str,
    corpus_version: str,
    analyses: Sequence[ReportAnalysis],
    included: pd.DataFrame | None = None,
    excluded: pd.DataFrame | None = None,
    warnings: Sequence[str] = (),
    methods: str | None = None,
    generated: str = "",
    header: ReportHeader | None = None,
    certainty: Certainty | None = None,
    changes: Changes | None = None,
) -> str:
    """The report as one HTML string (UTF-8, no external assets, no scripts).

    Order: the title and ``header`` (run date, last search, corpus and software versions,
    the models in plain words), the summary of findings of every primary analysis (the
    first open, the others collapsed; certainty by :mod:`metaresp.grade` with
    ``certainty``'s population and a panel's overrides), the notes a panel must read,
    ``changes`` since the published state, the contents (collapsed), the methods
    (``methods``, or generated from the models used: :func:`generated_methods`), the
    results per analysis, the records included and set aside (collapsed, set-aside
    records grouped by reason). ``generated`` is an optional line such as the software
    version (used when there is no ``header``). Raises ``ValueError`` naming the
    argument when ``included``/``excluded`` lack a required column or a figure has no
    image.
    """
    if included is not None:
        _require(included, "included", ("analysis", "record_id"))
    if excluded is not None:
        _require(excluded, "excluded", ("record_id", "reason"))
    certainty = certainty or Certainty()
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if header is not None:
        parts.append(header.html())
    else:
        parts.append(
            f'<p class="meta">Corpus version: {_e(corpus_version)}'
            + (f" · {_e(generated)}" if generated else "")
            + "</p>"
        )
    tables = _findings(analyses, certainty)
    if tables:
        from metaresp.sof import findings_html, legend_text

        parts.append('<h2 id="findings">Summary of findings</h2>')
        parts.append(findings_html(tables[0], first=True))
        parts.append(f'<p class="legend">{_e(legend_text(tables))}</p>')
        if len(tables) > 1:
            parts.append(
                '<details class="more-findings"><summary>Summary of findings of the other '
                + (
                    "primary analysis"
                    if len(tables) == 2
                    else f"{len(tables) - 1} primary analyses"
                )
                + "</summary>"
                + "".join(findings_html(t) for t in tables[1:])
                + "</details>"
            )
    per_analysis = [analysis_warnings(a) for a in analyses]
    parts.append("<h2>Read this first</h2>")
    parts.append(_list(_summary_lines(analyses, per_analysis, warnings), "warnings"))
    parts.append(_changes_html(changes))
    parts.append(
        f"<details><summary>Contents: {len(analyses)} analyses</summary>"
        '<ol class="toc">'
        + "".join(
            f'<li><a href="#analysis-{i}">{_e(a.title)}</a></li>' for i, a in enumerate(analyses, 1)
        )
        + "</ol></details>"
    )

    parts.append("<h2>Methods</h2>")
    parts.append(f'<p class="methods">{_e(methods or generated_methods(analyses, certainty))}</p>')
    parts.append("<h3>References</h3>")
    parts.append('<ol class="refs">' + "".join(f"<li>{_e(r)}</li>" for r in REFERENCES) + "</ol>")

    parts.append("<h2>Results</h2>")
    for i, (a, notes) in enumerate(zip(analyses, per_analysis, strict=True), 1):
        parts.append(f'<h3 id="analysis-{i}">{_e(a.title)}</h3>')
        if a.description:
            parts.append(f"<p>{_e(a.description)}</p>")
        table = (
            a.table
            if a.table is not None
            else (pooled_table(a.forest) if a.forest is not None else None)
        )
        if table is not None:
            parts.append(_frame_html(table))
        if a.forest is not None and a.forest.model_note:
            parts.append(f'<p class="meta">Model: {_e(a.forest.model_note)}</p>')
        parts.extend(_figure_html(f) for f in a.figures)
        if notes:
            parts.append(
                f"<details><summary>Notes and warnings ({len(notes)})</summary>"
                + _list(notes, "warnings")
                + "</details>"
            )

    parts.append("<h2>Records included</h2>")
    if included is not None and len(included):
        parts.append(
            f"<details><summary>{len(included)} records pooled over all analyses</summary>"
            + _frame_html(included)
            + "</details>"
        )
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>Records set aside</h2>")
    parts.append(set_aside_html(excluded))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(path: Path, **kwargs: Any) -> None:
    """Write :func:`render_report` (same keyword arguments) to ``path`` atomically
    (temporary file, then os.replace)."""
    write_text_atomic(path, render_report(**kwargs))
