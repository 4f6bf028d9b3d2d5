"""The base-R integration that ``reproduce.R`` carries for the Bayesian model
(:mod:`metaresp._reproduce_bayes`) against metaresp's own posterior, on awkward data and
every prior family: an independent computation (a fixed fine grid and FFT convolutions
in R, adaptive quadrature in metaresp) that must agree within metaresp's stated accuracy,
1e-3 on the proportion scale and 1e-3 relative for τ² (metaresp.bayes). Skipped, saying
why, where R is not installed.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pytest

from metaresp._reproduce_bayes import BAYES_FUNCTION, bayes_call
from metaresp.bayes import fit_bayes

CASES = {
    "k2": ([12, 7], [20, 15], "half-normal(2)"),
    "zero_and_some": ([0, 4], [10, 10], "half-normal(2)"),
    "all_zero": ([0, 0, 0], [5, 8, 3], "half-normal(1)"),
    "all_event": ([4, 6], [4, 6], "half-cauchy(0.5)"),
    "tiny": ([1, 0, 2, 1], [2, 1, 3, 1], "half-cauchy(1)"),
    "opposite": ([0, 20], [20, 20], "uniform(0, 5)"),
    "k8_n200": ([31, 150, 88, 12, 190, 64, 101, 45], [200] * 8, "half-normal(0.5)"),
}


def _close(ours: float, theirs: float, tol: float) -> bool:
    return abs(ours - theirs) <= tol * max(1.0, abs(theirs))


@pytest.mark.slow
def test_reproduce_function_agrees_with_the_engine(tmp_path: Path) -> None:
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript not found: the base-R Bayesian integration not run")
    lines = [BAYES_FUNCTION, "out <- list()"]
    for name, (x, n, prior) in CASES.items():
        lines += [
            f"xi <- c({', '.join(map(str, x))})",
            f"ni <- c({', '.join(map(str, n))})",
            bayes_call(prior, "normal(0, 2)", 0.95),
            f'out[["{name}"]] <- data.frame(case = "{name}", estimate = fit$estimate, '
            "ci_low = fit$ci_low, ci_high = fit$ci_high, tau2 = fit$tau2)",
        ]
    target = tmp_path / "bayes.csv"
    lines.append(f'write.csv(do.call(rbind, out), "{target.as_posix()}", row.names = FALSE)')
    script = tmp_path / "bayes.R"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ran = subprocess.run(
        ["Rscript", str(script)], capture_output=True, text=True, check=False, timeout=300
    )
    assert ran.returncode == 0, ran.stderr
    with target.open(encoding="utf-8") as f:
        rows = {row["case"]: row for row in csv.DictReader(f)}
    problems = []
    for name, (x, n, prior) in CASES.items():
        fit = fit_bayes(x, n, tau_prior=prior, mu_prior="normal(0, 2)")
        row = rows[name]
        for key in ("estimate", "ci_low", "ci_high"):
            ours = fit.proportion if key == "estimate" else getattr(fit, key)
            if abs(ours - float(row[key])) > 1e-3:
                problems.append(f"{name} {key}: {ours} vs R {row[key]}")
        if not _close(fit.tau2, float(row["tau2"]), 1e-3):
            problems.append(f"{name} tau2: {fit.tau2} vs R {row['tau2']}")
    assert not problems, "\n".join(problems)
