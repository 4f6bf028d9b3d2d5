"""What a :class:`~metaresp.pooling.PoolResult` computes on request beside its fit: the
common-effect estimate metaprop prints next to the random-effects one, and the result as
plain values (``to_dict``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from metaresp.errors import StatisticalWarning
from metaresp.models import ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from metaresp.pooling import PoolResult


@dataclass(frozen=True)
class CommonEffect:
    """The common-effect (equal-effects) estimate printed beside a random-effects one, as
    ``metaprop`` prints both: for inverse-variance models the inverse-variance estimate
    with weights ``1/vi`` (metafor ``rma(method="EE")``); for the GLMM the common-effect
    binomial model, logit(Σx/Σn) with se 1/sqrt(Σn p(1-p)) (metafor
    ``rma.glmm(measure="PLO", method="EE")``). Always a z interval (meta's default for
    the common-effect model). Proportions back-transformed; ``estimate``/``se`` on the
    model's scale; all ``None`` where the estimate does not exist (0 or all events in
    every study of the GLMM)."""

    model: str
    estimate: float | None
    se: float | None
    proportion: float | None
    ci_low: float | None
    ci_high: float | None
    level: float


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def common_effect(res: PoolResult, pool: Callable[..., PoolResult]) -> CommonEffect | None:
    """The common-effect estimate beside ``res`` (:meth:`PoolResult.common_effect`;
    ``pool``: :func:`metaresp.pool`, for the inverse-variance refit)."""
    if res.k < 2 or res.fitted.estimator in ("FE", "BAYES"):
        return None
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + res.level / 2.0))
    if res.fitted.family == "glmm":
        x, n = sum(res.events), sum(res.totals)
        if x in (0, n):
            return CommonEffect("GLMM", None, None, None, None, None, res.level)
        p = x / n
        est = math.log(p / (1.0 - p))
        se = 1.0 / math.sqrt(n * p * (1.0 - p))
        return CommonEffect(
            "GLMM",
            est,
            se,
            p,
            float(special.expit(est - z * se)),
            float(special.expit(est + z * se)),
            res.level,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        fe = pool(
            res.events,
            res.totals,
            transform=res.transform,
            estimator="FE",
            ci="z",
            level=res.level,
        )
    return CommonEffect(
        "inverse variance",
        fe.estimate,
        fe.se,
        fe.proportion,
        fe.ci_low,
        fe.ci_high,
        res.level,
    )


def result_dict(res: PoolResult) -> dict[str, Any]:
    """All fields as plain Python values (floats, ints, strings, lists, None)."""
    out: dict[str, Any] = {}
    for f in fields(res):
        if f.name.startswith("_"):
            continue
        value = getattr(res, f.name)
        if isinstance(value, ModelSpec):
            # the fitted model is ``transform``/``estimator``/``ci``; the requested one
            # is flattened beside it so that every value stays a plain scalar
            if f.name == "requested":
                for part in ("transform", "estimator", "ci", "tau_prior", "mu_prior"):
                    out[f"requested_{part}"] = getattr(value, part)
            continue
        out[f.name] = [_plain(v) for v in value] if isinstance(value, tuple) else _plain(value)
    for name in (
        "tau2_ci_low",
        "tau2_ci_high",
        "tau",
        "tau_ci_low",
        "tau_ci_high",
        "i2_ci_low",
        "i2_ci_high",
        "h",
        "h_ci_low",
        "h_ci_high",
    ):
        out[name] = _plain(getattr(res, name))
    common = res.common_effect()
    for f in fields(CommonEffect):
        if f.name != "level":
            out[f"common_{f.name}"] = None if common is None else _plain(getattr(common, f.name))
    return out


__all__ = ["CommonEffect", "_plain", "common_effect", "result_dict"]
