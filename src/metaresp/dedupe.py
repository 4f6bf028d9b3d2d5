"""One cohort, one vote: clusters of records that may hold the same patients, and the one
entry each cluster keeps (step 4 of :mod:`metaresp.analysis`), plus the reasons an analysis
gives for the designs and mixed groups it sets aside.

Within a subgroup, records of one cohort, or of groups linked by ``shares_patients_with``,
form a cluster. Within a study, groups counted in a total that is also in the subgroup are
set aside, and the other groups of one setting and unit (different patients given
different regimens) are combined into one entry by summing responders and evaluable
(Cochrane Handbook 6.5.2.10). Of a cluster's entries the latest report is kept and, among
reports of the same date, the one with the largest evaluable denominator (then the study
and group ids, so the choice is reproducible); a cluster joined only by links keeps the
largest denominator first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from metaresp.records import LABEL_GROUP_CHARS, Record, SetAside, shorten

if TYPE_CHECKING:  # pragma: no cover
    from metaresp.plan import Analysis


def _links(a: Record, b: Record) -> bool:
    """True when either record's group says it shares patients with the other's."""

    def names(r: Record, other: Record) -> bool:
        return any(
            link in (other.study, f"{other.study}/{other.group_id}")
            for link in r.shares_patients_with
        )

    return names(a, b) or names(b, a)


def _clusters(records: Sequence[Record]) -> list[list[Record]]:
    """Records that may hold the same patients: one cohort, or linked by
    ``shares_patients_with`` (transitively), in first-appearance order."""
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(records):
        for j in range(i):
            b = records[j]
            if a.cohort == b.cohort or _links(a, b):
                parent[root(i)] = root(j)
    out: dict[int, list[Record]] = {}
    for i, r in enumerate(records):
        out.setdefault(root(i), []).append(r)
    return list(out.values())


def _combine(parts: Sequence[Record]) -> Record:
    """One entry for disjoint groups of one study: responders and evaluable summed
    (Cochrane Handbook 6.5.2.10)."""
    first = parts[0]
    prefix = first.label.split(" · ", 1)[0]
    names = " + ".join(r.group for r in parts)
    ids = tuple(i for r in parts for i in r.pooled_ids)
    group_ids = "+".join(r.group_id for r in parts)
    return replace(
        first,
        record_id=f"{first.study}/{group_ids}/{first.outcome}",
        group_id=group_ids,
        group=f"{names} (combined)",
        events=sum(r.events or 0 for r in parts),
        total=sum(r.total or 0 for r in parts),
        label=f"{prefix} · {shorten(names, LABEL_GROUP_CHARS)} (combined)",
        components=(),
        derived=any(r.derived for r in parts),
        shares_patients_with=tuple(sorted({x for r in parts for x in r.shares_patients_with})),
        alternatives=(),
        members=ids,
    )


def _disjoint_entries(
    records: Sequence[Record], subgroup: str
) -> tuple[list[Record], list[SetAside], dict[str, str]]:
    """Entries of one study within one subgroup.

    Groups counted in a total that is also here are set aside (the total counts them);
    the remaining groups of one setting and unit are different patients given different
    regimens (same study, same unit, same setting, neither a component of the other, no
    shared-patients link between them), so they are combined into one entry. Groups of
    different settings may hold the same patients (a first-salvage group is part of the
    any-line groups): each setting gives one candidate.
    """
    aside: list[SetAside] = []
    here = {r.group_id: r for r in records}
    counted: dict[str, str] = {}
    for r in records:
        for part in r.components:
            if part in here and part != r.group_id:
                counted.setdefault(part, r.record_id)
    rest: list[Record] = []
    for r in records:
        if r.group_id in counted:
            total = counted[r.group_id]
            aside.append(
                SetAside(
                    r.record_id,
                    r.label,
                    subgroup=subgroup,
                    reason=f"one cohort, one vote: counted in its total {total} in this "
                    "subgroup (components are not added twice)",
                )
            )
        else:
            rest.append(r)
    buckets: dict[tuple[str, str], list[Record]] = {}
    for r in rest:
        buckets.setdefault((r.setting, r.unit), []).append(r)
    entries: list[Record] = []
    notes: dict[str, str] = {}
    for parts in buckets.values():
        linked = any(_links(a, b) for i, a in enumerate(parts) for b in parts[:i])
        if len(parts) == 1 or linked:
            entries.extend(parts)
            continue
        combined = _combine(parts)
        entries.append(combined)
        sums = " + ".join(f"{r.group} ({r.events}/{r.total})" for r in parts)
        notes[combined.record_id] = (
            f"{subgroup}: {combined.label.split(' · ', 1)[0]} combines disjoint groups of one "
            f"study, {sums} = {combined.events}/{combined.total} (different patients given "
            "different regimens; Cochrane Handbook 6.5.2.10)."
        )
    return entries, aside, notes


def one_vote(
    records: Sequence[Record], subgroup: str
) -> tuple[list[Record], list[SetAside], list[str]]:
    """One cohort, one vote within a subgroup (methods, "Evidence handling").

    Records that may hold the same patients (one cohort, or a ``shares_patients_with``
    link) form a cluster. Within a cluster, each study's disjoint groups are first combined
    into one entry (:func:`_disjoint_entries`); of the entries of one cohort (versions of
    one report) the latest, then the largest evaluable denominator, then the study and
    group ids is kept; of cohorts joined by a link (not versions of one report) the largest
    denominator, then the latest report.
    """
    keep: list[Record] = []
    dropped: list[SetAside] = []
    notes: list[str] = []
    combined: dict[str, str] = {}
    for cluster in _clusters(records):
        by_study: dict[str, list[Record]] = {}
        for r in cluster:
            by_study.setdefault(r.study, []).append(r)
        candidates: list[Record] = []
        for rs in by_study.values():
            entries, aside, said = _disjoint_entries(rs, subgroup)
            candidates.extend(entries)
            dropped.extend(aside)
            combined.update(said)
        # versions of one report (one cohort): the latest, then the largest denominator
        by_cohort: dict[str, list[Record]] = {}
        for r in candidates:
            by_cohort.setdefault(r.cohort, []).append(r)
        winners: list[Record] = []
        for versions in by_cohort.values():
            ranked = sorted(
                versions,
                key=lambda r: (tuple(-d for d in r.date), -(r.total or 0), r.study, r.group_id),
            )
            winners.append(ranked[0])
            for r in ranked[1:]:
                dropped.extend(_lost(r, ranked[0], subgroup, linked=False))
        # cohorts joined by a shared-patients link are not versions of one report: the
        # larger denominator wins (a trial's own report over a series drawn from it)
        ranked = sorted(
            winners, key=lambda r: (-(r.total or 0), tuple(-d for d in r.date), r.study, r.group_id)
        )
        kept = ranked[0]
        for r in ranked[1:]:
            dropped.extend(_lost(r, kept, subgroup, linked=True))
        keep.append(kept)
        if kept.record_id in combined:
            notes.append(combined[kept.record_id])
    order = {r.record_id: i for i, r in enumerate(records)}
    keep.sort(key=lambda r: min(order.get(i, len(order)) for i in r.pooled_ids))
    return keep, dropped, notes


def _lost(r: Record, kept: Record, subgroup: str, *, linked: bool) -> list[SetAside]:
    """Set-aside entries for an entry that lost its vote to ``kept``."""
    smaller = (r.total or 0) < (kept.total or 0)
    why = (
        "a smaller denominator"
        if linked and smaller
        else "an earlier report"
        if r.date < kept.date
        else "a smaller denominator"
        if smaller
        else "the same date and denominator"
    )
    if linked:
        link = f"shares patients with {kept.record_id} (shares_patients_with)"
    else:
        link = f"same cohort ({r.cohort}) as {kept.record_id}"
    return [
        SetAside(
            rid,
            r.label,
            subgroup=subgroup,
            reason=(
                f"{link} in this subgroup; one cohort, one vote: set aside as "
                f"{why} ({r.events}/{r.total} vs {kept.events}/{kept.total})"
            ),
        )
        for rid in r.pooled_ids
    ]


def design_reason(design: str) -> str:
    if design == "case-report":
        return (
            "design case-report: not pooled in this analysis (one or two patients, "
            "published because of the response; see the sensitivity analysis)"
        )
    return f"design {design}: not pooled in this analysis"


def mixed_reason(analysis: Analysis, r: Record) -> tuple[str | None, str | None]:
    """(subgroup, reason set aside) for a mixed group under the analysis's grouping."""
    grouping = analysis.grouping
    assert grouping is not None
    if r.mixed == "all-classes":
        return None, (
            "mixed group (all-classes): reports every salvage class together, "
            "so it belongs to no class"
        )
    if grouping.mixed == "other" and grouping.other is not None:
        return grouping.other, None
    return None, (
        f"mixed group ({r.mixed}): mixes salvage classes, kept out of the classes "
        f"of the grouping '{analysis.grouping_name}'"
    )


__all__ = ["design_reason", "mixed_reason", "one_vote"]
