"""Many datasets at once give, row by row, what one dataset gives alone.

The τ² estimators run on (R, k) arrays; R's ``uniroot`` (PM, the Q-profile CI) and Fisher
scoring (ML, REML, EB) are driven row by row in Python floats when there are few rows and
as array operations when there are many. Both drivers take the same steps, so the results
must agree to rounding (1e-12 relative): a larger gap means the two drivers diverged.
"""

from __future__ import annotations

import numpy as np
import pytest

from metaresp import estimators
from metaresp.transforms import effect_sizes


def _data(seed: int, reps: int, k: int, transform: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = rng.integers(3, 60, size=(reps, k))
    p = rng.uniform(0.05, 0.95, size=(reps, 1))
    x = rng.binomial(n, p)
    return effect_sizes(transform, x, n)


@pytest.mark.parametrize("transform", ["logit", "arcsine", "raw"])
@pytest.mark.parametrize("method", estimators.IV_ESTIMATORS)
def test_rows_driver_equals_one_row_driver(transform: str, method: str) -> None:
    yi, vi = _data(7, 40, 6, transform)
    keep = np.isfinite(vi).all(axis=1) & (vi > 0).all(axis=1)
    yi, vi = yi[keep], vi[keep]
    many = estimators.tau2_rows(method, yi, vi)
    lo, hi = estimators.q_profile_rows(yi, vi, many.tau2, 0.95)
    for r in range(yi.shape[0]):
        one = estimators.tau2_rows(method, yi[r : r + 1], vi[r : r + 1])
        assert one.tau2[0] == pytest.approx(many.tau2[r], rel=1e-12, abs=1e-15)
        assert one.iterations[0] == many.iterations[r]
        l1, h1 = estimators.q_profile_rows(yi[r : r + 1], vi[r : r + 1], one.tau2, 0.95)
        assert l1[0] == pytest.approx(lo[r], rel=1e-12, abs=1e-15)
        assert h1[0] == pytest.approx(hi[r], rel=1e-12, abs=1e-15)


def test_q_profile_of_one_dataset_equals_the_rows_driver_in_every_branch() -> None:
    """One dataset's Q-profile CI (Python floats, :func:`estimators.q_profile_ci`) equals
    the array driver's row, in each of metafor's branches: no heterogeneity (0, 0), a lower
    bound at 0, both bounds searched, and Q still above its quantile at the end of the
    search interval (both bounds at the end); τ̂² is varied to move the interval's end."""
    rng = np.random.default_rng(11)
    k, reps = 5, 400
    spread = rng.choice([0.05, 0.3, 1.0, 40.0], size=(reps, 1))
    yi = rng.normal(0.0, 1.0, size=(reps, k)) * spread
    vi = rng.uniform(0.01, 0.5, size=(reps, k))
    tau2_hat = rng.choice([0.0, 0.5, 20.0], size=reps)
    lo, hi = estimators.q_profile_rows(yi, vi, tau2_hat, 0.95)
    t_max = np.maximum(100.0, 10.0 * tau2_hat)
    branches = {
        "none": (hi == 0.0),
        "lower at 0": (lo == 0.0) & (hi > 0.0) & (hi < t_max),
        "both searched": (lo > 0.0) & (hi < t_max),
        "beyond": (lo == t_max) & (hi == t_max),
    }
    for name, rows in branches.items():
        assert rows.sum() >= 5, name
    for r in range(reps):
        one = estimators.q_profile_ci(yi[r], vi[r], float(tau2_hat[r]), 0.95)
        assert one[0] == pytest.approx(lo[r], rel=1e-12, abs=1e-15)
        assert one[1] == pytest.approx(hi[r], rel=1e-12, abs=1e-15)
