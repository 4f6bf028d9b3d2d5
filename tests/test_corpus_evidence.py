"""The shipped corpus and plan obey the evidence rules: no primary estimate pools a case
report or two reports of the same patients, and no patients are set aside only because
another group of their study sat in the same subgroup."""

from __future__ import annotations

from pathlib import Path

import pytest

import metaresp
from metaresp.analysis import (
    AnalysisResult,
    Record,
    components_from_corpus,
    records_from_frame,
    run_analysis,
)
from metaresp.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def primaries() -> tuple[list[Record], list[AnalysisResult]]:
    corpus = metaresp.load_extractions(ROOT / "extractions")
    records = records_from_frame(corpus.to_frame(), components_from_corpus(corpus))
    plan = load_plan(ROOT / "analysis-plan.yaml")
    results = [
        run_analysis(a, records)
        for a in plan.expanded()
        if a.role == "primary" and a.outcome == "ORR"
    ]
    return records, results


def test_every_study_has_a_design_term() -> None:
    corpus = metaresp.load_extractions(ROOT / "extractions")
    designs = {s.id: s.design for s in corpus.studies}
    assert set(designs.values()) <= set(metaresp.vocab.DESIGNS)
    # one patient given CAR-T with lenalidomide; two patients given humanised BCMA CAR-T
    assert designs["lenalidomide-case-ref121"] == "case-report"
    assert designs["humanised-bcma-cart-ref75"] == "case-report"


def test_no_primary_pools_a_case_report_or_one_cohort_twice(
    primaries: tuple[list[Record], list[AnalysisResult]],
) -> None:
    records, results = primaries
    by_id = {r.record_id: r for r in records}
    links = {(r.study, r.group_id): set(r.shares_patients_with) for r in records}
    for result in results:
        for group in result.pooled.groups:
            ids = [i for entry in group.records for i in entry.pooled_ids]
            assert not [i for i in ids if by_id[i].design == "case-report"], result.analysis.name
            # one vote per cohort: combined groups of one study count as one entry
            cohorts = [entry.cohort for entry in group.records]
            assert len(cohorts) == len(set(cohorts)), (result.analysis.name, group.name)
            for a in ids:
                ra = by_id[a]
                for b in ids:
                    rb = by_id[b]
                    if a != b:
                        linked = {rb.study, f"{rb.study}/{rb.group_id}"}
                        assert not links[(ra.study, ra.group_id)] & linked, (a, b)


def test_no_patients_set_aside_only_for_a_sibling_group(
    primaries: tuple[list[Record], list[AnalysisResult]],
) -> None:
    """A group set aside against another group of its own study must hold some of the same
    patients: the other group's setting differs (first salvage is part of any line) or a
    shared-patients link joins them; disjoint groups of one setting are combined instead."""
    records, results = primaries
    by_id = {r.record_id: r for r in records}
    for result in results:
        for aside in result.set_aside:
            if "one cohort, one vote: set aside" not in aside.reason:
                continue
            kept_id = aside.reason.split(" as ", 1)[1].split(" in this subgroup")[0]
            lost = by_id[aside.record_id]
            kept = by_id.get(kept_id.split("+")[0]) if "+" not in kept_id else None
            if kept is None or kept.study != lost.study:
                continue
            linked = {f"{kept.study}/{kept.group_id}", kept.study} & set(
                lost.shares_patients_with
            ) or {f"{lost.study}/{lost.group_id}", lost.study} & set(kept.shares_patients_with)
            assert kept.setting != lost.setting or linked, aside


def test_van_oekelen_venetoclax_and_other_combined(
    primaries: tuple[list[Record], list[AnalysisResult]],
) -> None:
    """Table 2: "Venetoclax-based therapy 3.8% 2 out of 3 66.7%" and "Other combinations
    (including MAPKi, checkpoint inhibitor or other trial) 11 13.9% 1 out of 11 9.1%":
    different patients in the other-agents subgroup, so one entry of 2 + 1 of 3 + 11."""
    _, results = primaries
    (result,) = [r for r in results if r.analysis.name == "class-first-salvage-orr"]
    (other,) = [g for g in result.pooled.groups if g.name.startswith("Other agents")]
    (entry,) = [e for e in other.records if e.study == "vanoekelen-2023"]
    assert (entry.events, entry.total) == (3, 14)
    assert set(entry.members) == {
        "vanoekelen-2023/first-venetoclax/ORR",
        "vanoekelen-2023/first-other/ORR",
    }
