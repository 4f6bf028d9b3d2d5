"""The analysis plan: the shipped file, defaults, rule matching, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaresp.errors import InputError
from metaresp.plan import Condition, ModelSettings, load_plan, parse_plan, resolve_model

ROOT = Path(__file__).resolve().parents[1]

BASE = """\
version: 1
groupings:
  cls:
    title: Class
    classes:
      Bispecific: {modality: bispecific}
analyses:
  - name: one
    title: One
    selection: {population: post-bcma-cart, setting: first-salvage, outcome: ORR}
    grouping: cls
"""


def problems(text: str) -> list[str]:
    with pytest.raises(InputError) as info:
        parse_plan(text, "plan.yaml")
    return list(info.value.problems)


def test_shipped_plan_loads_and_covers_the_issue() -> None:
    plan = load_plan(ROOT / "analysis-plan.yaml")
    names = [a.name for a in plan.expanded()]
    for outcome in ("orr", "vgpr", "cr"):
        for base in ("class-first-salvage", "class-any-line", "bispecific-target", "cart-target"):
            assert f"{base}-{outcome}" in names
    classes = list(plan.groupings["salvage-class"].classes)
    assert classes[:4] == [
        "GPRC5D-directed therapy",
        "Bispecific antibody (BCMA, FcRH5 or other target)",
        "CAR-T retreatment (BCMA or dual target)",
        "Selinexor-based",
    ]
    assert list(plan.groupings["bispecific-target"].classes) == ["BCMA", "GPRC5D", "FcRH5"]
    assert list(plan.groupings["cart-target"].classes) == ["BCMA", "GPRC5D", "Dual target"]
    first = next(a for a in plan.expanded() if a.name == "class-first-salvage-orr")
    # the primary model is the simulation's winner (docs/simulation/few-studies), the GLMM
    # its other-family sensitivity line
    assert first.model.describe().startswith(
        "Random effects, Bayesian binomial-normal model (logit; priors half-normal(2) on the "
        "between-study SD τ, normal(0, 2) on the pooled logit)"
    )
    other = next(a for a in plan.expanded() if a.name == "class-first-salvage-glmm-orr")
    assert (other.model.estimator, other.model.ci, other.model.tau_prior) == ("GLMM", "t", None)
    assert other.sensitivity_of == "class-first-salvage-orr"
    assert first.threshold == 50
    assert first.unit == ("patients",)


def test_model_defaults_follow_methods() -> None:
    assert resolve_model() == resolve_model(ModelSettings(estimator="BAYES"))
    bayes = resolve_model()
    assert (bayes.transform, bayes.estimator, bayes.ci, bayes.level) == (
        "logit",
        "BAYES",
        "t",
        0.95,
    )
    glmm = resolve_model(ModelSettings(estimator="GLMM"))
    assert (glmm.transform, glmm.estimator, glmm.ci, glmm.level) == ("logit", "GLMM", "t", 0.95)
    # the plan's priors do not follow an analysis that switches to another estimator
    priors = ModelSettings(tau_prior="half-normal(1)", mu_prior="normal(0, 1)")
    assert resolve_model(priors).tau_prior == "half-normal(1)"
    assert resolve_model(priors, ModelSettings(estimator="GLMM")).tau_prior is None
    iv = resolve_model(ModelSettings(estimator="DL"))
    assert (iv.transform, iv.ci) == ("logit", "hksj")
    ft = resolve_model(ModelSettings(transform="freeman-tukey"))
    assert (ft.estimator, ft.ci) == ("REML", "hksj")
    # an analysis overrides the plan default part by part
    merged = resolve_model(ModelSettings(estimator="REML", ci="z"), ModelSettings(ci="hksj"))
    assert (merged.estimator, merged.ci) == ("REML", "hksj")


@pytest.mark.parametrize(
    ("values", "condition", "expected"),
    [
        ({"gprc5d"}, {"any": ["GPRC5D"]}, True),
        ({"bcma", "gprc5d"}, {"any": ["GPRC5D"], "none": ["BCMA"]}, False),
        ({"bcma", "cd19"}, {"count": 2}, True),
        ({"bcma"}, {"count": 2}, False),
        ({"bcma", "cd19"}, {"only": ["BCMA"]}, False),
        ({"bcma"}, {"only": ["BCMA"]}, True),
        ({"bcma", "gprc5d"}, {"all": ["GPRC5D", "BCMA"]}, True),
        ({"bcma"}, {"all": ["GPRC5D", "BCMA"]}, False),
    ],
)
def test_condition_semantics(
    values: set[str], condition: dict[str, object], expected: bool
) -> None:
    assert Condition.model_validate(condition).matches(frozenset(values)) is expected


def test_condition_shorthand() -> None:
    assert Condition.model_validate("GPRC5D") == Condition(any=["GPRC5D"])
    assert Condition.model_validate(["a", "b"]) == Condition(any=["a", "b"])


def test_outcome_list_expands() -> None:
    plan = parse_plan(
        BASE.replace("outcome: ORR", "outcome: [ORR, CR+]").replace(
            "title: One", 'title: "One: {outcome}"'
        ),
        "plan.yaml",
    )
    expanded = plan.expanded()
    assert [a.name for a in expanded] == ["one-orr", "one-cr"]
    assert expanded[1].title == "One: complete response or better (≥CR)"
    assert expanded[1].outcome == "CR+"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("outcome: ORR", "outcome: PR"),
            "plan.yaml:10: analyses[0] (one).selection.outcome[0]: "
            "Input should be 'ORR', 'VGPR+' or 'CR+'",
        ),
        (
            ("grouping: cls", "grouping: nope"),
            "plan.yaml:8: analyses[0] (one).grouping: unknown grouping 'nope' (defined: cls)",
        ),
        (
            ("title: One", "title: One\n    colour: red"),
            "plan.yaml:10: analyses[0] (one).colour: unknown field (allowed: description, "
            "exclude_designs, grouping, mix_units, model, name, overall, selection, "
            "sensitivity, thresholds, title)",
        ),
        (
            ("grouping: cls", "grouping: cls\n    model: {transform: arcsine, estimator: GLMM}"),
            'plan.yaml:8: analyses[0] (one).model: estimator: "GLMM" is a logit model and '
            "needs transform=\"logit\"; got transform='arcsine'",
        ),
        (
            ("outcome: ORR}", "outcome: ORR, unit: [patients, lines]}"),
            "plan.yaml:8: analyses[0] (one): selection.unit lists patients and lines: they are "
            "never pooled together unless the analysis says mix_units: true",
        ),
        (
            ("population: post-bcma-cart", "population: post-bcma-car"),
            "plan.yaml:10: analyses[0].selection.population: unknown population "
            "'post-bcma-car'; did you mean 'post-bcma-cart'?",
        ),
        (
            ("modality: bispecific", "modality: bispecfic"),
            "plan.yaml:6: groupings.cls.classes.Bispecific.modality: unknown modality "
            "'bispecfic'; did you mean 'bispecific'?",
        ),
        (
            ("name: one", "name: One"),
            "plan.yaml:8: analyses[0] (One).name: must be a lower-case slug (letters, digits, "
            "hyphens)",
        ),
        (
            ("grouping: cls", "grouping: cls\n    thresholds: {ORR: 150}"),
            "plan.yaml:12: analyses[0] (one).thresholds: threshold for ORR is a percentage "
            "between 0 and 100",
        ),
        (("    title: Class\n", ""), "plan.yaml:3: groupings.cls.title: missing (required)"),
    ],
)
def test_one_line_errors_name_file_line_and_field(edit: tuple[str, str], expected: str) -> None:
    text = BASE.replace(*edit)
    assert text != BASE
    found = problems(text)
    assert found == [expected]


def test_duplicate_names_and_every_problem_reported() -> None:
    text = (
        BASE
        + """\
  - name: one
    title: Again
    selection: {population: post-bcma-cart, setting: first-salvage, outcome: ORR}
    grouping: missing
"""
    )
    found = problems(text)
    assert (
        "plan.yaml:12: analyses[1] (one).grouping: unknown grouping 'missing' "
        "(defined: cls)" in found
    )
    assert "plan.yaml:12: analyses[1] (one).name: analysis name 'one' is used twice" in found


def test_bad_yaml_and_bad_files(tmp_path: Path) -> None:
    assert problems("analyses: [\n  {name: x\n") == [
        "plan.yaml:3: not valid YAML: expected ',' or '}', but got '<stream end>'"
    ]
    assert problems("- just a list") == [
        "plan.yaml: the plan must be a mapping with 'analyses' (and optionally 'model', "
        "'groupings', 'thresholds')"
    ]
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InputError) as info:
        load_plan(missing)
    assert info.value.problems == (f"{missing}: plan file not found",)
    binary = tmp_path / "bad.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError) as info:
        load_plan(binary)
    assert info.value.problems == (f"{binary}: not UTF-8 text",)


def test_other_family_adds_a_variant_beside_every_primary() -> None:
    text = BASE.replace("outcome: ORR", "outcome: [ORR, CR+]").replace(
        "analyses:",
        "model: {estimator: GLMM}\n"
        "other_family:\n"
        "  description: Bayesian binomial-normal model\n"
        '  model: {estimator: BAYES, tau_prior: "half-normal(0.5)"}\n'
        "analyses:",
    )
    expanded = parse_plan(text, "plan.yaml").expanded()
    assert [a.name for a in expanded] == [
        "one-orr",
        "one-other-model-orr",
        "one-cr",
        "one-other-model-cr",
    ]
    variant = expanded[1]
    assert variant.role == "sensitivity"
    assert variant.sensitivity_of == "one-orr"
    assert variant.model.estimator == "BAYES"
    assert variant.model.tau_prior == "half-normal(0.5)"
    assert expanded[0].model.estimator == "GLMM"


def test_an_estimator_without_an_interval_gets_its_own_default_interval() -> None:
    from metaresp.plan import ModelSettings, resolve_model

    plan_default = ModelSettings.model_validate({"estimator": "REML", "ci": "hksj"})
    fe = resolve_model(plan_default, ModelSettings.model_validate({"estimator": "FE"}))
    assert fe.ci == "z"
    glmm = resolve_model(plan_default, ModelSettings.model_validate({"estimator": "GLMM"}))
    assert glmm.ci == "t"
    kept = resolve_model(plan_default, ModelSettings.model_validate({"transform": "arcsine"}))
    assert kept.ci == "hksj"


def test_a_bad_prior_in_the_plan_model_is_one_line_at_that_line() -> None:
    text = BASE.replace("analyses:", 'model: {tau_prior: "half-normal(zero)"}\nanalyses:').replace(
        "    grouping: cls\n",
        "    grouping: cls\n"
        "  - name: two\n"
        "    title: Two\n"
        "    selection: {population: post-bcma-cart, setting: first-salvage, outcome: ORR}\n"
        "    model: {estimator: GLMM}\n",
    )
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith("plan.yaml:7: model: tau_prior: cannot read 'half-normal(zero)'")
    # an analysis's own bad prior is still named at the analysis
    own = BASE.replace(
        "    grouping: cls\n", '    grouping: cls\n    model: {mu_prior: "normal(0)"}\n'
    )
    found = problems(own)
    assert len(found) == 1
    assert found[0].startswith("plan.yaml:8: analyses[0] (one).model: mu_prior")
