"""One estimate row: a pooled subgroup (or one study shown, not pooled), built once.

Every output reads the same :class:`EstimateRow`: the CSV, XLSX and Markdown tables
(:mod:`metaresp.tables`), the report's pooled table (:mod:`metaresp.report`), the forest
plot's diamonds (:class:`metaresp.forestdata.PooledRow` is this class), the text and
JSON of ``metaresp pool`` (:mod:`metaresp.poolcli`) and the estimates of
``summary.json``. :func:`estimate_row` builds it from a
:class:`~metaresp.analysis.GroupResult`; the projections (:func:`summary_dict`,
:func:`text_lines`) only read it.

What the fit did is read from the result's fields in one place: :func:`is_fallback`,
:func:`fallback_reason`, :func:`fitted_model` and :func:`q_kind`.
All proportions are on the 0-1 scale; I² is in percent; τ² on the model's scale.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from metaresp import formatting as fmt

if TYPE_CHECKING:  # pragma: no cover
    from metaresp.analysis import GroupResult
    from metaresp.models import ModelSpec
    from metaresp.pooling import PoolResult

__all__ = [
    "FEW_STUDIES",
    "MEAN_DIFFERS",
    "Combined",
    "EstimateRow",
    "RowKind",
    "estimate_row",
    "exact_interval",
    "extreme_sentence",
    "fallback_note",
    "fallback_reason",
    "few_studies_note",
    "fitted_model",
    "heterogeneity_text",
    "is_fallback",
    "mean_note",
    "model_dict",
    "plain_notes",
    "plain_words",
    "q_kind",
    "row_sentences",
    "said_once",
    "summary_dict",
    "text_lines",
    "wide_sentence",
]

WIDE_INTERVAL = 0.9
"""A pooled interval wider than this (90 percentage points) is explained in a sentence."""

MEAN_DIFFERS = 0.05
"""The mean response rate across studies is shown beside the pooled (median) rate when
they differ by more than this (5 percentage points)."""

CRUDE_DIFFERS = 0.15
"""A pooled rate further than this (15 percentage points) from the crude rate (all
responders over all patients) is explained in a sentence."""

FEW_STUDIES = 3
"""Pooled estimates from this many studies or fewer are flagged in every output: in the
project's coverage simulations (docs/simulation) no interval method kept 93-97% coverage
in every scenario with k <= 3; the default Bayesian interval stays at or above 93% by
erring on the wide side, and depends on its prior."""

RowKind = Literal["subgroup", "overall"]


@functools.lru_cache(maxsize=4096)
def exact_interval(events: int, total: int, level: float) -> tuple[float, float]:
    """The exact (Clopper-Pearson 1934) interval of one study, as every output shows it
    (remembered: a study recurs in most analyses of a run, and in each of their outputs)."""
    from metaresp.intervals import clopper_pearson

    low, high = clopper_pearson([events], [total], level)
    return float(low[0]), float(high[0])


def few_studies_note(k: int) -> str:
    """The flag a pooled estimate from ``k <= FEW_STUDIES`` studies carries."""
    return (
        f"pooled from {k} studies: with 3 or fewer studies no interval keeps exactly its "
        "95% promise in every scenario of our coverage simulation; the default Bayesian "
        "interval errs on the wide side and rests on its prior for how much studies "
        "differ, which so few studies cannot pin down. Interpret with caution"
    )


# --------------------------------------------------------------------------- the fit


def fitted_model(res: PoolResult) -> ModelSpec:
    """The model ``res`` was actually fitted with (after a fallback, the fallback's)."""
    return res.fitted


def is_fallback(res: PoolResult) -> bool:
    """Whether the requested model could not be fitted and another one was."""
    return res.fallback


def fallback_reason(res: PoolResult) -> str | None:
    """Why the fit fell back, in the engine's words; ``None`` when it did not."""
    return res.fallback_reason if res.fallback else None


def q_kind(res: PoolResult) -> fmt.QKind:
    """Which heterogeneity statistic ``res.q`` is: ``"cochran"`` (inverse variance),
    ``"wald"`` (the GLMM's Wald-type test) or ``"none"`` (no Q, the Bayesian model)."""
    kind = res.q_kind
    return "wald" if kind == "wald" else "none" if kind == "none" else "cochran"


# --------------------------------------------------------------------------- the row


@dataclass(frozen=True)
class Combined:
    """One pooled entry that sums disjoint groups of one study (their record ids)."""

    entry: str
    label: str
    records: tuple[str, ...]
    responders: int
    evaluable: int


@dataclass(frozen=True)
class EstimateRow:
    """One pooled estimate, or a single study shown but not pooled (``pooled=False``).

    The first fields keep the order of the forest plot's former ``PooledRow`` (label, k,
    events, total, proportion, ci_low, ci_high, ...), so it can be written positionally.
    """

    label: str
    """What a forest plot's diamond reads, e.g. ``"Pooled"``; the subgroup name elsewhere."""
    k: int
    events: int
    """Responders."""
    total: int
    """Patients (evaluable)."""
    proportion: float
    ci_low: float
    """Pooled interval at :attr:`level`; for a single study the exact (Clopper-Pearson) one."""
    ci_high: float
    pi_low: float | None = None
    pi_high: float | None = None
    i2: float | None = None
    tau2: float | None = None
    q: float | None = None
    q_df: int | None = None
    q_pvalue: float | None = None
    pooled: bool = True
    """False when k == 1: the study is shown, not pooled."""
    warnings: tuple[str, ...] = ()
    analysis: str = ""
    subgroup: str = ""
    kind: RowKind = "subgroup"
    level: float = 0.95
    q_kind: fmt.QKind = "cochran"
    fitted: ModelSpec | None = None
    """The model fitted; ``None`` for a single study."""
    requested: ModelSpec | None = None
    """The model the plan or the command asked for."""
    fallback: bool = False
    fallback_reason: str | None = None
    q_lrt: float | None = None
    """GLMM: the likelihood-ratio test of heterogeneity (metafor's ``QE.LRT``, k-1 df)."""
    q_lrt_pvalue: float | None = None
    set_aside: int | None = None
    """Records of this subgroup set aside (tables of a plan run only)."""
    records: tuple[str, ...] = ()
    """Ids of the records pooled, in order (a combined entry counts each of its records)."""
    combined: tuple[Combined, ...] = ()
    """Entries that combine disjoint groups of one study into one count."""
    notes: tuple[str, ...] = ()
    """Notes on the subgroup (e.g. "one study: shown, not pooled")."""
    mean_proportion: float | None = None
    """GLMM and Bayesian models: the mean response rate across studies, E[expit(μ + τz)]."""
    mean_ci_low: float | None = None
    mean_ci_high: float | None = None
    threshold: float | None = None
    """The analysis' clinical threshold (a proportion), when it has one."""
    prob_above: float | None = None
    """Bayesian model: the posterior probability that the response rate exceeds
    :attr:`threshold`."""

    designs: tuple[str, ...] = ()
    """The design of each entry pooled (vocabulary ``design``), in pooling order."""
    populations: tuple[str, ...] = ()
    """The population of each entry pooled (vocabulary ``population``)."""

    @property
    def mean_differs(self) -> bool:
        """The mean rate across studies differs from the pooled (median) rate by more than
        :data:`MEAN_DIFFERS`."""
        return (
            self.pooled
            and not fmt.is_missing(self.mean_proportion)
            and abs(float(self.mean_proportion or 0.0) - self.proportion) > MEAN_DIFFERS
        )

    @property
    def patients(self) -> int:
        return self.total

    @property
    def responders(self) -> int:
        return self.events

    @property
    def single(self) -> bool:
        """One study shown, not pooled."""
        return not self.pooled or self.k < 2

    @property
    def few_studies(self) -> bool:
        """Pooled from :data:`FEW_STUDIES` or fewer studies (flagged in every output)."""
        return self.pooled and self.k <= FEW_STUDIES

    @property
    def model_text(self) -> str:
        """The model actually fitted, e.g. ``GLMM (logit), t CI`` or ``REML (logit),
        Hartung-Knapp CI (fallback)``; ``not pooled (one study)`` for a single study."""
        if self.fitted is None:
            return "not pooled (one study)"
        return self.fitted.label() + (" (fallback)" if self.fallback else "")


def estimate_row(
    g: GroupResult,
    *,
    level: float,
    requested: ModelSpec | None = None,
    analysis: str = "",
    kind: RowKind = "subgroup",
    label: str | None = None,
    set_aside: int | None = None,
) -> EstimateRow:
    """The one row of subgroup ``g``: its pooled result, or its single study (exact CI)."""
    common: dict[str, Any] = {
        "label": g.name if label is None else label,
        "analysis": analysis,
        "subgroup": g.name,
        "kind": kind,
        "level": level,
        "requested": requested,
        "set_aside": set_aside,
        "records": tuple(i for r in g.records for i in r.pooled_ids),
        "notes": (g.note,) if g.note else (),
        "designs": tuple(r.design for r in g.records),
        "populations": tuple(r.population for r in g.records),
        "combined": tuple(
            Combined(r.record_id, r.label, tuple(r.members), r.events or 0, r.total or 0)
            for r in g.records
            if r.members
        ),
    }
    res = g.result
    if res is None:
        r = g.records[0]
        events, total = r.events or 0, r.total or 0
        low, high = exact_interval(events, total, level)
        return EstimateRow(
            k=1,
            events=events,
            total=total,
            proportion=events / total,
            ci_low=low,
            ci_high=high,
            pooled=False,
            **common,
        )
    return EstimateRow(
        k=res.k,
        events=g.events,
        total=g.patients,
        proportion=res.proportion,
        ci_low=res.ci_low,
        ci_high=res.ci_high,
        # the common-effect model has no between-study variance, so no prediction interval
        pi_low=None if res.fitted.estimator == "FE" else res.pi_low,
        pi_high=None if res.fitted.estimator == "FE" else res.pi_high,
        i2=res.i2,
        tau2=res.tau2,
        q=res.q,
        q_df=res.q_df,
        q_pvalue=res.q_pvalue,
        pooled=True,
        warnings=tuple(res.warnings),
        q_kind=q_kind(res),
        fitted=fitted_model(res),
        fallback=is_fallback(res),
        fallback_reason=fallback_reason(res),
        q_lrt=res.q_lrt,
        q_lrt_pvalue=res.q_lrt_pvalue,
        mean_proportion=res.mean_proportion,
        mean_ci_low=res.mean_ci_low,
        mean_ci_high=res.mean_ci_high,
        threshold=res.threshold,
        prob_above=res.prob_above,
        **common,
    )


# --------------------------------------------------------------------------- plain words

_PLAIN: tuple[tuple[str, str], ...] = (
    (r"\btau\^?2\b|\btau²", "τ²"),
    (r"\bmu\b", "the pooled logit"),
    (r"\btau\b", "τ"),
    (r"\s*\(?estimator\s*=\s*'(\w+)'\)?", r" (\1)"),
    (
        r"[;,]?\s*(?:try|refit with)\s+nagq\s*=\s*(\d+)\s*(?:\(metafor: nAGQ\s*=\s*\d+\))?",
        r"; a finer quadrature (\1 nodes) may help",
    ),
    (r"\s*\(metafor: nAGQ\s*=\s*\d+\)", ""),
    (r"\bheterogeneity statistic q_wald\b", "heterogeneity test"),
    (r"\bq_wald\b", "the Wald heterogeneity test"),
    (r"\bHKSJ(?:-ADHOC| ad hoc)?\b", "Hartung-Knapp"),
    (r"may help\s*or\b", "may help, or"),
    (r'\bci="(\w[\w-]*)"', r"the \1 interval"),
)


def plain_words(text: str) -> str:
    """An engine message for a reader of the figure: internal names (``q_wald``,
    ``estimator='REML'``, ``nagq=15``, ``HKSJ-ADHOC``, ``tau²``) in words."""
    import re

    for pattern, repl in _PLAIN:
        text = re.sub(pattern, repl, text, flags=re.IGNORECASE if "hksj" in pattern.lower() else 0)
    text = re.sub(r"\ban Hartung", "a Hartung", text)
    return re.sub(r"\s{2,}", " ", text).replace(" ;", ";").strip()


def fallback_note(row: EstimateRow) -> str:
    """What a fallback did, in plain words, e.g. "The requested model (GLMM (logit), t CI)
    could not be fitted: every study has 0 or all events, ...; pooled instead with REML
    (logit), Hartung-Knapp CI"; "" without a fallback."""
    import re

    if not row.fallback or row.fitted is None:
        return ""
    asked = "" if row.requested is None else f" ({plain_words(row.requested.label())})"
    # the engine's reason, without advice addressed to a programmer ("; use ...")
    cause = re.sub(r";\s*(?:use|try)\b.*$", "", plain_words(row.fallback_reason or ""))
    cause = cause.strip() + ")" * max(0, cause.count("(") - cause.count(")"))
    because = f": {cause}" if cause else ""
    return (
        f"The requested model{asked} could not be fitted{because}; pooled instead with "
        f"{plain_words(row.fitted.label())}"
    )


def plain_notes(rows: Sequence[EstimateRow]) -> list[str]:
    """Each distinct note of ``rows`` once, in plain words, naming the estimates it
    concerns: "With two studies, ... (Bispecific antibodies; Other)" (in square brackets
    when a name has parentheses of its own): the engine's warnings and fallbacks and
    :func:`row_sentences`."""
    where: dict[str, list[str]] = {}
    for row in rows:
        texts = [fallback_note(row)] if row.fallback else []
        reason = row.fallback_reason if row.fallback else None
        texts.extend(plain_words(w) for w in row.warnings if not (reason and reason in w))
        texts.extend(row_sentences(row))
        for text in texts:
            if text:
                names = where.setdefault(text[0].upper() + text[1:], [])
                if row.subgroup not in names:
                    names.append(row.subgroup)
    return said_once(where)


def wide_sentence(low: float, high: float, k: int, ci: str, level: float) -> str:
    """One plain sentence on a pooled interval wider than :data:`WIDE_INTERVAL`, to stand
    beside the interval (for a t-based interval from few studies: its degrees of freedom
    and critical value); "" for a narrower one."""
    if high - low <= WIDE_INTERVAL:
        return ""
    if ci in ("t", "hksj", "hksj-adhoc") and 2 <= k <= 5:
        from scipy import special  # stdtrit is the t quantile (scipy.stats.t.ppf's core)

        crit = float(special.stdtrit(k - 1, 0.5 + level / 2.0))
        return (
            f"With {k} studies the interval uses a t distribution with "
            f"{k - 1} degree{'s' if k > 2 else ''} of freedom (critical value "
            f"{crit:.1f} instead of 1.96), so it says little about the response rate; a "
            "Bayesian model (metaresp's default, estimator BAYES) gives a narrower interval "
            "under a stated prior"
        )
    return "The interval is wide: the studies are too few or too small to say more"


def extreme_sentence(events: int, total: int, proportion: float) -> str:
    """One plain sentence when no patient, or every patient, responded: the pooled rate
    then comes from the continuity correction, not from the data; "" otherwise."""
    if events not in (0, total):
        return ""
    crude = "no patient" if events == 0 else "every patient"
    return (
        f"{crude.capitalize()} of {total} responded; the pooled {fmt.percent(proportion)} "
        "comes from the 0.5 added to each study's responders and non-responders so that its "
        "logit is finite (metafor's convention), not from the data"
    )


def crude_sentence(row: EstimateRow) -> str:
    """One plain sentence when the pooled rate lies far (:data:`CRUDE_DIFFERS`) from the
    crude rate of all patients together; "" otherwise."""
    if row.total <= 0 or row.k < 2:
        return ""
    crude = row.events / row.total
    if abs(row.proportion - crude) <= CRUDE_DIFFERS:
        return ""
    return (
        f"The pooled rate ({fmt.percent(row.proportion)}) is far from the crude rate of all "
        f"patients together ({fmt.counts(row.events, row.total)}, {fmt.percent(crude)}): the "
        "studies' rates differ so much that the random-effects model weighs small and large "
        "studies almost alike, so it describes a typical study, not the pooled patients"
    )


def row_sentences(row: EstimateRow) -> list[str]:
    """The plain sentences a pooled estimate needs beside its numbers (none for a single
    study): no patient or every patient responded (:func:`extreme_sentence`), an interval
    wider than 90 points (:func:`wide_sentence`), a pooled rate far from the crude one
    (:func:`crude_sentence`), a mean rate far from the pooled one (:func:`mean_note`).
    Tables, figures and the CLI all say these."""
    if row.single:
        return []
    wide = (
        ""
        if row.fitted is None
        else wide_sentence(row.ci_low, row.ci_high, row.k, row.fitted.ci, row.level)
    )
    notes = (
        extreme_sentence(row.events, row.total, row.proportion),
        wide,
        crude_sentence(row),
        mean_note(row),
    )
    return [n for n in notes if n]


def said_once(where: Mapping[str, Sequence[str]]) -> list[str]:
    """Each note once, naming the estimates it concerns: "Text (A; B)." (in square
    brackets when a name has parentheses of its own), "Text." when it names none."""
    out = []
    for text, names in where.items():
        named = "; ".join(n for n in names if n)
        if not named:
            out.append(f"{text}.")
        elif "(" in named:
            out.append(f"{text} [{named}].")
        else:
            out.append(f"{text} ({named}).")
    return out


def mean_note(row: EstimateRow) -> str:
    """One plain sentence on the mean response rate across studies when it differs from
    the pooled rate by more than 5 points; "" otherwise."""
    if not row.mean_differs or row.mean_proportion is None:
        return ""
    mean = fmt.estimate_interval(
        row.mean_proportion,
        row.mean_ci_low,
        row.mean_ci_high,
        level=row.level,
        what=row.fitted.interval_abbrev if row.fitted is not None else "CI",
    )
    return (
        f"The mean response rate across studies is {mean}, against a pooled rate of "
        f"{fmt.percent(row.proportion)}: the pooled rate is that of a typical (median) "
        "study, and the studies' rates vary so much that the two differ"
    )


# --------------------------------------------------------------------------- projections


def _num(value: float | None) -> float | None:
    return None if value is None or fmt.is_missing(value) else float(value)


def model_dict(spec: ModelSpec) -> dict[str, Any]:
    """The options that name a model in ``summary.json`` and ``metaresp pool --json``: the
    transform, estimator, interval and level, and for the Bayesian model its two priors
    (the defaults written out when the model was asked for without them)."""
    out: dict[str, Any] = {
        "transform": spec.transform,
        "estimator": spec.estimator,
        "ci": spec.ci,
        "level": spec.level,
    }
    if spec.estimator == "BAYES":
        out["tau_prior"], out["mu_prior"] = spec.priors
    return out


def summary_dict(row: EstimateRow) -> dict[str, Any]:
    """The row as one estimate of ``summary.json`` (keys fixed; proportions 0-1)."""
    return {
        "subgroup": row.subgroup,
        "pooled": row.pooled,
        "k": row.k,
        "patients": row.patients,
        "responders": row.responders,
        "estimate": _num(row.proportion),
        "ci_low": _num(row.ci_low),
        "ci_high": _num(row.ci_high),
        "pi_low": _num(row.pi_low),
        "pi_high": _num(row.pi_high),
        "i2": _num(row.i2),
        "tau2": _num(row.tau2),
        "q": _num(row.q),
        "q_df": row.q_df,
        "q_pvalue": _num(row.q_pvalue),
        "mean": _num(row.mean_proportion),
        "mean_ci_low": _num(row.mean_ci_low),
        "mean_ci_high": _num(row.mean_ci_high),
        "threshold": _num(row.threshold),
        "prob_above": _num(row.prob_above),
        "model": None if row.fitted is None else model_dict(row.fitted),
        "warnings": list(row.warnings),
        "records": list(row.records),
        "combined": [
            {
                "entry": c.entry,
                "label": c.label,
                "records": list(c.records),
                "responders": c.responders,
                "evaluable": c.evaluable,
            }
            for c in row.combined
        ],
    }


def heterogeneity_text(row: EstimateRow) -> str:
    """``I² = 45.0%, τ² = 0.2100, Cochran's Q = 7.30, df = 4, p = 0.12`` from the values
    present (a Wald Q for the GLMM); "" for a single study or when none is given."""
    if row.single:
        return ""
    parts: list[str] = []
    # the Bayesian τ² (and the I² from it) is a posterior median, which with two or three
    # studies mostly repeats its prior: it is labelled so
    bayes = row.fitted is not None and row.fitted.family == "bayes"
    if not fmt.is_missing(row.i2):
        parts.append(f"I² = {fmt.i2(row.i2)}")
    if not fmt.is_missing(row.tau2):
        parts.append(f"τ² = {fmt.tau2(row.tau2)}" + (" (posterior median)" if bayes else ""))
    if not fmt.is_missing(row.q):
        parts.append(fmt.q_test(row.q, row.q_df, row.q_pvalue, row.q_kind))
    elif not fmt.is_missing(row.q_pvalue):
        parts.append(fmt.p_text(row.q_pvalue))
    return ", ".join(parts)


def text_lines(row: EstimateRow, name: str = "pooled") -> list[str]:
    """The CLI's lines for one estimate: the pooled line, the prediction interval, the
    heterogeneity line and, after a fallback, the model fitted and why."""
    if row.single:
        return ["one study: shown, not pooled"]
    lines = [
        f"{name} (k = {row.k}, {fmt.counts(row.events, row.total)}): "
        + fmt.estimate_interval(row.proportion, row.ci_low, row.ci_high, level=row.level)
    ]
    if row.pi_low is not None:
        lines.append(f"prediction interval: {fmt.interval(row.pi_low, row.pi_high)}")
    lines.extend(note + "." for note in row_sentences(row))
    if row.threshold is not None and not fmt.is_missing(row.prob_above):
        lines.append(
            f"probability that the response rate exceeds {fmt.percent(row.threshold)}: "
            f"{fmt.percent(row.prob_above)}"
        )
    lines.append(f"heterogeneity: {heterogeneity_text(row) or fmt.MISSING}")
    if not fmt.is_missing(row.q_lrt):
        lines.append(
            "likelihood-ratio test of heterogeneity: "
            + fmt.lrt_test(row.q_lrt, row.q_df, row.q_lrt_pvalue)
        )
    if row.fallback and row.fitted is not None:
        asked = "" if row.requested is None else f" from {row.requested.label()}"
        lines.append(f"model fitted: {row.fitted.label()} (fallback{asked}; see the warning)")
    return lines
