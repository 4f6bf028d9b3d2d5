"""Certainty of a pooled response rate, by written GRADE rules.

GRADE (Guyatt et al. 2011, J Clin Epidemiol 64:383-394, and the series that follows it)
rates the certainty of a body of evidence as high, moderate, low or very low. The rules
below apply it to a single pooled proportion from non-comparative studies, as a
guideline panel applies it to the response rate of a salvage class. Each function takes
one :class:`~metaresp.estimates.EstimateRow` (and, where needed, the population the
review is about) and returns a :class:`Domain`: how many levels it takes off and why, in
a sentence a reader without statistics training can follow. Nothing here fits a model.

The rules (every threshold is a module constant):

**Starting level.** Evidence from randomised trials starts at *high*; every other design
(single-arm trials, cohorts, case series, conference abstracts) starts at *low*, as GRADE
rates non-randomised evidence (Balshem et al. 2011, J Clin Epidemiol 64:401). A response
rate pooled from single arms has no control group, so in practice every row here starts
at low. Rating up (large effect, dose response) is not applied: it needs a comparison.

**Risk of bias** (:func:`risk_of_bias`): serious (-1) when at least
:data:`WEAK_DESIGN_SHARE` of the pooled entries are case series, case reports or
conference abstracts (:data:`WEAK_DESIGNS`: selected patients, no protocol, or results
not peer reviewed); otherwise not serious beyond the starting level.

**Inconsistency** (:func:`inconsistency`): serious (-1) when I² ≥ :data:`I2_SERIOUS`
percent, or the prediction interval spans more than :data:`PI_WIDTH_SERIOUS` percentage
points, or τ² ≥ :data:`TAU2_SERIOUS` on the logit scale; very serious (-2) when I² ≥
:data:`I2_VERY_SERIOUS` percent and the prediction interval spans more than
:data:`PI_WIDTH_VERY_SERIOUS` points. One study cannot be inconsistent with itself; with
two studies it is stated that heterogeneity can hardly be judged (no downgrade: the
imprecision rule already sees the width).

**Imprecision** (:func:`imprecision`): very serious (-2) when the interval spans more than
:data:`WIDTH_VERY_SERIOUS` percentage points, or when it both includes the clinical
threshold and spans more than :data:`WIDTH_SERIOUS`; serious (-1) when it includes the
threshold, spans more than :data:`WIDTH_SERIOUS` points, or rests on fewer than
:data:`OPTIMAL_INFORMATION_SIZE` patients (the number that estimates a proportion near 50%
to within ±10 points with 95% confidence: 1.96² · 0.25 / 0.1² ≈ 96).

**Indirectness** (:func:`indirectness`): serious (-1) when any pooled entry comes from a
population other than the one the review is about (e.g. patients exposed to any
BCMA-directed therapy, not relapsed after a BCMA CAR-T).

**Publication bias** (:func:`publication_bias`): with fewer than
:data:`PUBLICATION_BIAS_MIN_K` studies it cannot be assessed (funnel-plot methods need at
least 10 studies; Sterne et al. 2011, BMJ 343:d4002) and nothing is taken off; the report
says so. From 10 studies on it is not tested either, and said so.

**Rating.** The starting level minus the levels taken off, never below very low
(:func:`rate`). A panel may replace the rating with its own, giving a reason
(:func:`apply_override`); the rule's rating is kept beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from metaresp import estimates

if TYPE_CHECKING:  # pragma: no cover
    from metaresp.estimates import EstimateRow

__all__ = [
    "I2_SERIOUS",
    "I2_VERY_SERIOUS",
    "LEVELS",
    "MEAN_DIFFERS",
    "OPTIMAL_INFORMATION_SIZE",
    "PI_WIDTH_SERIOUS",
    "PI_WIDTH_VERY_SERIOUS",
    "PUBLICATION_BIAS_MIN_K",
    "RANDOMISED",
    "TAU2_SERIOUS",
    "WEAK_DESIGNS",
    "WEAK_DESIGN_SHARE",
    "WIDTH_SERIOUS",
    "WIDTH_VERY_SERIOUS",
    "Certainty",
    "Domain",
    "Rating",
    "apply_override",
    "certainty",
    "imprecision",
    "inconsistency",
    "indirectness",
    "mean_differs",
    "publication_bias",
    "rate",
    "risk_of_bias",
    "rules_text",
    "starting_level",
]

Rating = Literal["high", "moderate", "low", "very low"]
LEVELS: tuple[Rating, ...] = ("very low", "low", "moderate", "high")
"""The four GRADE levels, lowest first."""

RANDOMISED = frozenset({"randomised-trial"})
"""Designs that start at high."""
WEAK_DESIGNS = frozenset({"case-series", "case-report", "conference-abstract"})
"""Designs whose share in a pool counts as a serious risk of bias."""
WEAK_DESIGN_SHARE = 0.5
"""Share of the pooled entries from :data:`WEAK_DESIGNS` that is serious."""
I2_SERIOUS = 50.0
I2_VERY_SERIOUS = 75.0
"""I² in percent: 50% and 75% are the "substantial" and "considerable" bands of the
Cochrane Handbook (section 10.10.2)."""
PI_WIDTH_SERIOUS = 0.50
PI_WIDTH_VERY_SERIOUS = 0.70
"""Widths of the prediction interval (proportion scale): the rate in a new study could be
anywhere across half (or more than two thirds) of the possible range."""
TAU2_SERIOUS = 0.5
"""τ² on the logit scale: τ ≈ 0.7, so the odds of response in two typical studies differ
by a factor of about 16 between the 2.5th and 97.5th percentiles of the study effects."""
WIDTH_SERIOUS = 0.30
WIDTH_VERY_SERIOUS = 0.50
"""Widths of the interval of the pooled rate (proportion scale)."""
OPTIMAL_INFORMATION_SIZE = 96
"""Patients needed to estimate a proportion near 50% within ±10 points (95% confidence)."""
PUBLICATION_BIAS_MIN_K = 10
"""Fewest studies for a funnel-plot assessment (Sterne et al. 2011)."""
MEAN_DIFFERS = estimates.MEAN_DIFFERS
"""The mean response rate is shown beside the median when they differ by more (5 points)."""

_DESIGN_WORDS: dict[str, str] = {
    "randomised-trial": "randomised trial",
    "single-arm-trial": "single-arm trial",
    "prospective-cohort": "prospective cohort",
    "retrospective-cohort": "retrospective cohort",
    "case-series": "case series",
    "case-report": "case report",
    "conference-abstract": "conference abstract",
    "": "design not recorded",
}


@dataclass(frozen=True)
class Domain:
    """One GRADE domain: levels taken off (0, 1 or 2) and the reason in plain words."""

    name: str
    downgrade: int
    reason: str

    @property
    def judgement(self) -> str:
        """``not serious``, ``serious`` or ``very serious``."""
        return ("not serious", "serious", "very serious")[min(self.downgrade, 2)]


@dataclass(frozen=True)
class Certainty:
    """The rating of one estimate: the starting level, each domain, the result, and a
    panel's override (``override_reason``; ``rule_rating`` is then the rules' rating)."""

    rating: Rating
    start: Rating
    start_reason: str
    domains: tuple[Domain, ...]
    rule_rating: Rating
    override_reason: str | None = None

    @property
    def overridden(self) -> bool:
        return self.override_reason is not None

    def reasons(self) -> list[str]:
        """The domains that took a level off, as ``"imprecision: ..."``."""
        return [f"{d.name}: {d.reason}" for d in self.domains if d.downgrade]


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _points(width: float) -> str:
    return f"{100 * width:.0f} percentage points"


def _counted(values: Sequence[str], words: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for v in values:
        counts[words.get(v, v)] = counts.get(words.get(v, v), 0) + 1
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda i: -i[1]))


def starting_level(designs: Sequence[str]) -> tuple[Rating, str]:
    """High when every entry is from a randomised trial, else low (non-randomised)."""
    if designs and all(d in RANDOMISED for d in designs):
        return "high", "randomised trials: start at high"
    return "low", (
        f"non-randomised evidence ({_counted(designs, _DESIGN_WORDS) or 'no design recorded'}),"
        " no control group: starts at low"
    )


def risk_of_bias(row: EstimateRow) -> Domain:
    designs = row.designs
    weak = sum(1 for d in designs if d in WEAK_DESIGNS)
    if designs and weak / len(designs) >= WEAK_DESIGN_SHARE:
        return Domain(
            "risk of bias",
            1,
            f"{weak} of {len(designs)} studies are case series, case reports or conference "
            "abstracts (selected patients, or not peer reviewed)",
        )
    return Domain(
        "risk of bias",
        0,
        "no further concern beyond the non-randomised design"
        if designs
        else "designs not recorded",
    )


def inconsistency(row: EstimateRow) -> Domain:
    name = "inconsistency"
    if row.single:
        return Domain(name, 0, "one study: not applicable")
    i2 = row.i2
    pi_width = None if row.pi_low is None or row.pi_high is None else row.pi_high - row.pi_low
    logit = row.fitted is not None and row.fitted.transform == "logit"
    tau2 = row.tau2 if logit else None
    found: list[str] = []
    if i2 is not None and i2 >= I2_SERIOUS:
        found.append(f"I² = {i2:.0f}%")
    if pi_width is not None and pi_width > PI_WIDTH_SERIOUS:
        found.append(f"the rate in a new study could lie anywhere in {_points(pi_width)}")
    if tau2 is not None and tau2 >= TAU2_SERIOUS:
        found.append(f"τ² = {tau2:.2f}")
    if not found:
        if row.k == 2:
            return Domain(name, 0, "two studies: differences between studies can hardly be judged")
        return Domain(name, 0, "the studies agree reasonably well")
    very = (
        i2 is not None
        and i2 >= I2_VERY_SERIOUS
        and pi_width is not None
        and pi_width > PI_WIDTH_VERY_SERIOUS
    )
    return Domain(name, 2 if very else 1, "studies differ: " + "; ".join(found))


def imprecision(row: EstimateRow) -> Domain:
    name = "imprecision"
    width = row.ci_high - row.ci_low
    t = row.threshold
    crosses = t is not None and row.ci_low < t < row.ci_high
    found: list[str] = [f"the interval spans {_points(width)}"] if width > WIDTH_SERIOUS else []
    if crosses:
        assert t is not None
        found.append(f"it includes the threshold of {_pct(t)}")
    if row.total < OPTIMAL_INFORMATION_SIZE:
        found.append(
            f"{row.total} patient{'' if row.total == 1 else 's'} "
            f"(fewer than {OPTIMAL_INFORMATION_SIZE})"
        )
    if width > WIDTH_VERY_SERIOUS or (crosses and width > WIDTH_SERIOUS):
        return Domain(name, 2, "; ".join(found))
    if found:
        return Domain(name, 1, "; ".join(found))
    return Domain(name, 0, f"the interval spans {_points(width)}")


def indirectness(row: EstimateRow, population: str | None) -> Domain:
    """Serious when any entry comes from another population than ``population`` (``None``:
    not judged)."""
    name = "indirectness"
    if population is None:
        return Domain(name, 0, "population of the review not stated: not judged")
    other = [p for p in row.populations if p != population]
    if other:
        return Domain(
            name,
            1,
            f"{len(other)} of {len(row.populations)} studies in a wider population "
            f"({', '.join(sorted(set(other)))})",
        )
    return Domain(name, 0, "every study is in the population of the review")


def publication_bias(row: EstimateRow) -> Domain:
    name = "publication bias"
    if row.k < PUBLICATION_BIAS_MIN_K:
        return Domain(name, 0, f"not assessable with fewer than {PUBLICATION_BIAS_MIN_K} studies")
    return Domain(name, 0, "not formally assessed (no test is run)")


def rate(start: Rating, domains: Sequence[Domain]) -> Rating:
    """``start`` lowered by the sum of the domains' downgrades, never below very low."""
    index = LEVELS.index(start) - sum(d.downgrade for d in domains)
    return LEVELS[max(index, 0)]


def certainty(row: EstimateRow, population: str | None = None) -> Certainty:
    """Every domain of ``row`` and the rating they give (see the module docstring)."""
    start, why = starting_level(row.designs)
    domains = (
        risk_of_bias(row),
        inconsistency(row),
        imprecision(row),
        indirectness(row, population),
        publication_bias(row),
    )
    rating = rate(start, domains)
    return Certainty(rating, start, why, domains, rating)


def apply_override(grade: Certainty, rating: Rating, reason: str) -> Certainty:
    """A panel's rating in place of the rules' (kept as ``rule_rating``), with its reason."""
    if rating not in LEVELS:
        raise ValueError(f"rating: must be one of {', '.join(LEVELS)}; got {rating!r}")
    if not reason.strip():
        raise ValueError("reason: a panel's override needs a reason")
    return replace(grade, rating=rating, override_reason=reason.strip())


def mean_differs(row: EstimateRow) -> bool:
    """Whether the mean response rate differs from the pooled (median) rate by more than
    :data:`MEAN_DIFFERS`: the studies vary so much that their average rate is not the
    rate of a typical study."""
    return row.mean_differs


def rules_text(population: str | None) -> str:
    """The rules in one paragraph, for the report's methods; ``population`` names the
    review's population in words (``None``: indirectness not judged)."""
    wider = (
        f"indirectness when any study is in a wider population than {population}. "
        if population
        else "indirectness is not judged (the plan names no population). "
    )
    return _RULES_TEXT.replace("{indirectness}", wider)


_RULES_TEXT = (
    "Certainty of evidence follows GRADE (Guyatt et al. 2011) with written rules. Pooled "
    "response rates come from single arms without a control group, so they start at low "
    "certainty (randomised evidence would start at high). A level is taken off for each "
    "serious concern: risk of bias when half or more of the studies are case series, case "
    "reports or conference abstracts; inconsistency when I² is 50% or more, the prediction "
    "interval spans more than 50 percentage points or τ² is 0.5 or more on the logit scale "
    "(two levels when I² is 75% or more and the prediction interval spans more than 70 "
    "points); imprecision when the interval includes the clinical threshold, spans more "
    "than 30 points or rests on fewer than 96 patients (two levels when it spans more than "
    "50 points, or includes the threshold and spans more than 30); {indirectness}"
    "Publication bias cannot be assessed with fewer than 10 studies. Certainty never falls "
    "below very low. A panel's own rating, where given, replaces the rules' rating and is "
    "shown with its reason."
)
