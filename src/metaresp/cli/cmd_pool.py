"""``metaresp pool``: pool a table of events and totals (CSV or XLSX), like R's metaprop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from metaresp.models import (
    DEFAULT_ESTIMATOR,
    DEFAULT_IV_ESTIMATOR,
    DEFAULT_MU_PRIOR,
    DEFAULT_TAU_PRIOR,
    allowed,
)

TRANSFORMS = allowed("transform")
ESTIMATORS = allowed("estimator")
CIS = allowed("ci")


def pool(
    table: Annotated[Path, typer.Argument(help="CSV or XLSX file, one row per study.")],
    events: Annotated[str, typer.Option("--events", help="Column of events (responders).")],
    totals: Annotated[str, typer.Option("--totals", help="Column of totals (evaluable).")],
    labels: Annotated[str | None, typer.Option("--labels", help="Column of study labels.")] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Column of subgroups: each pooled with its own tau^2, plus a test "
            "for subgroup differences.",
        ),
    ] = None,
    transform: Annotated[
        str | None,
        typer.Option("--transform", help=f"One of {', '.join(TRANSFORMS)} (default logit)."),
    ] = None,
    estimator: Annotated[
        str | None,
        typer.Option(
            "--estimator",
            help=f"One of {', '.join(ESTIMATORS)} (default {DEFAULT_ESTIMATOR} with logit, "
            f"{DEFAULT_IV_ESTIMATOR} otherwise).",
        ),
    ] = None,
    nagq: Annotated[
        int | None,
        typer.Option(
            "--nagq", help="Quadrature nodes per study for the GLMM (default 7, as metafor's nAGQ)."
        ),
    ] = None,
    tau_prior: Annotated[
        str | None,
        typer.Option(
            "--tau-prior",
            help='BAYES: prior of tau, "half-normal(S)", "half-cauchy(S)" or "uniform(0, U)" '
            f"[default: {DEFAULT_TAU_PRIOR}].",
        ),
    ] = None,
    mu_prior: Annotated[
        str | None,
        typer.Option(
            "--mu-prior",
            help=f'BAYES: prior of mu, "normal(M, S)" (logit scale) [default: {DEFAULT_MU_PRIOR}].',
        ),
    ] = None,
    ci: Annotated[
        str | None,
        typer.Option(
            "--ci",
            help=f"One of {', '.join(CIS)} (default t for GLMM and BAYES, z for FE, hksj "
            "otherwise).",
        ),
    ] = None,
    level: Annotated[float, typer.Option("--level", help="Confidence level.")] = 0.95,
    sheet: Annotated[
        str | None, typer.Option("--sheet", help="Worksheet of an XLSX file (default: the first).")
    ] = None,
    overall: Annotated[
        bool, typer.Option("--overall/--no-overall", help="With --by, also pool all rows together.")
    ] = True,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write a forest plot (PNG, or SVG by the file's suffix)."),
    ] = None,
    title: Annotated[
        str | None, typer.Option("--title", help="Title of the forest plot (default: none).")
    ] = None,
    xlabel: Annotated[
        str | None,
        typer.Option("--xlabel", help="Label of the plot's rate axis (default: response rate)."),
    ] = None,
    prediction: Annotated[
        bool | None,
        typer.Option(
            "--prediction/--no-prediction",
            help="Show the prediction interval (default: for random-effects models; the "
            "common-effect model has none unless asked).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Pool a table of events and totals (CSV or XLSX), like R's metaprop.

    Prints the per-study table (proportion with exact Clopper-Pearson CI, weight) and the
    pooled line with its CI, prediction interval and heterogeneity; with --by one block per
    subgroup and the test for subgroup differences. Defaults: binomial-normal GLMM (logit)
    with a t interval.
    """
    from metaresp.poolcli import run_pool

    text = run_pool(
        table,
        events=events,
        totals=totals,
        labels=labels,
        by=by,
        transform=transform,
        estimator=estimator,
        ci=ci,
        level=level,
        nagq=nagq,
        tau_prior=tau_prior,
        mu_prior=mu_prior,
        title=title,
        xlabel=xlabel,
        sheet=sheet,
        overall=overall,
        plot=plot,
        as_json=as_json,
        prediction=prediction,
    )
    typer.echo(text)


__all__ = ["pool"]
