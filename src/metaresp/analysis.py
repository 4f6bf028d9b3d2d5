"""Running the analysis plan: select, de-duplicate, group, pool, test, describe.

One analysis (:class:`metaresp.plan.Analysis`) goes through these steps, each of which
lists what it sets aside and why (methods.md, "Evidence handling"):

1. **Selection**: records of the analysis's outcome, population(s), setting(s) and, when
   the plan names them, modalities (other records are out of scope, not listed). A record
   that fits except for its unit (treatment lines where the analysis pools patients) is set
   aside with that reason: patients and lines are never pooled together unless the plan
   says ``mix_units: true``.
2. **Counts**: percent-only records (no responders or no denominator) and records with no
   evaluable patient are set aside.
3. **Grouping**: records the grouping excludes are set aside with the grouping's reason;
   then the grouping's first matching class names the record's subgroup. A record
   that sums groups of its own file (``components``) which the grouping places in other
   subgroups is set aside (its patients are counted through those groups); a record that
   matches no class goes to the grouping's ``other`` bucket, or is set aside.
   Records of an excluded design (``exclude_designs``, by default case reports) are set
   aside at selection; groups marked ``mixed`` are kept out of a grouping's classes
   (``several-classes`` may go to its ``other`` bucket when the grouping says
   ``mixed: other``).
4. **One cohort, one vote**: within a subgroup, records that may hold the same patients
   (one cohort, or a ``shares_patients_with`` link between groups) form a cluster. Within a
   study, groups counted in a total that is also in the subgroup are set aside, and the
   other groups of one setting and unit, different patients given different regimens, are
   combined into one entry by summing responders and evaluable (Cochrane Handbook
   6.5.2.10). Of the cluster's entries the latest report is kept and, among reports of the
   same date, the one with the largest evaluable denominator (then the study and group
   ids, so the choice is reproducible); a cluster joined only by links keeps the largest
   denominator first.
5. **Pooling**: each subgroup with two or more records is pooled on its own (its own τ²)
   by :func:`metaresp.pool`; a subgroup with one record is shown, not pooled.
6. **Subgroup differences**: the between-subgroup Q, a fixed-effect test on the pooled
   subgroup estimates and their standard errors on the transformed scale,
   ``Q = sum_j w_j (theta_j - theta_bar)^2``, ``w_j = 1/se_j^2``, ``theta_bar = sum w theta /
   sum w``, chi-square with (m - 1) df over the m pooled subgroups (Borenstein et al. 2009,
   *Introduction to Meta-Analysis*, ch. 19; R ``meta``'s default test for random-effects
   subgroups). It is reported only when no cohort appears in two subgroups (otherwise the
   subgroup estimates are not independent) and at least two subgroups are pooled.
   Single-record subgroups do not enter the test (``meta`` includes them).
7. **Overall**: with ``overall: true`` every record of the analysis is pooled together, but
   only when no cohort appears in two subgroups (one cohort, one vote).

:func:`pool_groups` runs steps 5-7 on any grouped table (``metaresp pool --by``);
:func:`run_analysis` does everything for one plan analysis; :func:`summary` gives the
JSON-ready record of every estimate.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from metaresp.dedupe import design_reason, mixed_reason, one_vote
from metaresp.forestdata import ForestData
from metaresp.plan import Analysis, Model
from metaresp.records import (
    LABEL_GROUP_CHARS,
    REQUIRED_COLUMNS,
    CorpusGroups,
    GroupFacts,
    Record,
    SetAside,
    components_from_corpus,
    records_from_frame,
)

if TYPE_CHECKING:  # pragma: no cover
    from metaresp.pooling import PoolResult

ALL_STUDIES = "All studies"
"""Subgroup name of an analysis without a grouping."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class GroupResult:
    """One subgroup: its records and, when k >= 2, its pooled result."""

    name: str
    records: tuple[Record, ...]
    result: PoolResult | None
    note: str = ""

    @property
    def k(self) -> int:
        return len(self.records)

    @property
    def patients(self) -> int:
        return sum(r.total or 0 for r in self.records)

    @property
    def events(self) -> int:
        return sum(r.events or 0 for r in self.records)


@dataclass(frozen=True)
class DifferenceTest:
    """Between-subgroup Q (fixed-effect test on the subgroup estimates)."""

    q: float
    df: int
    pvalue: float
    subgroups: tuple[str, ...]


@dataclass(frozen=True)
class GroupedPool:
    """Pooled subgroups, the optional overall pool and the test for differences."""

    model: Model
    groups: tuple[GroupResult, ...]
    overall: GroupResult | None
    test: DifferenceTest | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnalysisResult:
    """Everything one plan analysis produced."""

    analysis: Analysis
    pooled: GroupedPool
    set_aside: tuple[SetAside, ...]

    @property
    def empty(self) -> bool:
        return not any(g.records for g in self.pooled.groups)

    def forest_data(self) -> ForestData:
        """The plot's data (per-study rows, subgroup diamonds, overall, test, footnotes)."""
        notes = list(self.pooled.notes)
        if self.set_aside:
            n = len(self.set_aside)
            notes.append(
                f"{n} record{'s' if n != 1 else ''} set aside, with the reasons in "
                "set-aside.csv and the report."
            )
        return forest_data(
            self.pooled, title=self.analysis.title, outcome=self.analysis.outcome, footnotes=notes
        )


# --------------------------------------------------------------------------- pooling


def exact_ci(events: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval: beta quantiles B(a/2; x, n-x+1), B(1-a/2; x+1, n-x)
    (Clopper & Pearson 1934)."""
    from scipy import special

    alpha = 1.0 - level
    low = 0.0 if events == 0 else float(special.betaincinv(events, total - events + 1, alpha / 2))
    high = (
        1.0
        if events == total
        else float(special.betaincinv(events + 1, total - events, 1 - alpha / 2))
    )
    return low, high


def _fit(records: Sequence[Record], model: Model, threshold: float | None = None) -> PoolResult:
    """Pool one subgroup (``threshold``: a proportion; a Bayesian model then reports the
    posterior probability above it). Its notes are kept in the result (and shown in every
    output), so they are not issued again as Python warnings here. The same records
    under the same model recur across the analyses of a plan (a sensitivity analysis
    changes a few classes of its primary): each is fitted once (:func:`_pool_once`)."""
    return _pool_once(
        tuple(r.events or 0 for r in records),
        tuple(r.total or 0 for r in records),
        tuple(r.label for r in records),
        model,
        threshold,
    )


@functools.lru_cache(maxsize=1024)
def _pool_once(
    events: tuple[int, ...],
    totals: tuple[int, ...],
    labels: tuple[str, ...],
    model: Model,
    threshold: float | None,
) -> PoolResult:
    """:func:`metaresp.pooling.pool` (a pure function of these arguments; its result is
    immutable, so one fit serves every analysis that asks for it)."""
    import warnings

    from metaresp.errors import StatisticalWarning
    from metaresp.pooling import pool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        return pool(
            list(events),
            list(totals),
            labels=list(labels),
            threshold=threshold,
            **model.as_kwargs(),
        )


def difference_test(groups: Sequence[GroupResult]) -> DifferenceTest | None:
    """Between-subgroup Q over the pooled subgroups (see the module docstring); ``None``
    with fewer than two pooled subgroups."""
    from scipy import special  # chdtrc: the χ² upper tail, without importing scipy.stats

    pooled = [g for g in groups if g.result is not None and g.result.se > 0]
    if len(pooled) < 2:
        return None
    theta = [g.result.estimate for g in pooled if g.result is not None]
    w = [1.0 / g.result.se**2 for g in pooled if g.result is not None]
    mean = sum(wi * ti for wi, ti in zip(w, theta, strict=True)) / sum(w)
    q = sum(wi * (ti - mean) ** 2 for wi, ti in zip(w, theta, strict=True))
    df = len(pooled) - 1
    return DifferenceTest(
        q=q, df=df, pvalue=float(special.chdtrc(df, q)), subgroups=tuple(g.name for g in pooled)
    )


def _shared_cohorts(groups: Sequence[GroupResult]) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for g in groups:
        for cohort in sorted({r.cohort for r in g.records}):
            seen.setdefault(cohort, []).append(g.name)
    return {c: names for c, names in seen.items() if len(names) > 1}


def pool_groups(
    groups: Mapping[str, Sequence[Record]],
    model: Model,
    *,
    overall: bool = False,
    threshold: float | None = None,
) -> GroupedPool:
    """Pool each subgroup on its own, test differences, and pool overall when asked
    (``threshold``: a proportion, for the Bayesian model's probability above it).

    The test and the overall pool need subgroups that share no cohort; when they do, the
    notes say which cohort stands in which subgroups.
    """
    results: list[GroupResult] = []
    for name, records in groups.items():
        if not records:
            continue
        if len(records) == 1:
            results.append(GroupResult(name, tuple(records), None, "one study: shown, not pooled"))
        else:
            results.append(GroupResult(name, tuple(records), _fit(records, model, threshold)))
    notes: list[str] = []
    shared = _shared_cohorts(results)
    if shared:
        cohort, names = next(iter(shared.items()))
        more = f" and {len(shared) - 1} more" if len(shared) > 1 else ""
        where = ", ".join(names) if len(names) == 2 else f"{len(names)} subgroups"
        why = f"cohort {cohort} is in {where}{more}"
    test: DifferenceTest | None = None
    if len(results) > 1:
        if shared:
            notes.append(
                "No test for subgroup differences: subgroups share a patient cohort "
                f"({why}), and the methods test only independent subgroups."
            )
        else:
            test = difference_test(results)
            if test is None:
                notes.append("No test for subgroup differences: fewer than two pooled subgroups.")
            elif len(test.subgroups) < len(results):
                notes.append(
                    "Test for subgroup differences over the pooled subgroups "
                    "(single-study subgroups left out)."
                )
    total: GroupResult | None = None
    if overall and len(results) > 1:
        if shared:
            notes.append(
                "No overall estimate: subgroups share a patient cohort "
                f"({why}), which would count it twice."
            )
        else:
            everything = [r for g in results for r in g.records]
            total = GroupResult("Overall", tuple(everything), _fit(everything, model, threshold))
    elif overall and len(results) == 1:
        notes.append("No overall estimate: a single subgroup.")
    return GroupedPool(
        model=model, groups=tuple(results), overall=total, test=test, notes=tuple(notes)
    )


# --------------------------------------------------------------------------- one analysis


def selects(analysis: Analysis, r: Record) -> bool:
    """Step 1 of the module docstring: the record's outcome, population, setting and (when
    the plan names them) modality are the analysis's. Nothing else of the corpus enters
    the analysis, except the other groups of the selected records' studies (step 3)."""
    if (
        r.outcome != analysis.outcome
        or r.population not in analysis.population
        or r.setting not in analysis.setting
    ):
        return False
    return analysis.modality is None or bool(
        r.attributes.get("modality", frozenset()) & {m.lower() for m in analysis.modality}
    )


def run_analysis(analysis: Analysis, records: Iterable[Record]) -> AnalysisResult:
    """Steps 1-7 of the module docstring for one analysis."""
    records = list(records)
    aside: list[SetAside] = []
    chosen: list[Record] = []
    for r in records:
        if not selects(analysis, r):
            continue
        if r.unit not in analysis.unit:
            aside.append(
                SetAside(
                    r.record_id,
                    r.label,
                    f"counts {r.unit}; this analysis pools {' and '.join(analysis.unit)}",
                )
            )
            continue
        if r.events is None or r.total is None:
            aside.append(
                SetAside(
                    r.record_id,
                    r.label,
                    "percent only: no count of responders and evaluable patients to pool",
                )
            )
            continue
        if r.total == 0:
            aside.append(SetAside(r.record_id, r.label, "no evaluable patients (0/0)"))
            continue
        if r.design and r.design in analysis.exclude_designs:
            aside.append(SetAside(r.record_id, r.label, design_reason(r.design)))
            continue
        if analysis.alternative_counts and r.alternatives:
            r = replace(r, events=r.alternatives[0], label=f"{r.label} (alternative count)")
        chosen.append(r)

    grouping = analysis.grouping
    order = grouping.order() if grouping is not None else [ALL_STUDIES]
    members: dict[str, list[Record]] = {name: [] for name in order}
    group_class: dict[tuple[str, str], str | None] = {}
    if grouping is not None:
        for r in records:
            group_class[(r.study, r.group_id)] = grouping.classify(r.attributes)
    for r in chosen:
        excluded = grouping.excluded(r.attributes) if grouping is not None else None
        if excluded is not None:
            aside.append(SetAside(r.record_id, r.label, f"excluded by the grouping: {excluded}"))
            continue
        name = grouping.classify(r.attributes) if grouping is not None else ALL_STUDIES
        if grouping is not None and r.mixed and grouping.mixed != "classify":
            name, why = mixed_reason(analysis, r)
            if why is not None:
                aside.append(SetAside(r.record_id, r.label, why))
                continue
        if grouping is not None and r.components:
            others = sorted(
                {
                    c
                    for part in r.components
                    if (c := group_class.get((r.study, part), name)) != name
                },
                key=str,
            )
            if others:
                aside.append(
                    SetAside(
                        r.record_id,
                        r.label,
                        subgroup=name,
                        reason=(
                            "sums groups this analysis places in other subgroups "
                            f"({', '.join(o or 'set aside' for o in others)}); its patients "
                            "are counted through those groups"
                        ),
                    )
                )
                continue
        if name is None:
            assert grouping is not None
            aside.append(
                SetAside(
                    r.record_id,
                    r.label,
                    f"matches no class of the grouping '{analysis.grouping_name}'"
                    " and the grouping has no 'other' bucket",
                )
            )
            continue
        members[name].append(r)

    kept: dict[str, list[Record]] = {}
    combined_notes: list[str] = []
    for name, rs in members.items():
        keep, dropped, notes = one_vote(rs, name)
        kept[name] = keep
        aside.extend(dropped)
        combined_notes.extend(notes)
    pooled = pool_groups(
        kept,
        analysis.model,
        overall=analysis.overall,
        threshold=(
            analysis.threshold / 100.0
            if analysis.threshold is not None and 0.0 < analysis.threshold < 100.0
            else None
        ),
    )
    if combined_notes:
        pooled = replace(pooled, notes=(*pooled.notes, *combined_notes))
    return AnalysisResult(analysis=analysis, pooled=pooled, set_aside=tuple(aside))


# --------------------------------------------------------------------------- plot data


def forest_data(
    pooled: GroupedPool, *, title: str, outcome: str, footnotes: Sequence[str] = ()
) -> ForestData:
    """Fill :class:`ForestData` from pooled subgroups (:func:`metaresp.forestdata.build`)."""
    from metaresp.forestdata import build

    return build(pooled, title=title, outcome=outcome, footnotes=footnotes)


# --------------------------------------------------------------------------- summary


def estimate_dict(g: GroupResult, level: float) -> dict[str, Any]:
    """One estimate (pooled or a single study shown) as JSON-ready values (0-1 scale)."""
    from metaresp.estimates import estimate_row, summary_dict

    return summary_dict(estimate_row(g, level=level))


def analysis_dict(result: AnalysisResult) -> dict[str, Any]:
    """A JSON-ready record of one analysis: every estimate, the test, what was set aside."""
    a = result.analysis
    p = result.pooled
    return {
        "analysis": a.name,
        "role": a.role,
        "sensitivity_of": a.sensitivity_of,
        "title": a.title,
        "description": a.description,
        "outcome": a.outcome,
        "selection": {
            "population": list(a.population),
            "setting": list(a.setting),
            "unit": list(a.unit),
            "exclude_designs": list(a.exclude_designs),
            "alternative_counts": a.alternative_counts,
        },
        "grouping": a.grouping_name,
        "model": {
            "transform": a.model.transform,
            "estimator": a.model.estimator,
            "ci": a.model.ci,
            "level": a.model.level,
            "description": a.model.describe(),
        },
        "threshold_percent": a.threshold,
        "estimates": [estimate_dict(g, a.model.level) for g in p.groups],
        "overall": None if p.overall is None else estimate_dict(p.overall, a.model.level),
        "subgroup_test": None
        if p.test is None
        else {
            "q": p.test.q,
            "df": p.test.df,
            "pvalue": p.test.pvalue,
            "subgroups": list(p.test.subgroups),
        },
        "notes": list(p.notes),
        "set_aside": [
            {"record": s.record_id, "label": s.label, "subgroup": s.subgroup, "reason": s.reason}
            for s in result.set_aside
        ],
    }


def summary(results: Sequence[AnalysisResult], **meta: Any) -> dict[str, Any]:
    """The machine-readable state of every pooled estimate (``results/summary.json``)."""
    from metaresp import __version__

    return {"metaresp": __version__, **meta, "analyses": [analysis_dict(r) for r in results]}


__all__ = [
    "ALL_STUDIES",
    "LABEL_GROUP_CHARS",
    "REQUIRED_COLUMNS",
    "AnalysisResult",
    "CorpusGroups",
    "DifferenceTest",
    "GroupFacts",
    "GroupResult",
    "GroupedPool",
    "Record",
    "SetAside",
    "analysis_dict",
    "components_from_corpus",
    "difference_test",
    "estimate_dict",
    "exact_ci",
    "forest_data",
    "pool_groups",
    "records_from_frame",
    "run_analysis",
    "selects",
    "summary",
]
