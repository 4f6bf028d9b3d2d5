"""Speed of the exact Bayesian binomial-normal fit (metaresp.bayes).

    python benchmarks/bench_bayes.py

Prints, for k = 2, 5, 10 and 30 studies, the CPU time of one ``metaresp.pool(events,
totals, estimator="BAYES", threshold=0.5)`` call: the median and the largest over 20
datasets (the fastest of 3 runs each, so that other load on the machine counts little),
with study totals uniform on 2-60 and, as in the shipped corpus's small groups, on 2-10.
Then the batch throughput (rows per second) for k = 5, one τ prior and three τ priors
sharing one grid. Run it with one BLAS thread (e.g. OPENBLAS_NUM_THREADS=1) for figures
that do not count idle helper threads.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import metaresp
from metaresp.bayes import fit_bayes_batch


def _data(
    rng: np.random.Generator, rows: int, k: int, high: int = 60
) -> tuple[np.ndarray, np.ndarray]:
    n = rng.integers(2, high + 1, size=(rows, k))
    p = 1.0 / (1.0 + np.exp(-rng.normal(0.3, 0.8, size=(rows, k))))
    return rng.binomial(n, p), n


def _cpu_ms(x: np.ndarray, n: np.ndarray) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        metaresp.pool(x, n, estimator="BAYES", threshold=0.5)
        best = min(best, time.process_time() - start)
    return 1000.0 * best


def main() -> None:
    rng = np.random.default_rng(1)
    metaresp.pool([3, 4], [10, 12], estimator="BAYES")  # imports and caches
    for high in (60, 10):
        for k in (2, 5, 10, 30):
            x, n = _data(rng, 20, k, high)
            times = sorted(_cpu_ms(x[r], n[r]) for r in range(x.shape[0]))
            print(
                f"pool BAYES, k = {k:2d}, totals 2-{high}: median {statistics.median(times):5.1f} "
                f"ms CPU, largest {times[-1]:5.1f} ms (20 datasets)"
            )
    x, n = _data(rng, 400, 5)
    for priors in (["half-normal(1)"], ["half-normal(0.5)", "half-normal(1)", "half-cauchy(0.5)"]):
        start = time.process_time()
        fit_bayes_batch(x, n, tau_priors=priors, threshold=0.5)
        elapsed = time.process_time() - start
        print(f"batch, k = 5, {len(priors)} prior(s): {x.shape[0] / elapsed:7.0f} rows/s CPU")


if __name__ == "__main__":
    main()
