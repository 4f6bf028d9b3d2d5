"""The record's fields, read from the pydantic models of :mod:`metaresp.schema`.

The models are the one place where a field of the extraction format is named and
described. Everything that lists fields (the workbook's columns, the columns of
``Corpus.to_frame()``, the fields ``metaresp diff`` compares) is derived here from
``Model.model_fields`` and the model's JSON Schema, so a field added to a model shows up
in all of them without another edit.

Three levels hold fields: the study (:class:`~metaresp.schema.Study`, with a nested
single model such as ``via_review`` flattened to ``via_review_authors`` ...), the group
(:class:`~metaresp.schema.Group`) and the outcome record (:class:`~metaresp.schema.Outcome`).
Nested collections (``groups``, ``outcomes``) are levels, not fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from metaresp import vocab
from metaresp.schema import (
    PERCENT_PATTERN,
    PUBLISHED_PATTERN,
    SLUG_PATTERN,
    Group,
    Outcome,
    Study,
)

__all__ = [
    "ANALYSIS_FIELDS",
    "COMPARED_FIELDS",
    "Field",
    "FrameColumn",
    "Kind",
    "Level",
    "attribute",
    "digest_fields",
    "fields_of",
    "frame_columns",
    "group_fields",
    "outcome_fields",
    "study_fields",
]

Kind = Literal["slug", "term", "text", "count", "list", "percent", "bool", "published"]
"""How a value is written and read: a slug, a vocabulary term, free text, a whole number,
a list of items, a percentage as printed, a logical value, or a publication date."""

Level = Literal["study", "group", "outcome"]

ANALYSIS_FIELDS: tuple[str, ...] = (
    "study",
    "cohort",
    "population",
    "setting",
    "group",
    "agent",
    "modality",
    "target",
    "unit",
    "outcome",
    "responders",
    "evaluable",
)
"""Columns of ``Corpus.to_frame()`` that :mod:`metaresp.analysis` reads to select, group
and pool a record (frame names; a test checks each is a frame column)."""

COMPARED_FIELDS: tuple[str, ...] = (*ANALYSIS_FIELDS, "derived", "year", "published")
"""Frame columns that can move an estimate (selection, grouping, pooling, the choice of
the latest report): ``metaresp diff`` compares them one by one; every other field of a
record is folded into one digest (:func:`digest_fields`)."""

_PATTERN_KINDS: dict[str, Kind] = {
    SLUG_PATTERN: "slug",
    PERCENT_PATTERN: "percent",
    PUBLISHED_PATTERN: "published",
}


@dataclass(frozen=True)
class Field:
    """One field of the extraction format at one level.

    ``name`` is the flat name (``via_review_authors``); ``path`` the attributes that lead
    to the value from an object of the level (``("via_review", "authors")``); ``required``
    is true when a valid object must have a value (a field of an optional nested model is
    never required); ``description`` is the model's field description ("" without one).
    """

    name: str
    path: tuple[str, ...]
    level: Level
    kind: Kind
    required: bool
    description: str
    vocabulary: str | None = None
    minimum: int | None = None
    """The smallest allowed value of a whole-number field (``None``: no bound)."""
    maximum: int | None = None
    """The largest allowed value of a whole-number field (``None``: no bound)."""


def _branch(prop: Mapping[str, Any]) -> Mapping[str, Any]:
    """The non-null branch of an optional property (``anyOf: [X, null]``)."""
    options = [p for p in prop.get("anyOf", ()) if p.get("type") != "null"]
    return options[0] if len(options) == 1 else prop


def _vocabulary(prop: Mapping[str, Any]) -> str | None:
    enum = prop.get("enum")
    if enum is None:
        return None
    for name, terms in vocab.VOCABULARIES.items():
        if list(terms) == list(enum):
            return name
    return None


def _kind(prop: Mapping[str, Any]) -> tuple[Kind, str | None]:
    prop = _branch(prop)
    kind = prop.get("type")
    if kind == "array":
        return "list", _vocabulary(prop.get("items", {}))
    if kind == "integer":
        return "count", None
    if kind == "boolean":
        return "bool", None
    term = _vocabulary(prop)
    if term is not None:
        return "term", term
    return _PATTERN_KINDS.get(str(prop.get("pattern", "")), "text"), None


def _is_model(candidate: object) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _nested(model: type[BaseModel], name: str) -> tuple[type[BaseModel] | None, bool]:
    """(the model class a field holds, whether it holds a collection of models)."""
    annotation = model.model_fields[name].annotation
    options = (
        get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    )
    for option in options:
        if _is_model(option):
            return option, False
        if get_origin(option) in (tuple, list) and any(_is_model(a) for a in get_args(option)):
            return None, True
    return None, False


def fields_of(model: type[BaseModel], level: Level) -> tuple[Field, ...]:
    """Every field of ``model`` in declaration order, nested single models flattened
    (``via_review`` -> ``via_review_authors``, ...), nested collections left out."""
    schema = model.model_json_schema(ref_template="{model}")
    defs = schema.get("$defs", {})
    out: list[Field] = []

    def add(
        m: type[BaseModel], props: Mapping[str, Any], prefix: tuple[str, ...], optional: bool
    ) -> None:
        for name, info in m.model_fields.items():
            inner, collection = _nested(m, name)
            if collection:
                continue
            prop = props.get(name, {})
            if inner is not None:
                nested_props = defs.get(inner.__name__, {}).get("properties", {})
                add(inner, nested_props, (*prefix, name), optional or not info.is_required())
                continue
            kind, vocabulary = _kind(prop)
            path = (*prefix, name)
            out.append(
                Field(
                    name="_".join(path),
                    path=path,
                    level=level,
                    kind=kind,
                    required=info.is_required() and not optional,
                    description=info.description or "",
                    vocabulary=vocabulary,
                    minimum=_branch(prop).get("minimum"),
                    maximum=_branch(prop).get("maximum"),
                )
            )

    add(model, schema.get("properties", {}), (), False)
    return tuple(out)


def study_fields(model: type[BaseModel] = Study) -> tuple[Field, ...]:
    """The study-level fields (:class:`~metaresp.schema.Study`)."""
    return fields_of(model, "study")


def group_fields(model: type[BaseModel] = Group) -> tuple[Field, ...]:
    """The group-level fields (:class:`~metaresp.schema.Group`)."""
    return fields_of(model, "group")


def outcome_fields(model: type[BaseModel] = Outcome) -> tuple[Field, ...]:
    """The fields of one outcome record (:class:`~metaresp.schema.Outcome`)."""
    return fields_of(model, "outcome")


def attribute(obj: object, field: Field) -> Any:
    """The value of ``field`` on ``obj`` (``None`` when a nested model on the way is
    empty)."""
    value: Any = obj
    for part in field.path:
        if value is None:
            return None
        value = getattr(value, part)
    return value


# --------------------------------------------------------------------------- frame columns


@dataclass(frozen=True)
class FrameColumn:
    """One column of ``Corpus.to_frame()``: a schema field's value (lists joined with
    ``join``), or, without a field, one the corpus adds (``record``, ``file``, ``line``).

    A group field that shares its name with a study field (``population``, ``cohort``)
    holds the group's value where it has one, else the study's.
    """

    name: str
    field: Field | None = None
    join: str = "+"
    number: bool = False
    """The percentage parsed as a float (``percent``; ``percent_text`` keeps the text)."""
    copy: bool = False
    """A second view of a field another column holds (``agents``, ``percent``)."""


_FRAME_NAMES: dict[tuple[Level, str], str] = {
    ("study", "id"): "study",
    ("group", "id"): "group_id",
    ("group", "name"): "group",
    ("group", "agents"): "agent",
    ("outcome", "percent"): "percent_text",
}
"""Frame names that differ from the field's flat name (the names users know: ``study``,
``group``, ``agent`` ...)."""


def frame_columns(
    study: type[BaseModel] = Study,
    group: type[BaseModel] = Group,
    outcome: type[BaseModel] = Outcome,
) -> tuple[FrameColumn, ...]:
    """The columns of ``Corpus.to_frame()`` in order: ``record``, the study id, every group
    field, every outcome field, the other study fields, then ``file`` and ``line``.

    ``agents`` (the agents joined with ", ") follows ``agent`` (joined with "+"), and
    ``percent`` (a float) precedes ``percent_text`` (as printed).
    """
    levels: tuple[tuple[Level, tuple[Field, ...]], ...] = (
        ("group", group_fields(group)),
        ("outcome", outcome_fields(outcome)),
    )
    studies = study_fields(study)
    out: list[FrameColumn] = [FrameColumn("record")]
    out.extend(FrameColumn("study", f) for f in studies if f.name == "id")
    taken = {"record", "study"}
    for level, fields in levels:
        for f in fields:
            name = _FRAME_NAMES.get((level, f.name), f.name)
            if f.kind == "percent":
                out.append(FrameColumn("percent", f, number=True, copy=True))
            out.append(FrameColumn(name, f))
            if name == "agent":
                out.append(FrameColumn("agents", f, join=", ", copy=True))
            taken.update(c.name for c in out[-2:])
    out.extend(FrameColumn(f.name, f) for f in studies if f.name not in taken and f.name != "id")
    out.extend((FrameColumn("file"), FrameColumn("line")))
    return tuple(out)


def digest_fields(columns: tuple[FrameColumn, ...] | None = None) -> tuple[str, ...]:
    """Frame columns of schema fields that :data:`COMPARED_FIELDS` leaves out (the copies
    ``agents`` and ``percent`` aside): edits there move no estimate, and ``metaresp diff``
    reports them through one digest."""
    cols = frame_columns() if columns is None else columns
    return tuple(
        c.name for c in cols if c.field is not None and not c.copy and c.name not in COMPARED_FIELDS
    )
