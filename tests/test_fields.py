"""The schema models are the one list of the record's fields.

Every field of every model must reach the workbook's columns, the corpus frame and the
fingerprint ``metaresp diff`` compares; a field added to a model copy must show up in all
three derivations with no other edit; lists reach the analysis as lists.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model

from metaresp import fields, living, workbook
from metaresp.analysis import REQUIRED_COLUMNS
from metaresp.corpus import FRAME_COLUMNS, Corpus
from metaresp.plan import Grouping
from metaresp.records import records_from_corpus
from metaresp.schema import Group, Outcome, Study, ViaReview


def _leaf_names(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Flat names of every field that holds a value (nested models walked by hand here,
    independently of :mod:`metaresp.fields`)."""
    nested = {"via_review": ViaReview}
    collections = {"groups", "outcomes"}
    out: set[str] = set()
    for name in model.model_fields:
        if name in collections:
            continue
        if name in nested:
            out |= _leaf_names(nested[name], f"{prefix}{name}_")
        else:
            out.add(prefix + name)
    return out


def _frame_name(level: str, name: str) -> str:
    renamed = {
        ("study", "id"): "study",
        ("group", "id"): "group_id",
        ("group", "name"): "group",
        ("group", "agents"): "agent",
        ("outcome", "percent"): "percent_text",
    }
    return renamed.get((level, name), name)


LEVELS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("study", Study),
    ("group", Group),
    ("outcome", Outcome),
)


def test_every_schema_field_is_a_workbook_column() -> None:
    studies = {c.name for c in workbook.STUDY_COLUMNS}
    outcomes = {c.name for c in workbook.OUTCOME_COLUMNS}
    assert _leaf_names(Study) <= studies
    assert {("group_id" if n == "id" else n) for n in _leaf_names(Group)} <= outcomes
    assert _leaf_names(Outcome) <= outcomes


def test_every_schema_field_is_a_frame_column_and_reaches_the_diff() -> None:
    diffed = set(living.RECORD_FIELDS) | set(living.TEXT_FIELDS)
    for level, model in LEVELS:
        for name in _leaf_names(model):
            column = _frame_name(level, name)
            assert column in FRAME_COLUMNS, (level, name)
            assert column in diffed, (level, name)


def test_the_analysis_reads_only_frame_columns() -> None:
    assert set(REQUIRED_COLUMNS) <= set(FRAME_COLUMNS)
    assert set(fields.COMPARED_FIELDS) <= set(FRAME_COLUMNS)


def _with_comment(model: type[BaseModel]) -> type[BaseModel]:
    extra: Any = (str | None, Field(default=None, description="a new free-text field"))
    return create_model(f"{model.__name__}WithComment", __base__=model, comment=extra)


def test_a_field_added_to_a_model_copy_appears_everywhere() -> None:
    outcome = _with_comment(Outcome)
    (comment,) = [f for f in fields.outcome_fields(outcome) if f.name == "comment"]
    assert (comment.kind, comment.required, comment.description) == (
        "text",
        False,
        "a new free-text field",
    )

    columns = fields.frame_columns(outcome=outcome)
    assert "comment" in [c.name for c in columns]
    assert "comment" in fields.digest_fields(columns)

    sheet = workbook._layout.columns_for(fields.outcome_fields(outcome), {}, {})
    (column,) = [c for c in sheet if c.name == "comment"]
    assert (column.kind, column.required, column.doc) == ("text", False, "a new free-text field")

    study = _with_comment(Study)
    assert "comment" in [f.name for f in fields.study_fields(study)]
    assert "comment" in [c.name for c in fields.frame_columns(study=study)]


def _study(agents: list[str], notes: str | None = None) -> Study:
    return Study.model_validate(
        {
            "id": "alpha-2023",
            "citation": "Alpha A, Beta B. A test. J. 2023.",
            "year": 2023,
            "design": "retrospective cohort",
            "population": "post-bcma-cart",
            "cohort": "alpha",
            "source": "test.txt",
            "notes": notes,
            "groups": [
                {
                    "id": "dual",
                    "name": "Dual-target CAR-T",
                    "agents": agents,
                    "modality": "CAR-T",
                    "target": ["BCMA", "SLAMF7"],
                    "setting": "any-line",
                    "unit": "patients",
                    "outcomes": [
                        {
                            "outcome": "ORR",
                            "responders": 3,
                            "evaluable": 5,
                            "quote": "3 of 5",
                            "location": "Table 1",
                        }
                    ],
                }
            ],
        }
    )


def test_an_agent_name_with_a_slash_stays_one_agent() -> None:
    corpus = Corpus.from_studies([_study(["CS1/BCMA CAR-T"])])
    (record,) = records_from_corpus(corpus)
    assert record.attributes["agent"] == frozenset({"cs1/bcma car-t"})
    assert record.attributes["target"] == frozenset({"bcma", "slamf7"})
    single = Grouping.model_validate(
        {
            "title": "agents",
            "classes": {"single agent": {"agent": {"count": 1}}},
            "other": "several agents",
        }
    )
    assert single.classify(record.attributes) == "single agent"


def test_records_from_the_corpus_match_the_frame() -> None:
    corpus = Corpus.from_studies([_study(["teclistamab", "daratumumab"])])
    (record,) = records_from_corpus(corpus)
    frame = corpus.to_frame()
    (row,) = frame.to_dict("records")
    assert record.record_id == row["record"] == "alpha-2023/dual/ORR"
    assert (record.events, record.total) == (row["responders"], row["evaluable"]) == (3, 5)
    assert record.attributes["agent"] == frozenset({"teclistamab", "daratumumab"})
    assert row["agent"] == "teclistamab+daratumumab"
    assert record.label == "Alpha 2023 · Dual-target CAR-T"


def test_an_edit_of_a_study_text_field_shows_in_the_diff() -> None:
    before = living.record_table(Corpus.from_studies([_study(["x"])]).to_frame())
    after = living.record_table(Corpus.from_studies([_study(["x"], notes="corrected")]).to_frame())
    (rid,) = before
    assert before[rid]["digest"] != after[rid]["digest"]
    state = {"analyses": [], living.RECORDS_KEY: before}
    new = {"analyses": [], living.RECORDS_KEY: after}
    (change,) = living.compare(state, new).records
    assert change.kind == "edited"
    assert [(f.field, f.old, f.new) for f in change.fields] == [("notes", None, "corrected")]
    # a state that keeps only the digests (written before the texts were kept)
    digests_only = {
        r: {k: v for k, v in e.items() if k != living.TEXTS_KEY} for r, e in before.items()
    }
    (change,) = living.compare({"analyses": [], living.RECORDS_KEY: digests_only}, new).records
    assert [f.field for f in change.fields] == ["text"]


def test_digests_of_another_fingerprint_scheme_are_not_compared() -> None:
    table = living.record_table(Corpus.from_studies([_study(["x"])]).to_frame())
    (rid,) = table
    older = {rid: {**table[rid], "digest": "written-by-an-older-scheme"}}
    old = {"analyses": [], living.RECORDS_KEY: older}  # no scheme key: an older state
    new = {
        "analyses": [],
        living.RECORDS_KEY: table,
        living.FINGERPRINT_KEY: living.FINGERPRINT_VERSION,
    }
    diff = living.compare(old, new)
    assert diff.records == ()
    assert any("fingerprint their records differently" in n for n in diff.notes)
    # a count edit is still found across schemes
    edited = {rid: {**older[rid], "responders": 2}}
    (change,) = living.compare({**old, living.RECORDS_KEY: edited}, new).records
    assert [(f.field, f.old, f.new) for f in change.fields] == [("responders", 2, 3)]
