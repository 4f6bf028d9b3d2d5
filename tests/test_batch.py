"""The vectorised batch layer gives, row by row, what ``metaresp.pool`` gives one dataset.

Datasets are random (binomial-normal, totals 5-60, k 2-10, proportions 0.05-0.95, τ up to
1), so they include 0/n and n/n studies, τ̂² = 0 and k = 2.

Tolerances:
* inverse-variance models, 1e-8 relative: both sides run the same closed forms and the same
  Fisher-scoring iteration with the same stopping rule, so only floating-point summation
  order differs (observed differences are about 1e-14);
* GLMM, 1e-4 relative: both sides maximise the same adaptive-quadrature likelihood, but with
  Newton iterations that stop at a step of 1e-9 from different iterates (the batch restarts
  each mode search from 0, the scalar fit warm-starts it), and SE(μ̂) comes from a
  finite-difference Hessian (step 1e-5) on each side; together these move the results by
  up to about 1e-7. 1e-4 leaves room for that while still catching any difference in the
  likelihood, the starting values or the boundary rule (each of which moves results by
  1e-3 or more).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import special

import metaresp
from metaresp import batch

FIELDS = ("proportion", "ci_low", "ci_high", "pi_low", "pi_high", "tau2")


def _datasets(
    seed: int, reps: int, k: int, p: float, tau: float
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    n = rng.integers(5, 61, size=(reps, k))
    theta = special.logit(p) + tau * rng.standard_normal((reps, k))
    x = rng.binomial(n, special.expit(theta))
    return x.astype(np.int64), n.astype(np.int64)


CASES = [
    (k, p, tau)
    for k in (2, 3, 5, 10)
    for p, tau in ((0.05, 1.0), (0.5, 0.0), (0.8, 0.5), (0.95, 1.0))
]


def _scalar(res: metaresp.PoolResult, field: str) -> float:
    value = getattr(res, field)
    return float("nan") if value is None else float(value)


def _compare(
    x: NDArray[np.int64],
    n: NDArray[np.int64],
    got: batch.BatchPool,
    rtol: float,
    **options: str,
) -> int:
    """Compare every row with metaresp.pool; return the number of rows compared."""
    compared = 0
    for i in range(x.shape[0]):
        ref = metaresp.pool(x[i], n[i], **options)
        fell_back = options.get("estimator") == "GLMM" and ref.estimator != "GLMM"
        unconverged = not ref.converged
        assert bool(got.failed[i]) == (fell_back or unconverged), (i, x[i], n[i], ref.warnings)
        if got.failed[i]:
            continue
        for field in FIELDS:
            want = _scalar(ref, field)
            value = float(getattr(got, field)[i])
            assert value == pytest.approx(want, rel=rtol, abs=1e-12, nan_ok=True), (
                field,
                i,
                x[i],
                n[i],
            )
        compared += 1
    return compared


@pytest.mark.parametrize(("k", "p", "tau"), CASES)
def test_inverse_variance_rows_equal_scalar_pool(k: int, p: float, tau: float) -> None:
    x, n = _datasets(1000 + k, 25, k, p, tau)
    compared = 0
    for transform, estimator, ci in (
        ("logit", "FE", "z"),
        ("logit", "DL", "z"),
        ("logit", "REML", "z"),
        ("logit", "REML", "t"),
        ("logit", "REML", "hksj"),
        ("logit", "REML", "hksj-adhoc"),
        ("freeman-tukey", "REML", "hksj"),
    ):
        got = batch.pool_iv(x, n, transform=transform, estimator=estimator, ci=ci)
        compared += _compare(x, n, got, 1e-8, transform=transform, estimator=estimator, ci=ci)
    assert compared >= 7 * 23  # nearly every row converges


@pytest.mark.parametrize(("k", "p", "tau"), CASES)
def test_glmm_rows_equal_scalar_pool(k: int, p: float, tau: float) -> None:
    x, n = _datasets(2000 + k, 12, k, p, tau)
    fit = batch.fit_glmm_batch(x, n)
    compared = 0
    for ci in ("t", "z"):
        got = batch.pool_glmm(x, n, ci=ci, fit=fit)
        compared += _compare(x, n, got, 1e-4, estimator="GLMM", ci=ci)
    assert compared >= 2  # p = 0.05 with k = 2 leaves few rows with a finite MLE


def test_glmm_failures_are_flagged_not_dropped() -> None:
    x = np.array([[0, 0, 0], [5, 6, 7], [3, 4, 0]])
    n = np.array([[10, 12, 9], [5, 6, 7], [10, 10, 10]])
    fit = batch.fit_glmm_batch(x, n)
    assert fit.failed.tolist() == [True, True, False]
    assert fit.mu.shape == (3,)


def test_prediction_interval_is_nan_for_two_studies() -> None:
    x, n = _datasets(7, 5, 2, 0.5, 0.5)
    res = batch.pool_iv(x, n, estimator="REML", ci="hksj")
    assert np.isnan(res.pi_low).all()
    assert np.isnan(res.pi_high).all()


def test_bad_arguments_raise_value_error_naming_them() -> None:
    x, n = _datasets(8, 3, 3, 0.5, 0.5)
    with pytest.raises(ValueError, match="ci: must be one of"):
        batch.pool_iv(x, n, ci="knha")
    with pytest.raises(ValueError, match="estimator: must be one of"):
        batch.pool_batch(x, n, estimator="MCMC")
    with pytest.raises(ValueError, match="events must lie in"):
        batch.pool_iv(n + 1, n)
    with pytest.raises(ValueError, match="2-D arrays"):
        batch.pool_iv(x[0], n[0])
