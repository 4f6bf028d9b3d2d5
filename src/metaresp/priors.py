"""Prior distributions of the Bayesian binomial-normal model, parsed from strict strings.

The heterogeneity prior is on the between-study standard deviation τ (logit scale):

* ``"half-normal(S)"``: density 2 φ(τ/S)/S on τ > 0 (Friede et al. 2017, Biom J 59:658;
  IQWiG's choice for very few studies, Lilienthal et al. 2024, Res Synth Methods);
* ``"half-cauchy(S)"``: density 2 / (π S (1 + (τ/S)²)) on τ > 0 (Gelman 2006, Bayesian
  Anal 1:515);
* ``"uniform(0, U)"``: flat on 0 < τ < U.

The prior on the pooled logit μ is ``"normal(M, S)"`` with S a standard deviation.
Numbers are plain decimals (``1``, ``0.5``, ``2e-1``); whitespace around them is ignored;
anything else raises a ``ValueError`` naming the argument and listing the allowed forms.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import special

__all__ = [
    "MuPrior",
    "TauPrior",
    "parse_mu_prior",
    "parse_tau_prior",
]

FloatArray = NDArray[np.float64]
TauFamily = Literal["half-normal", "half-cauchy", "uniform"]

_NUMBER = r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
_TAU_PATTERNS: dict[TauFamily, re.Pattern[str]] = {
    "half-normal": re.compile(rf"\s*half-normal\s*\(\s*{_NUMBER}\s*\)\s*"),
    "half-cauchy": re.compile(rf"\s*half-cauchy\s*\(\s*{_NUMBER}\s*\)\s*"),
    "uniform": re.compile(rf"\s*uniform\s*\(\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\)\s*"),
}
_MU_PATTERN = re.compile(rf"\s*normal\s*\(\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\)\s*")
_TAU_FORMS = '"half-normal(S)", "half-cauchy(S)", "uniform(0, U)" with S, U > 0'
_MU_FORMS = '"normal(M, S)" with S > 0 (a standard deviation, logit scale)'
_LOG_2_OVER_PI = math.log(2.0 / math.pi)
_LOG_SQRT_2_OVER_PI = 0.5 * math.log(2.0 / math.pi)


def _fmt(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class TauPrior:
    """Prior on the between-study SD τ: ``family`` and its ``scale`` (S, or U for uniform)."""

    family: TauFamily
    scale: float

    def __str__(self) -> str:
        if self.family == "uniform":
            return f"uniform(0, {_fmt(self.scale)})"
        return f"{self.family}({_fmt(self.scale)})"

    @property
    def upper(self) -> float:
        """Upper end of the support (``inf`` unless uniform)."""
        return self.scale if self.family == "uniform" else math.inf

    def log_pdf(self, tau: FloatArray) -> FloatArray:
        """Log density at ``tau`` (any shape); ``-inf`` outside the support."""
        t = np.asarray(tau, dtype=np.float64)
        s = self.scale
        with np.errstate(divide="ignore"):
            if self.family == "half-normal":
                out = _LOG_SQRT_2_OVER_PI - math.log(s) - 0.5 * (t / s) ** 2
            elif self.family == "half-cauchy":
                out = _LOG_2_OVER_PI - math.log(s) - np.log1p((t / s) ** 2)
            else:
                out = np.full_like(t, -math.log(s))
                out = np.where(t <= s, out, -np.inf)
        res: FloatArray = np.where(t >= 0.0, out, -np.inf)
        return res

    def quantile(self, prob: float) -> float:
        """Prior quantile of τ at ``prob`` (0 < prob < 1)."""
        if self.family == "half-normal":
            return self.scale * float(special.ndtri(0.5 + 0.5 * prob))
        if self.family == "half-cauchy":
            return self.scale * math.tan(0.5 * math.pi * prob)
        return self.scale * prob

    def describe(self) -> str:
        """One sentence a clinician reads."""
        q95 = self.quantile(0.95)
        what = "on the between-study SD τ (logit scale)"
        if self.family == "uniform":
            head = f"uniform prior on 0 to {_fmt(self.scale)} {what}"
        else:
            head = f"{self.family} prior with scale {_fmt(self.scale)} {what}"
        return f"{head}: the prior puts 95% probability on τ below {q95:.2f}"


@dataclass(frozen=True)
class MuPrior:
    """Normal prior on the pooled logit μ with ``mean`` and standard deviation ``sd``."""

    mean: float
    sd: float

    def __str__(self) -> str:
        return f"normal({_fmt(self.mean)}, {_fmt(self.sd)})"

    def log_pdf(self, mu: FloatArray) -> FloatArray:
        """Log density at ``mu`` (any shape)."""
        z = (np.asarray(mu, dtype=np.float64) - self.mean) / self.sd
        out: FloatArray = -0.5 * z * z - math.log(self.sd) - 0.5 * math.log(2.0 * math.pi)
        return out

    def describe(self) -> str:
        """One sentence a clinician reads."""
        half = 1.959963984540054 * self.sd
        lo = float(special.expit(self.mean - half))
        hi = float(special.expit(self.mean + half))
        return (
            f"normal prior with mean {_fmt(self.mean)} and SD {_fmt(self.sd)} on the pooled "
            f"logit μ: before seeing the data, 95% probability that the typical response "
            f"rate lies between {100 * lo:.1f}% and {100 * hi:.1f}%"
        )


def _positive(value: str, what: str, argument: str, forms: str) -> float:
    number = float(value)
    if not (math.isfinite(number) and number > 0.0):
        raise ValueError(
            f"{argument}: {what} must be a positive number, got {value}; allowed: {forms}"
        )
    return number


def parse_tau_prior(spec: str | TauPrior, argument: str = "tau_prior") -> TauPrior:
    """Parse ``"half-normal(S)"``, ``"half-cauchy(S)"`` or ``"uniform(0, U)"``."""
    if isinstance(spec, TauPrior):
        return spec
    if not isinstance(spec, str):
        raise ValueError(
            f"{argument}: expected a string, got {type(spec).__name__}; allowed: {_TAU_FORMS}"
        )
    for family, pattern in _TAU_PATTERNS.items():
        match = pattern.fullmatch(spec)
        if match is None:
            continue
        if family == "uniform":
            if float(match.group(1)) != 0.0:
                raise ValueError(
                    f"{argument}: a uniform prior on τ must start at 0, got "
                    f"{spec!r}; allowed: {_TAU_FORMS}"
                )
            return TauPrior("uniform", _positive(match.group(2), "U", argument, _TAU_FORMS))
        return TauPrior(family, _positive(match.group(1), "S", argument, _TAU_FORMS))
    raise ValueError(f"{argument}: cannot read {spec!r}; allowed: {_TAU_FORMS}")


def parse_mu_prior(spec: str | MuPrior, argument: str = "mu_prior") -> MuPrior:
    """Parse ``"normal(M, S)"`` (S a standard deviation on the logit scale)."""
    if isinstance(spec, MuPrior):
        return spec
    if not isinstance(spec, str):
        raise ValueError(
            f"{argument}: expected a string, got {type(spec).__name__}; allowed: {_MU_FORMS}"
        )
    match = _MU_PATTERN.fullmatch(spec)
    if match is None:
        raise ValueError(f"{argument}: cannot read {spec!r}; allowed: {_MU_FORMS}")
    mean = float(match.group(1))
    if not math.isfinite(mean):
        raise ValueError(f"{argument}: M must be finite, got {spec!r}; allowed: {_MU_FORMS}")
    return MuPrior(mean, _positive(match.group(2), "S", argument, _MU_FORMS))
