"""What a model is called: the registries of transforms, τ² estimators and interval methods,
and :class:`ModelSpec`, the one type that names a model everywhere.

Every place that offers or checks a model option reads these registries: :func:`metaresp.pool`,
the analysis plan, the command line (``metaresp pool --estimator ...``) and the coverage
simulation. Adding an estimator, a transform or an interval method is one entry here plus
its function in the engine (see ``docs/engine.md``); a test checks that the engine
implements every registered name.

metafor vocabulary, written once: our ``transform`` is metafor's ``measure`` (``escalc``),
our ``estimator`` its ``method`` (``rma.uni``; "GLMM" is ``rma.glmm``), our ``ci`` its
``test`` ("hksj" = ``test="knha"``, "hksj-adhoc" = ``test="adhoc"``).

This module imports nothing beyond the standard library, so the command line can list the
choices without loading NumPy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final, Literal

__all__ = [
    "CIS",
    "ESTIMATORS",
    "INTERVALS",
    "TRANSFORMS",
    "EstimatorInfo",
    "IntervalInfo",
    "ModelSpec",
    "TransformInfo",
    "allowed",
    "default_ci",
    "model_problems",
]


@dataclass(frozen=True, slots=True)
class TransformInfo:
    """A transformation of single proportions (metafor ``escalc`` measure)."""

    name: str
    metafor: str
    #: 0.5 added to events and non-events of 0/n and n/n studies (metafor ``to="only0"``)
    corrected: bool
    title: str


@dataclass(frozen=True, slots=True)
class EstimatorInfo:
    """A model for the between-study variance (or a whole likelihood model)."""

    name: str
    #: "iv": inverse-variance normal-normal model on yi, vi; "glmm": binomial-normal ML;
    #: "bayes": binomial-normal with priors, exact posterior
    family: Literal["iv", "glmm", "bayes"]
    metafor: str
    title: str
    #: interval methods this estimator accepts
    cis: tuple[str, ...]
    #: transforms it accepts (None: all)
    transforms: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class IntervalInfo:
    """A confidence-interval method for the pooled estimate."""

    name: str
    metafor: str
    title: str


def _registry(*entries: Any) -> Mapping[str, Any]:
    return MappingProxyType({e.name: e for e in entries})


TRANSFORMS: Final[Mapping[str, TransformInfo]] = _registry(
    TransformInfo("logit", "PLO", True, "logit"),
    TransformInfo("freeman-tukey", "PFT", False, "Freeman-Tukey double arcsine"),
    TransformInfo("arcsine", "PAS", False, "arcsine square root"),
    TransformInfo("raw", "PR", True, "untransformed proportion"),
    TransformInfo("log", "PLN", True, "log proportion"),
)

INTERVALS: Final[Mapping[str, IntervalInfo]] = _registry(
    IntervalInfo("z", 'test="z"', "Wald z interval"),
    IntervalInfo("t", 'test="t"', "t interval (k-1 df)"),
    IntervalInfo("hksj", 'test="knha"', "Hartung-Knapp-Sidik-Jonkman interval (k-1 df)"),
    IntervalInfo(
        "hksj-adhoc",
        'test="adhoc"',
        "Hartung-Knapp-Sidik-Jonkman interval, never narrower than the standard one (ad hoc floor)",
    ),
)

_IV_CIS = tuple(INTERVALS)
_LOGIT = ("logit",)

ESTIMATORS: Final[Mapping[str, EstimatorInfo]] = _registry(
    EstimatorInfo("FE", "iv", 'method="FE"', "common effect (inverse variance)", _IV_CIS),
    EstimatorInfo("DL", "iv", 'method="DL"', "DerSimonian-Laird", _IV_CIS),
    EstimatorInfo("REML", "iv", 'method="REML"', "restricted maximum likelihood", _IV_CIS),
    EstimatorInfo("ML", "iv", 'method="ML"', "maximum likelihood", _IV_CIS),
    EstimatorInfo("PM", "iv", 'method="PM"', "Paule-Mandel", _IV_CIS),
    EstimatorInfo("SJ", "iv", 'method="SJ"', "Sidik-Jonkman", _IV_CIS),
    EstimatorInfo("HE", "iv", 'method="HE"', "Hedges", _IV_CIS),
    EstimatorInfo("EB", "iv", 'method="EB"', "empirical Bayes", _IV_CIS),
    EstimatorInfo("HS", "iv", 'method="HS"', "Hunter-Schmidt", _IV_CIS),
    EstimatorInfo(
        "GLMM",
        "glmm",
        'rma.glmm(measure="PLO")',
        "binomial-normal GLMM (maximum likelihood)",
        ("z", "t"),
        _LOGIT,
    ),
    EstimatorInfo(
        "BAYES",
        "bayes",
        "(none: bayesmeta is normal-normal only)",
        "Bayesian binomial-normal model (exact posterior)",
        ("z", "t"),
        _LOGIT,
    ),
)

#: Names only, in registry order (for choices and messages).
CIS: Final[tuple[str, ...]] = tuple(INTERVALS)

#: Project defaults (methods.md; the coverage simulation's verdict in docs/simulation).
DEFAULT_TRANSFORM: Final[str] = "logit"
DEFAULT_ESTIMATOR: Final[str] = "BAYES"
#: Estimator when a non-logit transform is named without one (Veroniki et al. 2016).
DEFAULT_IV_ESTIMATOR: Final[str] = "REML"
DEFAULT_LEVEL: Final[float] = 0.95
#: The Bayesian model's default priors (metaresp.priors parses them), chosen by the
#: project's written rule from its coverage simulation on data drawn like the corpus
#: (docs/simulation/few-studies; README "Few studies"): among the methods whose coverage
#: stayed at or above 93% in every cell, the narrowest interval at k = 2-3. half-normal(2)
#: on τ puts 95% prior probability on τ < 3.9 on the logit scale, wide enough for the
#: between-study variation of single-arm response rates (τ of 1-1.5 is common; the
#: narrower half-normal(0.5) and (1) and half-Cauchy(0.5) lost coverage there);
#: normal(0, 2) on μ spreads 95% of its mass over response rates of about 2% to 98%.
DEFAULT_TAU_PRIOR: Final[str] = "half-normal(2)"
DEFAULT_MU_PRIOR: Final[str] = "normal(0, 2)"
#: Gauss-Hermite nodes per study for the GLMM (metafor ``rma.glmm`` default ``nAGQ=7``).
DEFAULT_NAGQ: Final[int] = 7
#: Largest node count accepted (beyond this the rule gains nothing in double precision).
MAX_NAGQ: Final[int] = 101


def default_ci(estimator: str) -> str:
    """The interval a model gets when none is named: t (k-1 df) for the likelihood models,
    HKSJ for the random-effects inverse-variance ones (IntHout et al. 2014), z for the
    common-effect model (its interval has no τ² to be uncertain about)."""
    if estimator in ("GLMM", "BAYES"):
        return "t"
    if estimator == "FE":
        return "z"
    return "hksj"


def allowed(name: str) -> tuple[str, ...]:
    """The allowed values of one option: ``transform``, ``estimator`` or ``ci``."""
    table: dict[str, Mapping[str, Any]] = {
        "transform": TRANSFORMS,
        "estimator": ESTIMATORS,
        "ci": INTERVALS,
    }
    return tuple(table[name])


def _choice_problem(name: str, value: object) -> str | None:
    choices = allowed(name)
    if isinstance(value, str) and value in choices:
        return None
    listed = ", ".join(f'"{c}"' for c in choices)
    return f"{name}: must be one of {listed}; got {value!r}"


def model_problems(
    transform: object, estimator: object, ci: object, level: object, nagq: object = DEFAULT_NAGQ
) -> list[str]:
    """Every problem with a model's options, one line each naming the option and the allowed
    values (empty when the model is valid)."""
    problems = [
        p
        for p in (
            _choice_problem("transform", transform),
            _choice_problem("estimator", estimator),
            _choice_problem("ci", ci),
        )
        if p is not None
    ]
    info = ESTIMATORS.get(estimator) if isinstance(estimator, str) else None
    if info is not None:
        if (
            info.transforms is not None
            and transform in TRANSFORMS
            and (transform not in info.transforms)
        ):
            problems.append(
                f'estimator: "{info.name}" is a logit model and needs transform="logit"; '
                f"got transform={transform!r}"
            )
        if ci in INTERVALS and ci not in info.cis:
            choices = " or ".join(f'"{c}"' for c in info.cis)
            problems.append(f'ci: with estimator="{info.name}" must be {choices}; got {ci!r}')
    if (
        isinstance(level, bool)
        or not isinstance(level, numbers.Real)
        or not (0.0 < float(level) < 1.0)
        or math.isnan(float(level))
    ):
        problems.append(f"level: must be a number strictly between 0 and 1; got {level!r}")
    if (
        isinstance(nagq, bool)
        or not isinstance(nagq, numbers.Integral)
        or not (1 <= int(nagq) <= MAX_NAGQ)
    ):
        problems.append(
            f"nagq: must be a whole number from 1 to {MAX_NAGQ} (quadrature nodes per study; "
            f"metafor's default is {DEFAULT_NAGQ}); got {nagq!r}"
        )
    return problems


_CI_WORDS: Final[dict[str, str]] = {
    "z": "z",
    "t": "t",
    "hksj": "Hartung-Knapp",
    "hksj-adhoc": "Hartung-Knapp (ad hoc floor)",
}


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A complete model: what :func:`metaresp.pool` fits and what a result says it fitted.

    ``nagq`` matters for the GLMM only; ``tau_prior`` and ``mu_prior`` for ``"BAYES"`` only
    (``None`` there means the documented defaults of :mod:`metaresp.bayes`).
    """

    transform: str = DEFAULT_TRANSFORM
    estimator: str = DEFAULT_ESTIMATOR
    ci: str = "t"
    level: float = DEFAULT_LEVEL
    nagq: int = DEFAULT_NAGQ
    tau_prior: str | None = None
    mu_prior: str | None = None

    @property
    def family(self) -> str:
        """ "iv", "glmm" or "bayes" (see :class:`EstimatorInfo`)."""
        return ESTIMATORS[self.estimator].family

    @property
    def priors(self) -> tuple[str, str]:
        """The Bayesian model's τ and μ priors as given, the defaults filled in where
        ``None`` (meaningful for ``"BAYES"`` only)."""
        return (self.tau_prior or DEFAULT_TAU_PRIOR, self.mu_prior or DEFAULT_MU_PRIOR)

    @property
    def interval_abbrev(self) -> str:
        """ "CrI" for the Bayesian model's credible interval, "CI" otherwise."""
        return "CrI" if self.family == "bayes" else "CI"

    def problems(self) -> list[str]:
        """Every problem with this specification (empty when it is valid), the Bayesian
        model's priors included."""
        out = model_problems(self.transform, self.estimator, self.ci, self.level, self.nagq)
        if self.estimator == "BAYES":
            from metaresp.priors import parse_mu_prior, parse_tau_prior  # (SciPy: on demand)

            for parse, text in zip((parse_tau_prior, parse_mu_prior), self.priors, strict=True):
                try:
                    parse(text)
                except ValueError as exc:
                    out.append(str(exc))
        return out

    def with_(self, **changes: Any) -> ModelSpec:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def label(self) -> str:
        """A short name, e.g. "GLMM (logit), t CI" or "REML (logit), Hartung-Knapp CI"."""
        ci = _CI_WORDS.get(self.ci, self.ci)
        if self.estimator == "BAYES":
            return "Bayesian binomial-normal (logit), credible interval"
        return f"{self.estimator} ({self.transform}), {ci} CI"

    def describe(self) -> str:
        """One sentence in plain words, e.g. "Random effects, binomial-normal GLMM (logit),
        95% t CI (k-1 df)"."""
        level = f"{self.level * 100:g}%"
        ci = INTERVALS[self.ci].title if self.ci in INTERVALS else self.ci
        if self.estimator == "GLMM":
            return f"Random effects, binomial-normal GLMM ({self.transform}), {level} {ci}"
        if self.estimator == "BAYES":
            return (
                f"Random effects, Bayesian binomial-normal model ({self.transform}; priors "
                f"{self.priors[0]} on the between-study SD τ, {self.priors[1]} on the pooled "
                "logit), "
                f"{level} equal-tailed credible interval"
            )
        if self.estimator == "FE":
            return f"Common effect, inverse variance ({self.transform}), {level} {ci}"
        return (
            f"Random effects, inverse variance, {self.estimator} τ² ({self.transform}), "
            f"{level} {ci}"
        )

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`metaresp.pool`."""
        out: dict[str, Any] = {
            "transform": self.transform,
            "estimator": self.estimator,
            "ci": self.ci,
            "level": self.level,
        }
        if self.family == "glmm":
            out["nagq"] = self.nagq
        if self.family == "bayes":
            out["tau_prior"] = self.tau_prior
            out["mu_prior"] = self.mu_prior
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, plus ``description``."""
        return {
            "transform": self.transform,
            "estimator": self.estimator,
            "ci": self.ci,
            "level": self.level,
            "nagq": self.nagq,
            "tau_prior": self.tau_prior,
            "mu_prior": self.mu_prior,
            "description": self.describe(),
        }
