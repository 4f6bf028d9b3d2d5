"""What a person reads about one pooled result: the lines ``metaprop`` prints.

Both :meth:`metaresp.PoolResult.summary` and ``metaresp pool`` print through
:func:`result_lines`, and every number in them through :mod:`metaresp.formatting`, so the
two read the same. The lines, in the order R's ``meta::metaprop`` prints them:

* the common-effect estimate (inverse variance, or the common-effect binomial model beside
  the GLMM) and the random-effects estimate, each with its interval and how it was made;
* the prediction interval (not for the common-effect model, which assumes τ² = 0);
* τ² and τ, I² and H, each with its interval where the model has one (metafor
  ``confint``: the τ² CI by the Q-profile method and I², H from its bounds);
* the test of heterogeneity named by kind (Cochran's Q, or for the GLMM the Wald-type and
  the likelihood-ratio test, as metafor's ``rma.glmm`` reports them);
* a sentence when I² and the test's p-value seem to disagree, and every warning.

This module composes lines; it formats no number itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from metaresp import formatting as fmt

if TYPE_CHECKING:  # pragma: no cover
    from metaresp.pooling import PoolResult

__all__ = [
    "AdviceStyle",
    "disagreement_note",
    "fallback_lines",
    "interval_how",
    "model_header",
    "result_lines",
]

AdviceStyle = Literal["cli", "python"]
"""How advice names an option: ``--nagq 15`` (command line) or ``nagq=15`` (Python)."""

#: I² from which heterogeneity reads as substantial, and below which it reads as small
#: (Higgins et al. 2003, BMJ 327:557: 25%, 50% and 75% as low, moderate and high).
I2_LARGE = 50.0
I2_SMALL = 25.0
#: the conventional level of the heterogeneity test that readers compare p with
Q_ALPHA = 0.05


def interval_how(res: PoolResult) -> str:
    """How the pooled interval was made: ``t interval, 4 df``, ``z interval``,
    ``Hartung-Knapp interval, 4 df``, ``equal-tailed credible interval``."""
    if res.fitted.family == "bayes":
        return "equal-tailed credible interval"
    words = {
        "z": "z interval",
        "t": "t interval",
        "hksj": "Hartung-Knapp interval",
        "hksj-adhoc": "Hartung-Knapp interval (ad hoc: never narrower than z)",
    }
    if res.k < 2 and res.ci != "z":
        return "z interval (one study: the t and Hartung-Knapp intervals need two)"
    text = words.get(res.ci, f"{res.ci} interval")
    return text if res.df is None else f"{text}, {res.df} df"


def _random_name(res: PoolResult) -> str:
    est = res.fitted.estimator
    if est == "GLMM":
        return "random effects (GLMM)"
    if est == "BAYES":
        return "random effects (Bayesian)"
    return f"random effects ({est} τ²)"


def model_header(res: PoolResult) -> str:
    """The model fitted, in plain words (after a fallback, the fallback model's)."""
    return res.fitted.describe()


def fallback_lines(res: PoolResult, style: AdviceStyle = "cli") -> list[str]:
    """After a fallback: which model was asked for, why it could not be fitted, what was
    fitted instead, and what the user can try, in the syntax of ``style``."""
    if not res.fallback:
        return []
    reason = res.fallback_reason or "the fit failed"
    lines = [
        f"The requested model ({res.requested.label()}) could not be fitted: {reason}.",
        f"Pooled instead with {res.fitted.label()}.",
    ]
    extreme = "0 or all events" in reason or "does not exist" in reason
    if style == "cli":
        advice = (
            "to choose the inverse-variance model yourself: --estimator REML --ci hksj"
            if extreme
            else "to try the GLMM again with finer quadrature: --nagq 15"
        )
    else:
        advice = (
            'to choose the inverse-variance model yourself: estimator="REML", ci="hksj"'
            if extreme
            else "to try the GLMM again with finer quadrature: nagq=15"
        )
    lines.append(advice[0].upper() + advice[1:] + ".")
    return lines


def disagreement_note(res: PoolResult) -> str:
    """A sentence when I² and the heterogeneity test's p-value point different ways;
    "" when they agree or either is missing."""
    i2, p = res.i2, res.q_pvalue
    if res.q_kind == "none" or fmt.is_missing(i2) or fmt.is_missing(p) or res.k < 2:
        return ""
    if i2 >= I2_LARGE and p >= Q_ALPHA:
        return (
            f"Note: I² = {fmt.i2(i2)} with {fmt.p_text(p)} is no contradiction. I² describes "
            "how large the heterogeneity is; the test weighs the evidence that there is any, "
            f"and with {res.k} studies it has little power, so a large I² often comes "
            "with a large p-value."
        )
    if i2 < I2_SMALL and p < Q_ALPHA:
        return (
            f"Note: I² = {fmt.i2(i2)} with {fmt.p_text(p)} is no contradiction. I² describes "
            "how large the heterogeneity is relative to the studies' own imprecision; with "
            "large studies even a small heterogeneity is detected by the test."
        )
    return ""


def _heterogeneity(res: PoolResult) -> list[str]:
    what = res.fitted.interval_abbrev
    lines: list[str] = []
    fe = res.fitted.estimator == "FE"
    if fe:
        lines.append("τ² = 0 (the common-effect model assumes no between-study variance)")
    else:
        tau2 = f"τ² = {fmt.tau2(res.tau2)}"
        tau = f"τ = {fmt.tau2(res.tau)}"
        if res.tau2_ci_low is not None and res.tau2_ci_high is not None:
            label = fmt.ci_label(res.level, what)
            how = "" if what == "CrI" else ", Q-profile"
            tau2 += (
                f" ({label} {fmt.interval(res.tau2_ci_low, res.tau2_ci_high, scale='tau2')}{how})"
            )
            tau += f" ({label} {fmt.interval(res.tau_ci_low, res.tau_ci_high, scale='tau2')})"
            lines.append(f"{tau2}, {tau}")
        elif res.fitted.family == "glmm":
            lines.append(f"{tau2}, {tau} (no CI: metafor has no confidence interval for it)")
        else:
            lines.append(f"{tau2}, {tau}")
    i2 = f"I² = {fmt.i2(res.i2)}"
    h = f"H = {fmt.number(res.h, 2)}"
    if res.i2_ci_low is not None and res.i2_ci_high is not None:
        label = fmt.ci_label(res.level, what)
        i2 += f" ({label} {fmt.interval(res.i2_ci_low, res.i2_ci_high, scale='i2')})"
        h += f" ({label} {fmt.interval(res.h_ci_low, res.h_ci_high, digits=2, scale='raw')})"
    lines.append(f"{i2}, {h}" + (" (from Cochran's Q)" if fe else ""))
    if res.q_kind != "none" and not fmt.is_missing(res.q):
        test = fmt.q_test(res.q, res.q_df, res.q_pvalue, res.q_kind)
        if res.q_lrt is not None and not fmt.is_missing(res.q_lrt):
            test += "; " + fmt.lrt_test(res.q_lrt, res.q_df, res.q_lrt_pvalue)
        lines.append(f"test of heterogeneity: {test}")
    if res.tau2_lrt is not None and not fmt.is_missing(res.tau2_lrt):
        lines.append(
            f"likelihood-ratio test of τ² = 0: LRT = {fmt.number(res.tau2_lrt, 2)}, "
            f"{fmt.p_text(res.tau2_lrt_pvalue)} (half chi-square, 1 df)"
        )
    note = disagreement_note(res)
    if note:
        lines.append(note)
    return lines


def result_lines(res: PoolResult, *, name: str = "", prediction: bool | None = None) -> list[str]:
    """The pooled lines of ``res`` (no study table, no header); ``name`` prefixes the
    estimate lines (e.g. a subgroup's name). ``prediction``: show the prediction interval
    (default: for random-effects models, not for the common-effect model; ``True`` shows
    it for that model too, ``False`` never)."""
    what = res.fitted.interval_abbrev
    prefix = f"{name}: " if name else ""
    rows: list[tuple[str, str]] = []
    common = res.common_effect()
    if res.fitted.estimator == "FE":
        rows.append(
            (
                "common effect (inverse variance)",
                fmt.estimate_interval(res.proportion, res.ci_low, res.ci_high, level=res.level)
                + f", {interval_how(res)}",
            )
        )
    else:
        if common is not None:
            rows.append(
                (
                    f"common effect ({common.model})",
                    fmt.estimate_interval(
                        common.proportion, common.ci_low, common.ci_high, level=common.level
                    )
                    + ", z interval",
                )
            )
        rows.append(
            (
                _random_name(res),
                fmt.estimate_interval(
                    res.proportion, res.ci_low, res.ci_high, level=res.level, what=what
                )
                + f", {interval_how(res)}",
            )
        )
    if res.mean_proportion is not None and res.mean_ci_low is not None:
        rows.append(
            (
                "mean rate across studies",
                fmt.estimate_interval(
                    res.mean_proportion,
                    res.mean_ci_low,
                    res.mean_ci_high,
                    level=res.level,
                    what=what,
                ),
            )
        )
    show = prediction if prediction is not None else res.fitted.estimator != "FE"
    if not show:
        why = "the common-effect model has τ² = 0" if prediction is None else "--no-prediction"
        rows.append(("prediction interval", f"not shown ({why})"))
    elif res.pi_low is not None:
        how = "posterior predictive" if what == "CrI" else f"t, {res.k - 2} df"
        rows.append(("prediction interval", f"{fmt.interval(res.pi_low, res.pi_high)} ({how})"))
    else:
        rows.append(("prediction interval", "not shown for k < 3"))
    width = max(len(prefix + a) for a, _ in rows)
    lines = [f"{prefix + a + ':':<{width + 1}} {b}" for a, b in rows]
    from metaresp.estimates import extreme_sentence, wide_sentence

    for note in (
        extreme_sentence(sum(res.events), sum(res.totals), res.proportion),
        wide_sentence(res.ci_low, res.ci_high, res.k, res.fitted.ci, res.level),
    ):
        if note:
            lines.append(note + ".")
    lines.extend(_heterogeneity(res))
    return lines
