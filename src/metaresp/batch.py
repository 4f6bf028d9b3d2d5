"""Pooling many datasets at once: the coverage simulation's view of :mod:`metaresp.engine`.

Every function takes 2-D arrays shaped ``(replicates, k)``: one row per dataset, all rows
with the same number of studies ``k``, and returns per-row arrays. It is the same engine
:func:`metaresp.pool` runs on one row, without the per-fit extras a person reads (warnings
in words, the τ² confidence interval, the GLMM's Wald test), so a simulation can fit
thousands of datasets in a few array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from metaresp import engine, glmm, models
from metaresp.models import ModelSpec

__all__ = ["BatchPool", "fit_glmm_batch", "pool_batch", "pool_glmm", "pool_iv"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def _as_counts(events: object, totals: object) -> tuple[IntArray, IntArray]:
    x = np.asarray(events)
    n = np.asarray(totals)
    if x.ndim != 2 or x.shape != n.shape:
        raise ValueError(
            "events and totals must be 2-D arrays of the same shape (replicates, k); "
            f"got {x.shape} and {n.shape}"
        )
    if x.shape[1] < 2:
        raise ValueError(f"each dataset needs k >= 2 studies; got k = {x.shape[1]}")
    xi = x.astype(np.int64)
    ni = n.astype(np.int64)
    if np.any(xi != x) or np.any(ni != n):
        raise ValueError("events and totals must be whole numbers")
    if np.any(ni < 1) or np.any(xi < 0) or np.any(xi > ni):
        raise ValueError("events must lie in 0..total and totals must be >= 1")
    return xi, ni


@dataclass(frozen=True, slots=True)
class BatchPool:
    """Pooled results of many datasets; every field has one entry per row.

    ``estimate``, ``se`` and ``tau2`` are on the transformed scale; ``proportion``,
    ``ci_*`` and ``pi_*`` on the proportion scale (``pi_*`` NaN where k < 3). ``failed``
    marks rows whose fit did not converge or gave a non-finite interval; their other fields
    may hold anything and must not be used.
    """

    estimate: FloatArray
    se: FloatArray
    tau2: FloatArray
    proportion: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    pi_low: FloatArray
    pi_high: FloatArray
    failed: BoolArray

    @classmethod
    def of(cls, rows: engine.Rows) -> BatchPool:
        """The simulation's view of an engine fit."""
        return cls(
            estimate=rows.estimate,
            se=rows.se,
            tau2=rows.tau2,
            proportion=rows.proportion,
            ci_low=rows.ci[:, 0],
            ci_high=rows.ci[:, 1],
            pi_low=rows.pi[:, 0],
            pi_high=rows.pi[:, 1],
            failed=rows.failed,
        )


def _spec(transform: str, estimator: str, ci: str, level: float) -> ModelSpec:
    problems = models.model_problems(transform, estimator, ci, level)
    if problems:
        raise ValueError("; ".join(problems))
    return ModelSpec(transform=transform, estimator=estimator, ci=ci, level=level)


def pool_iv(
    events: IntArray,
    totals: IntArray,
    *,
    transform: str = "logit",
    estimator: str = "REML",
    ci: str = "hksj",
    level: float = 0.95,
) -> BatchPool:
    """Inverse-variance pooling of every row, as :func:`metaresp.pool` pools each one."""
    spec = _spec(transform, estimator, ci, level)
    if spec.family != "iv":
        raise ValueError(f"estimator must be an inverse-variance estimator; got {estimator!r}")
    xi, ni = _as_counts(events, totals)
    return BatchPool.of(engine.fit_rows(xi, ni, spec, tau2_ci=False))


def fit_glmm_batch(events: IntArray, totals: IntArray, nagq: int = 7) -> glmm.GlmmRows:
    """Binomial-normal GLMM (ML, logit link, adaptive quadrature) of every row at once
    (:func:`metaresp.glmm.fit_glmm_rows`)."""
    if isinstance(nagq, bool) or nagq < 1:
        raise ValueError(f"nagq: expected an integer >= 1 (7 as in metafor), got {nagq!r}")
    xi, ni = _as_counts(events, totals)
    return glmm.fit_glmm_rows(xi, ni, nagq)


def pool_glmm(
    events: IntArray,
    totals: IntArray,
    *,
    ci: str = "t",
    level: float = 0.95,
    nagq: int = 7,
    fit: glmm.GlmmRows | None = None,
    fallback: bool = False,
) -> BatchPool:
    """GLMM pooling of every row: μ̂ ± crit·SE with crit z or t_{k-1}; PI with t_{k-2}.

    Pass ``fit`` (from :func:`fit_glmm_batch` on the same data) to reuse one fit for both
    interval types; ``fallback=True`` refits failed rows with :data:`metaresp.engine.FALLBACK`
    (what :func:`metaresp.pool` delivers).
    """
    spec = _spec("logit", "GLMM", ci, level).with_(nagq=nagq)
    xi, ni = _as_counts(events, totals)
    rows = engine.fit_rows(
        xi, ni, spec, tau2_ci=False, heterogeneity=False, fallback=fallback, glmm_fit=fit
    )
    return BatchPool.of(rows)


def pool_batch(
    events: IntArray,
    totals: IntArray,
    *,
    transform: str = "logit",
    estimator: str = "GLMM",
    ci: str = "t",
    level: float = 0.95,
) -> BatchPool:
    """Row-wise counterpart of :func:`metaresp.pool` for every frequentist model."""
    if estimator == "GLMM":
        if transform != "logit":
            raise ValueError(f"the GLMM needs transform 'logit'; got {transform!r}")
        return pool_glmm(events, totals, ci=ci, level=level)
    return pool_iv(events, totals, transform=transform, estimator=estimator, ci=ci, level=level)
