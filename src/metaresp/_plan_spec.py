"""The analysis plan's types: the pydantic models a plan file is validated against, and
:class:`Analysis`, one expanded analysis as the pipeline runs it. :mod:`metaresp.plan`
reads files into them and explains what each part of a plan means.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from metaresp import models
from metaresp._plan_base import (
    CertaintyOverride,
    CertaintySettings,
    Rating,
    StrList,
    _as_list,
    _Strict,
)

Outcome = Literal["ORR", "VGPR+", "CR+"]
Setting = Literal["first-salvage", "any-line"]
Unit = Literal["patients", "lines"]
FigureScope = Literal["primary", "all"]
"""Which analyses of a plan a run draws figures for (:attr:`Plan.figures`)."""
RuleField = Literal[
    "agent", "modality", "target", "group", "group_id", "study", "cohort", "population"
]

OUTCOMES: tuple[str, ...] = get_args(Outcome)
RULE_FIELDS: tuple[str, ...] = get_args(RuleField)

DEFAULT_ESTIMATOR_IV = models.DEFAULT_IV_ESTIMATOR
"""Estimator used when a plan names a non-logit transform but no estimator: REML
(Veroniki et al. 2016, Res Synth Methods 7:55)."""

OUTCOME_SLUG: dict[str, str] = {"ORR": "orr", "VGPR+": "vgpr", "CR+": "cr"}
OUTCOME_TITLE: dict[str, str] = {
    "ORR": "overall response (≥PR)",
    "VGPR+": "very good partial response or better (≥VGPR)",
    "CR+": "complete response or better (≥CR)",
}

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def _choice(option: str) -> Any:
    """A plan field whose values come from the model registries (:mod:`metaresp.models`)."""

    def check(value: str) -> str:
        choices = models.allowed(option)
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    return AfterValidator(check)


class ModelSettings(_Strict):
    """How one analysis pools: transform, estimator, CI method and level (and, for the GLMM,
    quadrature nodes; for BAYES, the priors).

    Missing fields are filled by :meth:`Plan.model_for` from the plan's default model and,
    failing that, from the project's defaults (:mod:`metaresp.models`: the Bayesian
    binomial-normal model on the logit scale with the priors of :mod:`metaresp.priors`); an
    inverse-variance estimator gets ``hksj`` (``z`` for FE), the GLMM a t interval.
    """

    transform: Annotated[str, _choice("transform")] | None = None
    estimator: Annotated[str, _choice("estimator")] | None = None
    ci: Annotated[str, _choice("ci")] | None = None
    level: float | None = Field(default=None, gt=0.5, lt=1.0)
    nagq: int | None = Field(default=None, ge=1, le=models.MAX_NAGQ)
    tau_prior: str | None = None
    mu_prior: str | None = None


#: A complete, checked set of model settings (what :func:`metaresp.pool` takes).
Model = models.ModelSpec


def resolve_model(*layers: ModelSettings | None) -> Model:
    """Merge model settings, later layers overriding earlier ones, and fill the defaults.

    A layer that names an estimator but no interval resets the interval to that
    estimator's default (:func:`metaresp.models.default_ci`): an analysis that asks for
    ``FE`` gets a z interval, not the plan's t or HKSJ interval of another model.

    Raises ``ValueError`` for combinations the engine refuses (GLMM needs the logit
    transform and a ``z`` or ``t`` interval).
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer is not None:
            values = {k: v for k, v in layer.model_dump().items() if v is not None}
            if "estimator" in values and "ci" not in values:
                merged.pop("ci", None)
            merged.update(values)
    transform = merged.get("transform", models.DEFAULT_TRANSFORM)
    estimator = merged.get("estimator")
    if estimator is None:
        estimator = (
            models.DEFAULT_ESTIMATOR if transform == "logit" else models.DEFAULT_IV_ESTIMATOR
        )
    ci = merged.get("ci") or models.default_ci(estimator)
    spec = Model(
        transform=transform,
        estimator=estimator,
        ci=ci,
        level=float(merged.get("level", models.DEFAULT_LEVEL)),
        nagq=int(merged.get("nagq", models.DEFAULT_NAGQ)),
        # the priors belong to the Bayesian model: an analysis that switches to another
        # estimator does not carry the plan's priors into its result
        tau_prior=merged.get("tau_prior") if estimator == "BAYES" else None,
        mu_prior=merged.get("mu_prior") if estimator == "BAYES" else None,
    )
    problems = spec.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return spec


class Condition(_Strict):
    """A test on one field of a record; the record's field is a set of values.

    Written in the plan as a value (``target: GPRC5D``: the record has GPRC5D among its
    targets), a list (any of them), or a mapping with any of ``any``, ``all``, ``none``,
    ``only`` (the record's values are all among these) and ``count`` (how many values the
    record has, e.g. 2 for dual-target). Comparison ignores case.
    """

    any: StrList | None = None
    all: StrList | None = None
    none: StrList | None = None
    only: StrList | None = None
    count: int | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str | int | float | list):
            return {"any": value}
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if all(getattr(self, name) is None for name in ("any", "all", "none", "only", "count")):
            raise ValueError("empty condition: give a value, a list, or any/all/none/only/count")
        return self

    def matches(self, values: frozenset[str]) -> bool:
        """True when the record's values (lower case) satisfy every part of the condition."""
        if self.any is not None and not values & {v.lower() for v in self.any}:
            return False
        if self.all is not None and not {v.lower() for v in self.all} <= values:
            return False
        if self.none is not None and values & {v.lower() for v in self.none}:
            return False
        if self.only is not None and not values <= {v.lower() for v in self.only}:
            return False
        return self.count is None or len(values) == self.count


class Rule(_Strict):
    """All the conditions of a rule must hold (fields not named are not tested)."""

    agent: Condition | None = None
    modality: Condition | None = None
    target: Condition | None = None
    group: Condition | None = None
    group_id: Condition | None = None
    study: Condition | None = None
    cohort: Condition | None = None
    population: Condition | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Rule:
        if not self.conditions():
            raise ValueError(f"empty rule: name at least one of {', '.join(RULE_FIELDS)}")
        return self

    def conditions(self) -> dict[str, Condition]:
        return {
            name: getattr(self, name) for name in RULE_FIELDS if getattr(self, name) is not None
        }

    def matches(self, record: Mapping[str, frozenset[str]]) -> bool:
        return all(
            cond.matches(record.get(name, frozenset())) for name, cond in self.conditions().items()
        )


def _rule_list(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


RuleList = Annotated[list[Rule], BeforeValidator(_rule_list), Field(min_length=1)]


class Grouping(_Strict):
    """A named classification of records into subgroups (first matching class wins)."""

    title: str
    classes: dict[str, RuleList] = Field(min_length=1)
    other: str | None = None
    """Subgroup for records that match no class; ``None``: such records are set aside."""
    exclude: dict[str, RuleList] = Field(default_factory=dict)
    """Records to set aside before classifying, keyed by the reason shown in the outputs."""
    mixed: Literal["exclude", "other", "classify"] = "exclude"
    """Groups marked ``mixed: several-classes`` in the corpus: ``exclude`` (default) sets
    them aside (methods: mixed groups are kept out of class pools), ``other`` sends them to
    the ``other`` bucket (set aside when there is none), ``classify`` treats them like any
    group. Groups marked ``all-classes`` are set aside unless this is ``classify``."""

    def excluded(self, record: Mapping[str, frozenset[str]]) -> str | None:
        """The reason a record is excluded from this grouping, or ``None``."""
        for reason, rules in self.exclude.items():
            if any(rule.matches(record) for rule in rules):
                return reason
        return None

    def classify(self, record: Mapping[str, frozenset[str]]) -> str | None:
        """The record's subgroup, or ``None`` when it matches no class and there is no bucket."""
        for name, rules in self.classes.items():
            if any(rule.matches(record) for rule in rules):
                return name
        return self.other

    def order(self) -> list[str]:
        names = list(self.classes)
        if self.other is not None and self.other not in names:
            names.append(self.other)
        return names


class Selection(_Strict):
    """Which records an analysis takes. Lists select any of their values."""

    population: StrList = Field(min_length=1)
    setting: Annotated[list[Setting], BeforeValidator(_as_list)] = Field(min_length=1)
    outcome: Annotated[list[Outcome], BeforeValidator(_as_list)] = Field(min_length=1)
    unit: Annotated[list[Unit], BeforeValidator(_as_list)] = Field(
        default_factory=lambda: ["patients"],  # type: ignore[arg-type]
        min_length=1,
    )
    modality: StrList | None = None
    """Only records of these modalities (others are out of scope, not set aside)."""


DEFAULT_EXCLUDE_DESIGNS: tuple[str, ...] = ("case-report",)
"""Designs a primary analysis does not pool unless the plan says otherwise (methods:
case reports, one or two patients published because of the response, are kept for a
sensitivity analysis)."""


def _slug_text(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError("must be a lower-case slug (letters, digits, hyphens)")
    return value


#: A name that is a lower-case slug (letters, digits, hyphens).
SlugText = Annotated[str, AfterValidator(_slug_text)]


class Variant(_Strict):
    """A sensitivity analysis declared beside its primary: the primary with some settings
    changed. Anything not named is the primary's."""

    name: SlugText
    """Full name of the variant (a lower-case slug; outcomes are appended as for the
    primary when it lists several)."""
    title: str | None = None
    """Defaults to the primary's title with "sensitivity: <description>" after it."""
    description: str
    """What differs from the primary, in a few words (shown with the estimates)."""
    exclude_designs: StrList | None = None
    """Designs not pooled (``[]``: pool every design, e.g. to include case reports)."""
    alternative_counts: bool = False
    """Pool each derived count's first alternative (another count that reproduces the
    printed percentage) instead of the recorded count."""
    model: ModelSettings | None = None
    grouping: str | None = None


class OtherFamily(_Strict):
    """A sensitivity analysis added beside every primary analysis: the same selection and
    grouping pooled with the other model family (methods: the Bayesian model beside the
    GLMM, or the reverse), named ``<primary>-<suffix>``."""

    suffix: SlugText = "other-model"
    description: str
    """What the other model is, in a few words (shown with the estimates)."""
    model: ModelSettings


class AnalysisSpec(_Strict):
    """One analysis as written in the plan (a list of outcomes expands it)."""

    name: SlugText
    title: str
    description: str | None = None
    selection: Selection
    grouping: str | None = None
    """Name of a grouping in ``groupings``; none: one group holding every record."""
    model: ModelSettings | None = None
    overall: bool = False
    """Also pool all subgroups together (only done when no cohort is in two subgroups)."""
    mix_units: bool = False
    """Allow patients and treatment lines in one pool (never by default)."""
    thresholds: dict[Outcome, float] | None = None
    exclude_designs: StrList | None = None
    """Designs this analysis does not pool; none: the plan's ``exclude_designs``."""
    sensitivity: list[Variant] = Field(default_factory=list)
    """Sensitivity analyses of this (primary) analysis, pooled and shown beside it."""

    @field_validator("thresholds")
    @classmethod
    def _percent(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, pct in (value or {}).items():
            if not 0 < pct < 100:
                raise ValueError(f"threshold for {key} is a percentage between 0 and 100")
        return value

    @model_validator(mode="after")
    def _units(self) -> AnalysisSpec:
        if len(set(self.selection.unit)) > 1 and not self.mix_units:
            raise ValueError(
                "selection.unit lists patients and lines: they are never pooled "
                "together unless the analysis says mix_units: true"
            )
        return self


RegressionField = Literal[
    "setting", "population", "year", "design", "subgroup", "unit", "agent", "modality", "target"
]
REGRESSION_FIELDS: tuple[str, ...] = get_args(RegressionField)
"""Record fields a meta-regression can use as moderators (``year`` is numeric, the others
categorical; ``subgroup`` is the record's subgroup in the analysis's grouping)."""


class RegressionSpec(_Strict):
    """A meta-regression of one analysis's records on corpus fields."""

    name: SlugText
    title: str | None = None
    analysis: str
    """The name of an (expanded) primary analysis whose pooled records are regressed."""
    moderators: Annotated[list[RegressionField], BeforeValidator(_as_list)] = Field(min_length=1)
    model: ModelSettings | None = None
    """Default: REML with the Hartung-Knapp interval (the GLMM takes z or t)."""

    @field_validator("moderators")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("moderators: each field at most once")
        return value

    def resolved_model(self) -> Model:
        """The model: REML + HKSJ unless the entry says otherwise; never BAYES."""
        model = resolve_model(ModelSettings(estimator=DEFAULT_ESTIMATOR_IV), self.model)
        if model.estimator == "BAYES":
            raise ValueError("model.estimator: BAYES has no meta-regression; use REML or GLMM")
        return model


class Plan(_Strict):
    """The whole plan file."""

    version: Literal[1] = 1
    title: str = "Pooled response rates"
    model: ModelSettings | None = None
    thresholds: dict[Outcome, float] = Field(default_factory=dict)
    """Default thresholds (percent) per outcome, for the living-update diff."""
    groupings: dict[str, Grouping] = Field(default_factory=dict)
    exclude_designs: StrList = Field(default_factory=lambda: list(DEFAULT_EXCLUDE_DESIGNS))
    """Designs no analysis pools unless it says otherwise (default: case reports)."""
    other_family: OtherFamily | None = None
    """A sensitivity variant of every primary analysis with the other model family."""
    figures: FigureScope = "primary"
    """Which analyses a run draws figures for (forest and cumulative plots): ``primary``
    (the sensitivity analyses have their tables and report sections, no plots) or ``all``."""
    analyses: list[AnalysisSpec] = Field(min_length=1)
    regressions: list[RegressionSpec] = Field(default_factory=list)
    """Meta-regressions of analyses' records on corpus fields (:mod:`metaresp.regressions`)."""

    @model_validator(mode="after")
    def _regressions(self) -> Plan:
        if not self.regressions:
            return self
        primaries = {
            f"{spec.name}-{OUTCOME_SLUG[o]}" if len(spec.selection.outcome) > 1 else spec.name
            for spec in self.analyses
            for o in spec.selection.outcome
        }
        seen: set[str] = set()
        for reg in self.regressions:
            if reg.name in seen:
                raise ValueError(f"regressions: the name {reg.name!r} is used twice")
            seen.add(reg.name)
            if reg.analysis not in primaries:
                listed = ", ".join(sorted(primaries))
                raise ValueError(
                    f"regressions: {reg.name!r} names analysis {reg.analysis!r}, which is not a "
                    f"primary analysis of this plan ({listed})"
                )
            reg.resolved_model()
        return self

    search_date: datetime.date | None = None
    """The date of the last literature search (shown in the report; none: "not stated")."""
    certainty: CertaintySettings = Field(default_factory=CertaintySettings)
    """The certainty rating's population and a panel's overrides (:mod:`metaresp.grade`)."""

    @field_validator("thresholds")
    @classmethod
    def _percent(cls, value: dict[str, float]) -> dict[str, float]:
        for key, pct in value.items():
            if not 0 < pct < 100:
                raise ValueError(f"threshold for {key} is a percentage between 0 and 100")
        return value

    def expanded(self) -> list[Analysis]:
        """One :class:`Analysis` per analysis and outcome, with its model resolved; each
        primary is followed by its sensitivity variants (same outcome)."""
        out: list[Analysis] = []
        for spec in self.analyses:
            model = resolve_model(self.model, spec.model)
            multi = len(spec.selection.outcome) > 1
            designs = tuple(
                spec.exclude_designs if spec.exclude_designs is not None else self.exclude_designs
            )
            for outcome in spec.selection.outcome:
                name = f"{spec.name}-{OUTCOME_SLUG[outcome]}" if multi else spec.name
                thresholds = {**self.thresholds, **(spec.thresholds or {})}
                primary = Analysis(
                    name=name,
                    title=spec.title.replace("{outcome}", OUTCOME_TITLE[outcome]),
                    outcome=outcome,
                    population=tuple(spec.selection.population),
                    setting=tuple(spec.selection.setting),
                    unit=tuple(spec.selection.unit),
                    modality=(
                        tuple(spec.selection.modality)
                        if spec.selection.modality is not None
                        else None
                    ),
                    grouping=self.groupings[spec.grouping] if spec.grouping else None,
                    grouping_name=spec.grouping,
                    model=model,
                    overall=spec.overall,
                    threshold=thresholds.get(outcome),
                    description=spec.description,
                    exclude_designs=designs,
                )
                out.append(primary)
                variants = list(spec.sensitivity)
                if self.other_family is not None:
                    variants.append(
                        Variant(
                            name=f"{spec.name}-{self.other_family.suffix}",
                            description=self.other_family.description,
                            model=self.other_family.model,
                        )
                    )
                for variant in variants:
                    out.append(_variant(self, spec, variant, primary, multi))
        return out


def _variant(
    plan: Plan, spec: AnalysisSpec, variant: Variant, primary: Analysis, multi: bool
) -> Analysis:
    name = f"{variant.name}-{OUTCOME_SLUG[primary.outcome]}" if multi else variant.name
    if variant.title is not None:
        title = variant.title.replace("{outcome}", OUTCOME_TITLE[primary.outcome])
    else:
        title = f"{primary.title} (sensitivity: {variant.description})"
    grouping_name = variant.grouping if variant.grouping is not None else spec.grouping
    return replace(
        primary,
        name=name,
        title=title,
        description=variant.description,
        grouping=plan.groupings[grouping_name] if grouping_name else None,
        grouping_name=grouping_name,
        model=resolve_model(plan.model, spec.model, variant.model),
        exclude_designs=(
            tuple(variant.exclude_designs)
            if variant.exclude_designs is not None
            else primary.exclude_designs
        ),
        alternative_counts=variant.alternative_counts,
        role="sensitivity",
        sensitivity_of=primary.name,
    )


@dataclass(frozen=True)
class Analysis:
    """One analysis ready to run: a single outcome, a resolved model."""

    name: str
    title: str
    outcome: str
    population: tuple[str, ...]
    setting: tuple[str, ...]
    unit: tuple[str, ...]
    grouping: Grouping | None
    grouping_name: str | None
    model: Model
    modality: tuple[str, ...] | None = None
    overall: bool = False
    threshold: float | None = None
    """Threshold in percent (e.g. 50 for ORR 50%), or ``None``."""
    description: str | None = None
    exclude_designs: tuple[str, ...] = DEFAULT_EXCLUDE_DESIGNS
    """Study designs set aside before pooling."""
    alternative_counts: bool = False
    """Pool each derived count's first alternative count instead of the recorded one."""
    role: Literal["primary", "sensitivity"] = "primary"
    sensitivity_of: str | None = None
    """For a sensitivity analysis: the name of its primary analysis."""


__all__ = [
    "DEFAULT_ESTIMATOR_IV",
    "DEFAULT_EXCLUDE_DESIGNS",
    "OUTCOMES",
    "OUTCOME_SLUG",
    "OUTCOME_TITLE",
    "REGRESSION_FIELDS",
    "RULE_FIELDS",
    "Analysis",
    "AnalysisSpec",
    "CertaintyOverride",
    "CertaintySettings",
    "Condition",
    "FigureScope",
    "Grouping",
    "Model",
    "ModelSettings",
    "OtherFamily",
    "Plan",
    "Rating",
    "RegressionSpec",
    "Rule",
    "Selection",
    "Variant",
    "resolve_model",
]
