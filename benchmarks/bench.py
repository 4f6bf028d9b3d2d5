"""Speed of the pooling engine, with metafor timed on the same fits when R is present.

Run with ``make bench`` (or ``python benchmarks/bench.py [--quick]``). Prints, for k = 5,
30 and 1000 studies: time per fit of DL and REML (logit, HKSJ, with the Q-profile τ² CI)
and of the GLMM (when :mod:`metaresp.glmm` is importable); 10,000 REML fits of k = 10; the
time of ``import metaresp`` in a fresh interpreter; and, when ``Rscript`` with metafor is
installed, the same fits in metafor (``rma(yi, vi, method, test="knha")`` plus
``confint()``, and ``rma.glmm(measure="PLO", nAGQ=7)``) with the ratio.

Targets (issue 2): an inverse-variance fit under 1 ms and a GLMM under 20 ms for k ≤ 30;
at least 10x faster than metafor; ``import metaresp`` under 0.3 s. Issue 10: inverse-variance
fits at least 30x faster than ``rma()`` for k ≤ 30 (100x at k = 1000), a GLMM fit at least 60x
faster than ``rma.glmm``.

Every time per fit, ours and metafor's, is the best of five blocks of repeated calls: on a
shared machine the other work only ever adds time, so the fastest block is the closest to
the cost of the fit itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZES = (5, 30, 1000)
SEED = 20240601


def make_data(k: int, seed: int = SEED) -> tuple[list[int], list[int]]:
    """k studies with totals 5..200 and true proportions from Beta(3, 3)."""
    rng = np.random.default_rng(seed + k)
    totals = rng.integers(5, 201, size=k)
    events = rng.binomial(totals, rng.beta(3.0, 3.0, size=k))
    return events.tolist(), totals.tolist()


BLOCKS = 5


def per_call(fn: Callable[[], object], min_time: float = 0.3, max_reps: int = 2000) -> float:
    """CPU seconds per call: the best of :data:`BLOCKS` blocks, each of at least
    ``min_time / BLOCKS`` CPU seconds or ``max_reps / BLOCKS`` calls (CPU time rather than
    wall time, so that other work on a shared machine distorts the figures less; metafor
    is timed the same way)."""
    fn()  # warm-up (imports, caches)
    best = float("inf")
    for _ in range(BLOCKS):
        reps = 0
        start = time.process_time()
        while True:
            fn()
            reps += 1
            elapsed = time.process_time() - start
            if elapsed >= min_time / BLOCKS or reps >= max(1, max_reps // BLOCKS):
                break
        best = min(best, elapsed / reps)
    return best


def import_time(repeats: int = 5) -> tuple[float, float]:
    """Time of ``import metaresp`` in a fresh interpreter, as measured by ``python -X
    importtime`` (cumulative microseconds of the top-level import): best wall time and
    the whole child process's best CPU time minus that of a bare interpreter."""

    def cpu(code: str) -> float:
        best = float("inf")
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", code], check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            best = min(best, used)
        return best

    wall = float("inf")
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import metaresp"],
            capture_output=True,
            text=True,
            check=True,
        )
        for line in out.stderr.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == "metaresp":
                wall = min(wall, int(parts[1]) / 1e6)
    return wall, cpu("import metaresp") - cpu("pass")


R_SCRIPT = r"""
suppressPackageStartupMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
reps_small <- as.integer(args[1]); n_many <- as.integer(args[2]); glmm <- args[3] == "1"
rd <- function(path) { x <- read.csv(path); list(xi = x$events, ni = x$totals) }
cpu <- function() { p <- proc.time(); p[["user.self"]] + p[["sys.self"]] }
tm <- function(expr_fun, reps, blocks = 5) {
  expr_fun()
  blocks <- min(blocks, reps)
  per_block <- max(1, reps %/% blocks)
  best <- Inf
  for (b in seq_len(blocks)) {
    t0 <- cpu()
    for (i in seq_len(per_block)) expr_fun()
    best <- min(best, (cpu() - t0) / per_block)
  }
  best
}
for (f in args[-(1:3)]) {
  d <- rd(f); k <- length(d$xi)
  reps <- if (k >= 1000) max(1, reps_small %/% 20) else reps_small
  for (m in c("DL", "REML")) {
    s <- tm(function() {
      e <- escalc("PLO", xi = d$xi, ni = d$ni)
      r <- rma(yi, vi, data = e, method = m, test = "knha")
      confint(r)
    }, reps)
    cat(sprintf("%s,%d,%.9f\n", m, k, s))
  }
  if (glmm && k <= 30) {
    s <- tm(function() suppressWarnings(rma.glmm(measure = "PLO", xi = d$xi, ni = d$ni,
                                                 nAGQ = 7)), max(1, reps %/% 5))
    cat(sprintf("GLMM,%d,%.9f\n", k, s))
  }
}
set.seed(1)
many <- lapply(seq_len(n_many), function(i) {
  ni <- sample(5:200, 10, replace = TRUE); list(xi = rbinom(10, ni, rbeta(10, 3, 3)), ni = ni)
})
t0 <- cpu()
for (d in many) {
  e <- escalc("PLO", xi = d$xi, ni = d$ni)
  r <- rma(yi, vi, data = e, method = "REML", test = "knha")
  confint(r)
}
cat(sprintf("MANY,%d,%.9f\n", n_many, (cpu() - t0) / n_many))
"""


def time_metafor(
    datasets: dict[int, tuple[list[int], list[int]]], reps: int, n_many: int, glmm: bool
) -> dict[tuple[str, int], float]:
    """Seconds per fit in metafor, keyed by (model, k); ("MANY", n) for the batch."""
    if shutil.which("Rscript") is None:
        return {}
    check = subprocess.run(["Rscript", "-e", "library(metafor)"], capture_output=True)
    if check.returncode != 0:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for k, (ev, to) in datasets.items():
            path = os.path.join(tmp, f"k{k}.csv")
            with open(path, "w") as fh:
                fh.write("events,totals\n")
                fh.writelines(f"{e},{t}\n" for e, t in zip(ev, to, strict=True))
            files.append(path)
        script = os.path.join(tmp, "bench.R")
        with open(script, "w") as fh:
            fh.write(R_SCRIPT)
        out = subprocess.run(
            ["Rscript", script, str(reps), str(n_many), "1" if glmm else "0", *files],
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[tuple[str, int], float] = {}
    for line in out.stdout.splitlines():
        name, k, sec = line.split(",")
        result[(name, int(k))] = float(sec)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--many", type=int, default=10_000, help="number of REML k=10 fits")
    parser.add_argument(
        "--r-many",
        type=int,
        default=1_000,
        help="REML k=10 fits timed in metafor (per-fit time compared)",
    )
    parser.add_argument("--no-r", action="store_true", help="skip the metafor timings")
    parser.add_argument(
        "--million",
        type=int,
        default=1_000_000,
        help="batched GLMM fits of k=5 to time (0 skips; --quick uses 100,000)",
    )
    parser.add_argument(
        "--no-commands",
        action="store_true",
        help="skip the command-line timings (run, --help, add)",
    )
    args = parser.parse_args()
    min_time = 0.1 if args.quick else 0.5

    from metaresp.pooling import pool

    has_glmm = importlib.util.find_spec("metaresp.glmm") is not None
    datasets = {k: make_data(k) for k in SIZES}
    ours: dict[tuple[str, int], float] = {}
    for k, (ev, to) in datasets.items():
        for est in ("DL", "REML"):
            ours[(est, k)] = per_call(
                lambda ev=ev, to=to, est=est: pool(
                    ev, to, transform="logit", estimator=est, ci="hksj"
                ),
                min_time=min_time,
            )
        ours[("REML+CI", k)] = per_call(
            lambda ev=ev, to=to: (
                pool(ev, to, transform="logit", estimator="REML", ci="hksj").tau2_ci_low
            ),
            min_time=min_time,
        )
        if has_glmm:
            ours[("GLMM", k)] = per_call(
                lambda ev=ev, to=to: pool(ev, to, estimator="GLMM", ci="t"),
                min_time=min_time,
                max_reps=200,
            )

    rng = np.random.default_rng(SEED)
    many = []
    for _ in range(args.many):
        totals = rng.integers(5, 201, size=10)
        many.append((rng.binomial(totals, rng.beta(3.0, 3.0, size=10)).tolist(), totals.tolist()))
    t0 = time.process_time()
    w0 = time.perf_counter()
    for ev, to in many:
        pool(ev, to, transform="logit", estimator="REML", ci="hksj")
    many_total = time.process_time() - t0
    many_wall = time.perf_counter() - w0

    imp_wall, imp_cpu = import_time(3 if args.quick else 5)

    r_times: dict[tuple[str, int], float] = {}
    if not args.no_r:
        reps = 20 if args.quick else 100
        r_many = min(args.r_many, args.many) if not args.quick else 200
        r_times = time_metafor(datasets, reps, r_many, has_glmm)

    print("metaresp pooling benchmark (logit; IV models with HKSJ CI; metaresp computes the")
    print("Q-profile tau2 CI when first asked for: REML+CI asks for it, as metafor's confint;")
    print("CPU time per fit, best of 5 blocks; metafor timed in the same run the same way)")
    print(f"{'model':<8}{'k':>4}{'metaresp ms/fit':>18}{'metafor ms/fit':>17}{'ratio':>9}")
    for (name, k), sec in ours.items():
        r = r_times.get(("REML" if name == "REML+CI" else name, k))
        r_txt = f"{1e3 * r:17.3f}" if r else f"{'-':>17}"
        ratio = f"{r / sec:8.1f}x" if r else f"{'-':>9}"
        print(f"{name:<8}{k:>4}{1e3 * sec:18.3f}{r_txt}{ratio}")
    per_many = many_total / args.many
    line = (
        f"{args.many} REML fits of k=10: {many_total:.2f} s CPU, {many_wall:.2f} s wall "
        f"({1e3 * per_many:.3f} ms/fit CPU)"
    )
    r_many_key = next((key for key in r_times if key[0] == "MANY"), None)
    if r_many_key is not None:
        r_per = r_times[r_many_key]
        line += (
            f"; metafor {1e3 * r_per:.3f} ms/fit over {r_many_key[1]} fits, {r_per / per_many:.1f}x"
        )
    print(line)
    print(
        f"import metaresp: {imp_wall:.3f} s (python -X importtime, best of runs); "
        f"{imp_cpu:.3f} s CPU over a bare interpreter"
    )
    if not r_times and not args.no_r:
        print("metafor timings skipped: Rscript with metafor not found")
    million = min(args.million, 100_000) if args.quick else args.million
    if million > 0:
        million_glmm(million, os.cpu_count() or 1)
    if not args.no_commands:
        commands()


MILLION_CHUNK = 25_000


def _million_chunk(seed: int) -> tuple[int, int]:
    """One chunk of the batched GLMM benchmark: k = 5 studies of 5-60 patients drawn from
    the binomial-normal model (p = 0.5 at the median study, τ = 1); (rows, failed fits)."""
    from metaresp.batch import pool_glmm

    rng = np.random.default_rng(seed)
    totals = rng.integers(5, 61, size=(MILLION_CHUNK, 5))
    logits = rng.standard_normal((MILLION_CHUNK, 5))
    events = rng.binomial(totals, 1.0 / (1.0 + np.exp(-logits)))
    res = pool_glmm(events, totals, ci="t")
    return MILLION_CHUNK, int(res.failed.sum())


def million_glmm(total: int, workers: int) -> None:
    """``total`` GLMM fits of k = 5 through the batched path (:func:`metaresp.batch.pool_glmm`,
    what the coverage simulation runs), in chunks over ``workers`` processes."""
    from concurrent.futures import ProcessPoolExecutor

    chunks = max(1, total // MILLION_CHUNK)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool_exec:
        done = list(pool_exec.map(_million_chunk, range(SEED, SEED + chunks)))
    wall = time.perf_counter() - start
    fits = sum(d[0] for d in done)
    failed = sum(d[1] for d in done)
    print(
        f"{fits:,} batched GLMM fits of k=5 (t CI, PI) on {workers} processes: {wall:.1f} s wall "
        f"({1e6 * wall / fits:.1f} us/fit; {failed} fits failed and would fall back)"
    )


def _wall(argv: list[str], cwd: Path | None = None) -> float:
    """Wall seconds of one command (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _reference_loop() -> float:
    """CPU seconds of a fixed pure-Python loop (best of 3): how fast this machine is at
    the moment, for reading the wall times of the commands beside it."""
    best = math.inf
    for _ in range(3):
        start = time.process_time()
        sum(i * i for i in range(10**7))
        best = min(best, time.process_time() - start)
    return best


def commands() -> None:
    """Wall time of the command line on the shipped corpus, as a user runs it.

    Targets: ``metaresp --help`` under 0.5 s (issue 4); issue 14: a cold ``metaresp run``
    (no earlier results) under 8 s, a warm one with nothing changed under 1.5 s, and
    ``metaresp add`` of one study that touches one class under 3 s and at most a quarter
    of the cold run. The cold run draws every figure of the plan's scope (the primary
    analyses', at 300 dpi, in worker processes);
    the warm run and the add reuse what did not change (``results/.cache``)."""
    exe = [sys.executable, "-m", "metaresp"]
    print(
        f"reference: a fixed pure-Python loop takes {_reference_loop():.2f} s CPU now (how "
        "fast this machine is at the moment; its speed drifts by a fifth and more)"
    )
    helps = [_wall([*exe, "--help"]) for _ in range(5)]
    print(f"metaresp --help: {min(helps):.3f} s wall (best of 5)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "project"
        shutil.copytree(ROOT / "extractions", work / "extractions")
        shutil.copy(ROOT / "analysis-plan.yaml", work / "analysis-plan.yaml")
        colds = []
        for _ in range(3):  # best of 3: a cold run is one sample of a noisy machine
            shutil.rmtree(work / "results", ignore_errors=True)
            colds.append(_wall([*exe, "run", "-q", "--no-publish"], cwd=work))
        cold = min(colds)
        warm = min(_wall([*exe, "run", "-q", "--no-publish"], cwd=work) for _ in range(3))
        _wall([*exe, "run", "-q"], cwd=work)  # the published state that add compares with
        snapshot = Path(tmp) / "snapshot"
        shutil.copytree(work, snapshot)
        # a study of one class in two analyses (a copy of cevostamab-ref71), then one
        # of one class that 33 of the 55 analyses show (a copy of chari-2020: every
        # class-by-class analysis has a small-molecule class); each added twice to the
        # project as the last run left it, the best of the two taken
        adds: list[float] = []
        for source, sid in (("cevostamab-ref71", "bench-a-2026"), ("chari-2020", "bench-b-2026")):
            text = (ROOT / "extractions" / f"{source}.yaml").read_text(encoding="utf-8")
            times = []
            for _ in range(2):
                shutil.rmtree(work)
                shutil.copytree(snapshot, work)
                study = work / f"{sid}.yaml"
                study.write_text(text.replace(f"id: {source}", f"id: {sid}"), encoding="utf-8")
                times.append(_wall([*exe, "add", str(study)], cwd=work))
            adds.append(min(times))
        add, add_wide = adds
    cores = os.cpu_count()
    print(
        f"metaresp run, cold (shipped plan and corpus, every figure of the primary analyses): "
        f"{cold:.1f} s wall (best of 3), {cores} cores"
    )
    print(f"metaresp run, warm (nothing changed): {warm:.2f} s wall (best of 3)")
    print(
        f"metaresp add (one study, one class, 2 analyses, re-run, diff): {add:.1f} s wall "
        "(best of 2)"
    )
    print(
        f"metaresp add (one study, one class, 33 analyses show it): {add_wide:.1f} s wall "
        "(best of 2)"
    )
    print(
        f"ratios: add / cold run {add / cold:.2f} and {add_wide / cold:.2f} (target <= 0.25); "
        f"warm / cold run {warm / cold:.3f}"
    )


if __name__ == "__main__":
    main()
