"""The workbook's layout: sheet names, limits, and the columns of each sheet.

The columns are derived from the schema (:mod:`metaresp.fields`): a field added to
:class:`~metaresp.schema.Study`, :class:`~metaresp.schema.Group` or
:class:`~metaresp.schema.Outcome` becomes a column with no edit here; this module only
adds widths and sheet-specific wording of the README lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from metaresp._cellsafe import FORMULA_START
from metaresp.fields import Field, Kind, group_fields, outcome_fields, study_fields

__all__ = [
    "EXAMPLE_ID",
    "EXCEL_CELL_CHARS",
    "GROUP_COLUMNS",
    "GROUP_ID",
    "LISTS",
    "MAX_COLUMNS",
    "MAX_FILE_BYTES",
    "MAX_ROWS",
    "MAX_XML_BYTES",
    "OUTCOMES",
    "OUTCOME_COLUMNS",
    "README",
    "RECORD_COLUMNS",
    "STUDIES",
    "STUDY_COLUMNS",
    "Column",
    "Kind",
    "columns_for",
]

STUDIES = "Studies"
OUTCOMES = "Outcomes"
README = "README"
LISTS = "Lists"

#: Largest workbook file read (bytes). Extraction workbooks are a few hundred kB.
MAX_FILE_BYTES = 50 * 2**20
#: Largest total of uncompressed worksheet and shared-string XML (guards against zip bombs).
MAX_XML_BYTES = 200 * 2**20
#: Most data rows per sheet (one header row comes on top).
MAX_ROWS = 10_000
#: Most columns per sheet.
MAX_COLUMNS = 60
#: Excel's limit on the characters of one cell.
EXCEL_CELL_CHARS = 32_767
#: The study id of the template's example rows; importing them is refused.
EXAMPLE_ID = "example-2024"


@dataclass(frozen=True)
class Column:
    """One workbook column: header, how its cells are read, and its README line."""

    name: str
    kind: Kind
    required: bool
    width: float
    doc: str
    vocabulary: str | None = None
    field: Field | None = None
    """The schema field behind the column (``None`` for the Outcomes sheet's ``study``)."""


# Sheet-specific wording of the README line: "{}" stands for the schema's description
# (fields without one get the text as it is). A field missing here is explained by its
# schema description alone.
_STUDY_DOCS: dict[str, str] = {
    "citation": "full reference of the report, as in a bibliography",
    "doi": "the report's DOI, e.g. 10.1182/blood.2022017848",
    "year": "year of the report (1900-2100)",
    "design": "study design, e.g. retrospective cohort, phase 1 trial",
    "centres": "number of centres (whole number >= 1)",
    "population": "who was treated",
    "via_review_authors": "when the numbers reach us through a review: {}",
    "notes": "free text about the study",
}
_GROUP_DOCS: dict[str, str] = {
    "id": "group id, {}",
    "agents": "agent names separated by ';' (known synonyms are normalised, e.g. 'tec' -> "
    "'teclistamab'); the dropdown lists the known agents",
    "modality": "treatment modality",
    "target": "one or more targets separated by ';'",
    "setting": "which salvage line",
    "unit": "what the counts count",
    "population": "{} (empty: the study's)",
    "cohort": "{} (empty: the study's)",
    "components": "{}; separated by ';'",
}
_RECORD_DOCS: dict[str, str] = {
    "outcome": "which response",
    "derived": "{} (TRUE/FALSE)",
}
# Column widths (Excel character units); other columns get the width of their kind.
_STUDY_WIDTHS: dict[str, float] = {
    "id": 24,
    "citation": 60,
    "doi": 28,
    "year": 8,
    "published": 12,
    "design": 22,
    "centres": 9,
    "population": 24,
    "cohort": 26,
    "source": 36,
    "via_review_authors": 20,
    "via_review_year": 10,
    "via_review_reference": 12,
    "notes": 60,
}
_GROUP_WIDTHS: dict[str, float] = {
    "study": 24,
    "group_id": 22,
    "name": 30,
    "agents": 24,
    "modality": 16,
    "target": 14,
    "setting": 14,
    "unit": 10,
    "population": 24,
    "cohort": 22,
    "components": 18,
}
_RECORD_WIDTHS: dict[str, float] = {
    "outcome": 10,
    "responders": 11,
    "evaluable": 11,
    "percent": 10,
    "derived": 9,
    "derivation": 30,
    "note": 30,
    "quote": 60,
    "location": 22,
}
_KIND_WIDTHS: dict[str, float] = {"text": 30, "list": 18, "slug": 22, "term": 16}
GROUP_ID = "group_id"
"""Header of the group's ``id`` on the Outcomes sheet (``id`` is the study's)."""


def _doc(field: Field, wording: Mapping[str, str]) -> str:
    template = wording.get(field.name, "{}")
    text = template.format(field.description) if "{}" in template else template
    return text.replace("null", "empty")


def columns_for(
    fields: Sequence[Field],
    wording: Mapping[str, str],
    widths: Mapping[str, float],
    rename: Mapping[str, str] | None = None,
) -> tuple[Column, ...]:
    """One column per schema field, in the model's order (``rename``: header names that
    differ from the field's flat name)."""
    names = rename or {}
    out: list[Column] = []
    for f in fields:
        name = names.get(f.name, f.name)
        out.append(
            Column(
                name,
                f.kind,
                f.required,
                widths.get(name, _KIND_WIDTHS.get(f.kind, 11)),
                _doc(f, wording),
                f.vocabulary,
                f,
            )
        )
    return tuple(out)


STUDY_COLUMNS: tuple[Column, ...] = columns_for(study_fields(), _STUDY_DOCS, _STUDY_WIDTHS)
"""The Studies sheet: every field of :class:`~metaresp.schema.Study`, ``via_review``
flattened."""

GROUP_COLUMNS: tuple[Column, ...] = (
    Column(
        "study",
        "slug",
        True,
        _GROUP_WIDTHS["study"],
        "id of the study (a row of the Studies sheet)",
    ),
    *columns_for(group_fields(), _GROUP_DOCS, _GROUP_WIDTHS, {"id": GROUP_ID}),
)
"""The group's columns of the Outcomes sheet: the study id, then every field of
:class:`~metaresp.schema.Group` (its ``id`` as ``group_id``)."""

RECORD_COLUMNS: tuple[Column, ...] = columns_for(outcome_fields(), _RECORD_DOCS, _RECORD_WIDTHS)
"""The record's columns of the Outcomes sheet: every field of
:class:`~metaresp.schema.Outcome`."""

OUTCOME_COLUMNS: tuple[Column, ...] = GROUP_COLUMNS + RECORD_COLUMNS

_UNWRAPPED = frozenset({"doi", "design", "source", "via_review_authors"})
_WRAPPED = frozenset(
    c.name
    for c in (*STUDY_COLUMNS, *OUTCOME_COLUMNS)
    if c.kind == "text" and c.name not in _UNWRAPPED
)
"""Free-text columns shown wrapped (short one-line texts are not)."""
_FORMULA_START = FORMULA_START

_CONVENTIONS: tuple[str, ...] = (
    "One header row per sheet; columns are found by their header, in any order.",
    "Studies: one row per study. Outcomes: one row per group x outcome; the group's columns "
    "(study to components) are repeated on every row of the group and must be identical.",
    "Empty cell = empty optional field (null in the extraction file). The format has no empty "
    "texts, so an empty cell never stands for an empty string. An empty required cell is an "
    "error.",
    "Lists (agents, target, components): separate items with ';' (or put each on its own line).",
    "percent: type it as text exactly as printed ('64.0' is not '64'); a trailing % is "
    "dropped. The column is formatted as text for that reason.",
    "derived: TRUE or FALSE (yes/no and 1/0 are accepted; empty means FALSE).",
    "Spaces around ids, vocabulary terms, numbers and percentages are removed; free text "
    "(citation, design, source, notes, name, derivation, note, quote, location) is kept "
    "exactly, spaces and line breaks included.",
    "Numbers typed as text (e.g. '12') are accepted in count and year columns.",
    "Text beginning with = + - or @ is stored as text (with Excel's quote prefix): it is "
    "never run as a formula and is imported unchanged.",
    "Formulas: the value Excel last computed is imported; a formula without a computed value "
    "is rejected. Dates typed into 'published' are rejected: type YYYY, YYYY-MM or YYYY-MM-DD "
    "as text.",
    f"The rows of study '{EXAMPLE_ID}' are an example: replace them with your own rows "
    "(importing them is refused).",
    f"Limits: {MAX_ROWS} data rows per sheet, {MAX_FILE_BYTES // 2**20} MB per file.",
)
