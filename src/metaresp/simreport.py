"""What ``metaresp simulate`` writes: the coverage table, the summary in Markdown with
the default-choosing rule applied, and the coverage heat map (the simulation itself is
:mod:`metaresp.simulate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

from metaresp.files import atomic_write
from metaresp.simulate import TARGET_BAND

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def in_band(coverage: float) -> bool:
    """Coverage within :data:`TARGET_BAND` (93-97%)."""
    return TARGET_BAND[0] <= coverage <= TARGET_BAND[1]


def _design_summary(frame: pd.DataFrame, title: str) -> list[str]:
    """The sections of one study-size design (``title`` prefixes each heading when set)."""
    lo, hi = (100 * b for b in TARGET_BAND)
    methods = list(dict.fromkeys(frame["method"]))
    ks = sorted(frame["k"].unique())
    lines: list[str] = []

    def mean_worst(c: pd.Series) -> str:
        return f"{100 * c.mean():.1f} [{100 * c.min():.1f}]"

    def in_band_count(sub: pd.DataFrame) -> str:
        band = sub["coverage"].map(in_band)
        return f"{int(band.sum())}/{band.size}"

    lines += _method_by_k_table(
        frame,
        "CI coverage (%) by method and k: mean over p and τ [worst cell]",
        "coverage",
        mean_worst,
        ks,
        extra=("cells in band", in_band_count),
    )
    lines += _method_by_k_table(
        frame,
        "Prediction-interval coverage (%) by method and k (k ≥ 3): mean [worst]",
        "pi_coverage",
        mean_worst,
        [k for k in ks if k >= 3],
    )
    lines += ["", f"## Which methods keep {lo:.0f}-{hi:.0f}% in every cell", ""]
    for label, sel in (("k ≤ 3", frame["k"] <= 3), ("all k", frame["k"] > 0)):
        good = [
            m for m in methods if frame[sel & (frame["method"] == m)]["coverage"].map(in_band).all()
        ]
        lines.append(f"- {label}: " + (", ".join(good) if good else "**none**"))
    lines += _method_by_k_table(
        frame,
        "Median CI width (percentage points) by method and k: median over p and τ",
        "ci_width_median",
        lambda c: f"{100 * c.median():.1f}",
        ks,
    )
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
    lines += _method_by_k_table(
        frame,
        "Failed fits (%), mean over cells by k",
        "failed_share",
        lambda c: f"{100 * c.mean():.1f}",
        ks,
    )
    if title:
        lines = [
            ln.replace("## ", f"## {title}: ", 1) if ln.startswith("## ") else ln for ln in lines
        ]
    return lines


def chosen_default(frame: pd.DataFrame) -> str | None:
    """The written rule (methods.md): among methods whose coverage is at or above 93% in
    every cell (within Monte-Carlo error: coverage + 1.96 MCSE ≥ 0.93), the one with the
    smallest median CI width over the cells with k = 2 and 3. None when no method qualifies."""
    keep = [
        m
        for m, sub in frame.groupby("method", sort=False)
        if bool((sub["coverage"] + 1.96 * sub["coverage_mcse"] >= TARGET_BAND[0]).all())
    ]
    if not keep:
        return None
    small = frame[(frame["k"] <= 3) & frame["method"].isin(keep)]
    widths = small.groupby("method")["ci_width_median"].median()
    return str(widths.idxmin())


def _prior_width() -> float:
    """Width of the 95% prior interval of expit(μ) under μ ~ normal(0, 2)."""
    half = 1.959963984540054 * 2.0
    return float(special.expit(half) - special.expit(-half))


def summary_markdown(frame: pd.DataFrame, *, reps: int, seed: int, seconds: float | None) -> str:
    """A short report: coverage per method × k, which methods keep 93-97%, where each fails,
    per study-size design; with Bayesian methods, the prior's influence and the rule's
    choice of default."""
    if "design" not in frame.columns:
        frame = frame.assign(design="uniform")
    designs = list(dict.fromkeys(frame["design"]))
    lines = [
        "# Coverage simulation of the interval methods",
        "",
        f"Binomial-normal model; {reps} replicates per cell, seed {seed}; study totals "
        "uniform on the integers of the run's range; p is the median-study proportion "
        "expit(μ). Coverage is counted over fits that did not fail (see `failed`); its Monte "
        f"Carlo standard error at 95% is {100 * math.sqrt(0.95 * 0.05 / reps):.2f} points.",
    ]
    if len(designs) > 1 or designs != ["uniform"]:
        lines[-1] = lines[-1].replace(
            "study totals uniform on the integers of the run's range",
            "study totals uniform on the integers of the run's range (design `uniform`) or "
            "drawn from the evaluable counts of the corpus (design `corpus`)",
        )
    if seconds is not None:
        lines.append(f"Wall time: {seconds:.0f} s.")
    for design in designs:
        sub = frame[frame["design"] == design]
        lines += _design_summary(sub, f"design {design}" if len(designs) > 1 else "")
    bayes_methods = [m for m in dict.fromkeys(frame["method"]) if m.startswith("BAYES")]
    if bayes_methods:
        prior = _prior_width()
        ks = sorted(frame["k"].unique())
        lines += _method_by_k_table(
            frame[frame["method"].isin(bayes_methods)],
            "Prior's influence: median posterior width / prior width of expit(μ) "
            f"(normal(0, 2): {100 * prior:.0f} points), all designs",
            "ci_width_median",
            lambda c: f"{c.median() / prior:.2f}",
            ks,
        )
    winner = chosen_default(frame)
    lines += [
        "",
        "## The rule's choice of default",
        "",
        "Among methods whose CI coverage is at least 93% in every cell (within Monte-Carlo "
        "error), the one with the smallest median CI width at k = 2 and 3: "
        + (f"**{winner}**." if winner else "**none qualifies**."),
    ]
    return "\n".join(lines) + "\n"


def _method_by_k_table(
    frame: pd.DataFrame,
    title: str,
    column: str,
    cell: Callable[[pd.Series], str],
    ks: Sequence[int],
    extra: tuple[str, Callable[[pd.DataFrame], str]] | None = None,
) -> list[str]:
    """A Markdown section: one row per method, one column per k, ``cell`` of ``column``
    over that method's cells with that k (and an optional last column over all k)."""
    header = [f"k = {k}" for k in ks] + ([extra[0]] if extra else [])
    lines = [
        "",
        f"## {title}",
        "",
        "| method | " + " | ".join(header) + " |",
        "| --- |" + " --- |" * len(header),
    ]
    for m in dict.fromkeys(frame["method"]):
        sub = frame[frame["method"] == m]
        cells = [cell(sub[sub["k"] == k][column]) for k in ks]
        if extra:
            cells.append(extra[1](sub))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def heatmap(frame: pd.DataFrame, path: Path) -> None:
    """CI coverage by method (rows) × cell (columns), one panel per k, values annotated;
    diverging colours centred on 95% (red below, blue above, saturated below 80%). With two
    study-size designs, the corpus design is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    if "design" in frame.columns and frame["design"].nunique() > 1:
        # one design per picture: the realistic one, study sizes drawn from the corpus
        frame = frame[frame["design"] == "corpus"]
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


__all__ = [
    "Outputs",
    "chosen_default",
    "heatmap",
    "in_band",
    "summary_markdown",
    "write_outputs",
]
