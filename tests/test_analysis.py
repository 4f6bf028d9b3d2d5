"""Selection, one-cohort-one-vote, grouping, subgroup pooling and the test for differences.

Each test builds a small synthetic corpus of extraction files in ``tmp_path`` and checks the
analysis layer against an independent route: the engine called directly on the records a
reader picks out by hand, a fixed-effect identity for the between-subgroup Q, or counts
written in the test itself.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

import metaresp
from metaresp.analysis import (
    components_from_corpus,
    pool_groups,
    records_from_frame,
    run_analysis,
    summary,
)
from metaresp.plan import Analysis, parse_plan

# --------------------------------------------------------------------------- helpers


def group(
    gid: str,
    counts: dict[str, tuple[int | None, int | None]],
    *,
    modality: str,
    target: list[str],
    agents: list[str] | None = None,
    setting: str = "first-salvage",
    unit: str = "patients",
    components: list[str] | None = None,
    cohort: str | None = None,
) -> dict[str, Any]:
    outcomes = []
    for outcome, (x, n) in counts.items():
        outcomes.append(
            {
                "outcome": outcome,
                "responders": x,
                "evaluable": n,
                "percent": None if x is not None else "50",
                "derived": False,
                "derivation": None,
                "note": None,
                "quote": f"{x} of {n} responded",
                "location": "Table 1",
            }
        )
    g: dict[str, Any] = {
        "id": gid,
        "name": gid.replace("-", " ").title(),
        "agents": agents or ["various"],
        "modality": modality,
        "target": target,
        "setting": setting,
        "unit": unit,
        "outcomes": outcomes,
    }
    if components:
        g["components"] = components
    if cohort:
        g["cohort"] = cohort
    return g


def study(
    folder: Path,
    sid: str,
    groups: list[dict[str, Any]],
    *,
    cohort: str | None = None,
    year: int = 2023,
    published: str | None = None,
    population: str = "post-bcma-cart",
) -> None:
    data = {
        "id": sid,
        "citation": f"{sid.split('-')[0].title()} A, et al. Test. 2023.",
        "year": year,
        "published": published,
        "design": "retrospective cohort",
        "population": population,
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
      GPRC5D: {target: {any: [GPRC5D], none: [BCMA]}}
      Bispecific: {modality: bispecific}
      CAR-T: {modality: CAR-T}
    other: Other
  modality-first:
    title: Modality
    classes:
      Bispecific: {modality: bispecific}
      GPRC5D: {target: GPRC5D}
analyses:
  - name: a
    title: A
    selection: {population: post-bcma-cart, setting: first-salvage, outcome: ORR}
    grouping: cls
    overall: true
  - name: m
    title: M
    selection: {population: post-bcma-cart, setting: first-salvage, outcome: ORR}
    grouping: modality-first
"""


def analyses(text: str = PLAN, model: str | None = None) -> dict[str, Analysis]:
    if model:
        text = f"model: {model}\n" + text
    return {a.name: a for a in parse_plan(text, "plan.yaml").expanded()}


def load(folder: Path) -> list[Any]:
    corpus = metaresp.load_extractions(folder)
    return records_from_frame(corpus.to_frame(), components_from_corpus(corpus))


# --------------------------------------------------------------------------- tests


def test_single_subgroup_equals_engine(tmp_path: Path) -> None:
    """One class of three studies: the subgroup result is metaresp.pool on those counts."""
    for sid, (x, n) in {"a-2021": (5, 9), "b-2022": (12, 30), "c-2023": (7, 11)}.items():
        study(
            tmp_path, sid, [group("tec", {"ORR": (x, n)}, modality="bispecific", target=["BCMA"])]
        )
    result = run_analysis(analyses()["a"], load(tmp_path))
    (g,) = result.pooled.groups
    assert g.name == "Bispecific"
    assert g.k == 3
    direct = metaresp.pool([5, 12, 7], [9, 30, 11])
    assert g.result is not None
    # same engine, same inputs in the same order: identical to the last bit
    assert g.result.proportion == direct.proportion
    assert (g.result.ci_low, g.result.ci_high) == (direct.ci_low, direct.ci_high)
    assert g.result.tau2 == direct.tau2
    assert result.set_aside == ()
    assert result.pooled.overall is None  # one subgroup: nothing to add
    assert "No overall estimate: a single subgroup." in result.pooled.notes


def test_one_cohort_one_vote_keeps_latest_then_largest(tmp_path: Path) -> None:
    """Three reports of one cohort: the latest is kept; of two reports of one date, the
    larger. (Two groups of one report are different patients and are combined instead:
    see the tests of disjoint groups.)"""
    study(
        tmp_path,
        "early-2021",
        [group("tec", {"ORR": (10, 20)}, modality="bispecific", target=["BCMA"])],
        cohort="c1",
        year=2021,
    )
    study(
        tmp_path,
        "late-2023",
        [group("tec", {"ORR": (12, 22)}, modality="bispecific", target=["BCMA"])],
        cohort="c1",
        year=2023,
        published="2023-05",
    )
    study(
        tmp_path,
        "other-2022",
        [group("tec", {"ORR": (3, 8)}, modality="bispecific", target=["BCMA"])],
        cohort="c2",
        year=2022,
    )
    study(
        tmp_path,
        "other-2022b",
        [group("tec-subset", {"ORR": (2, 5)}, modality="bispecific", target=["BCMA"])],
        cohort="c2",
        year=2022,
    )
    result = run_analysis(analyses()["a"], load(tmp_path))
    (g,) = result.pooled.groups
    assert sorted(r.record_id for r in g.records) == ["late-2023/tec/ORR", "other-2022/tec/ORR"]
    reasons = {s.record_id: s.reason for s in result.set_aside}
    assert set(reasons) == {"early-2021/tec/ORR", "other-2022b/tec-subset/ORR"}
    assert "earlier report" in reasons["early-2021/tec/ORR"]
    assert "late-2023/tec/ORR" in reasons["early-2021/tec/ORR"]
    assert "smaller denominator" in reasons["other-2022b/tec-subset/ORR"]


def test_set_aside_reasons(tmp_path: Path) -> None:
    """Percent-only, treatment-line and unclassified records are listed with reasons;
    records of another outcome, population or setting are simply out of scope."""
    study(
        tmp_path,
        "x-2023",
        [
            group("pct", {"ORR": (None, None)}, modality="bispecific", target=["BCMA"]),
            group("lines", {"ORR": (5, 9)}, modality="bispecific", target=["BCMA"], unit="lines"),
            group("later", {"ORR": (5, 9)}, modality="CAR-T", target=["BCMA"], setting="any-line"),
            group("vgpr", {"VGPR+": (1, 4)}, modality="CAR-T", target=["BCMA"]),
            group("adc", {"ORR": (1, 4)}, modality="ADC", target=["BCMA"]),
        ],
    )
    result = run_analysis(analyses()["m"], load(tmp_path))
    reasons = {s.record_id.split("/")[1]: s.reason for s in result.set_aside}
    assert set(reasons) == {"pct", "lines", "adc"}
    assert reasons["pct"].startswith("percent only")
    assert reasons["lines"] == "counts lines; this analysis pools patients"
    assert "matches no class" in reasons["adc"]
    assert result.empty


def test_first_matching_class_and_two_groupings(tmp_path: Path) -> None:
    """Talquetamab is GPRC5D-directed in one grouping and bispecific in the other."""
    study(
        tmp_path,
        "talq-2023",
        [
            group(
                "talq",
                {"ORR": (7, 10)},
                modality="bispecific",
                target=["GPRC5D"],
                agents=["talquetamab"],
            )
        ],
    )
    study(
        tmp_path,
        "tec-2023",
        [
            group(
                "tec",
                {"ORR": (4, 10)},
                modality="bispecific",
                target=["BCMA"],
                agents=["teclistamab"],
            )
        ],
    )
    plan = analyses()
    records = load(tmp_path)
    by_class = {
        g.name: [r.study for r in g.records] for g in run_analysis(plan["a"], records).pooled.groups
    }
    by_modality = {
        g.name: [r.study for r in g.records] for g in run_analysis(plan["m"], records).pooled.groups
    }
    assert by_class == {"GPRC5D": ["talq-2023"], "Bispecific": ["tec-2023"]}
    assert by_modality == {"Bispecific": ["talq-2023", "tec-2023"]}


def test_components_across_classes_are_set_aside(tmp_path: Path) -> None:
    """An 'all groups' record whose parts fall in other classes would count them twice;
    an aggregate whose parts share its class competes by one cohort, one vote."""
    study(
        tmp_path,
        "vo-2023",
        [
            group(
                "bs-all",
                {"ORR": (7, 10)},
                modality="bispecific",
                target=["mixed"],
                components=["bs-bcma", "bs-other"],
            ),
            group("bs-bcma", {"ORR": (1, 2)}, modality="bispecific", target=["BCMA"]),
            group("bs-other", {"ORR": (6, 8)}, modality="bispecific", target=["unspecified"]),
            group("cart", {"ORR": (2, 2)}, modality="CAR-T", target=["BCMA"]),
            group(
                "all",
                {"ORR": (9, 12)},
                modality="combination",
                target=["mixed"],
                components=["bs-all", "cart"],
            ),
        ],
    )
    result = run_analysis(analyses()["a"], load(tmp_path))
    kept = {g.name: [r.group_id for r in g.records] for g in result.pooled.groups}
    assert kept == {"Bispecific": ["bs-all"], "CAR-T": ["cart"]}
    reasons = {s.record_id.split("/")[1]: s.reason for s in result.set_aside}
    assert "other subgroups" in reasons["all"]
    assert "one cohort, one vote" in reasons["bs-bcma"]
    assert "one cohort, one vote" in reasons["bs-other"]


def test_shared_cohort_blocks_test_and_overall(tmp_path: Path) -> None:
    """Two classes from one cohort: no test for differences and no overall estimate."""
    study(
        tmp_path,
        "merz-2024",
        [
            group("talq", {"ORR": (22, 28)}, modality="bispecific", target=["GPRC5D"]),
            group("tec", {"ORR": (24, 37)}, modality="bispecific", target=["BCMA"]),
        ],
    )
    study(
        tmp_path,
        "a-2023",
        [group("talq", {"ORR": (5, 9)}, modality="bispecific", target=["GPRC5D"])],
    )
    study(
        tmp_path, "b-2023", [group("tec", {"ORR": (4, 11)}, modality="bispecific", target=["BCMA"])]
    )
    result = run_analysis(analyses()["a"], load(tmp_path))
    assert [g.k for g in result.pooled.groups] == [2, 2]
    assert result.pooled.test is None
    assert result.pooled.overall is None
    assert any("cohort merz-2024" in n for n in result.pooled.notes)


def test_between_subgroup_q_fixed_effect_identity(tmp_path: Path) -> None:
    """With a common-effect (FE) model, Q_between = Q_total - sum of Q_within (Borenstein et
    al. 2009, Introduction to Meta-Analysis, ch. 19, eq. 19.10). Tolerance 1e-9: the two
    routes sum the same terms in a different order."""
    counts = {
        "GPRC5D": [(22, 28), (7, 10), (5, 9)],
        "Bispecific": [(24, 37), (4, 11)],
        "CAR-T": [(6, 28), (5, 7)],
    }
    target = {"GPRC5D": ["GPRC5D"], "Bispecific": ["BCMA"], "CAR-T": ["BCMA"]}
    modality = {"GPRC5D": "bispecific", "Bispecific": "bispecific", "CAR-T": "CAR-T"}
    for name, rows in counts.items():
        for i, (x, n) in enumerate(rows):
            study(
                tmp_path,
                f"s{name.lower()}{i}-2023",
                [group("g", {"ORR": (x, n)}, modality=modality[name], target=target[name])],
            )
    plan = analyses(model="{estimator: FE, transform: logit, ci: z}")
    result = run_analysis(plan["a"], load(tmp_path))
    test = result.pooled.test
    assert test is not None
    assert test.df == 2
    everything = [xn for rows in counts.values() for xn in rows]
    total = metaresp.pool(
        [x for x, _ in everything], [n for _, n in everything], estimator="FE", ci="z"
    )
    within = sum(g.result.q for g in result.pooled.groups if g.result is not None)
    assert test.q == pytest.approx(total.q - within, abs=1e-9)
    # the p-value is the chi-square(2) tail: exp(-Q/2) in closed form for 2 df
    assert test.pvalue == pytest.approx(math.exp(-test.q / 2), rel=1e-12)
    # overall allowed: no cohort in two subgroups
    assert result.pooled.overall is not None
    assert result.pooled.overall.k == 7


def test_between_subgroup_q_by_hand() -> None:
    """Two subgroups, FE on the logit scale, computed by hand from the printed counts:
    theta_j and 1/se_j^2 from the inverse-variance formulas, then Q = sum w (theta - mean)^2.
    Tolerance 1e-12: same arithmetic, different order."""
    from metaresp.analysis import Record
    from metaresp.plan import ModelSettings, resolve_model

    def rec(i: int, x: int, n: int, cohort: str) -> Record:
        return Record(
            record_id=f"r{i}",
            study=f"s{i}",
            group_id="g",
            group="g",
            cohort=cohort,
            outcome="ORR",
            population="p",
            setting="s",
            unit="patients",
            events=x,
            total=n,
            label=f"S{i}",
        )

    a = [(3, 10), (6, 12)]
    b = [(9, 10), (15, 20)]
    model = resolve_model(ModelSettings(estimator="FE", ci="z"))
    pooled = pool_groups(
        {
            "A": [rec(i, *xn, f"a{i}") for i, xn in enumerate(a)],
            "B": [rec(i + 2, *xn, f"b{i}") for i, xn in enumerate(b)],
        },
        model,
    )

    def fe(rows: list[tuple[int, int]]) -> tuple[float, float]:
        y = [math.log(x / (n - x)) for x, n in rows]
        w = [1 / (1 / x + 1 / (n - x)) for x, n in rows]
        return sum(wi * yi for wi, yi in zip(w, y, strict=True)) / sum(w), sum(w)

    (ta, wa), (tb, wb) = fe(a), fe(b)
    mean = (wa * ta + wb * tb) / (wa + wb)
    q = wa * (ta - mean) ** 2 + wb * (tb - mean) ** 2
    assert pooled.test is not None
    assert pooled.test.q == pytest.approx(q, rel=1e-12)
    assert pooled.test.df == 1


def test_single_study_group_shown_not_pooled(tmp_path: Path) -> None:
    study(
        tmp_path, "a-2023", [group("tec", {"ORR": (4, 11)}, modality="bispecific", target=["BCMA"])]
    )
    study(tmp_path, "b-2023", [group("cart", {"ORR": (3, 4)}, modality="CAR-T", target=["BCMA"])])
    study(tmp_path, "c-2023", [group("cart", {"ORR": (5, 6)}, modality="CAR-T", target=["BCMA"])])
    result = run_analysis(analyses()["a"], load(tmp_path))
    single = result.pooled.groups[0]
    assert (single.name, single.k, single.result) == ("Bispecific", 1, None)
    data = result.forest_data()
    row = data.subgroups[0].pooled
    assert row is not None
    assert not row.pooled
    assert row.proportion == 4 / 11
    # one pooled subgroup only: no test
    assert result.pooled.test is None
    assert data.subgroups[1].pooled is not None
    assert data.subgroups[1].pooled.pooled
    state = summary([result])["analyses"][0]
    assert [e["records"] for e in state["estimates"]] == [
        ["a-2023/tec/ORR"],
        ["b-2023/cart/ORR", "c-2023/cart/ORR"],
    ]
    assert [e["pooled"] for e in state["estimates"]] == [False, True]
