"""Coverage simulation of the interval methods under the binomial-normal model.

Data-generating model (the model the GLMM fits; Stijnen, Hamza & Özdemir 2010): for a
cell (k, p, τ), each replicate draws k study totals n_i uniformly from the integers
``totals`` (default 5..60, the range of the study sizes in the corpus this tool serves),
true study logits θ_i ~ N(μ, τ²) with μ = logit(p), and events x_i ~ Bin(n_i, expit(θ_i)).
p = expit(μ) is the median-study proportion, the quantity every method's pooled CI is
judged against. A new study's true logit θ_new ~ N(μ, τ²) is drawn per replicate to judge
the prediction intervals.

Each method is fitted to all replicates of a cell at once by :mod:`metaresp.batch`.
Reported per cell and method: coverage of the CI for p (among fits that did not fail) with
its Monte Carlo standard error sqrt(c(1-c)/R), median CI width, share of failed fits,
coverage and median width of the prediction interval (k ≥ 3; undefined for k = 2).

Seeds: cell (k, p, τ) draws from ``SeedSequence(seed, spawn_key=(k, 1000 p, 1000 τ))``, so
a cell's numbers depend only on the seed and the cell, not on the grid, the order the cells
run in or the number of worker processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp import batch
from metaresp.models import ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: The full grid (issue: k 2-10 small studies, p 0.05-0.95, τ 0-1 on the logit scale).
FULL_K: Final[tuple[int, ...]] = (2, 3, 5, 10)
FULL_P: Final[tuple[float, ...]] = (0.05, 0.2, 0.5, 0.8, 0.95)
FULL_TAU: Final[tuple[float, ...]] = (0.0, 0.5, 1.0, 1.5)
#: The quick grid used by the tests.
QUICK_K: Final[tuple[int, ...]] = (2, 5)
QUICK_P: Final[tuple[float, ...]] = (0.2, 0.5)
QUICK_TAU: Final[tuple[float, ...]] = (0.0, 1.0)
DEFAULT_REPS: Final[int] = 2000
QUICK_REPS: Final[int] = 200
DEFAULT_SEED: Final[int] = 20240607
#: Study totals drawn uniformly from these integers (inclusive).
DEFAULT_TOTALS: Final[tuple[int, int]] = (5, 60)
#: The band a method must stay in to "keep its promise" of 95%.
TARGET_BAND: Final[tuple[float, float]] = (0.93, 0.97)

#: Frequentist methods: name -> model. "GLMM-t+fallback" is what ``metaresp.pool``
#: delivers for the GLMM: GLMM-t, REML-logit-HKSJ (ad hoc floor) where the GLMM fails.
FREQUENTIST: Final[dict[str, ModelSpec]] = {
    "GLMM-z": ModelSpec("logit", "GLMM", "z"),
    "GLMM-t": ModelSpec("logit", "GLMM", "t"),
    "GLMM-t+fallback": ModelSpec("logit", "GLMM", "t"),
    "REML-logit-z": ModelSpec("logit", "REML", "z"),
    "REML-logit-HKSJ": ModelSpec("logit", "REML", "hksj"),
    "REML-logit-HKSJ-adhoc": ModelSpec("logit", "REML", "hksj-adhoc"),
    "DL-logit-z": ModelSpec("logit", "DL", "z"),
    "FE-logit-z": ModelSpec("logit", "FE", "z"),
    "FT-REML-HKSJ": ModelSpec("freeman-tukey", "REML", "hksj"),
}
#: The Bayesian binomial-normal model under five heterogeneity priors and a normal(0, 2)
#: prior on μ: half-normal with scale 0.5 and 1 and half-Cauchy with scale 0.5 (the weakly
#: informative priors of Friede et al. 2017 and Röver et al. 2021 for log odds ratios), and
#: the wider half-normal(2) and half-Cauchy(1), since single proportions on the logit scale
#: vary more between studies than odds ratios do (τ of 1-1.5 is common). All are fitted
#: from one likelihood grid per replicate (prior reweighting).
BAYESIAN: Final[dict[str, ModelSpec]] = {
    f"BAYES-{short}": ModelSpec("logit", "BAYES", "t", tau_prior=prior, mu_prior="normal(0, 2)")
    for short, prior in (
        ("HN0.5", "half-normal(0.5)"),
        ("HN1", "half-normal(1)"),
        ("HN2", "half-normal(2)"),
        ("HC0.5", "half-cauchy(0.5)"),
        ("HC1", "half-cauchy(1)"),
    )
}
METHODS: Final[dict[str, ModelSpec]] = {**FREQUENTIST, **BAYESIAN}

#: Study-size designs: totals uniform on 5-60, or drawn (with replacement) from the
#: evaluable counts of the shipped corpus, where many groups have 2-10 patients.
DESIGNS: Final[tuple[str, ...]] = ("uniform", "corpus")

COLUMNS: Final[tuple[str, ...]] = (
    "design",
    "k",
    "p",
    "tau",
    "method",
    "reps",
    "coverage",
    "coverage_mcse",
    "ci_width_median",
    "failed_share",
    "pi_coverage",
    "pi_width_median",
    "pi_undefined_share",
)


@dataclass(frozen=True, slots=True, order=True)
class Cell:
    """One point of the simulation grid."""

    k: int
    p: float
    tau: float
    design: str = "uniform"

    def seed_sequence(self, seed: int) -> np.random.SeedSequence:
        """The cell's own stream: independent of grid, order and worker count (the uniform
        design keeps the key of the first simulation, so its cells reproduce it)."""
        key: tuple[int, ...] = (self.k, round(self.p * 1000), round(self.tau * 1000))
        if self.design != "uniform":
            key = (*key, 1 + DESIGNS.index(self.design))
        return np.random.SeedSequence(seed, spawn_key=key)


def grid(
    ks: Iterable[int] = FULL_K,
    ps: Iterable[float] = FULL_P,
    taus: Iterable[float] = FULL_TAU,
    designs: Iterable[str] = ("uniform",),
) -> list[Cell]:
    """All combinations of design, k, p and τ, ordered by design, k, τ, p."""
    return [Cell(k, p, t, d) for d in designs for k in ks for t in taus for p in ps]


def corpus_totals(extractions: Path) -> tuple[int, ...]:
    """The evaluable counts of a corpus's patient-level ORR records, one per record."""
    from metaresp.corpus import load_extractions

    frame = load_extractions(extractions).to_frame()
    rows = frame[(frame["unit"] == "patients") & (frame["outcome"] == "ORR")]
    values = sorted(int(v) for v in rows["evaluable"].dropna() if int(v) >= 1)
    if not values:
        raise ValueError(f"{extractions}: no patient-level ORR counts to draw study sizes from")
    return tuple(values)


def quick_grid() -> list[Cell]:
    """The small grid of ``metaresp simulate --quick``."""
    return grid(QUICK_K, QUICK_P, QUICK_TAU)


def draw(
    cell: Cell,
    reps: int,
    seed: int,
    totals: tuple[int, int] = DEFAULT_TOTALS,
    corpus: Sequence[int] = (),
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Events, totals (reps × k) and a new study's true proportion (reps,) for a cell;
    totals uniform on ``totals`` or, for the "corpus" design, drawn from ``corpus``."""
    rng = np.random.default_rng(cell.seed_sequence(seed))
    mu = float(special.logit(cell.p))
    if cell.design == "corpus":
        if not corpus:
            raise ValueError("the corpus design needs the corpus's study sizes (corpus=...)")
        n = rng.choice(np.asarray(corpus, dtype=np.int64), size=(reps, cell.k))
    else:
        n = rng.integers(totals[0], totals[1] + 1, size=(reps, cell.k), dtype=np.int64)
    theta = mu + cell.tau * rng.standard_normal((reps, cell.k))
    x = rng.binomial(n, special.expit(theta)).astype(np.int64)
    new = special.expit(mu + cell.tau * rng.standard_normal(reps))
    return x, n, np.asarray(new, dtype=np.float64)


def _nan_median(values: NDArray[np.float64]) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan


def _summarise(
    cell: Cell, method: str, res: batch.BatchPool, truth: float, new: NDArray[np.float64]
) -> dict[str, Any]:
    reps = res.failed.size
    ok = ~res.failed
    used = int(ok.sum())
    covered = (res.ci_low[ok] <= truth) & (truth <= res.ci_high[ok])
    cov = float(covered.mean()) if used else math.nan
    row: dict[str, Any] = {
        "design": cell.design,
        "k": cell.k,
        "p": cell.p,
        "tau": cell.tau,
        "method": method,
        "reps": reps,
        "coverage": cov,
        "coverage_mcse": math.sqrt(cov * (1 - cov) / used) if used else math.nan,
        "ci_width_median": _nan_median(res.ci_high[ok] - res.ci_low[ok]),
        "failed_share": 1.0 - used / reps,
    }
    if cell.k >= 3 and used:
        pi_cov = (res.pi_low[ok] <= new[ok]) & (new[ok] <= res.pi_high[ok])
        row["pi_coverage"] = float(pi_cov.mean())
        row["pi_width_median"] = _nan_median(res.pi_high[ok] - res.pi_low[ok])
        row["pi_undefined_share"] = 0.0
    else:
        row["pi_coverage"] = math.nan
        row["pi_width_median"] = math.nan
        row["pi_undefined_share"] = 1.0
    return row


def _bayes_pools(
    x: NDArray[np.int64], n: NDArray[np.int64], names: Sequence[str], level: float
) -> dict[str, batch.BatchPool]:
    """The Bayesian methods of one cell: one likelihood grid per mu prior, every tau prior
    from it."""
    from metaresp import bayes

    out: dict[str, batch.BatchPool] = {}
    by_mu: dict[str, list[str]] = {}
    for name in names:
        by_mu.setdefault(str(METHODS[name].mu_prior), []).append(name)
    for mu_prior, group in by_mu.items():
        fits = bayes.fit_bayes_batch(
            x,
            n,
            tau_priors=[str(METHODS[m].tau_prior) for m in group],
            mu_prior=mu_prior,
            level=level,
        )
        for name, fit in zip(group, fits, strict=True):
            bad = ~np.isfinite(fit.ci_low) | ~np.isfinite(fit.ci_high)
            out[name] = batch.BatchPool(
                estimate=fit.mu,
                se=fit.mu_sd,
                tau2=fit.tau2,
                proportion=fit.proportion,
                ci_low=fit.ci_low,
                ci_high=fit.ci_high,
                pi_low=fit.pi_low,
                pi_high=fit.pi_high,
                failed=bad,
            )
    return out


def simulate_cell(
    cell: Cell,
    reps: int = DEFAULT_REPS,
    seed: int = DEFAULT_SEED,
    *,
    methods: Sequence[str] = tuple(FREQUENTIST),
    totals: tuple[int, int] = DEFAULT_TOTALS,
    corpus: Sequence[int] = (),
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """Simulate one cell; one summary row (a dict with :data:`COLUMNS`) per method."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods must be among {', '.join(METHODS)}; got {unknown}")
    x, n, new = draw(cell, reps, seed, totals, corpus)
    glmm = None
    if any(METHODS[m].estimator == "GLMM" for m in methods):
        glmm = batch.fit_glmm_batch(x, n)
    fits: dict[str, batch.BatchPool] = {}
    bayesian = [m for m in methods if METHODS[m].family == "bayes"]
    if bayesian:
        fits.update(_bayes_pools(x, n, bayesian, level))
    for method in methods:
        spec = METHODS[method]
        if spec.family == "bayes":
            continue
        if spec.estimator == "GLMM":
            fits[method] = batch.pool_glmm(
                x, n, ci=spec.ci, level=level, fit=glmm, fallback=method.endswith("+fallback")
            )
        else:
            fits[method] = batch.pool_iv(
                x, n, transform=spec.transform, estimator=spec.estimator, ci=spec.ci, level=level
            )
    return [_summarise(cell, m, fits[m], cell.p, new) for m in methods]


def _run_cell(
    args: tuple[Cell, int, int, tuple[int, int], tuple[int, ...], tuple[str, ...]],
) -> list[dict[str, Any]]:
    cell, reps, seed, totals, corpus, methods = args
    return simulate_cell(cell, reps, seed, totals=totals, corpus=corpus, methods=methods)


def run_grid(
    cells: Sequence[Cell],
    reps: int = DEFAULT_REPS,
    seed: int = DEFAULT_SEED,
    *,
    jobs: int = 1,
    totals: tuple[int, int] = DEFAULT_TOTALS,
    corpus: Sequence[int] = (),
    methods: Sequence[str] = tuple(FREQUENTIST),
    scheduler: str | None = None,
    on_cell_done: Callable[[Cell], None] | None = None,
) -> pd.DataFrame:
    """Simulate every cell and return one row per cell × method, sorted by design, k, τ, p
    and method order, whatever order the cells finished in.

    ``jobs = 1`` runs in this process; ``jobs > 1`` starts a Dask ``LocalCluster`` of that
    many single-threaded worker processes; ``scheduler`` (an address such as
    ``tcp://host:8786``) sends the cells to an existing Dask cluster instead. Every cell
    draws from its own seed stream, so the results are the same in all three cases.
    """
    import pandas as pd

    if reps < 1:
        raise ValueError(f"reps must be at least 1; got {reps}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1; got {jobs}")
    if not (1 <= totals[0] <= totals[1]):
        raise ValueError(f"totals must be 1 <= low <= high; got {totals}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods must be among {', '.join(METHODS)}; got {unknown}")
    results: dict[Cell, list[dict[str, Any]]] = {}
    # largest k first, so that the slow cells do not end up alone at the end
    order = sorted(cells, key=lambda c: (-c.k, c.tau, c.p, c.design))
    args = {c: (c, reps, seed, totals, tuple(corpus), tuple(methods)) for c in order}
    if jobs == 1 and scheduler is None:
        for cell in order:
            results[cell] = _run_cell(args[cell])
            if on_cell_done is not None:
                on_cell_done(cell)
    else:
        results = _run_dask(order, args, jobs, scheduler, on_cell_done)
    rank = {m: i for i, m in enumerate(METHODS)}
    rows = [row for cell in cells for row in results[cell]]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["_m"] = frame["method"].map(rank)
    frame["_d"] = frame["design"].map({d: i for i, d in enumerate(DESIGNS)})
    frame = frame.sort_values(["_d", "k", "tau", "p", "_m"], kind="stable")
    return frame.drop(columns=["_m", "_d"]).reset_index(drop=True)


def _run_dask(
    order: Sequence[Cell],
    args: dict[Cell, Any],
    jobs: int,
    scheduler: str | None,
    on_cell_done: Callable[[Cell], None] | None,
) -> dict[Cell, list[dict[str, Any]]]:
    """The cells on a Dask cluster: a local one of ``jobs`` processes, or ``scheduler``."""
    from distributed import Client, LocalCluster, as_completed

    results: dict[Cell, list[dict[str, Any]]] = {}
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    client = Client(cluster if cluster is not None else scheduler)
    try:
        futures = {client.submit(_run_cell, args[c], pure=False): c for c in order}
        for fut in as_completed(list(futures)):
            cell = futures[fut]
            results[cell] = fut.result()
            if on_cell_done is not None:
                on_cell_done(cell)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return results


__all__ = [
    "BAYESIAN",
    "COLUMNS",
    "DEFAULT_REPS",
    "DEFAULT_SEED",
    "DEFAULT_TOTALS",
    "DESIGNS",
    "FREQUENTIST",
    "FULL_K",
    "FULL_P",
    "FULL_TAU",
    "METHODS",
    "QUICK_K",
    "QUICK_P",
    "QUICK_REPS",
    "QUICK_TAU",
    "TARGET_BAND",
    "Cell",
    "corpus_totals",
    "draw",
    "grid",
    "quick_grid",
    "run_grid",
    "simulate_cell",
]
