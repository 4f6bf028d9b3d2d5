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
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp import batch
from metaresp.files import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: The full grid (issue: k 2-10 small studies, p 0.05-0.95, τ 0-1 on the logit scale).
FULL_K: Final[tuple[int, ...]] = (2, 3, 5, 10)
FULL_P: Final[tuple[float, ...]] = (0.05, 0.2, 0.5, 0.8, 0.95)
FULL_TAU: Final[tuple[float, ...]] = (0.0, 0.5, 1.0)
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

#: Methods: name -> (transform, estimator, ci). "GLMM-t+fallback" is what
#: ``metaresp.pool`` delivers by default: GLMM-t, REML-logit-HKSJ (ad hoc floor) where the
#: GLMM fails.
METHODS: Final[dict[str, tuple[str, str, str]]] = {
    "GLMM-z": ("logit", "GLMM", "z"),
    "GLMM-t": ("logit", "GLMM", "t"),
    "GLMM-t+fallback": ("logit", "GLMM", "t"),
    "REML-logit-z": ("logit", "REML", "z"),
    "REML-logit-HKSJ": ("logit", "REML", "hksj"),
    "REML-logit-HKSJ-adhoc": ("logit", "REML", "hksj-adhoc"),
    "DL-logit-z": ("logit", "DL", "z"),
    "FE-logit-z": ("logit", "FE", "z"),
    "FT-REML-HKSJ": ("freeman-tukey", "REML", "hksj"),
}

COLUMNS: Final[tuple[str, ...]] = (
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

    def seed_sequence(self, seed: int) -> np.random.SeedSequence:
        """The cell's own stream: independent of grid, order and worker count."""
        key = (self.k, round(self.p * 1000), round(self.tau * 1000))
        return np.random.SeedSequence(seed, spawn_key=key)


def grid(
    ks: Iterable[int] = FULL_K, ps: Iterable[float] = FULL_P, taus: Iterable[float] = FULL_TAU
) -> list[Cell]:
    """All combinations of k, p and τ, ordered by k, τ, p."""
    return [Cell(k, p, t) for k in ks for t in taus for p in ps]


def quick_grid() -> list[Cell]:
    """The small grid of ``metaresp simulate --quick``."""
    return grid(QUICK_K, QUICK_P, QUICK_TAU)


def draw(
    cell: Cell, reps: int, seed: int, totals: tuple[int, int] = DEFAULT_TOTALS
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Events, totals (reps × k) and a new study's true proportion (reps,) for a cell."""
    rng = np.random.default_rng(cell.seed_sequence(seed))
    mu = float(special.logit(cell.p))
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


def simulate_cell(
    cell: Cell,
    reps: int = DEFAULT_REPS,
    seed: int = DEFAULT_SEED,
    *,
    methods: Sequence[str] = tuple(METHODS),
    totals: tuple[int, int] = DEFAULT_TOTALS,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """Simulate one cell; one summary row (a dict with :data:`COLUMNS`) per method."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods must be among {', '.join(METHODS)}; got {unknown}")
    x, n, new = draw(cell, reps, seed, totals)
    glmm = None
    if any(METHODS[m][1] == "GLMM" for m in methods):
        glmm = batch.fit_glmm_batch(x, n)
    fits: dict[str, batch.BatchPool] = {}
    for method in methods:
        transform, estimator, ci = METHODS[method]
        if estimator == "GLMM":
            fits[method] = batch.pool_glmm(
                x, n, ci=ci, level=level, fit=glmm, fallback=method.endswith("+fallback")
            )
        else:
            fits[method] = batch.pool_iv(
                x, n, transform=transform, estimator=estimator, ci=ci, level=level
            )
    return [_summarise(cell, m, fits[m], cell.p, new) for m in methods]


def _run_cell(args: tuple[Cell, int, int, tuple[int, int]]) -> list[dict[str, Any]]:
    cell, reps, seed, totals = args
    return simulate_cell(cell, reps, seed, totals=totals)


def run_grid(
    cells: Sequence[Cell],
    reps: int = DEFAULT_REPS,
    seed: int = DEFAULT_SEED,
    *,
    jobs: int = 1,
    totals: tuple[int, int] = DEFAULT_TOTALS,
    on_cell_done: Callable[[Cell], None] | None = None,
) -> pd.DataFrame:
    """Simulate every cell (``jobs`` worker processes) and return one row per cell × method,
    sorted by k, τ, p and method order, whatever order the cells finished in."""
    import pandas as pd

    if reps < 1:
        raise ValueError(f"reps must be at least 1; got {reps}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1; got {jobs}")
    if not (1 <= totals[0] <= totals[1]):
        raise ValueError(f"totals must be 1 <= low <= high; got {totals}")
    results: dict[Cell, list[dict[str, Any]]] = {}
    # largest k first, so that the slow cells do not end up alone at the end
    order = sorted(cells, key=lambda c: (-c.k, c.tau, c.p))
    if jobs == 1:
        for cell in order:
            results[cell] = _run_cell((cell, reps, seed, totals))
            if on_cell_done is not None:
                on_cell_done(cell)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_run_cell, (c, reps, seed, totals)): c for c in order}
            for fut in as_completed(futures):
                cell = futures[fut]
                results[cell] = fut.result()
                if on_cell_done is not None:
                    on_cell_done(cell)
    rank = {m: i for i, m in enumerate(METHODS)}
    rows = [row for cell in cells for row in results[cell]]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["_m"] = frame["method"].map(rank)
    frame = frame.sort_values(["k", "tau", "p", "_m"], kind="stable").drop(columns="_m")
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------- outputs


def in_band(coverage: float) -> bool:
    """Coverage within :data:`TARGET_BAND` (93-97%)."""
    return TARGET_BAND[0] <= coverage <= TARGET_BAND[1]


def summary_markdown(frame: pd.DataFrame, *, reps: int, seed: int, seconds: float | None) -> str:
    """A short report: coverage per method × k, which methods keep 93-97%, where each fails."""
    lo, hi = (100 * b for b in TARGET_BAND)
    methods = list(dict.fromkeys(frame["method"]))
    ks = sorted(frame["k"].unique())
    lines = [
        "# Coverage simulation of the interval methods",
        "",
        f"Binomial-normal model; {reps} replicates per cell, seed {seed}; study totals "
        "uniform on the integers of the run's range; p is the median-study proportion "
        "expit(μ). Coverage is counted over fits that did not fail (see `failed`); its Monte "
        f"Carlo standard error at 95% is {100 * math.sqrt(0.95 * 0.05 / reps):.2f} points.",
    ]
    if seconds is not None:
        lines.append(f"Wall time: {seconds:.0f} s.")
    def mean_worst(c: pd.Series) -> str:
        return f"{100 * c.mean():.1f} [{100 * c.min():.1f}]"

    def in_band_count(sub: pd.DataFrame) -> str:
        band = sub["coverage"].map(in_band)
        return f"{int(band.sum())}/{band.size}"

    lines += _method_by_k_table(
        frame, "CI coverage (%) by method and k: mean over p and τ [worst cell]", "coverage",
        mean_worst, ks, extra=("cells in band", in_band_count))
    lines += _method_by_k_table(
        frame, "Prediction-interval coverage (%) by method and k (k ≥ 3): mean [worst]",
        "pi_coverage", mean_worst, [k for k in ks if k >= 3])
    lines += ["", f"## Which methods keep {lo:.0f}-{hi:.0f}% in every cell", ""]
    for label, sel in (("k ≤ 3", frame["k"] <= 3), ("all k", frame["k"] > 0)):
        good = [
            m for m in methods if frame[sel & (frame["method"] == m)]["coverage"].map(in_band).all()
        ]
        lines.append(f"- {label}: " + (", ".join(good) if good else "**none**"))
    lines += _method_by_k_table(
        frame, "Median CI width (percentage points) by method and k: median over p and τ",
        "ci_width_median", lambda c: f"{100 * c.median():.1f}", ks)
    lines += ["", f"## Cells outside {lo:.0f}-{hi:.0f}% (coverage %; failed fits % if any)", ""]
    for m in methods:
        sub = frame[frame["method"] == m]
        parts = []
        for name, sel in (
            ("below", sub["coverage"] < TARGET_BAND[0]),
            ("above", sub["coverage"] > TARGET_BAND[1]),
        ):
            items = [
                f"k={r.k} p={r.p:g} τ={r.tau:g}: {100 * r.coverage:.1f}"
                + (f" ({100 * r.failed_share:.1f}% failed)" if r.failed_share > 0 else "")
                for r in sub[sel].itertuples()
            ]
            if items:
                parts.append(f"{len(items)} {name}: " + "; ".join(items))
        lines.append(f"- **{m}**: " + (" | ".join(parts) if parts else "none"))
    lines += _method_by_k_table(frame, "Failed fits (%), mean over cells by k", "failed_share",
                                lambda c: f"{100 * c.mean():.1f}", ks)
    return "\n".join(lines) + "\n"


def _method_by_k_table(
    frame: pd.DataFrame, title: str, column: str, cell: Callable[[pd.Series], str],
    ks: Sequence[int], extra: tuple[str, Callable[[pd.DataFrame], str]] | None = None,
) -> list[str]:
    """A Markdown section: one row per method, one column per k, ``cell`` of ``column``
    over that method's cells with that k (and an optional last column over all k)."""
    header = [f"k = {k}" for k in ks] + ([extra[0]] if extra else [])
    lines = ["", f"## {title}", "", "| method | " + " | ".join(header) + " |",
             "| --- |" + " --- |" * len(header)]
    for m in dict.fromkeys(frame["method"]):
        sub = frame[frame["method"] == m]
        cells = [cell(sub[sub["k"] == k][column]) for k in ks]
        if extra:
            cells.append(extra[1](sub))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def heatmap(frame: pd.DataFrame, path: Path) -> None:
    """CI coverage by method (rows) × cell (columns), one panel per k, values annotated;
    diverging colours centred on 95% (red below, blue above, saturated below 80%)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    methods = list(dict.fromkeys(frame["method"]))
    ks = sorted(frame["k"].unique())
    taus = sorted(frame["tau"].unique())
    ps = sorted(frame["p"].unique())
    # colours saturate below 80% so that the 85-95% range, where the decisions lie, keeps
    # visible steps; the printed values carry the exact numbers
    norm = TwoSlopeNorm(vmin=80.0, vcenter=95.0, vmax=100.0)
    cmap = plt.get_cmap("RdBu")
    ncol = len(taus) * len(ps)
    fig_w = 2.6 + 0.62 * ncol
    fig_h = 0.9 + len(ks) * (0.3 * len(methods) + 0.75)
    fig, axes = plt.subplots(len(ks), 1, figsize=(fig_w, fig_h), squeeze=False)
    for ax, k in zip(axes[:, 0], ks, strict=True):
        sub = frame[frame["k"] == k]
        mat = np.full((len(methods), ncol), np.nan)
        for i, m in enumerate(methods):
            for j, (t, p) in enumerate((t, p) for t in taus for p in ps):
                v = sub[(sub["method"] == m) & (sub["tau"] == t) & (sub["p"] == p)]["coverage"]
                if not v.empty:
                    mat[i, j] = 100 * float(v.iloc[0])
        ax.imshow(mat, cmap=cmap, norm=norm, aspect="auto")
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                v = mat[i, j]
                if not np.isfinite(v):
                    continue
                far = abs(float(np.clip(norm(v), 0.0, 1.0)) - 0.5) > 0.33
                ax.text(
                    j,
                    i,
                    f"{v:.1f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if far else "black",
                )
        ax.set_yticks(range(len(methods)), methods, fontsize=8)
        ax.set_xticks(range(ncol), [f"{p:g}" for _ in taus for p in ps], fontsize=7)
        for b in range(1, len(taus)):
            ax.axvline(b * len(ps) - 0.5, color="black", lw=1.2)
        for b, t in enumerate(taus):
            ax.text(
                (b + 0.5) * len(ps) - 0.5, -0.8, f"τ = {t:g}", ha="center", va="bottom", fontsize=8
            )
        ax.set_title(f"k = {k}", loc="left", fontsize=9, fontweight="bold", pad=14)
        ax.tick_params(length=0)
    axes[-1, 0].set_xlabel("true median-study proportion p (within each τ block)", fontsize=8)
    fig.suptitle("Coverage (%) of the 95% CI for the pooled proportion", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.91, 0.98))
    cax = fig.add_axes((0.925, 0.25, 0.012, 0.5))
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax, extend="min")
    bar.set_label("coverage %", fontsize=8)
    bar.ax.tick_params(labelsize=7)

    def save(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=150)

    try:
        atomic_write(path, save)
    finally:
        plt.close(fig)


@dataclass(frozen=True, slots=True)
class Outputs:
    """Paths of the files :func:`write_outputs` wrote."""

    csv: Path
    heatmap: Path
    summary: Path


def write_outputs(
    frame: pd.DataFrame, out_dir: Path, *, reps: int, seed: int, seconds: float | None = None
) -> Outputs:
    """``coverage.csv``, ``coverage-heatmap.png`` and ``summary.md`` in ``out_dir``."""
    out = Outputs(
        out_dir / "coverage.csv", out_dir / "coverage-heatmap.png", out_dir / "summary.md"
    )
    atomic_write(out.csv, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))
    heatmap(frame, out.heatmap)
    text = summary_markdown(frame, reps=reps, seed=seed, seconds=seconds)
    atomic_write(out.summary, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return out
