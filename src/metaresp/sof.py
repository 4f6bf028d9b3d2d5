"""Summary of findings: the table a guideline panel reads first (GRADE conventions).

One table per primary analysis, one row per subgroup (a salvage class): studies and
patients, the pooled rate with its interval (credible interval for the Bayesian model),
the prediction interval, the mean response rate where it differs from the pooled
(median) rate by more than 5 points, the probability above the clinical threshold where
the model gives one, the other model family's estimate as a compact sensitivity line,
and the certainty of the evidence with its reasons (:mod:`metaresp.grade`), or a panel's
rating with its reason. Layout after the GRADE summary-of-findings tables (Guyatt et al.
2011, J Clin Epidemiol 64:383): few columns, words before numbers, the reasons beside
the rating. Nothing is recomputed here; every number is read from an
:class:`~metaresp.estimates.EstimateRow`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from metaresp import formatting as fmt
from metaresp import grade
from metaresp.estimates import EstimateRow
from metaresp.forestdata import ForestData

__all__ = ["SYMBOLS", "Finding", "FindingsTable", "findings_html", "findings_table", "legend_text"]

SYMBOLS: dict[str, str] = {
    "high": "⊕⊕⊕⊕",
    "moderate": "⊕⊕⊕◯",
    "low": "⊕⊕◯◯",
    "very low": "⊕◯◯◯",
}
"""GRADE's symbols for the four levels."""

_OUTCOME_WORDS = {"ORR": "Overall response", "VGPR+": "VGPR or better", "CR+": "CR or better"}


@dataclass(frozen=True)
class Finding:
    """One row: a subgroup's estimate, its certainty, and the other family's estimate."""

    subgroup: str
    row: EstimateRow
    certainty: grade.Certainty
    other: EstimateRow | None = None


@dataclass(frozen=True)
class FindingsTable:
    """The summary of findings of one primary analysis."""

    name: str
    title: str
    outcome: str
    level: float
    bayesian: bool
    findings: tuple[Finding, ...]
    other_name: str = ""
    """The other model family, in a few words (e.g. "Bayesian model"); "" without one."""


def _rows(forest: ForestData) -> list[tuple[str, EstimateRow]]:
    out = [(s.name, s.pooled) for s in forest.subgroups if s.pooled is not None]
    if forest.overall is not None:
        out.append(("Overall", forest.overall))
    return out


def findings_table(
    name: str,
    title: str,
    forest: ForestData,
    *,
    other: ForestData | None = None,
    other_name: str = "",
    population: str | None = None,
    overrides: Mapping[str, tuple[grade.Rating, str]] | None = None,
) -> FindingsTable:
    """The table of one primary analysis from its forest data (and the other family's).

    ``overrides`` maps a subgroup name to a panel's ``(rating, reason)``."""
    others = dict(_rows(other)) if other is not None else {}
    findings: list[Finding] = []
    for subgroup, row in _rows(forest):
        cert = grade.certainty(row, population)
        if overrides and subgroup in overrides:
            rating, reason = overrides[subgroup]
            cert = grade.apply_override(cert, rating, reason)
        findings.append(Finding(subgroup, row, cert, others.get(subgroup)))
    bayesian = any(_bayes(f.row) for f in findings)
    return FindingsTable(
        name=name,
        title=title,
        outcome=forest.outcome,
        level=forest.level,
        bayesian=bayesian,
        findings=tuple(findings),
        other_name=other_name,
    )


# --------------------------------------------------------------------------- HTML


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _estimate(row: EstimateRow) -> str:
    return f"{fmt.percent(row.proportion)} ({fmt.interval(row.ci_low, row.ci_high)})"


def _bayes(row: EstimateRow | None) -> bool:
    return row is not None and row.fitted is not None and row.fitted.estimator == "BAYES"


def _rate_cell(f: Finding, table: FindingsTable) -> str:
    row = f.row
    lines = [f'<span class="rate">{_e(_estimate(row))}</span>']
    if row.single:
        lines.append('<span class="sub">one study: not pooled, exact interval</span>')
    if grade.mean_differs(row):
        assert row.mean_proportion is not None
        lines.append(
            '<span class="sub">mean across studies '
            f"{_e(fmt.percent(row.mean_proportion))}: the studies vary so much that their "
            "average rate differs from the typical study's</span>"
        )
    if row.prob_above is not None and row.threshold is not None:
        lines.append(
            f'<span class="sub">probability above {_e(fmt.percent(row.threshold, 0))}: '
            f"{row.prob_above:.2f}</span>"
        )
    o = f.other
    if o is not None and not o.single:
        kind = "CrI" if _bayes(o) else "CI"
        extra = ""
        if o.prob_above is not None and o.threshold is not None:
            extra = f"; P(&gt; {_e(fmt.percent(o.threshold, 0))}) {o.prob_above:.2f}"
        lines.append(
            f'<span class="sub other">{_e(table.other_name or "other model")}: '
            f"{_e(fmt.percent(o.proportion))} ({kind} {_e(fmt.interval(o.ci_low, o.ci_high))})"
            f"{extra}</span>"
        )
    return "<br>".join(lines)


def _certainty_cell(cert: grade.Certainty) -> str:
    word = cert.rating.capitalize()
    cls = "cert-" + cert.rating.replace(" ", "-")
    text = (
        f'<span class="cert {cls}"><span class="sym" aria-hidden="true">'
        f"{SYMBOLS[cert.rating]}</span> {_e(word)}</span>"
    )
    if cert.overridden:
        text += f'<br><span class="sub">panel\'s rating (rules: {_e(cert.rule_rating)})</span>'
    return text


def _why_cell(cert: grade.Certainty) -> str:
    if cert.overridden:
        return f"Panel: {_e(cert.override_reason)}"
    reasons = cert.reasons()
    start = "" if cert.start == "low" else "randomised trials: start at high; "
    if not reasons:
        return _e(f"{start}no concern beyond the single-arm design.".capitalize())
    text = start + "; ".join(reasons) + "."
    return _e(text[0].upper() + text[1:])


def _domains_html(table: FindingsTable) -> str:
    head = (
        "<tr><th>Subgroup</th><th>Start</th><th>Risk of bias</th><th>Inconsistency</th>"
        "<th>Imprecision</th><th>Indirectness</th><th>Publication bias</th>"
        "<th>Certainty</th></tr>"
    )
    body: list[str] = []
    for f in table.findings:
        c = f.certainty
        cells = [f"<td>{_e(f.subgroup)}</td>", f"<td>{_e(c.start)}: {_e(c.start_reason)}</td>"]
        cells.extend(f"<td><b>{_e(d.judgement)}</b>: {_e(d.reason)}</td>" for d in c.domains)
        rating = c.rating + (f" (panel; rules: {c.rule_rating})" if c.overridden else "")
        cells.append(f"<td>{_e(rating)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<details><summary>Certainty, domain by domain</summary>"
        f'<div class="wide"><table class="domains">{head}{"".join(body)}</table></div>'
        "</details>"
    )


def findings_html(table: FindingsTable, *, heading: str = "h3", first: bool = False) -> str:
    """One summary-of-findings table: a heading, the table, the domains (collapsed)."""
    interval = "CrI" if table.bayesian else "CI"
    level = fmt.level_text(table.level)
    outcome = _OUTCOME_WORDS.get(table.outcome, table.outcome)
    head = (
        f"<tr><th>Subgroup</th><th>Studies (patients)</th>"
        f"<th>{_e(outcome)}, pooled ({level} {interval})</th>"
        f"<th>{level} prediction interval</th><th>Certainty</th><th>Why</th></tr>"
    )
    cls = ' class="sof-first"' if first else ""
    body: list[str] = []
    for f in table.findings:
        row = f.row
        pi = (
            fmt.interval(row.pi_low, row.pi_high)
            if row.pi_low is not None and row.pi_high is not None
            else "–"
        )
        body.append(
            "<tr>"
            f"<td>{_e(f.subgroup)}</td>"
            f'<td class="num">{row.k} ({row.total})</td>'
            f"<td>{_rate_cell(f, table)}</td>"
            f'<td class="num">{_e(pi)}</td>'
            f"<td>{_certainty_cell(f.certainty)}</td>"
            f'<td class="why">{_why_cell(f.certainty)}</td>'
            "</tr>"
        )
    return (
        f'<{heading} id="sof-{_e(table.name)}"{cls}>{_e(table.title)}</{heading}>'
        f'<div class="wide"><table class="sof">\n<thead>{head}</thead>\n<tbody>\n'
        + "\n".join(body)
        + "\n</tbody></table></div>"
        + _domains_html(table)
    )


def legend_text(tables: Sequence[FindingsTable]) -> str:
    """The sentence under the first table: what the columns mean, in plain words."""
    low = all(f.certainty.start == "low" for t in tables for f in t.findings)
    start = (
        "Every row starts at low, because the studies are single arms without a control "
        "group (GRADE for non-randomised evidence); Why names what lowered it further. "
        if low
        else "Why names what lowered the certainty. "
    )
    return (
        "Pooled: the response rate of a typical study, with the range that the data "
        "leave plausible (confidence or credible interval). Prediction interval: where the "
        "rate of a new study would probably fall. Certainty (GRADE): how sure we can be that "
        "the true rate is close to the pooled one; high, moderate, low or very low. "
        + start
        + "A dash: not estimable (fewer than three studies)."
    )
