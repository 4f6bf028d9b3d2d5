"""metaresp.bayes against an independent implementation: long Stan runs (rstan).

The reference numbers are in ``fixtures/stan/bayes_reference.json``, written by
``fixtures/stan/make_bayes_reference.R`` (model ``binomial_normal.stan``; 4 chains × 5,000
post-warmup draws per fit, no divergences, Rhat ≤ 1.005, bulk and tail ESS ≥ 2,000), with
every quantity's Monte-Carlo standard error (MCSE). R is not needed to run these tests.

Tolerance: max(4 × MCSE, floor). A true discrepancy of a few MCSE is caught; with ~750
compared numbers the chance that sampling noise alone breaks one is about 5%, and since
the fixture's seeds are fixed a pass is reproducible. The floor covers what the MCSE does
not: our own integration error (≤ 1e-3 on the proportion scale, checked in test_bayes.py)
plus the small bias of a sample quantile; it is 2e-3 on the proportion scale, 5e-3 on the
logit scale (μ, SD of μ), and for τ² 2e-3 relative with an absolute 1e-4 (lower
quantiles of τ² sit near 0).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from metaresp.bayes import fit_bayes

FIXTURE = Path(__file__).parent / "fixtures" / "stan" / "bayes_reference.json"
QUANTITIES = (
    "mu",
    "mu_sd",
    "proportion",
    "ci_low",
    "ci_high",
    "pi_low",
    "pi_high",
    "tau2",
    "tau2_ci_low",
    "tau2_ci_high",
    "mean_proportion",
    "mean_ci_low",
    "mean_ci_high",
    "prob_above",
    "prob_mean_above",
)
REQUIRED_TAU_PRIORS = ("half-normal(0.5)", "half-normal(1)")
#: The third prior: half-Cauchy(0.5), except on data that leave τ unbounded (all-0%,
#: all-100%, one 0% and one 100% study) and on one homogeneous set, where Stan cannot
#: sample it cleanly (divergences, a stalled chain) and the generator uses uniform(0, 5);
#: metaresp's half-Cauchy fits of such data are checked against a fine integration in
#: test_bayes.py instead.
THIRD_TAU_PRIORS = ("half-cauchy(0.5)", "uniform(0, 5)")
REQUIRED_MU_PRIOR = "normal(0, 2)"
MCSE_MULTIPLE = 4.0


def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


REFERENCE = _load()
FITS: list[dict[str, Any]] = REFERENCE["fits"]


def _floor(quantity: str, value: float) -> float:
    if quantity in ("mu", "mu_sd"):
        return 5e-3
    if quantity.startswith("tau2"):
        return max(2e-3 * abs(value), 1e-4)
    return 2e-3


def test_reference_grid_is_complete() -> None:
    assert REFERENCE["settings"]["level"] == 0.95
    assert REFERENCE["settings"]["draws_per_chain"] * REFERENCE["settings"]["chains"] >= 20_000
    for key in ("r_version", "rstan_version", "stan_version", "call"):
        assert REFERENCE[key]
    datasets = {fit["dataset"] for fit in FITS}
    assert len(datasets) >= 15
    seen = {(fit["dataset"], fit["tau_prior"], fit["mu_prior"]) for fit in FITS}
    for name in datasets:
        for prior in REQUIRED_TAU_PRIORS:
            assert (name, prior, REQUIRED_MU_PRIOR) in seen, (name, prior)
        assert any((name, p, REQUIRED_MU_PRIOR) in seen for p in THIRD_TAU_PRIORS), name
    half_cauchy = {n for n, p, m in seen if p == "half-cauchy(0.5)" and m == REQUIRED_MU_PRIOR}
    assert len(half_cauchy) >= 12
    assert any(m != REQUIRED_MU_PRIOR for _, _, m in seen)
    for fit in FITS:
        assert set(fit["quantities"]) == set(QUANTITIES), fit["dataset"]
        for q in fit["quantities"].values():
            assert math.isfinite(q["estimate"])
            assert math.isfinite(q["mcse"])
            assert q["mcse"] >= 0
        assert fit["diagnostics"]["divergent"] == 0
        assert fit["diagnostics"]["max_rhat"] <= 1.005
    kinds = {name.split("_")[0] for name in datasets}
    assert {"k1", "k2", "k10", "all", "tiny"} <= kinds


@pytest.mark.parametrize(
    "fit", FITS, ids=[f"{f['dataset']}|{f['tau_prior']}|{f['mu_prior']}" for f in FITS]
)
def test_matches_stan(fit: dict[str, Any]) -> None:
    ours = fit_bayes(
        fit["events"],
        fit["totals"],
        tau_prior=fit["tau_prior"],
        mu_prior=fit["mu_prior"],
        level=REFERENCE["settings"]["level"],
        threshold=REFERENCE["settings"]["threshold"],
    )
    problems = []
    for quantity in QUANTITIES:
        ref = fit["quantities"][quantity]
        value = getattr(ours, quantity)
        tol = max(MCSE_MULTIPLE * ref["mcse"], _floor(quantity, ref["estimate"]))
        if not abs(value - ref["estimate"]) <= tol:
            problems.append(
                f"{quantity}: ours {value:.5g}, Stan {ref['estimate']:.5g} "
                f"± {ref['mcse']:.2g} (tolerance {tol:.2g})"
            )
    assert not problems, problems
