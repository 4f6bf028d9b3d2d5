"""Bubble plot of a meta-regression on one numeric moderator (metafor's ``regplot``).

Each study is a circle at (moderator value, observed proportion x/n) whose *area* is
proportional to its weight in the fit: 1/(vi + τ²) for the inverse-variance models (vi the
continuity-corrected sampling variance on the transformed scale) and, for the GLMM,
1/(1/(n p̂ (1 - p̂)) + τ²) with p̂ the fitted proportion (the approximate inverse marginal
variance of the study's logit). The line is the fitted proportion across the range of the
moderator, back-transformed from the transformed scale, with its confidence band (the
coefficients' interval method); other moderators are held at their mean over the studies
(a factor at the share of studies in each level), as ``regplot`` does.

matplotlib is imported inside the functions: ``import metaresp`` stays light. The figure is
a plain :class:`matplotlib.figure.Figure` with an Agg canvas (no pyplot state).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from metaresp.errors import InputError
from metaresp.regression import RegressionResult, numeric_terms

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["bubble_plot", "save_bubble_plot"]

#: Marker area (points²) of the study with the largest weight, and the smallest drawn.
MAX_AREA = 350.0
MIN_AREA = 12.0
_GRID = 200


def _moderator(fit: RegressionResult, moderator: str | None) -> str:
    names = [t.name for t in numeric_terms(fit)]
    if not names:
        raise InputError("bubble_plot: the fit has no numeric moderator to put on the x axis")
    if moderator is None:
        if len(names) > 1:
            raise InputError(
                f"bubble_plot: the fit has several numeric moderators ({', '.join(names)}); "
                "name one with moderator="
            )
        return names[0]
    if moderator not in names:
        raise InputError(
            f"bubble_plot: moderator must be a numeric moderator of the fit "
            f"({', '.join(names)}); got {moderator!r}"
        )
    return moderator


def bubble_plot(
    fit: RegressionResult,
    moderator: str | None = None,
    *,
    ax: Axes | None = None,
    xlabel: str | None = None,
    ylabel: str = "Response rate",
    title: str | None = None,
    color: str = "#1f4e79",
) -> Axes:
    """Draw ``fit`` against one numeric ``moderator`` (the only one, by default) and
    return the axes (a new figure when ``ax`` is None). The y axis is in percent."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    name = _moderator(fit, moderator)
    design = fit._design
    assert design is not None
    col = fit.names.index(name)
    values = design.matrix[:, col]
    if ax is None:
        fig = Figure(figsize=(6.4, 4.6), dpi=150)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
    observed = 100.0 * np.asarray(fit.events, dtype=float) / np.asarray(fit.totals, dtype=float)
    w = np.asarray(fit.weights, dtype=float)
    area = np.maximum(MIN_AREA, MAX_AREA * w / w.max())
    order = np.argsort(-area)  # large circles first, small ones drawn on top
    span = float(values.max() - values.min()) or 1.0
    grid = np.linspace(values.min() - 0.02 * span, values.max() + 0.02 * span, _GRID)
    rows = np.tile(design.matrix.mean(axis=0), (_GRID, 1))
    rows[:, col] = grid
    pred = fit._predict_rows(rows)
    ax.fill_between(
        grid,
        100.0 * pred["proportion_ci_low"],
        100.0 * pred["proportion_ci_high"],
        color=color,
        alpha=0.15,
        linewidth=0,
        label=f"{100 * fit.level:g}% CI",
    )
    ax.plot(grid, 100.0 * pred["proportion"], color=color, linewidth=1.8, label="Fitted")
    ax.scatter(
        values[order],
        observed[order],
        s=area[order],
        facecolor="white",
        edgecolor="#333333",
        linewidth=0.9,
        alpha=0.9,
        zorder=3,
        label="Studies (area ∝ weight)",
    )
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    top = max(float(observed.max()), 100.0 * float(np.max(pred["proportion_ci_high"])))
    upper = 100.0 if top > 70.0 else 10.0 * math.ceil(top / 10.0 + 0.5)
    ax.set_ylim(-0.04 * upper, 1.04 * upper)  # rare outcomes are not squeezed at the bottom
    ax.set_xlabel(xlabel or name)
    ax.set_ylabel(ylabel)
    i = fit.names.index(name)
    slope = (
        f"{name}: {fit.estimates[i]:+.3f} per unit on the {fit.transform} scale "
        f"({100 * fit.level:g}% CI {fit.ci_lows[i]:.3f} to {fit.ci_highs[i]:.3f}), "
        f"p = {fit.pvalues[i]:.3g}"
    )
    ci_words = {"z": "z", "t": "t", "hksj": "Hartung-Knapp", "hksj-adhoc": "Hartung-Knapp"}
    model = "GLMM" if fit.estimator == "GLMM" else fit.estimator
    model += f", {ci_words.get(fit.ci, fit.ci)} CI"
    r2 = "" if fit.r2 is None else f", R² = {fit.r2:.0f}%"
    ax.set_title(title or f"Meta-regression on {name} (k = {fit.k}; {model})", fontsize=10)
    caption = f"{slope}\nresidual τ² = {fit.tau2:.3g}{r2}"
    others = [m for m in fit.moderators if m != name]
    if others:
        caption += f"; line drawn with {', '.join(others)} held at the mean over the studies"
    if fit.k < 10 * (fit.p - 1):
        caption += "\nFewer than 10 studies per moderator: read the slope with caution."
    ax.text(
        0.01,
        -0.16,
        caption,
        transform=ax.transAxes,
        fontsize=7.5,
        va="top",
        ha="left",
        color="#333333",
    )
    ax.legend(loc="best", fontsize=7.5, frameon=False, markerscale=0.4)
    ax.spines[["top", "right"]].set_visible(False)
    ax.figure.subplots_adjust(bottom=0.27)
    return ax


def save_bubble_plot(fit: RegressionResult, path: str | Path, **kwargs: Any) -> Path:
    """Draw :func:`bubble_plot` and write it to ``path`` (PNG, SVG or PDF by suffix)."""
    ax = bubble_plot(fit, **kwargs)
    out = Path(path)
    cast("Figure", ax.figure).savefig(out, bbox_inches="tight")
    return out
