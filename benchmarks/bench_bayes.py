"""Speed of the exact Bayesian binomial-normal fit (metaresp.bayes).

    python benchmarks/bench_bayes.py

Prints the median time of a single fit for k = 2, 5 and 30 and the batch throughput (rows
per second) for k = 5, one τ prior and three τ priors sharing one likelihood grid.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from metaresp.bayes import fit_bayes, fit_bayes_batch


def _data(rng: np.random.Generator, rows: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = rng.integers(2, 61, size=(rows, k))
    p = 1.0 / (1.0 + np.exp(-rng.normal(0.3, 0.8, size=(rows, k))))
    return rng.binomial(n, p), n


def main() -> None:
    rng = np.random.default_rng(1)
    for k in (2, 5, 30):
        x, n = _data(rng, 1, k)
        fit_bayes(x[0], n[0], threshold=0.5)
        times = []
        for _ in range(15):
            start = time.perf_counter()
            fit_bayes(x[0], n[0], threshold=0.5)
            times.append(time.perf_counter() - start)
        print(f"single fit, k = {k:2d}: {1000 * statistics.median(times):6.1f} ms")
    x, n = _data(rng, 400, 5)
    for priors in (["half-normal(1)"], ["half-normal(0.5)", "half-normal(1)", "half-cauchy(0.5)"]):
        start = time.perf_counter()
        fit_bayes_batch(x, n, tau_priors=priors, threshold=0.5)
        elapsed = time.perf_counter() - start
        print(f"batch, k = 5, {len(priors)} prior(s): {x.shape[0] / elapsed:7.0f} rows/s")


if __name__ == "__main__":
    main()
