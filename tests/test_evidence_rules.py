"""The evidence-handling rules that change pooled numbers, each shown firing on a small corpus.

Study design and plan-level exclusion by design, sensitivity variants beside their primary,
disjoint groups of one study combined within a subgroup, components not added twice,
group-level shared-patients links, mixed groups kept out of class pools, alternative derived
counts. Every corpus is written in the test (counts made up for the test unless a source is
quoted); expected numbers are sums and counts a reader checks by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import metaresp
from metaresp.analysis import (
    AnalysisResult,
    Record,
    components_from_corpus,
    records_from_frame,
    run_analysis,
    summary,
)
from metaresp.errors import InputError
from metaresp.plan import Analysis, parse_plan

# --------------------------------------------------------------------------- helpers


def grp(
    gid: str,
    x: int | None,
    n: int | None,
    *,
    modality: str = "bispecific",
    target: tuple[str, ...] = ("BCMA",),
    setting: str = "first-salvage",
    unit: str = "patients",
    outcome: str = "ORR",
    **extra: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "outcome": outcome,
        "responders": x,
        "evaluable": n,
        "quote": f"{x} of {n} responded",
        "location": "Table 1",
    }
    record.update(extra.pop("record", {}))
    g: dict[str, Any] = {
        "id": gid,
        "name": gid.replace("-", " ").title(),
        "agents": ["various"],
        "modality": modality,
        "target": list(target),
        "setting": setting,
        "unit": unit,
        "outcomes": [record],
    }
    g.update(extra)
    return g


def write(
    folder: Path,
    sid: str,
    groups: list[dict[str, Any]],
    *,
    design: str,
    cohort: str | None = None,
    year: int = 2023,
) -> None:
    data = {
        "id": sid,
        "citation": f"{sid.split('-')[0].title()} A, et al. Test. {year}.",
        "year": year,
        "design": design,
        "population": "post-bcma-cart",
        "cohort": cohort or sid,
        "source": "test.txt",
        "groups": groups,
    }
    (folder / f"{sid}.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


PLAN = """
version: 1
groupings:
  cls:
    title: Class
    classes:
      Bispecific: {modality: bispecific}
      CAR-T: {modality: CAR-T}
      Small molecule: {modality: small molecule}
    other: Other
  cls-mixed-other:
    title: Class, mixed groups under other
    classes:
      Bispecific: {modality: bispecific}
      CAR-T: {modality: CAR-T}
    other: Other
    mixed: other
analyses:
  - name: first
    title: "First salvage: {outcome}"
    selection: {population: post-bcma-cart, setting: first-salvage, outcome: [ORR, CR+]}
    grouping: cls
    sensitivity:
      - name: first-case-reports
        description: case reports included
        exclude_designs: []
      - name: first-alt
        description: alternative derived counts
        alternative_counts: true
      - name: first-mixed
        description: mixed groups under other
        grouping: cls-mixed-other
      - name: first-iv
        description: inverse-variance REML
        model: {estimator: REML, transform: logit}
  - name: any
    title: "Any line: {outcome}"
    selection: {population: post-bcma-cart, setting: [first-salvage, any-line], outcome: ORR}
    grouping: cls
"""


def plan_analyses(text: str = PLAN) -> dict[str, Analysis]:
    return {a.name: a for a in parse_plan(text, "plan.yaml").expanded()}


def load(folder: Path) -> list[Record]:
    corpus = metaresp.load_extractions(folder)
    return records_from_frame(corpus.to_frame(), components_from_corpus(corpus))


def run(folder: Path, name: str) -> AnalysisResult:
    return run_analysis(plan_analyses()[name], load(folder))


def entries(result: AnalysisResult) -> dict[str, list[tuple[str, int | None, int | None]]]:
    return {
        g.name: [(r.record_id, r.events, r.total) for r in g.records] for g in result.pooled.groups
    }


def reasons(result: AnalysisResult) -> dict[str, str]:
    return {s.record_id: s.reason for s in result.set_aside}


# --------------------------------------------------------------------------- design


def test_design_is_a_vocabulary_and_spaces_read_as_hyphens(tmp_path: Path) -> None:
    write(tmp_path, "a-2023", [grp("g", 1, 2)], design="Retrospective cohort")
    (study,) = metaresp.load_extractions(tmp_path).studies
    assert study.design == "retrospective-cohort"
    write(tmp_path, "a-2023", [grp("g", 1, 2)], design="phase 1 trial")
    with pytest.raises(InputError) as info:
        metaresp.load_extractions(tmp_path)
    (line,) = [p for p in str(info.value).splitlines() if "design" in p]
    assert "a-2023.yaml:" in line
    assert "single-arm-trial" in line  # the message lists the allowed terms


def test_case_report_set_aside_in_primary_and_pooled_in_its_variant(tmp_path: Path) -> None:
    write(tmp_path, "a-2023", [grp("tec", 10, 20)], design="retrospective-cohort")
    write(tmp_path, "b-2022", [grp("tec", 6, 9)], design="single-arm-trial")
    write(tmp_path, "case-2022", [grp("tec", 2, 2)], design="case-report")
    primary = run(tmp_path, "first-orr")
    assert entries(primary) == {
        "Bispecific": [("a-2023/tec/ORR", 10, 20), ("b-2022/tec/ORR", 6, 9)]
    }
    assert "case-report" in reasons(primary)["case-2022/tec/ORR"]
    variant = run(tmp_path, "first-case-reports-orr")
    assert [r.record_id for g in variant.pooled.groups for r in g.records] == [
        "a-2023/tec/ORR",
        "b-2022/tec/ORR",
        "case-2022/tec/ORR",
    ]
    state = summary([primary, variant])["analyses"]
    assert [(a["role"], a["sensitivity_of"]) for a in state] == [
        ("primary", None),
        ("sensitivity", "first-orr"),
    ]
    assert state[1]["estimates"][0]["records"] == [
        "a-2023/tec/ORR",
        "b-2022/tec/ORR",
        "case-2022/tec/ORR",
    ]


def test_plan_exclude_designs_names_a_bad_term() -> None:
    text = PLAN.replace("version: 1", "version: 1\nexclude_designs: [case-reports]")
    with pytest.raises(InputError) as info:
        parse_plan(text, "plan.yaml")
    assert str(info.value).startswith("plan.yaml:3: exclude_designs")  # line 1 is blank
    assert "case-report" in str(info.value)


# --------------------------------------------------------------------------- variants


def test_variants_follow_their_primary_for_each_outcome() -> None:
    names = [(a.name, a.role, a.sensitivity_of) for a in parse_plan(PLAN, "plan.yaml").expanded()]
    assert names[:5] == [
        ("first-orr", "primary", None),
        ("first-case-reports-orr", "sensitivity", "first-orr"),
        ("first-alt-orr", "sensitivity", "first-orr"),
        ("first-mixed-orr", "sensitivity", "first-orr"),
        ("first-iv-orr", "sensitivity", "first-orr"),
    ]
    assert ("first-iv-cr", "sensitivity", "first-cr") in names
    a = plan_analyses()
    assert a["first-iv-orr"].model.estimator == "REML"
    assert a["first-iv-orr"].model.ci == "hksj"
    assert a["first-orr"].exclude_designs == ("case-report",)
    assert a["first-case-reports-orr"].exclude_designs == ()
    assert a["first-mixed-orr"].grouping_name == "cls-mixed-other"


def test_variant_errors_name_line_and_field() -> None:
    text = PLAN.replace("grouping: cls-mixed-other", "grouping: nope")
    with pytest.raises(InputError) as info:
        parse_plan(text, "plan.yaml")
    (line,) = str(info.value).splitlines()
    assert line.startswith("plan.yaml:")
    assert "sensitivity[2] (first-mixed).grouping: unknown grouping 'nope'" in line
    text = PLAN.replace("name: first-alt", "name: first-case-reports")
    with pytest.raises(InputError, match="'first-case-reports-orr' is used twice"):
        parse_plan(text, "plan.yaml")


# --------------------------------------------------------------------------- disjoint groups


def test_disjoint_groups_of_one_study_are_combined(tmp_path: Path) -> None:
    """Two regimens given to different patients of one study, one subgroup: one entry with
    summed counts (2 + 1 responders of 3 + 11), not the larger alone."""
    write(
        tmp_path,
        "vo-2023",
        [
            grp("venetoclax", 2, 3, modality="small molecule", target=("BCL2",)),
            grp("selinexor", 1, 11, modality="small molecule", target=("XPO1",)),
        ],
        design="retrospective-cohort",
    )
    write(
        tmp_path,
        "b-2024",
        [grp("sel", 4, 7, modality="small molecule", target=("XPO1",))],
        design="retrospective-cohort",
    )
    result = run(tmp_path, "first-orr")
    (group,) = result.pooled.groups
    assert group.name == "Small molecule"
    other, combined = group.records  # in file order: b-2024 first
    assert (combined.events, combined.total) == (3, 14)
    assert combined.members == ("vo-2023/venetoclax/ORR", "vo-2023/selinexor/ORR")
    assert "(combined)" in combined.label
    assert other.record_id == "b-2024/sel/ORR"
    assert group.k == 2
    assert group.events == 3 + 4
    assert group.patients == 14 + 7
    assert result.set_aside == ()
    assert any("combines disjoint groups" in n and "= 3/14" in n for n in result.pooled.notes)
    (estimate,) = summary([result])["analyses"][0]["estimates"]
    assert estimate["records"] == [
        "b-2024/sel/ORR",
        "vo-2023/venetoclax/ORR",
        "vo-2023/selinexor/ORR",
    ]
    assert estimate["combined"][0]["records"] == ["vo-2023/venetoclax/ORR", "vo-2023/selinexor/ORR"]


def test_components_of_a_total_present_are_not_added_twice(tmp_path: Path) -> None:
    """A total and its parts in one subgroup: the total counts them; a third, disjoint group
    is added to the total."""
    write(
        tmp_path,
        "vo-2023",
        [
            grp("bs-all", 7, 10, target=("mixed",), components=["bs-bcma", "bs-other"]),
            grp("bs-bcma", 1, 2),
            grp("bs-other", 6, 8, target=("unspecified",)),
            grp("tal", 3, 4, target=("GPRC5D",)),
        ],
        design="retrospective-cohort",
    )
    result = run(tmp_path, "first-orr")
    ((rid, x, n),) = entries(result)["Bispecific"]
    assert (x, n) == (7 + 3, 10 + 4)
    assert rid == "vo-2023/bs-all+tal/ORR"
    why = reasons(result)
    assert set(why) == {"vo-2023/bs-bcma/ORR", "vo-2023/bs-other/ORR"}
    assert all("counted in its total vo-2023/bs-all/ORR" in w for w in why.values())


def test_groups_of_different_settings_are_not_combined(tmp_path: Path) -> None:
    """First-salvage patients are among the any-line patients: one vote, the larger."""
    write(
        tmp_path,
        "a-2023",
        [
            grp("first", 3, 5),
            grp("later", 5, 9, setting="any-line"),
        ],
        design="retrospective-cohort",
    )
    result = run(tmp_path, "any")
    assert entries(result) == {"Bispecific": [("a-2023/later/ORR", 5, 9)]}
    assert "smaller denominator" in reasons(result)["a-2023/first/ORR"]


def test_a_subset_linked_to_its_group_is_not_combined(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a-2023",
        [
            grp("all", 6, 12, modality="small molecule", target=("BCL2",)),
            grp(
                "t1114",
                3,
                6,
                modality="small molecule",
                target=("BCL2",),
                shares_patients_with=["a-2023/all"],
            ),
        ],
        design="retrospective-cohort",
    )
    result = run(tmp_path, "first-orr")
    assert entries(result) == {"Small molecule": [("a-2023/all/ORR", 6, 12)]}
    assert "one cohort, one vote" in reasons(result)["a-2023/t1114/ORR"]


# --------------------------------------------------------------------------- shared patients


def test_group_level_shared_patients_link_gives_one_vote(tmp_path: Path) -> None:
    """A centre's series whose CAR-T group includes patients of a trial reported on its own:
    only one of the two linked groups is pooled; the series' other group stays."""
    write(
        tmp_path,
        "trial-2022",
        [grp("cart", 5, 7, modality="CAR-T")],
        design="single-arm-trial",
        year=2022,
    )
    write(
        tmp_path,
        "centre-2023",
        [
            grp("cart", 6, 10, modality="CAR-T", shares_patients_with=["trial-2022/cart"]),
            grp("tec", 4, 9),
        ],
        design="retrospective-cohort",
    )
    write(
        tmp_path, "other-2023", [grp("cart", 2, 4, modality="CAR-T")], design="retrospective-cohort"
    )
    result = run(tmp_path, "first-orr")
    kept = entries(result)
    assert kept["CAR-T"] == [("centre-2023/cart/ORR", 6, 10), ("other-2023/cart/ORR", 2, 4)]
    assert kept["Bispecific"] == [("centre-2023/tec/ORR", 4, 9)]
    assert "shares patients with centre-2023/cart/ORR" in reasons(result)["trial-2022/cart/ORR"]


def test_a_link_to_an_unknown_group_is_one_plain_error(tmp_path: Path) -> None:
    write(
        tmp_path,
        "centre-2023",
        [grp("cart", 6, 10, modality="CAR-T", shares_patients_with=["trial-2022/cart"])],
        design="retrospective-cohort",
    )
    corpus = metaresp.load_extractions(tmp_path)
    with pytest.raises(InputError) as info:
        components_from_corpus(corpus)
    (line,) = str(info.value).splitlines()
    assert "centre-2023.yaml: groups[0].shares_patients_with[0]: 'trial-2022/cart'" in line


# --------------------------------------------------------------------------- mixed groups


def test_mixed_groups_are_kept_out_of_class_pools(tmp_path: Path) -> None:
    write(
        tmp_path,
        "m-2024",
        [
            grp("tec", 24, 37),
            grp("other", 8, 31, modality="other", target=("mixed",), mixed="several-classes"),
            grp("all", 40, 80, modality="combination", target=("mixed",), mixed="all-classes"),
        ],
        design="retrospective-cohort",
    )
    primary = run(tmp_path, "first-orr")
    assert entries(primary) == {"Bispecific": [("m-2024/tec/ORR", 24, 37)]}
    why = reasons(primary)
    assert "several-classes" in why["m-2024/other/ORR"]
    assert "all-classes" in why["m-2024/all/ORR"]
    variant = run(tmp_path, "first-mixed-orr")
    assert entries(variant) == {
        "Bispecific": [("m-2024/tec/ORR", 24, 37)],
        "Other": [("m-2024/other/ORR", 8, 31)],
    }
    assert set(reasons(variant)) == {"m-2024/all/ORR"}


def test_mixed_must_be_a_known_kind(tmp_path: Path) -> None:
    write(tmp_path, "m-2024", [grp("other", 8, 31, mixed="yes")], design="retrospective-cohort")
    with pytest.raises(InputError, match=r"m-2024\.yaml:\d+: groups\[0\]\.mixed"):
        metaresp.load_extractions(tmp_path)


# --------------------------------------------------------------------------- alternatives


def _derived(x: int, n: int, percent: str, alternatives: list[int]) -> dict[str, Any]:
    return {
        "percent": percent,
        "derived": True,
        "derivation": f"{percent}% of {n}",
        "note": "no whole count fits; nearest chosen",
        "alternatives": alternatives,
    }


def test_alternative_count_pooled_only_in_its_variant(tmp_path: Path) -> None:
    """64% of 37: no whole count gives 64% (23/37 = 62.2%, 24/37 = 64.9%); 24 is recorded,
    23 is the alternative."""
    write(
        tmp_path,
        "m-2024",
        [grp("tec", 24, 37, record=_derived(24, 37, "64", [23]))],
        design="retrospective-cohort",
    )
    write(tmp_path, "b-2023", [grp("tec", 5, 9)], design="retrospective-cohort")
    assert entries(run(tmp_path, "first-orr"))["Bispecific"] == [
        ("b-2023/tec/ORR", 5, 9),
        ("m-2024/tec/ORR", 24, 37),
    ]
    assert entries(run(tmp_path, "first-alt-orr"))["Bispecific"] == [
        ("b-2023/tec/ORR", 5, 9),
        ("m-2024/tec/ORR", 23, 37),
    ]


@pytest.mark.parametrize(
    ("x", "n", "percent", "alt", "message"),
    [
        (24, 37, "64", [22], "does not reproduce the printed 64% (candidates: 23, 24)"),
        (1, 8, "12.5", [1], "is the recorded count"),
    ],
)
def test_alternative_counts_are_checked(
    tmp_path: Path, x: int, n: int, percent: str, alt: list[int], message: str
) -> None:
    write(
        tmp_path,
        "m-2024",
        [grp("tec", x, n, record=_derived(x, n, percent, alt))],
        design="retrospective-cohort",
    )
    with pytest.raises(InputError) as info:
        metaresp.load_extractions(tmp_path)
    assert message in str(info.value)
    assert "groups[0].outcomes[0].alternatives[0]" in str(info.value)


def test_linked_groups_keep_the_larger_denominator_not_the_later_report(tmp_path: Path) -> None:
    """Linked groups of two cohorts are not versions of one report: the trial's 7 of 10 is
    kept over the later series' 5 of 6 drawn from it."""
    write(
        tmp_path,
        "trial-2022",
        [grp("cart", 7, 10, modality="CAR-T")],
        design="single-arm-trial",
        year=2022,
    )
    write(
        tmp_path,
        "series-2023",
        [grp("cart", 5, 6, modality="CAR-T", shares_patients_with=["trial-2022/cart"])],
        design="retrospective-cohort",
    )
    result = run(tmp_path, "first-orr")
    assert entries(result) == {"CAR-T": [("trial-2022/cart/ORR", 7, 10)]}
    why = reasons(result)["series-2023/cart/ORR"]
    assert "shares patients with trial-2022/cart/ORR" in why
    assert "smaller denominator" in why


def test_versions_are_settled_before_a_link(tmp_path: Path) -> None:
    """Two versions of a series (the later one smaller) and a trial linked to it: the
    later version stands for the series, then the larger of series and trial is kept."""
    write(
        tmp_path,
        "series-2021",
        [grp("cart", 6, 10, modality="CAR-T")],
        design="retrospective-cohort",
        cohort="series",
        year=2021,
    )
    write(
        tmp_path,
        "series-2023",
        [grp("cart", 5, 8, modality="CAR-T", shares_patients_with=["trial-2022/cart"])],
        design="retrospective-cohort",
        cohort="series",
        year=2023,
    )
    write(
        tmp_path,
        "trial-2022",
        [grp("cart", 7, 9, modality="CAR-T")],
        design="single-arm-trial",
        year=2022,
    )
    result = run(tmp_path, "first-orr")
    assert entries(result) == {"CAR-T": [("trial-2022/cart/ORR", 7, 9)]}
    why = reasons(result)
    assert "earlier report" in why["series-2021/cart/ORR"]
    assert "series-2023/cart/ORR" in why["series-2021/cart/ORR"]
    assert "shares patients with trial-2022/cart/ORR" in why["series-2023/cart/ORR"]
