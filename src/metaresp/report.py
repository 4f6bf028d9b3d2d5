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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaresp import formatting as fmt
from metaresp.estimates import FEW_STUDIES, EstimateRow, few_studies_note, plain_words
from metaresp.files import write_text_atomic
from metaresp.forestdata import ForestData

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "METHODS_PARAGRAPH",
    "REFERENCES",
    "ReportAnalysis",
    "ReportFigure",
    "analysis_warnings",
    "pooled_table",
    "render_report",
    "write_report",
]

REFERENCES: tuple[str, ...] = (
    "Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in the "
    "case of the binomial. Biometrika. 1934;26(4):404–413. doi:10.1093/biomet/26.4.404",
    "Higgins JPT, Thompson SG. Quantifying heterogeneity in a meta-analysis. Stat Med. "
    "2002;21(11):1539–1558. doi:10.1002/sim.1186",
    "Higgins JPT, Thompson SG, Spiegelhalter DJ. A re-evaluation of random-effects "
    "meta-analysis. J R Stat Soc Ser A Stat Soc. 2009;172(1):137–159. "
    "doi:10.1111/j.1467-985X.2008.00552.x",
    "IntHout J, Ioannidis JPA, Borm GF. The Hartung-Knapp-Sidik-Jonkman method for random "
    "effects meta-analysis is straightforward and considerably outperforms the standard "
    "DerSimonian-Laird method. BMC Med Res Methodol. 2014;14:25. "
    "doi:10.1186/1471-2288-14-25",
    "Jackson D, Law M, Rücker G, Schwarzer G. The Hartung-Knapp modification for "
    "random-effects meta-analysis: a useful refinement but are there any residual "
    "concerns? Stat Med. 2017;36(25):3923–3934. doi:10.1002/sim.7411",
    "Schwarzer G, Chemaitelly H, Abu-Raddad LJ, Rücker G. Seriously misleading results "
    "using inverse of Freeman-Tukey double arcsine transformation in meta-analysis of "
    "single proportions. Res Synth Methods. 2019;10(3):476–483. doi:10.1002/jrsm.1348",
    "Stijnen T, Hamza TH, Özdemir P. Random effects meta-analysis of event outcome in the "
    "framework of the generalized linear mixed model with applications in sparse data. "
    "Stat Med. 2010;29(29):3046–3067. doi:10.1002/sim.4040",
    "Veroniki AA, Jackson D, Viechtbauer W, et al. Methods to estimate the between-study "
    "variance and its uncertainty in meta-analysis. Res Synth Methods. 2016;7(1):55–79. "
    "doi:10.1002/jrsm.1164",
    "Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat Softw. "
    "2010;36(3):1–48. doi:10.18637/jss.v036.i03",
)

METHODS_PARAGRAPH = (
    "Response rates (responders among evaluable patients) were pooled separately within "
    "each subgroup, each with its own between-study variance (τ²). The primary model was "
    "a random-effects binomial-normal generalised linear mixed model on the logit scale, "
    "fitted by maximum likelihood with adaptive Gauss-Hermite quadrature (Stijnen et al. "
    "2010); it uses the exact binomial likelihood and so needs no continuity correction "
    "for studies with 0% or 100% response, and it avoids the Freeman-Tukey double "
    "arcsine transformation, whose back-transformation can mislead (Schwarzer et al. "
    "2019). The 95% confidence interval of the pooled proportion used a t distribution "
    "with k − 1 degrees of freedom. Where the mixed model did not converge, an "
    "inverse-variance random-effects model of logit proportions was used instead, with τ² "
    "estimated by restricted maximum likelihood (Q-profile interval; Veroniki et al. 2016) "
    "and the Hartung-Knapp-Sidik-Jonkman confidence interval (IntHout et al. 2014), never "
    "narrower than the standard interval (ad hoc correction; Jackson et al. 2017); each "
    "such case is named on its diamond and among the analysis's warnings. 95% prediction "
    "intervals (t distribution, k − 2 "
    "degrees of freedom) are reported where k ≥ 3 (Higgins et al. 2009). Heterogeneity "
    "is described by τ², I² (Higgins & Thompson 2002) and Cochran's Q; differences "
    "between subgroups were tested with the between-subgroup Q statistic, only for "
    "groupings whose subgroups share no patient cohort. Confidence intervals of single "
    "studies are exact Clopper-Pearson intervals (Clopper & Pearson 1934). Each patient "
    "cohort contributes once to any pooled estimate (one cohort, one vote): where several "
    "reports describe the same patients, the latest report with the largest evaluable "
    "denominator was used and the others are listed as set aside. Counts of patients and "
    "counts of treatment lines were never pooled together. Records that give a percentage "
    "without a denominator were excluded from pooling and are listed with that reason. "
    "Subgroups with a single study are shown but not pooled. The estimation routines were "
    "checked against the R package metafor (Viechtbauer 2010). The choice of interval was "
    "checked by simulation under the binomial-normal model (2 to 10 studies of 5 to 60 "
    "patients, true response rates 5% to 95%, τ of 0 to 1 on the logit scale, 2,000 "
    "replicates per scenario): the mixed model's t interval was the only method whose "
    "coverage never fell below 93%, but with 3 or fewer studies no method kept coverage "
    "between 93% and 97% in every scenario, and with 2 studies the t interval is too wide "
    "to inform. Pooled estimates from 3 or fewer studies are therefore flagged and should "
    "be read as summaries of those studies rather than as estimates of a class effect."
)

_CSS = """
details { margin: 0.5em 0 1.5em; } summary { cursor: pointer; color: #8a4b00; }
ol.toc { columns: 2; font-size: 0.92em; }
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #bbb; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.08em; margin-top: 1.6em; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left;
         vertical-align: top; }
th { border-bottom: 2px solid #888; background: #f4f4f4; }
.wide { max-width: 100%; overflow-x: auto; }
@media (max-width: 900px) {
  body { padding: 0 0.5em; }
  table { font-size: 0.78em; }
  th, td { padding: 0.2em 0.35em; }
}
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1em 0; }
figure img { width: 100%; max-width: 1000px; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; }
.warnings li { color: #8a4b00; }
.methods { background: #fafafa; border-left: 3px solid #999; padding: 0.6em 1em; }
ol.refs { font-size: 0.9em; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  figure, tr, .methods { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  .wide { overflow: visible; }
  figure img { border: none; }
}
"""


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
        "few studies no interval method keeps its 95% promise in every scenario of the "
        "coverage simulation (see Methods): read them as summaries of those studies, not as "
        "estimates of a class effect."
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
) -> str:
    """The report as one HTML string (UTF-8, no external assets, no scripts).

    ``methods`` replaces :data:`METHODS_PARAGRAPH` when the plan changed the model;
    ``generated`` is an optional line such as the date and software version. Raises
    ``ValueError`` naming the argument when ``included``/``excluded`` lack a required
    column or a figure has no image.
    """
    if included is not None:
        _require(included, "included", ("analysis", "record_id"))
    if excluded is not None:
        _require(excluded, "excluded", ("record_id", "reason"))
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Corpus version: {_e(corpus_version)}'
        + (f" · {_e(generated)}" if generated else "")
        + "</p>",
    ]
    per_analysis = [analysis_warnings(a) for a in analyses]
    parts.append("<h2>Read this first</h2>")
    parts.append(_list(_summary_lines(analyses, per_analysis, warnings), "warnings"))
    parts.append(
        '<ol class="toc">'
        + "".join(
            f'<li><a href="#analysis-{i}">{_e(a.title)}</a></li>' for i, a in enumerate(analyses, 1)
        )
        + "</ol>"
    )

    parts.append("<h2>Methods</h2>")
    parts.append(f'<p class="methods">{_e(methods or METHODS_PARAGRAPH)}</p>')
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
    parts.append(
        _frame_html(included) if included is not None and len(included) else "<p>None.</p>"
    )
    parts.append("<h2>Records set aside</h2>")
    parts.append(
        _frame_html(excluded) if excluded is not None and len(excluded) else "<p>None.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(
    path: Path,
    *,
    title: str,
    corpus_version: str,
    analyses: Sequence[ReportAnalysis],
    included: pd.DataFrame | None = None,
    excluded: pd.DataFrame | None = None,
    warnings: Sequence[str] = (),
    methods: str | None = None,
    generated: str = "",
) -> None:
    """Write :func:`render_report` to ``path`` atomically (temporary file, then os.replace)."""
    text = render_report(
        title=title,
        corpus_version=corpus_version,
        analyses=analyses,
        included=included,
        excluded=excluded,
        warnings=warnings,
        methods=methods,
        generated=generated,
    )
    write_text_atomic(path, text)
