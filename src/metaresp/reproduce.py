"""``results/reproduce.R``: an R script that recreates every pooled estimate of a run with
metafor (Viechtbauer 2010, J Stat Softw 36(3)).

One block per estimate of ``summary.json`` (each subgroup of each analysis, then its overall
pool), labelled with the analysis, the subgroup (class) and the outcome, with the counts
written inline and the metafor call of the model metaresp actually fitted:

* the GLMM: ``rma.glmm(measure="PLO", xi, ni, nAGQ=..., test="t"|"z")``;
* the inverse-variance models: ``escalc(measure=...)`` then ``rma(yi, vi, method=...,
  test="z"|"t"|"knha"|"adhoc")`` (HKSJ is metafor's ``test="knha"``, the ad hoc floor
  ``test="adhoc"``), back-transformed as metaresp does (Freeman-Tukey with the harmonic
  mean of the totals, ``transf.ipft.hm``) and clipped to [0, 1];
* after a GLMM fallback, the fallback model, with the reason in a comment;
* a single study shown, not pooled: its exact (Clopper-Pearson) interval, ``binom.test``;
* the Bayesian model has no metafor equivalent: the script carries a base-R function that
  computes the same posterior by numerical integration on a fixed grid (independently of
  metaresp's quadrature; :mod:`metaresp._reproduce_bayes`), and the block shows how the
  same model is written in brms (in a comment).

At the end the script prints the estimates and writes them to a CSV file (the first
command-line argument, default ``reproduce-estimates.csv``) with the columns ``id,
analysis, subgroup, kind, check, estimate, ci_low, ci_high, tau2``, so that they can be
compared with ``summary.json``; the tests for subgroup differences (the fixed-effect test
on the subgroup fits, as ``meta::metaprop`` reports it) go to a second file,
``*-subgroup-tests.csv``, and the plan's meta-regressions (``rma(mods=)`` or
``rma.glmm(mods=)`` with the moderators inline, text as factors with metaresp's reference
level) to ``*-regressions.csv``. A fit metafor refuses is reported and recorded with
``check = "metafor-error"`` (the script goes on). R needs only metafor (base R for the
rest, including the Bayesian model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from metaresp import models
from metaresp._reproduce_bayes import BAYES_FUNCTION, bayes_call

if TYPE_CHECKING:  # pragma: no cover
    from metaresp.analysis import AnalysisResult, GroupResult
    from metaresp.regressions import RegressionOutcome

__all__ = ["REPRODUCE_NAME", "block_id", "reproduce_script"]

REPRODUCE_NAME = "reproduce.R"
"""File name of the script in the results folder."""

_BACK = {
    "logit": "transf.ilogit",
    "freeman-tukey": "transf.ipft.hm",
    "arcsine": "transf.iarcsin",
    "raw": None,
    "log": "exp",
}

_HEADER = """\
# Recreates every pooled estimate of this metaresp run with R's metafor.
# Written by metaresp {version} with results/summary.json; the counts are inline.
#
#     Rscript reproduce.R [estimates.csv]
#
# Each block below is one estimate of summary.json (analysis, subgroup, outcome), fitted
# with the metafor call of the model metaresp fitted. At the end the estimates are printed
# and written to a CSV file (default reproduce-estimates.csv) to compare with
# summary.json: estimate, ci_low and ci_high are proportions (0-1), tau2 on the model's
# scale. metafor has no Bayesian binomial-normal model: Bayesian estimates are recomputed
# by bayes_binorm() below, a numerical integration of the same posterior in base R.

suppressPackageStartupMessages(library(metafor))

estimates <- list()
add <- function(id, analysis, subgroup, kind, check, estimate, ci_low, ci_high, tau2) {{
  clip <- function(p) pmin(pmax(as.numeric(p), 0), 1)
  estimates[[length(estimates) + 1]] <<- data.frame(
    id = id, analysis = analysis, subgroup = subgroup, kind = kind, check = check,
    estimate = clip(estimate), ci_low = clip(ci_low), ci_high = clip(ci_high),
    tau2 = as.numeric(tau2), stringsAsFactors = FALSE
  )
}}
# a fit that metafor refuses is reported and recorded as check = "metafor-error"
try_fit <- function(expr) {{
  tryCatch(expr, error = function(e) {{
    message("metafor could not fit this model: ", conditionMessage(e))
    NULL
  }})
}}
record <- function(id, analysis, subgroup, kind, check, fit, ...) {{
  if (is.null(fit)) {{
    add(id, analysis, subgroup, kind, "metafor-error", NA, NA, NA, NA)
    return(invisible(NULL))
  }}
  fits[[id]] <<- fit
  pred <- predict(fit, ...)
  add(id, analysis, subgroup, kind, check, pred$pred, pred$ci.lb, pred$ci.ub, fit$tau2)
}}
# the test for subgroup differences: the fixed-effect (inverse-variance) test on the
# subgroup estimates and their standard errors, each subgroup fitted with its own tau^2
# (meta::metaprop's "Test for subgroup differences"), from the fits above
fits <- list()
tests <- list()
regressions <- list()
coefficients_of <- function(regression, fit) {{
  if (is.null(fit)) return(invisible(NULL))
  regressions[[length(regressions) + 1]] <<- data.frame(
    regression = regression, coefficient = rownames(fit$beta),
    estimate = as.numeric(fit$beta), se = fit$se, ci_low = fit$ci.lb, ci_high = fit$ci.ub,
    pvalue = fit$pval, tau2 = fit$tau2, qm = fit$QM, qm_pvalue = fit$QMp,
    stringsAsFactors = FALSE
  )
}}
between <- function(analysis, ids) {{
  sub <- fits[ids]
  if (length(sub) < length(ids) || any(vapply(sub, is.null, logical(1)))) return(invisible(NULL))
  r <- rma(yi = sapply(sub, function(f) as.numeric(f$b)), sei = sapply(sub, `[[`, "se"),
           method = "EE")
  tests[[length(tests) + 1]] <<- data.frame(
    analysis = analysis, q = r$QE, df = length(ids) - 1, pvalue = r$QEp,
    stringsAsFactors = FALSE
  )
}}
"""

_FOOTER = """\
# ---------------------------------------------------------------------------- all estimates
out <- do.call(rbind, estimates)
print(out, row.names = FALSE, digits = 6)
args <- commandArgs(trailingOnly = TRUE)
target <- if (length(args) >= 1) args[[1]] else "reproduce-estimates.csv"
write.csv(out, target, row.names = FALSE)
cat("wrote", target, "\\n")
write_beside <- function(parts, suffix) {  # the subgroup tests, the meta-regressions
  if (length(parts) == 0) return(invisible(NULL))
  table <- do.call(rbind, parts)
  print(table, row.names = FALSE, digits = 6)
  path <- sub("(\\\\.csv)?$", suffix, target)
  write.csv(table, path, row.names = FALSE)
  cat("wrote", path, "\\n")
}
write_beside(tests, "-subgroup-tests.csv")
write_beside(regressions, "-regressions.csv")
"""


def _r_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


def _r_vector(values: Sequence[int]) -> str:
    return "c(" + ", ".join(str(int(v)) for v in values) + ")"


def _r_strings(values: Sequence[str]) -> str:
    return "c(" + ", ".join(_r_string(v) for v in values) + ")"


def _comment(text: str) -> str:
    return " ".join(text.split())


def block_id(analysis: str, subgroup: str, kind: str) -> str:
    """The id of one estimate in the script's output: ``analysis/subgroup`` or
    ``analysis/overall`` (the same key the test and a reader use to find it in
    summary.json)."""
    return f"{analysis}/overall" if kind == "overall" else f"{analysis}/{subgroup}"


def _glmm_lines(nagq: int, ci: str, level: float) -> tuple[list[str], str]:
    test = "t" if ci == "t" else "z"
    return [
        f'fit <- try_fit(rma.glmm(measure = "PLO", xi = xi, ni = ni, nAGQ = {nagq}, '
        f'test = "{test}", level = {100 * level:g}))',
    ], "transf = transf.ilogit"


def _iv_lines(spec: models.ModelSpec) -> tuple[list[str], str]:
    measure = models.TRANSFORMS[spec.transform].metafor
    method = models.ESTIMATORS[spec.estimator].metafor
    test = models.INTERVALS[spec.ci].metafor
    back = _BACK[spec.transform]
    lines = [
        f'dat <- escalc(measure = "{measure}", xi = xi, ni = ni)',
        f"fit <- try_fit(rma(yi, vi, data = dat, {method}, {test}, level = {100 * spec.level:g}))",
    ]
    if back is None:
        return lines, ""
    if back == "transf.ipft.hm":
        return lines, "transf = transf.ipft.hm, targs = list(ni = ni)"
    return lines, f"transf = {back}"


def _block(analysis: str, outcome: str, g: GroupResult, kind: str, level: float) -> list[str]:
    from metaresp.estimates import exact_interval

    subgroup = g.name
    ident = block_id(analysis, subgroup, kind)
    where = "overall (all subgroups)" if kind == "overall" else f"subgroup: {subgroup}"
    lines = [
        "# " + "-" * 88,
        f"# analysis: {analysis} | {where} | outcome: {outcome}",
    ]
    labels = [r.label for r in g.records]
    xi = [r.events or 0 for r in g.records]
    ni = [r.total or 0 for r in g.records]
    lines.append(f"# studies: {_comment('; '.join(labels))}")
    lines.append(f"xi <- {_r_vector(xi)}")
    lines.append(f"ni <- {_r_vector(ni)}")
    args = f"{_r_string(ident)}, {_r_string(analysis)}, {_r_string(subgroup)}, {_r_string(kind)}"
    res = g.result
    if res is None:
        low, high = exact_interval(xi[0], ni[0], level)
        lines.append(
            "# one study: shown, not pooled; its exact (Clopper-Pearson) interval"
            f" ({100 * low:.1f} to {100 * high:.1f} percent)"
        )
        lines.append(f"ci <- binom.test(xi, ni, conf.level = {level:g})$conf.int")
        lines.append(f'add({args}, "reproduces", xi / ni, ci[1], ci[2], NA)')
        return lines
    fitted = res.fitted
    check = "reproduces"
    if fitted.family == "bayes":
        lines.extend(
            [
                f"# Bayesian binomial-normal model (priors tau ~ {fitted.priors[0]}, mu ~ "
                f"{fitted.priors[1]}, logit scale),",
                "# recomputed by numerical integration (bayes_binorm, above). The same model in",
                "# brms, for a check by MCMC:",
                "#   library(brms)",
                "#   d <- data.frame(xi = xi, ni = ni, study = seq_along(xi))",
                "#   fit <- brm(xi | trials(ni) ~ 1 + (1 | study), family = binomial, data = d,",
                '#              prior = c(set_prior("<mu prior>", class = "Intercept"),',
                '#                        set_prior("<tau prior>", class = "sd")))',
                bayes_call(*fitted.priors, fitted.level),
                f'add({args}, "{check}", fit$estimate, fit$ci_low, fit$ci_high, fit$tau2)',
            ]
        )
        return lines
    else:
        if res.fallback:
            lines.append(
                f"# the plan asked for {res.requested.label()}, which could not be fitted "
                f"({_comment(res.fallback_reason or 'the fit failed')});"
            )
            lines.append(f"# metaresp fitted instead: {fitted.label()}")
        else:
            lines.append(f"# model: {fitted.label()}")
        if fitted.family == "glmm":
            fit_lines, back = _glmm_lines(fitted.nagq, fitted.ci, fitted.level)
        else:
            fit_lines, back = _iv_lines(fitted)
    lines.extend(fit_lines)
    lines.append(f"record({args}, {_r_string(check)}, fit{', ' + back if back else ''})")
    return lines


def _r_values(values: Sequence[object]) -> str:
    """A moderator column in R: numbers as they are, text as a factor whose levels are in
    sorted order (metaresp's treatment coding: the first level is the reference)."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) == len(values):
        return "c(" + ", ".join(repr(float(v)) for v in numbers) + ")"
    texts = [str(v) for v in values]
    return f"factor({_r_strings(texts)}, levels = {_r_strings(sorted(set(texts)))})"


def _regression_block(o: RegressionOutcome) -> list[str]:
    """One plan meta-regression: its data inline and the metafor call of its model."""
    fit = o.fit
    if fit is None:
        return [f"# regression {o.spec.name}: not fitted by metaresp ({_comment(o.error or '')})"]
    mods = [m for m in o.spec.moderators if m in o.values]
    lines = [
        "# " + "-" * 88,
        f"# regression: {o.spec.name} | analysis: {o.spec.analysis} | moderators: "
        + ", ".join(mods),
        f"# metaresp: {fit.estimator}, coefficients "
        + ", ".join(f"{n} = {e:.6g}" for n, e in zip(fit.names, fit.estimates, strict=True)),
        f"xi <- {_r_vector(fit.events)}",
        f"ni <- {_r_vector(fit.totals)}",
        "mods <- data.frame(" + ", ".join(f"{m} = {_r_values(o.values[m])}" for m in mods) + ")",
    ]
    formula = "~ " + " + ".join(mods)
    level = f"level = {100 * fit.level:g}"
    if fit.estimator == "GLMM":
        test = "t" if fit.ci == "t" else "z"
        lines.append(
            f'fit <- try_fit(rma.glmm(measure = "PLO", xi = xi, ni = ni, mods = {formula}, '
            f'data = mods, nAGQ = {fit.nagq or models.DEFAULT_NAGQ}, test = "{test}", {level}))'
        )
    else:
        measure = models.TRANSFORMS[fit.transform].metafor
        method = models.ESTIMATORS[fit.estimator].metafor
        test = models.INTERVALS[fit.ci].metafor
        lines.append(f'dat <- cbind(escalc(measure = "{measure}", xi = xi, ni = ni), mods)')
        lines.append(
            f"fit <- try_fit(rma(yi, vi, mods = {formula}, data = dat, {method}, {test}, {level}))"
        )
    lines.append(f"coefficients_of({_r_string(o.spec.name)}, fit)")
    return lines


def reproduce_script(
    results: Sequence[AnalysisResult], regressions: Sequence[RegressionOutcome] = ()
) -> str:
    """The text of ``reproduce.R`` for the analyses of one run and the plan's
    meta-regressions (see the module docstring)."""
    from metaresp import __version__

    parts = [_HEADER.format(version=__version__)]
    if any(
        g.result is not None and g.result.fitted.family == "bayes"
        for result in results
        for g in (*result.pooled.groups, result.pooled.overall)
        if g is not None
    ):
        parts.append(BAYES_FUNCTION)
    for result in results:
        a = result.analysis
        blocks: list[list[str]] = [
            _block(a.name, a.outcome, g, "subgroup", a.model.level) for g in result.pooled.groups
        ]
        test = result.pooled.test
        if test is not None and a.model.family != "bayes":
            ids = ", ".join(
                _r_string(block_id(a.name, name, "subgroup")) for name in test.subgroups
            )
            blocks.append(
                [
                    "# " + "-" * 88,
                    f"# analysis: {a.name} | test for subgroup differences | outcome: {a.outcome}",
                    f"# metaresp: Q = {test.q:.6g}, df = {test.df}, p = {test.pvalue:.6g}",
                    f"between({_r_string(a.name)}, c({ids}))",
                ]
            )
        if result.pooled.overall is not None:
            blocks.append(
                _block(a.name, a.outcome, result.pooled.overall, "overall", a.model.level)
            )
        for block in blocks:
            parts.append("\n".join(block) + "\n")
    for outcome in regressions:
        parts.append("\n".join(_regression_block(outcome)) + "\n")
    parts.append(_FOOTER)
    return "\n".join(parts)
