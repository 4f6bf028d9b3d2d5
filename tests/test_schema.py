"""The models, the vocabularies, the percentage rule and the JSON Schema export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from metaresp import vocab
from metaresp.cli import main
from metaresp.corpus import parse_study
from metaresp.schema import (
    Outcome,
    Study,
    check_study,
    format_path,
    json_schema,
    matching_counts,
    percent_decimals,
    reproduces,
)


def _study(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "alpha-2023",
        "citation": "Alpha A. Test. 2023.",
        "year": 2023,
        "design": "retrospective cohort",
        "population": "post-bcma-cart",
        "cohort": "alpha",
        "source": "alpha.txt",
        "groups": [
            {
                "id": "tec",
                "name": "Teclistamab",
                "agents": ["teclistamab"],
                "modality": "bispecific",
                "target": ["BCMA"],
                "setting": "first-salvage",
                "unit": "patients",
                "outcomes": [
                    {
                        "outcome": "ORR",
                        "responders": 5,
                        "evaluable": 7,
                        "percent": "71.4",
                        "quote": "5 out of 7 (71.4%)",
                        "location": "Table 2",
                    }
                ],
            }
        ],
    }
    data.update(changes)
    return data


# ---------------------------------------------------------------- vocabularies


@pytest.mark.parametrize("field", sorted(vocab.VOCABULARIES))
def test_every_vocabulary_value_has_a_one_line_definition(field: str) -> None:
    terms = vocab.VOCABULARIES[field]
    assert terms
    for value, definition in terms.items():
        assert value.strip() == value
        assert value
        assert definition.strip()
        assert "\n" not in definition


def test_issue_vocabularies_are_present() -> None:
    assert set(vocab.MODALITIES) == {
        "bispecific",
        "CAR-T",
        "ADC",
        "small molecule",
        "chemotherapy",
        "transplant",
        "combination",
        "checkpoint inhibitor",
        "radiotherapy",
        "other",
    }
    assert {"BCMA", "GPRC5D", "FcRH5", "CD38", "XPO1", "CD19", "SLAMF7"} <= set(vocab.TARGETS)
    assert {"post-bcma-cart", "prior-bcma-exposed", "cart-exposed"} <= set(vocab.POPULATIONS)
    assert set(vocab.SETTINGS) == {"first-salvage", "any-line"}
    assert set(vocab.UNITS) == {"patients", "lines"}
    assert set(vocab.OUTCOMES) == {"ORR", "VGPR+", "CR+"}


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("tec", "teclistamab"),
        ("Teclistamab", "teclistamab"),
        ("JNJ-64007957", "teclistamab"),
        ("jnj\u201364007957", "teclistamab"),  # en dash from a PDF
        ("ide-cel", "ide-cel"),
        ("Idecabtagene  vicleucel", "ide-cel"),
        ("ciltacabtagene autoleucel", "cilta-cel"),
        ("CARVYKTI", "cilta-cel"),
        ("talq", "talquetamab"),
        ("Elranatamab", "elranatamab"),
        ("REGN5458", "linvoseltamab"),
        ("cevostamab", "cevostamab"),
        ("KPT-330", "selinexor"),
        ("investigational  CAR-T ", "investigational CAR-T"),  # unknown: kept, spaces tidied
    ],
)
def test_agent_synonyms_normalise(written: str, canonical: str) -> None:
    assert vocab.normalise_agent(written) == canonical


def test_synonym_table_points_only_at_known_agents() -> None:
    assert set(vocab.AGENT_SYNONYMS.values()) <= set(vocab.AGENTS)


def test_models_normalise_agents_and_accept_a_single_target() -> None:
    data = _study()
    data["groups"][0]["agents"] = ["Tec", "dara"]
    data["groups"][0]["target"] = "BCMA"
    study = Study.model_validate(data)
    assert study.groups[0].agents == ("teclistamab", "daratumumab")
    assert study.groups[0].target == ("BCMA",)


@pytest.mark.parametrize(
    ("field", "value", "suggestion"),
    [
        ("target", "GPRCD5", "GPRC5D"),
        ("target", "gprc5d", "GPRC5D"),
        ("target", "CS1", "SLAMF7"),
        ("modality", "car-t", "CAR-T"),
        ("population", "post-bcma-car-t", "post-bcma-cart"),
        ("outcome", "≥VGPR", "VGPR+"),
    ],
)
def test_unknown_vocabulary_suggests_the_right_value(
    field: str, value: str, suggestion: str
) -> None:
    assert f"did you mean {suggestion!r}?" in vocab.unknown_term_message(field, value)


def test_unknown_keys_are_errors() -> None:
    data = _study(comment="x")
    data["groups"][0]["outcomes"][0]["resp"] = 1
    with pytest.raises(ValidationError) as info:
        Study.model_validate(data)
    locs = {tuple(e["loc"]) for e in info.value.errors()}
    assert ("comment",) in locs
    assert ("groups", 0, "outcomes", 0, "resp") in locs


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"responders": True}, "responders"),  # a boolean is not a count
        ({"responders": 5.0}, "responders"),  # nor is a float
        ({"responders": -1}, "responders"),
        ({"evaluable": 0}, "evaluable"),
        ({"percent": "71.4%"}, "percent"),
        ({"percent": "101"}, "percent"),
        ({"derived": "yes"}, "derived"),
        ({"quote": ""}, "quote"),
    ],
)
def test_outcome_field_constraints(changes: dict[str, Any], loc: str) -> None:
    data = _study()
    data["groups"][0]["outcomes"][0].update(changes)
    with pytest.raises(ValidationError) as info:
        Study.model_validate(data)
    assert [e["loc"][-1] for e in info.value.errors()] == [loc]


def test_numeric_percent_is_kept_as_text() -> None:
    rec = Outcome.model_validate({"outcome": "ORR", "percent": 64, "quote": "q", "location": "l"})
    assert rec.percent == "64"


def test_published_accepts_year_month_and_dates() -> None:
    import datetime

    assert Study.model_validate(_study(published="2023-02")).published == "2023-02"
    assert Study.model_validate(_study(published=2023)).published == "2023"
    day = datetime.date(2023, 2, 15)
    assert Study.model_validate(_study(published=day)).published == "2023-02-15"
    with pytest.raises(ValidationError):
        Study.model_validate(_study(published="2023-13"))


def test_format_path() -> None:
    assert format_path(("groups", 2, "outcomes", 0, "responders")) == (
        "groups[2].outcomes[0].responders"
    )
    assert format_path(()) == "(file)"


# ---------------------------------------------------------------- the percentage rule


def test_percent_decimals() -> None:
    assert percent_decimals("71.4") == 1
    assert percent_decimals("64") == 0
    assert percent_decimals("100.00") == 2


def test_published_count_reproduces_its_printed_percentage() -> None:
    # Van Oekelen et al., Blood 2023;141:756, Table 2 ("All treatment groups", first salvage):
    # "33 out of 76"; the review prints the same ORR as 43.4%.
    assert reproduces(33, 76, "43.4")
    assert list(matching_counts(76, "43.4")) == [33]
    # 5/7 = 71.43%: reproduces "71.4" and "71", not "71.5".
    assert reproduces(5, 7, "71.4")
    assert reproduces(5, 7, "71")
    assert not reproduces(5, 7, "71.5")


def test_half_way_values_reproduce_both_roundings() -> None:
    # 1/8 = 12.5% exactly: printed "12" (half to even) or "13" (half up) are both fine.
    assert reproduces(1, 8, "12")
    assert reproduces(1, 8, "13")
    assert not reproduces(1, 8, "14")


def test_no_whole_count_of_37_gives_64_percent() -> None:
    # Merz et al., Blood Cancer J 2024;14:214: ORR "64%" for teclistamab, group of 37
    # (Table 1): 23/37 = 62.16%, 24/37 = 64.86%.
    assert list(matching_counts(37, "64")) == []
    assert list(matching_counts(28, "79")) == [22]  # 22/28 = 78.57%
    assert list(matching_counts(10, "0")) == [0]
    assert list(matching_counts(3, "100")) == [3]


# ---------------------------------------------------------------- rules inside a study


def _messages(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    study = Study.model_validate(data)
    return [(f.level, format_path(f.path), f.message) for f in check_study(study)]


def test_clean_study_has_no_findings() -> None:
    assert _messages(_study()) == []


def test_derived_count_without_percent_is_allowed_when_explained() -> None:
    data = _study()
    data["groups"][0]["outcomes"][0].update(
        {"percent": None, "derived": True, "derivation": "CR 3 + VGPR 2"}
    )
    assert _messages(data) == []


# ---------------------------------------------------------------- JSON Schema


def test_json_schema_lists_every_vocabulary() -> None:
    schema = json_schema()
    text = json.dumps(schema)
    assert schema["$schema"].startswith("https://json-schema.org/")
    defs = schema["$defs"]
    group = defs["Group"]["properties"]
    assert group["modality"]["enum"] == list(vocab.MODALITIES)
    assert group["target"]["items"]["enum"] == list(vocab.TARGETS)
    assert group["setting"]["enum"] == list(vocab.SETTINGS)
    assert group["unit"]["enum"] == list(vocab.UNITS)
    assert defs["Outcome"]["properties"]["outcome"]["enum"] == list(vocab.OUTCOMES)
    assert schema["properties"]["population"]["enum"] == list(vocab.POPULATIONS)
    assert group["modality"]["enumDescriptions"] == list(vocab.MODALITIES.values())
    for definition in vocab.TARGETS.values():
        assert json.dumps(definition)[1:-1] in text
    assert defs["Outcome"]["additionalProperties"] is False


def test_schema_command_writes_valid_json(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sub" / "extraction.schema.json"
    assert main(["schema", "--out", str(out)]) == 1  # no folder is created silently
    assert not out.parent.exists()
    out.parent.mkdir()
    capsys.readouterr()
    assert main(["schema", "--out", str(out)]) == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(json_schema()))
    capsys.readouterr()
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "GPRC5D" in printed["$defs"]["Group"]["properties"]["target"]["items"]["enum"]


# ---------------------------------------------------------------- the format document

FORMAT_DOC = Path(__file__).resolve().parents[1] / "docs" / "extraction-format.md"


def test_format_document_lists_every_vocabulary_value_with_its_definition() -> None:
    text = FORMAT_DOC.read_text(encoding="utf-8")
    for terms in vocab.VOCABULARIES.values():
        for value, definition in terms.items():
            assert f"| `{value}` | {definition} |" in text
    for agent, definition in vocab.AGENTS.items():
        assert f"| `{agent}` | {definition} |" in text


def test_format_document_example_is_a_valid_file() -> None:
    text = FORMAT_DOC.read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    study, _, problems = parse_study(example, "example.yaml")
    assert problems == []
    assert study is not None
    assert study.groups[0].outcomes[0].percent == "71.4"
