"""Parts of the report that are written from the run rather than from one analysis: the
header (dates, versions, the models in plain words), the methods paragraph generated
from the models the plan actually used and the fallbacks that actually happened, the
records set aside grouped by reason, and what changed since the published state.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from metaresp import formatting as fmt

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from metaresp.models import ModelSpec

__all__ = [
    "REFERENCES",
    "Fallback",
    "ReportHeader",
    "methods_paragraph",
    "model_words",
    "reason_group",
    "set_aside_html",
]


REFERENCES: tuple[str, ...] = (
    "Guyatt GH, Oxman AD, Akl EA, et al. GRADE guidelines: 1. Introduction - GRADE "
    "evidence profiles and summary of findings tables. J Clin Epidemiol. 2011;64(4):383–394. "
    "doi:10.1016/j.jclinepi.2010.04.026",
    "Sterne JAC, Sutton AJ, Ioannidis JPA, et al. Recommendations for examining and "
    "interpreting funnel plot asymmetry in meta-analyses of randomised controlled trials. "
    "BMJ. 2011;343:d4002. doi:10.1136/bmj.d4002",
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
    "Günhan BK, Röver C, Friede T. Random-effects meta-analysis of few studies involving "
    "rare events. Res Synth Methods. 2020;11(1):74–90. doi:10.1002/jrsm.1370",
    "Stijnen T, Hamza TH, Özdemir P. Random effects meta-analysis of event outcome in the "
    "framework of the generalized linear mixed model with applications in sparse data. "
    "Stat Med. 2010;29(29):3046–3067. doi:10.1002/sim.4040",
    "Veroniki AA, Jackson D, Viechtbauer W, et al. Methods to estimate the between-study "
    "variance and its uncertainty in meta-analysis. Res Synth Methods. 2016;7(1):55–79. "
    "doi:10.1002/jrsm.1164",
    "Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat Softw. "
    "2010;36(3):1–48. doi:10.18637/jss.v036.i03",
)
"""Full references of the methods, as a panel pastes them."""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class ReportHeader:
    """What the first lines of the report say about the run."""

    run_date: str
    search_date: str | None
    """The last literature search (ISO date); ``None``: "not stated"."""
    corpus_version: str
    software: str
    primary_model: str
    """The primary analyses' model(s) in plain words."""
    other_model: str = ""
    """The other model family's, in plain words ("" without one)."""

    def html(self) -> str:
        first = [
            ("Run", self.run_date),
            ("Last literature search", self.search_date or "not stated"),
            ("Corpus version", self.corpus_version),
            ("Software", self.software),
        ]
        lines = [" · ".join(f"<b>{_e(k)}</b>: {_e(v)}" for k, v in first)]
        lines.append(f"<b>Model</b>: {_e(self.primary_model)}")
        if self.other_model:
            lines.append(f"<b>Sensitivity model</b>: {_e(self.other_model)}")
        return '<p class="header">' + "<br>".join(lines) + "</p>"


_TRANSFORM_WORDS = {
    "logit": "logit",
    "freeman-tukey": "Freeman-Tukey double arcsine",
    "arcsine": "arcsine",
    "raw": "untransformed",
    "log": "log",
}
_TAU2_WORDS = {
    "DL": "DerSimonian-Laird",
    "REML": "restricted maximum likelihood",
    "ML": "maximum likelihood",
    "PM": "Paule-Mandel",
    "SJ": "Sidik-Jonkman",
    "HE": "Hedges",
    "EB": "empirical Bayes",
    "HS": "Hunter-Schmidt",
}
_CI_WORDS = {
    "z": "normal-approximation (z) interval",
    "t": "t interval on k − 1 degrees of freedom",
    "hksj": "Hartung-Knapp-Sidik-Jonkman interval",
    "hksj-adhoc": "Hartung-Knapp-Sidik-Jonkman interval never narrower than the standard one",
}


def model_words(spec: ModelSpec) -> str:
    """A model in plain words, with its interval and, for the Bayesian model, its priors:
    "Bayesian binomial-normal model, half-normal prior with scale 1 on the between-study
    SD, ..., with a 95% equal-tailed credible interval" (no semicolon inside)."""
    level = fmt.level_text(spec.level)
    scale = _TRANSFORM_WORDS.get(spec.transform, spec.transform)
    if spec.estimator == "BAYES":
        from metaresp.priors import parse_mu_prior, parse_tau_prior

        tau = parse_tau_prior(spec.priors[0])
        mu = parse_mu_prior(spec.priors[1])
        tau_text = (
            f"uniform prior from 0 to {tau.scale:g}"
            if tau.family == "uniform"
            else f"{tau.family} prior with scale {tau.scale:g}"
        )
        return (
            f"Bayesian binomial-normal model ({scale} scale), {tau_text} on the between-study "
            f"SD, normal prior with mean {mu.mean:g} and SD {mu.sd:g} on the pooled logit, "
            f"with a {level} equal-tailed credible interval"
        )
    ci = _CI_WORDS.get(spec.ci, spec.ci)
    if spec.estimator == "GLMM":
        return (
            f"binomial-normal random-effects model (GLMM, {scale} scale), maximum likelihood, "
            f"with a {level} {ci}"
        )
    if spec.estimator == "FE":
        return f"common-effect inverse-variance model ({scale} scale), with a {level} {ci}"
    tau2 = _TAU2_WORDS.get(spec.estimator, spec.estimator)
    return f"inverse-variance random-effects model ({scale} scale, {tau2} τ²), with a {level} {ci}"


@dataclass(frozen=True)
class Fallback:
    """A pooled estimate whose requested model could not be fitted."""

    analysis: str
    subgroup: str
    reason: str
    fitted: str


def _fallback_sentence(fallbacks: Sequence[Fallback]) -> str:
    if not fallbacks:
        return "The requested model could be fitted for every pooled estimate (no fallback). "
    by_reason: dict[tuple[str, str], dict[str, list[str]]] = {}
    for f in fallbacks:
        cause = re.sub(r";\s*(?:use|try)\b.*$", "", f.reason).strip().rstrip(".")
        where = by_reason.setdefault((cause, f.fitted), {})
        where.setdefault(f.subgroup, []).append(f.analysis)
    parts = [
        f"{_and([f'{sub} in {_and(names)}' for sub, names in where.items()])} "
        f"({cause or 'the fit failed'}): {fitted} was used instead"
        for (cause, fitted), where in by_reason.items()
    ]
    n = len(fallbacks)
    return (
        f"The requested model could not be fitted for {n} pooled estimate{'s' if n > 1 else ''}, "
        + "; ".join(parts)
        + ". "
    )


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def methods_paragraph(
    primary: Sequence[ModelSpec],
    sensitivity: Sequence[ModelSpec],
    fallbacks: Sequence[Fallback],
    certainty_rules: str,
) -> str:
    """The methods as a panel pastes them, from the models the plan actually used (each
    once), the fallbacks that happened with their causes, and the certainty rules."""
    firsts = list(dict.fromkeys(primary))
    others = [m for m in dict.fromkeys(sensitivity) if m not in firsts]
    text = [
        "Response rates (responders among evaluable patients) were pooled separately within "
        "each subgroup, each with its own between-study variance (τ²). "
    ]
    text.append(
        "The primary model was the "
        + "; in some analyses the ".join(model_words(m) for m in firsts)
        + ". "
    )
    if any(m.estimator == "GLMM" for m in firsts):
        text.append(
            "The mixed model uses the exact binomial likelihood with adaptive Gauss-Hermite "
            "quadrature (Stijnen et al. 2010), so studies with 0% or 100% response need no "
            "continuity correction. "
        )
    bayesian = [m for m in dict.fromkeys([*firsts, *others]) if m.estimator == "BAYES"]
    if bayesian:
        from metaresp.priors import parse_mu_prior, parse_tau_prior

        text.append(
            "The Bayesian binomial-normal model (Günhan, Röver & Friede 2020) uses the exact "
            "binomial likelihood of each study, so it needs no continuity correction; its "
            "posterior was computed by numerical integration, not by sampling, and its pooled "
            "rate is the posterior median. Its priors, in plain words: "
            + "; ".join(
                f"{parse_tau_prior(m.priors[0]).describe()}, and a "
                f"{parse_mu_prior(m.priors[1]).describe()}"
                for m in bayesian
            )
            + ". "
        )
    if others:
        text.append(
            "Sensitivity analyses used the " + "; the ".join(model_words(m) for m in others) + ". "
        )
    if any(m.transform == "freeman-tukey" for m in [*firsts, *others]):
        text.append(
            "The Freeman-Tukey transform is shown only for comparison with published pools "
            "that used it; its back-transformation can mislead (Schwarzer et al. 2019). "
        )
    text.append(_fallback_sentence(fallbacks))
    text.append(
        "Prediction intervals (t distribution, k − 2 degrees of freedom; for the Bayesian "
        "model the posterior predictive interval, also for k = 2) are reported where k ≥ 3 "
        "(Higgins et al. 2009). Heterogeneity is described by τ², I² (Higgins & Thompson "
        "2002) and a Q test; differences between subgroups were tested with the between-subgroup Q "
        "statistic, only for groupings whose subgroups share no patient cohort. Every "
        "interval of a single study, in the forest plots, the cumulative plots and the "
        "tables, is the exact Clopper-Pearson interval (Clopper & Pearson 1934). Each "
        "patient cohort contributes once to any pooled estimate (one cohort, one vote): "
        "where several reports describe the same patients, the latest report with the "
        "largest evaluable denominator was used. Counts of patients and counts of treatment "
        "lines were never pooled together; records that give a percentage without a "
        "denominator were not pooled. Subgroups with a single study are shown but not pooled. The "
        "estimation routines were checked against the R package metafor (Viechtbauer "
        "2010). In the project's coverage simulation no interval method kept between 93% "
        "and 97% coverage in every scenario with 3 or fewer studies; the Bayesian model "
        "with a half-normal(2) prior on the between-study SD was the only one to stay at "
        "or above 93% (within Monte-Carlo error) in every scenario, with the narrowest "
        "such intervals for 2 and 3 studies, and is therefore the default. Estimates from "
        "3 or fewer studies are flagged and are summaries of those studies rather than "
        "estimates of a class effect. "
    )
    text.append(certainty_rules)
    return "".join(text).strip()


# --------------------------------------------------------------------------- set aside

_REASON_GROUPS: tuple[tuple[str, str], ...] = (
    (r"^counts lines", "counts treatment lines, not patients"),
    (r"^counts patients", "counts patients, where the analysis pools treatment lines"),
    (r"^percent only", "a percentage without the counts needed to pool"),
    (r"^no evaluable patients", "no evaluable patients"),
    (r"^sums groups", "a total of groups that are counted in their own subgroups"),
    (r"counted in its total", "a part of a total that is pooled instead"),
    (r"one cohort, one vote: set aside", "another report of the same patients was kept"),
    (r"^matches no class", "fits none of the grouping's classes"),
    (r"^excluded by the grouping", "excluded by the grouping"),
    (r"^design case-report", "a case report (pooled only in a sensitivity analysis)"),
    (r"^design ", "a study design this analysis does not pool"),
    (r"^mixed group", "a group that mixes salvage classes"),
)


_PLAIN_ALREADY = ("counts lines", "counts patients", "percent only", "no evaluable")
"""Reasons whose text says no more than their group's words (not repeated per record)."""


def reason_group(reason: str) -> str:
    """The plain-words group of a set-aside reason (the reason itself when none fits)."""
    for pattern, words in _REASON_GROUPS:
        if re.search(pattern, reason):
            return words
    return reason


def set_aside_html(excluded: pd.DataFrame | None) -> str:
    """Records set aside, grouped by reason in plain words with counts, collapsed: per
    reason the number of records and analyses, and (collapsed again) the records."""
    if excluded is None or not len(excluded):
        return "<p>No record was set aside.</p>"
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for rec in excluded.to_dict("records"):
        reason = str(rec["reason"])
        study = str(rec.get("study", "") or rec["record_id"])
        words = reason_group(reason)
        if words != reason and not reason.startswith(_PLAIN_ALREADY):
            study = f"{study}: {reason}"
        groups.setdefault(words, []).append(
            (str(rec["record_id"]), study, str(rec.get("analysis", "")))
        )
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    distinct = len({r for items in groups.values() for r, _, _ in items})
    rows: list[str] = []
    for words, items in ordered:
        records = sorted({(rid, study) for rid, study, _ in items})
        analyses = len({a for _, _, a in items})
        listing = "".join(
            f'<li>{_e(study)} <span class="sub">({_e(rid)})</span></li>' for rid, study in records
        )
        rows.append(
            f'<tr><td>{_e(words)}</td><td class="num">{len({r for r, _ in records})}</td>'
            f'<td class="num">{analyses}</td><td><details><summary>list</summary>'
            f"<ul>{listing}</ul></details></td></tr>"
        )
    return (
        f"<details><summary>{distinct} records set aside at least once "
        f"({len(excluded)} times over all analyses), by reason</summary>"
        '<div class="wide"><table><thead><tr><th>Reason</th><th>Records</th>'
        "<th>Analyses</th><th>Records</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
        '<p class="meta">Every record with its exact reason: set-aside.csv.</p></details>'
    )
