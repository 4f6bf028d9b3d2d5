"""The extraction corpus as an Excel workbook: template, import and export.

Layout (one header row per sheet, frozen; columns found by header name, in any order):

* **Studies**: one row per study, the study-level fields of the extraction format;
  ``via_review`` is split into ``via_review_authors``, ``via_review_year`` and
  ``via_review_reference``.
* **Outcomes**: long, one row per group × outcome. The group's columns (``study``,
  ``group_id``, ``name``, ``agents``, ``modality``, ``target``, ``setting``, ``unit``,
  ``population``, ``cohort``, ``components``) are repeated on each of its rows and must be
  the same on all of them; rows of one group need not be adjacent. Groups keep the order of
  their first row, outcome records the order of their rows.
* **README**: every column explained (from :mod:`metaresp.vocab` and the model field docs),
  and the conventions below.
* **Lists** (hidden): the controlled vocabularies that feed the dropdowns.

Conventions (also written on the README sheet):

* An empty cell is an empty optional field (``null`` in the YAML file). The extraction
  format has no empty text (every text field needs at least one character), so ``null``
  versus ``""`` cannot be confused; an empty required cell is an error.
* Lists (``agents``, ``target``, ``components``) are separated by ``;``, or by line breaks
  (used on export when an item itself contains ``;``).
* ``percent`` is text, exactly as printed (``"64"`` and ``"64.0"`` differ); a trailing
  ``%`` is dropped. A number cell is accepted, but a number cannot remember trailing zeros.
* ``derived`` is TRUE/FALSE (also accepted: yes/no, 1/0; empty means FALSE).
* Whitespace: identifiers, vocabulary terms, counts and percentages are stripped on
  purpose; free text (citation, design, source, notes, name, derivation, note, quote,
  location) is kept exactly, spaces and line breaks included.
* Numbers typed as text (``"12"``) are accepted in count and year columns on purpose.
* Text that Excel would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or
  carriage return) is written as a text cell with Excel's quote-prefix style, so Excel
  shows it and never evaluates it; it reads back unchanged.
* Characters XML cannot hold (control characters, carriage return) are written with the
  Office Open XML escape ``_xHHHH_`` (ECMA-376 Part 1, §22.9.2.19 ST_Xstring), and a literal
  ``_xHHHH_`` in the text as ``_x005F_xHHHH_``; Excel does the same, so the text survives
  both ways.
* Formula cells: the value Excel computed and stored is used; a formula without a stored
  value (a workbook written by a program) is rejected by cell.

Guards: files above :data:`MAX_FILE_BYTES`, sheets above :data:`MAX_ROWS` data rows or
:data:`MAX_COLUMNS` columns, and sheet XML above :data:`MAX_XML_BYTES` uncompressed are
refused before any parsing, with one line saying so.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import re
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from metaresp import vocab
from metaresp.corpus import Corpus, Problem, check_extractions, dump_study
from metaresp.errors import InputError
from metaresp.files import write_bytes_atomic
from metaresp.schema import Group, Outcome, Study, ViaReview, format_path

if TYPE_CHECKING:  # pragma: no cover
    from openpyxl.workbook.workbook import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

__all__ = [
    "MAX_COLUMNS",
    "MAX_FILE_BYTES",
    "MAX_ROWS",
    "MAX_XML_BYTES",
    "OUTCOME_COLUMNS",
    "STUDY_COLUMNS",
    "Change",
    "ImportResult",
    "import_workbook",
    "read_workbook",
    "write_template",
    "write_workbook",
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

Kind = Literal["slug", "term", "text", "count", "list", "percent", "bool", "published"]


@dataclass(frozen=True)
class Column:
    """One workbook column: header, how its cells are read, and its README line."""

    name: str
    kind: Kind
    required: bool
    width: float
    doc: str
    vocabulary: str | None = None


def _doc(model: type[BaseModel], name: str, fallback: str = "") -> str:
    info = model.model_fields.get(name)
    text = info.description if info is not None and info.description else fallback
    return text.replace("null", "empty")


STUDY_COLUMNS: tuple[Column, ...] = (
    Column("id", "slug", True, 24, _doc(Study, "id")),
    Column("citation", "text", True, 60, "full reference of the report, as in a bibliography"),
    Column("doi", "text", False, 28, "the report's DOI, e.g. 10.1182/blood.2022017848"),
    Column("year", "count", True, 8, "year of the report (1900-2100)"),
    Column("published", "published", False, 12, _doc(Study, "published")),
    Column("design", "term", True, 22, "study design", "design"),
    Column("centres", "count", False, 9, "number of centres (whole number >= 1)"),
    Column("population", "term", True, 24, "who was treated", "population"),
    Column("cohort", "slug", True, 26, _doc(Study, "cohort")),
    Column("source", "text", True, 36, _doc(Study, "source")),
    Column(
        "via_review_authors",
        "text",
        False,
        20,
        "when the numbers reach us through a review: " + _doc(ViaReview, "authors"),
    ),
    Column("via_review_year", "count", False, 10, _doc(ViaReview, "year")),
    Column("via_review_reference", "count", False, 12, _doc(ViaReview, "reference")),
    Column("notes", "text", False, 60, "free text about the study"),
    Column("design_detail", "text", False, 30, _doc(Study, "design_detail")),
)

GROUP_COLUMNS: tuple[Column, ...] = (
    Column("study", "slug", True, 24, "id of the study (a row of the Studies sheet)"),
    Column("group_id", "slug", True, 22, "group id, " + _doc(Group, "id")),
    Column("name", "text", True, 30, _doc(Group, "name")),
    Column(
        "agents",
        "list",
        True,
        24,
        "agent names separated by ';' (known synonyms are normalised, e.g. 'tec' -> "
        "'teclistamab'); the dropdown lists the known agents",
    ),
    Column("modality", "term", True, 16, "treatment modality", "modality"),
    Column("target", "list", True, 14, "one or more targets separated by ';'", "target"),
    Column("setting", "term", True, 14, "which salvage line", "setting"),
    Column("unit", "term", True, 10, "what the counts count", "unit"),
    Column(
        "population",
        "term",
        False,
        24,
        _doc(Group, "population") + " (empty: the study's)",
        "population",
    ),
    Column("cohort", "slug", False, 22, _doc(Group, "cohort") + " (empty: the study's)"),
    Column("components", "list", False, 18, _doc(Group, "components") + "; separated by ';'"),
)

# Group columns added with the study-design fields; they stand after the record columns so
# that the older columns keep their letters.
_GROUP_EXTRA: tuple[Column, ...] = (
    Column("mixed", "term", False, 16, _doc(Group, "mixed"), "mixed"),
    Column("shares_patients_with", "list", False, 24,
           _doc(Group, "shares_patients_with") + "; separated by ';'"),
)

RECORD_COLUMNS: tuple[Column, ...] = (
    Column("outcome", "term", True, 10, "which response", "outcome"),
    Column("responders", "count", False, 11, _doc(Outcome, "responders")),
    Column("evaluable", "count", False, 11, _doc(Outcome, "evaluable")),
    Column("percent", "percent", False, 10, _doc(Outcome, "percent")),
    Column("derived", "bool", False, 9, _doc(Outcome, "derived") + " (TRUE/FALSE)"),
    Column("derivation", "text", False, 30, _doc(Outcome, "derivation")),
    Column("note", "text", False, 30, _doc(Outcome, "note")),
    Column("quote", "text", True, 60, _doc(Outcome, "quote")),
    Column("location", "text", True, 22, _doc(Outcome, "location")),
)

# Record column added with the sensitivity analyses; it stands last, so that the older
# columns keep their letters.
_RECORD_EXTRA: tuple[Column, ...] = (
    Column("alternatives", "list", False, 12, _doc(Outcome, "alternatives") + "; separated by ';'"),
)

OUTCOME_COLUMNS: tuple[Column, ...] = (GROUP_COLUMNS + RECORD_COLUMNS + _GROUP_EXTRA
                                       + _RECORD_EXTRA)
GROUP_COLUMNS = GROUP_COLUMNS + _GROUP_EXTRA
RECORD_COLUMNS = RECORD_COLUMNS + _RECORD_EXTRA

_WRAPPED = frozenset({"citation", "notes", "name", "derivation", "note", "quote", "location"})
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# --------------------------------------------------------------------------- text escapes

# XML 1.0 cannot hold these; CR is listed because XML parsers turn it into LF.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ufffe\uffff]")
_ESCAPE_LIKE = re.compile("_(x[0-9A-Fa-f]{4}_)")
_ESCAPED = re.compile("_x([0-9A-Fa-f]{4})_")


def escape_text(text: str) -> str:
    """Office Open XML cell-text escape (ST_Xstring): unsafe characters as ``_xHHHH_``,
    a literal ``_xHHHH_`` as ``_x005F_xHHHH_``. :func:`unescape_text` inverts it."""
    text = _ESCAPE_LIKE.sub(r"_x005F_\1", text)
    return _UNSAFE.sub(lambda m: f"_x{ord(m.group(0)):04X}_", text)


def unescape_text(text: str) -> str:
    """Inverse of :func:`escape_text` (and of Excel's own escaping)."""
    if "_x" not in text:
        return text
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


# --------------------------------------------------------------------------- writing


def _list_text(items: Sequence[str]) -> str:
    if not any(";" in item for item in items):
        return "; ".join(items)
    text = "\n".join(items)
    return text if len(items) > 1 else text + "\n"


def _cell_value(value: object, column: Column) -> object:
    if value is None:
        return None
    if column.kind == "list":
        assert isinstance(value, tuple)
        return _list_text([str(v) for v in value]) if value else None
    return value


def _put(ws: Worksheet, row: int, col: int, value: object, where: str) -> None:
    from openpyxl.styles import Alignment

    if value is None:
        return
    cell = ws.cell(row=row, column=col)
    if isinstance(value, str):
        if len(value) > EXCEL_CELL_CHARS:
            raise InputError(
                f"{where}: text of {len(value)} characters is longer than an Excel cell "
                f"holds ({EXCEL_CELL_CHARS})"
            )
        cell.value = escape_text(value)
        cell.data_type = "s"  # never a formula, whatever the first character
        if value.startswith(_FORMULA_START):
            cell.quotePrefix = True
        cell.number_format = "@"
        if "\n" in value or ws.cell(row=1, column=col).value in _WRAPPED:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    else:
        cell.value = value  # type: ignore[assignment]


def _header(ws: Worksheet, columns: Sequence[Column]) -> None:
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    fill = PatternFill("solid", fgColor="DDEBF7")
    for ci, column in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=ci, value=column.name)
        cell.font = Font(bold=True)
        cell.fill = fill
        letter = get_column_letter(ci)
        dim = ws.column_dimensions[letter]
        dim.width = column.width
        if column.kind in ("text", "slug", "term", "list", "percent", "published"):
            dim.number_format = "@"  # Excel keeps what is typed ("64.0", "2023-02") as text
        if column.name in _WRAPPED:
            dim.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "C2" if ws.title == OUTCOMES else "B2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}1"


def _lists_sheet(wb: Workbook) -> dict[str, str]:
    """Fill the hidden Lists sheet; return field → absolute range of its values."""
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(LISTS)
    lists: dict[str, Sequence[str]] = {
        **{name: list(terms) for name, terms in vocab.VOCABULARIES.items()},
        "agents": list(vocab.AGENTS),
    }
    ranges: dict[str, str] = {}
    for ci, (name, values) in enumerate(lists.items(), start=1):
        letter = get_column_letter(ci)
        ws.cell(row=1, column=ci, value=name)
        for ri, value in enumerate(values, start=2):
            ws.cell(row=ri, column=ci, value=value).data_type = "s"
        ranges[name] = f"{LISTS}!${letter}$2:${letter}${len(values) + 1}"
    ws.sheet_state = "hidden"
    return ranges


def _validations(ws: Worksheet, columns: Sequence[Column], ranges: Mapping[str, str]) -> None:
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    last = MAX_ROWS + 1
    for ci, column in enumerate(columns, start=1):
        letter = get_column_letter(ci)
        dv: DataValidation | None = None
        if column.vocabulary is not None or column.name == "agents":
            source = ranges[column.vocabulary or "agents"]
            # Lists may hold several values ("BCMA; CD19") and agents are an open list:
            # their dropdowns suggest but do not forbid.
            strict = column.kind == "term"
            dv = DataValidation(
                type="list",
                formula1=source,
                allow_blank=True,
                showErrorMessage=True,
                errorStyle="stop" if strict else "information",
                errorTitle=column.name,
                error=f"{column.name}: choose a value from the list (see README)",
            )
        elif column.kind == "count":
            low = {"evaluable": 1, "centres": 1, "via_review_reference": 1}.get(column.name, 0)
            dv = DataValidation(
                type="whole",
                operator="between",
                formula1=str(1900 if "year" in column.name else low),
                formula2=str(2100 if "year" in column.name else 10**7),
                allow_blank=True,
                showErrorMessage=True,
                errorTitle=column.name,
                error=f"{column.name}: a whole number",
            )
        elif column.kind == "bool":
            dv = DataValidation(
                type="list",
                formula1='"TRUE,FALSE"',
                allow_blank=True,
                showErrorMessage=True,
                errorStyle="warning",
            )
        if dv is not None:
            dv.add(f"{letter}2:{letter}{last}")
            ws.add_data_validation(dv)


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


def _readme(wb: Workbook) -> None:
    from openpyxl.styles import Alignment, Font

    ws = wb.create_sheet(README)
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    for letter, width in zip("ABCDE", (12, 22, 10, 70, 60), strict=True):
        ws.column_dimensions[letter].width = width
    row = 1
    ws.cell(row=row, column=1, value="metaresp extraction workbook").font = Font(bold=True, size=14)
    row += 2
    ws.cell(row=row, column=1, value="Conventions").font = bold
    for line in _CONVENTIONS:
        row += 1
        cell = ws.cell(row=row, column=2, value=line)
        ws.merge_cells(start_row=row, start_column=2, end_row=row, end_column=5)
        cell.alignment = wrap
        ws.row_dimensions[row].height = 30
    row += 2
    for ci, title in enumerate(("sheet", "column", "required", "meaning", "allowed values"), 1):
        ws.cell(row=row, column=ci, value=title).font = bold
    for sheet, columns in ((STUDIES, STUDY_COLUMNS), (OUTCOMES, OUTCOME_COLUMNS)):
        for column in columns:
            row += 1
            allowed = {
                "count": "whole number",
                "bool": "TRUE or FALSE",
                "percent": 'text such as "71.4"',
                "published": "YYYY, YYYY-MM or YYYY-MM-DD",
                "slug": "lower-case letters, digits and '-'",
            }.get(column.kind, "")
            if column.vocabulary is not None:
                allowed = ", ".join(vocab.VOCABULARIES[column.vocabulary])
            values = (sheet, column.name, "yes" if column.required else "", column.doc, allowed)
            for ci, value in enumerate(values, 1):
                cell = ws.cell(row=row, column=ci, value=value)
                cell.data_type = "s"
                cell.alignment = wrap
    row += 2
    ws.cell(row=row, column=1, value="Controlled vocabularies").font = bold
    for name, terms in vocab.VOCABULARIES.items():
        for term, definition in terms.items():
            row += 1
            for ci, value in enumerate((name, term, "", definition), 1):
                cell = ws.cell(row=row, column=ci, value=value)
                cell.data_type = "s"
                cell.alignment = wrap
    row += 2
    ws.cell(row=row, column=1, value="Known agents").font = bold
    for agent, definition in vocab.AGENTS.items():
        row += 1
        ws.cell(row=row, column=1, value="agents")
        ws.cell(row=row, column=2, value=agent).data_type = "s"
        ws.cell(row=row, column=4, value=definition).data_type = "s"


def _study_values(study: Study) -> dict[str, object]:
    review = study.via_review
    values: dict[str, object] = {
        name: getattr(study, name) for name in Study.model_fields if name != "via_review"
    }
    values["via_review_authors"] = review.authors if review else None
    values["via_review_year"] = review.year if review else None
    values["via_review_reference"] = review.reference if review else None
    return values


def _group_values(study: Study, group: Group) -> dict[str, object]:
    values: dict[str, object] = {name: getattr(group, name) for name in Group.model_fields}
    values["group_id"] = values.pop("id")
    values["study"] = study.id
    return values


def _build(studies: Sequence[Study]) -> Workbook:
    from openpyxl import Workbook as NewWorkbook

    wb = NewWorkbook()
    first = wb.active
    assert first is not None
    wb.remove(first)
    studies_ws = wb.create_sheet(STUDIES)
    outcomes_ws = wb.create_sheet(OUTCOMES)
    _header(studies_ws, STUDY_COLUMNS)
    _header(outcomes_ws, OUTCOME_COLUMNS)
    n_rows = sum(len(g.outcomes) for s in studies for g in s.groups)
    if len(studies) > MAX_ROWS or n_rows > MAX_ROWS:
        raise InputError(
            f"the corpus has {len(studies)} studies and {n_rows} outcome records; a workbook "
            f"holds at most {MAX_ROWS} rows per sheet"
        )
    out_row = 1
    for si, study in enumerate(studies, start=2):
        values = _study_values(study)
        for ci, column in enumerate(STUDY_COLUMNS, start=1):
            where = f"study {study.id!r}: {column.name}"
            _put(studies_ws, si, ci, _cell_value(values[column.name], column), where)
        for group in study.groups:
            gvalues = _group_values(study, group)
            for rec in group.outcomes:
                out_row += 1
                row_values = {**gvalues, **{n: getattr(rec, n) for n in Outcome.model_fields}}
                for ci, column in enumerate(OUTCOME_COLUMNS, start=1):
                    where = f"study {study.id!r}, group {group.id!r}: {column.name}"
                    value = _cell_value(row_values[column.name], column)
                    _put(outcomes_ws, out_row, ci, value, where)
    _readme(wb)
    ranges = _lists_sheet(wb)
    _validations(studies_ws, STUDY_COLUMNS, ranges)
    _validations(outcomes_ws, OUTCOME_COLUMNS, ranges)
    wb.active = 0
    return wb


def _save(wb: Workbook, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    if target.suffix.lower() != ".xlsx":
        raise InputError(f"{target}: the workbook name must end in .xlsx")
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    wb.save(buffer)
    return write_bytes_atomic(target, buffer.getvalue())


def write_workbook(corpus: Corpus | Iterable[Study], path: str | os.PathLike[str]) -> None:
    """Write the corpus (or any studies) to ``path`` (``.xlsx``) in the import layout.

    ``read_workbook(path)`` gives back equal studies: every field, unicode, line breaks,
    empty optional fields, percent strings as printed. The file is written atomically.
    """
    studies = corpus.studies if isinstance(corpus, Corpus) else tuple(corpus)
    _save(_build(studies), path)


def example_study() -> Study:
    """The study shown on the template's example rows (it passes every rule)."""
    return Study.model_validate(
        {
            "id": EXAMPLE_ID,
            "citation": "Example A, Author B, et al. Salvage therapy after BCMA CAR-T. "
            "Journal. 2024;1(1):1-10.",
            "doi": "10.1000/example.2024",
            "year": 2024,
            "published": "2024-02",
            "design": "retrospective cohort",
            "centres": 2,
            "population": "post-bcma-cart",
            "cohort": "example-cohort",
            "source": "example-2024.txt",
            "groups": [
                {
                    "id": "first-bispecific",
                    "name": "Bispecific antibody",
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
                            "derived": False,
                            "quote": "Bispecific antibody ... 5 out of 7 (71.4%)",
                            "location": "Table 2",
                        }
                    ],
                }
            ],
        }
    )


def write_template(path: str | os.PathLike[str]) -> None:
    """Write an empty extraction workbook with one example study (``example-2024``)."""
    _save(_build([example_study()]), path)


# --------------------------------------------------------------------------- opening

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ROW_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?row[\s/>]")


def _scan_zip(archive: zipfile.ZipFile, name: str) -> None:
    """Refuse zip bombs and oversized sheets before openpyxl parses anything."""
    total = 0
    for info in archive.infolist():
        lower = info.filename.lower()
        is_sheet = lower.startswith("xl/worksheets/") and lower.endswith(".xml")
        if not (is_sheet or lower == "xl/sharedstrings.xml"):
            continue
        rows = 0
        tail = b""
        with archive.open(info) as stream:
            while chunk := stream.read(1 << 20):
                total += len(chunk)
                if total > MAX_XML_BYTES:
                    raise InputError(
                        f"{name}: the workbook's sheets hold more than "
                        f"{MAX_XML_BYTES // 2**20} MB of data; too large to import"
                    )
                if is_sheet:
                    buf = tail + chunk
                    rows += sum(1 for m in _ROW_TAG.finditer(buf) if m.end() > len(tail))
                    tail = buf[-32:]
        if rows > MAX_ROWS + 1:
            raise InputError(
                f"{name}: a sheet has {rows} rows; at most {MAX_ROWS} data rows are imported "
                "(delete unused rows or split the workbook)"
            )


def _open(path: str | os.PathLike[str]) -> tuple[bytes, Workbook]:
    from openpyxl import load_workbook

    p = Path(path)
    name = str(p)
    if not p.exists():
        raise InputError(f"{name}: no such file")
    if not p.is_file():
        raise InputError(f"{name}: not a file")
    size = p.stat().st_size
    if size == 0:
        raise InputError(f"{name}: the file is empty, not a workbook")
    if size > MAX_FILE_BYTES:
        raise InputError(
            f"{name}: {size / 2**20:.0f} MB is larger than the {MAX_FILE_BYTES // 2**20} MB "
            "a workbook may have; too large to import"
        )
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{name}: cannot read the file ({exc.strerror or exc})") from None
    if data.startswith(_OLE_MAGIC):
        if "EncryptedPackage".encode("utf-16-le") in data:
            raise InputError(
                f"{name}: the workbook is password-protected (encrypted); save a copy "
                "without a password and import that"
            )
        raise InputError(
            f"{name}: an old-format Excel 97-2003 (.xls) or other OLE file; open it in Excel "
            "and save it as .xlsx"
        )
    if not data.startswith(b"PK"):
        head = data[:2048]
        kind = "a text file (CSV?)" if _looks_like_text(head) else "not a workbook"
        raise InputError(
            f"{name}: {kind}; import needs an .xlsx workbook with sheets {STUDIES!r} and "
            f"{OUTCOMES!r} (run 'metaresp template' for one)"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = {n.lower() for n in archive.namelist()}
        if "xl/workbook.xml" not in names:
            raise InputError(
                f"{name}: a zip archive but not an Excel workbook (no xl/workbook.xml; an "
                "OpenDocument .ods or a Word file?); save it as .xlsx"
            )
        _scan_zip(archive, name)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{name}: corrupt workbook (damaged zip: {exc})") from None
    try:
        with warnings.catch_warnings():  # e.g. "extension is not supported": not the user's fault
            warnings.simplefilter("ignore")
            wb = load_workbook(io.BytesIO(data), data_only=False, keep_links=False)
    except Exception as exc:  # openpyxl raises many kinds on damaged XML
        raise InputError(
            f"{name}: corrupt workbook, cannot be read ({type(exc).__name__}: {exc})"
        ) from None
    return data, wb


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --------------------------------------------------------------------------- reading cells


def _ref(sheet: str, column: int, row: int) -> str:
    from openpyxl.utils import get_column_letter

    return f"{sheet}!{get_column_letter(column)}{row}"


class _Book:
    """Access to cell values: formulas resolved to their stored results, or rejected."""

    def __init__(self, data: bytes, wb: Workbook) -> None:
        self.data = data
        self.wb = wb
        self._cached: Workbook | None = None

    def cached(self, sheet: str, coordinate: str) -> object:
        from openpyxl import load_workbook

        if self._cached is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._cached = load_workbook(
                    io.BytesIO(self.data), data_only=True, keep_links=False
                )
        return self._cached[sheet][coordinate].value


@dataclass
class _Reader:
    book: _Book
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    bad: set[str] = field(default_factory=set)  # cells already reported

    def fail(self, ref: str, message: str) -> None:
        self.problems.append(f"{ref}: {message}")
        self.bad.add(ref)

    def value(self, ws: Worksheet, row: int, col: int, column: Column) -> object:
        """The cell's value parsed for ``column``; ``None`` when empty (or on a problem)."""
        cell = ws.cell(row=row, column=col)
        ref = f"{ws.title}!{cell.coordinate}"
        raw: object = cell.value
        if cell.data_type == "f":
            formula = raw if isinstance(raw, str) else "an array formula"
            raw = self.book.cached(ws.title, cell.coordinate)
            if raw is None:
                self.fail(
                    ref,
                    f"{column.name}: the cell holds the formula {formula} without a "
                    "computed value (the workbook was saved by a program that does not "
                    "calculate); type the value, or open and save the workbook in Excel",
                )
                return None
            if isinstance(raw, str) and raw.startswith("#"):
                self.fail(ref, f"{column.name}: the formula gives the error {raw}")
                return None
        elif cell.data_type == "e":
            self.fail(ref, f"{column.name}: the cell holds the error {raw}")
            return None
        if isinstance(raw, str):
            raw = unescape_text(raw)
            if raw == "":
                return None
        if raw is None:
            return None
        try:
            return _parse(raw, column, cell.number_format)
        except ValueError as exc:
            self.fail(ref, f"{column.name}: {exc}")
            return None


def _number_text(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    text = format(Decimal(repr(value)).normalize(), "f")
    return text


def _parse(raw: object, column: Column, number_format: str) -> object:
    kind = column.kind
    if isinstance(raw, _dt.datetime | _dt.date | _dt.time | _dt.timedelta):
        hint = " YYYY, YYYY-MM or YYYY-MM-DD" if kind == "published" else ""
        raise ValueError(
            f"the cell is a date ({raw}); type the value{hint} as text (format the cell as Text)"
        )
    if isinstance(raw, bool):
        if kind == "bool":
            return raw
        raise ValueError(f"expected {_expected(column)}, got the logical value {raw}")
    if not isinstance(raw, str | int | float):
        raise ValueError(f"unreadable cell value {raw!r}")
    if kind == "text":
        return raw if isinstance(raw, str) else _number_text(raw)
    if kind == "count":
        if isinstance(raw, float):
            if not raw.is_integer():
                raise ValueError(f"expected a whole number, got {raw}")
            return int(raw)
        if isinstance(raw, int):
            return raw
        text = raw.strip()
        if not re.fullmatch(r"[0-9]+", text):
            raise ValueError(f"expected a whole number, got {raw!r}")
        return int(text)
    if kind == "bool":
        if isinstance(raw, int | float):
            if raw in (0, 1):
                return bool(raw)
            raise ValueError(f"expected TRUE or FALSE, got {raw}")
        key = raw.strip().casefold()
        if key in ("true", "yes", "1"):
            return True
        if key in ("false", "no", "0"):
            return False
        if key == "":
            return None
        raise ValueError(f"expected TRUE or FALSE, got {raw!r}")
    if kind == "percent":
        if isinstance(raw, int | float):
            if "%" in number_format:
                raise ValueError(
                    f"the cell is formatted as a percentage ({raw}); type the number as "
                    "printed, without %, as text"
                )
            return _number_text(raw)
        text = raw.strip()
        if text.endswith("%"):
            text = text[:-1].rstrip()
        return text or None
    if kind == "published":
        if isinstance(raw, float):
            raise ValueError(f"expected YYYY, YYYY-MM or YYYY-MM-DD as text, got {raw}")
        return str(raw).strip() or None
    # slug, term, list
    text = raw.strip() if isinstance(raw, str) else _number_text(raw)
    if kind == "list":
        # Line breaks first: an item holding ';' is exported one per line.
        pieces = raw.split("\n") if isinstance(raw, str) and "\n" in raw else text.split(";")
        items = tuple(p.strip() for p in pieces if p.strip())
        return items or None
    return text or None


def _expected(column: Column) -> str:
    return {
        "count": "a whole number",
        "bool": "TRUE or FALSE",
        "percent": "a percentage as text",
        "published": "YYYY, YYYY-MM or YYYY-MM-DD",
    }.get(column.kind, "text")


def _key(text: object) -> str:
    return re.sub(r"[\s_]+", "_", str(text).strip().casefold())


def _sheet(wb: Workbook, title: str, name: str, problems: list[str]) -> Worksheet | None:
    from openpyxl.worksheet.worksheet import Worksheet as SheetType

    found = [ws for ws in wb.worksheets if ws.title.strip().casefold() == title.casefold()]
    if not found:
        sheets = ", ".join(repr(t) for t in wb.sheetnames)
        problems.append(f"{name}: missing sheet {title!r} (the workbook has {sheets})")
        return None
    ws = found[0]
    if not isinstance(ws, SheetType):  # pragma: no cover - chartsheets have no cells
        problems.append(f"{name}: {title!r} is not a worksheet")
        return None
    return ws


def _columns(
    ws: Worksheet, columns: Sequence[Column], problems: list[str]
) -> dict[str, int] | None:
    """Header name → column index; records missing, unknown, duplicate and merged headers."""
    before = len(problems)
    if ws.max_row > MAX_ROWS + 1:
        problems.append(
            f"{ws.title}!A{ws.max_row}: the sheet reaches row {ws.max_row}; at most {MAX_ROWS} "
            "data rows are imported (delete the rows below your data)"
        )
        return None
    if ws.max_column > MAX_COLUMNS:
        problems.append(
            f"{_ref(ws.title, ws.max_column, 1)}: the sheet reaches column {ws.max_column}; "
            f"at most {MAX_COLUMNS} columns are read (delete the columns right of your data)"
        )
        return None
    for merged in ws.merged_cells.ranges:
        if merged.min_row == 1:
            problems.append(
                f"{ws.title}!{merged.coord}: merged cells in the header row; unmerge them so "
                "every column has its own header"
            )
        else:
            problems.append(
                f"{ws.title}!{merged.coord}: merged cells; unmerge them and fill every cell "
                "(only the first cell of a merged range holds a value)"
            )
    if len(problems) > before:
        return None
    wanted = {column.name: column for column in columns}
    found: dict[str, int] = {}
    for ci in range(1, ws.max_column + 1):
        cell = ws.cell(row=1, column=ci)
        raw = cell.value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            has_data = any(
                ws.cell(row=r, column=ci).value not in (None, "") for r in range(2, ws.max_row + 1)
            )
            if has_data:
                problems.append(
                    f"{_ref(ws.title, ci, 1)}: the column has data but no header; name it or "
                    "delete it"
                )
            continue
        key = _key(unescape_text(str(raw)))
        if key not in wanted:
            guess = vocab.suggest(key, list(wanted))
            hint = f"did you mean {guess!r}? " if guess else ""
            problems.append(
                f"{_ref(ws.title, ci, 1)}: unknown column {str(raw)!r}; {hint}"
                f"columns of {ws.title}: {', '.join(wanted)}"
            )
        elif key in found:
            problems.append(
                f"{_ref(ws.title, ci, 1)}: column {key!r} appears twice "
                f"(first at {_ref(ws.title, found[key], 1)})"
            )
        else:
            found[key] = ci
    for column in columns:
        if column.required and column.name not in found:
            problems.append(f"{ws.title}!1: missing column {column.name!r}")
    return found if len(problems) == before else None


def _rows(ws: Worksheet) -> Iterator[int]:
    for row in range(2, ws.max_row + 1):
        if any(
            c.value is not None and not (isinstance(c.value, str) and not c.value.strip())
            for c in ws[row]
        ):
            yield row


# --------------------------------------------------------------------------- building studies

PathKey = tuple[str | int, ...]


@dataclass
class _Parsed:
    """Studies read from a workbook, with the cell behind every path of every study."""

    studies: list[Study] = field(default_factory=list)
    cells: list[dict[PathKey, str]] = field(default_factory=list)
    checked: list[bool] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _cell_for(cells: Mapping[PathKey, str], path: Sequence[str | int]) -> tuple[str, str | None]:
    """The cell reference of ``path`` (or of its nearest enclosing path) and the field name."""
    parts = tuple(path)
    name = next((p for p in reversed(parts) if isinstance(p, str)), None)
    while parts not in cells and parts:
        parts = parts[:-1]
    return cells.get(parts, cells[()]), name


def _located(cells: Mapping[PathKey, str], path: Sequence[str | int], message: str) -> str:
    ref, name = _cell_for(cells, path)
    if name is None or not path or not isinstance(path[-1], str) or message.startswith(name):
        return f"{ref}: {message}"
    shown = {"id": "group_id"} if len(path) == 3 and path[0] == "groups" else {}
    return f"{ref}: {shown.get(name, name)}: {message}"


def _pydantic_message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required, but the cell is empty"
    if kind == "string_pattern_mismatch":
        loc = tuple(err["loc"])
        name = next((p for p in reversed(loc) if isinstance(p, str)), "")
        wanted = {
            "percent": 'a number as printed, without "%", e.g. 71.4',
            "published": "YYYY, YYYY-MM or YYYY-MM-DD",
            "doi": "10.xxxx/...",
        }.get(name, "a lower-case slug (a-z, 0-9 and '-')")
        return f"{err['input']!r} is not valid here: expected {wanted}"
    if kind == "too_short":
        return "needs at least one item, but the cell is empty"
    message = str(err["msg"])
    if kind not in ("vocabulary", "percent_range") and "input" in err:
        message += f" (got {err['input']!r})"
    return message


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _path_key(text: str) -> PathKey:
    if text == "(file)":
        return ()
    return tuple(int(i) if i else n for n, i in _PATH_PART.findall(text))


def _study_dict(
    values: Mapping[str, object],
) -> dict[str, object]:
    data = {k: v for k, v in values.items() if v is not None and not k.startswith("via_review_")}
    review = {
        k.removeprefix("via_review_"): values.get(k)
        for k in ("via_review_authors", "via_review_year", "via_review_reference")
        if values.get(k) is not None
    }
    if review:
        data["via_review"] = review
    return data


def _comparable(name: str, value: object) -> object:
    if name == "agents" and isinstance(value, tuple):
        return tuple(vocab.normalise_agent(v) for v in value)
    return value


def _parse_book(path: str | os.PathLike[str]) -> _Parsed:
    content, wb = _open(path)
    name = Path(path).name
    book = _Book(content, wb)
    reader = _Reader(book)
    out = _Parsed()
    problems = reader.problems
    studies_ws = _sheet(wb, STUDIES, name, problems)
    outcomes_ws = _sheet(wb, OUTCOMES, name, problems)
    if studies_ws is None or outcomes_ws is None:
        out.problems = problems
        return out
    study_cols = _columns(studies_ws, STUDY_COLUMNS, problems)
    outcome_cols = _columns(outcomes_ws, OUTCOME_COLUMNS, problems)
    if study_cols is None or outcome_cols is None:
        out.problems = problems
        return out

    # Studies sheet
    study_rows: dict[str, tuple[int, dict[str, object]]] = {}
    order: list[str] = []
    for row in _rows(studies_ws):
        values: dict[str, object] = {}
        for column in STUDY_COLUMNS:
            ci = study_cols.get(column.name)
            if ci is not None:
                values[column.name] = reader.value(studies_ws, row, ci, column)
        sid = values.get("id")
        id_ref = _ref(studies_ws.title, study_cols["id"], row)
        if sid is None:
            if id_ref not in reader.bad:
                problems.append(f"{id_ref}: id: required, but the cell is empty")
            continue
        assert isinstance(sid, str)
        if sid == EXAMPLE_ID:
            problems.append(
                f"{id_ref}: {EXAMPLE_ID!r} is the template's example; delete its rows on "
                f"{STUDIES} and {OUTCOMES} before importing"
            )
            continue
        if sid in study_rows:
            seen = _ref(studies_ws.title, study_cols["id"], study_rows[sid][0])
            problems.append(f"{id_ref}: duplicate study id {sid!r} (first at {seen})")
            continue
        study_rows[sid] = (row, values)
        order.append(sid)

    # Outcomes sheet: rows grouped by (study, group id), in order of first appearance
    groups: dict[str, dict[str, list[tuple[int, dict[str, object]]]]] = {s: {} for s in order}
    for row in _rows(outcomes_ws):
        values = {}
        for column in OUTCOME_COLUMNS:
            ci = outcome_cols.get(column.name)
            if ci is not None:
                values[column.name] = reader.value(outcomes_ws, row, ci, column)
        sid, gid = values.get("study"), values.get("group_id")
        study_ref = _ref(outcomes_ws.title, outcome_cols["study"], row)
        if sid is None:
            if study_ref not in reader.bad:
                problems.append(f"{study_ref}: study: required, but the cell is empty")
            continue
        assert isinstance(sid, str)
        if sid == EXAMPLE_ID:
            continue  # reported once, on the Studies sheet
        if sid not in groups:
            known = vocab.suggest(sid, order)
            hint = f"; did you mean {known!r}?" if known else ""
            problems.append(f"{study_ref}: study {sid!r} has no row on the {STUDIES} sheet{hint}")
            continue
        if gid is None:
            gid_ref = _ref(outcomes_ws.title, outcome_cols["group_id"], row)
            if gid_ref not in reader.bad:
                problems.append(f"{gid_ref}: group_id: required, but the cell is empty")
            continue
        assert isinstance(gid, str)
        groups[sid].setdefault(gid, []).append((row, values))

    for sid in order:
        srow, svalues = study_rows[sid]
        cells: dict[PathKey, str] = {(): _ref(studies_ws.title, study_cols["id"], srow)}
        for column in STUDY_COLUMNS:
            ci = study_cols.get(column.name)
            if ci is None:
                continue
            ref = _ref(studies_ws.title, ci, srow)
            if column.name.startswith("via_review_"):
                part = column.name.removeprefix("via_review_")
                cells[("via_review", part)] = ref
                if part == "authors":
                    cells[("via_review",)] = ref
            else:
                cells[(column.name,)] = ref
        cells[("groups",)] = cells[()]
        data = _study_dict(svalues)
        group_data: list[dict[str, object]] = []
        for gi, (gid, rows) in enumerate(groups[sid].items()):
            first_row, first = rows[0]
            cells[("groups", gi)] = _ref(outcomes_ws.title, outcome_cols["group_id"], first_row)
            for column in GROUP_COLUMNS:
                ci = outcome_cols.get(column.name)
                if ci is None:
                    continue
                key = "id" if column.name == "group_id" else column.name
                cells[("groups", gi, key)] = _ref(outcomes_ws.title, ci, first_row)
                for row, values in rows[1:]:
                    a = _comparable(column.name, first.get(column.name))
                    b = _comparable(column.name, values.get(column.name))
                    if a != b:
                        reader.fail(
                            _ref(outcomes_ws.title, ci, row),
                            f"{column.name} of group {gid!r} of study {sid!r} is {_show(b)} "
                            f"here but {_show(a)} on row {first_row}; a group's columns must "
                            "be the same on all its rows",
                        )
                        cells[("mismatch", row, ci)] = _ref(outcomes_ws.title, ci, row)
            gdata = {
                ("id" if c.name == "group_id" else c.name): first.get(c.name)
                for c in GROUP_COLUMNS
                if c.name != "study" and first.get(c.name) is not None
            }
            records: list[dict[str, object]] = []
            cells[("groups", gi, "outcomes")] = cells[("groups", gi)]
            for oi, (row, values) in enumerate(rows):
                cells[("groups", gi, "outcomes", oi)] = _ref(
                    outcomes_ws.title, outcome_cols.get("outcome", 1), row
                )
                for column in RECORD_COLUMNS:
                    ci = outcome_cols.get(column.name)
                    if ci is not None:
                        cells[("groups", gi, "outcomes", oi, column.name)] = _ref(
                            outcomes_ws.title, ci, row
                        )
                records.append(
                    {
                        c.name: values[c.name]
                        for c in RECORD_COLUMNS
                        if values.get(c.name) is not None
                    }
                )
            gdata["outcomes"] = records
            group_data.append(gdata)
        data["groups"] = group_data
        try:
            study = Study.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors()
            locs = [tuple(e["loc"]) for e in errors]
            for err, loc in zip(errors, locs, strict=True):
                if err["type"] == "too_short" and any(
                    o[: len(loc)] == loc and o != loc for o in locs
                ):
                    continue
                if _cell_for(cells, loc)[0] not in reader.bad:
                    problems.append(_located(cells, loc, _pydantic_message(err)))
            continue
        # A study with a cell already reported is not checked by the rules: its empty
        # stand-in values would only cause follow-up messages.
        out.studies.append(study)
        out.cells.append(cells)
        out.checked.append(not reader.bad.intersection(cells.values()))
    out.problems = problems
    out.warnings = reader.warnings
    return out


def _show(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, tuple):
        return repr("; ".join(str(v) for v in value))
    return repr(value)


def _rules(
    parsed: _Parsed,
    others: Sequence[Study] = (),
    other_files: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """Every rule of ``metaresp validate`` over the workbook's studies (plus ``others``);
    returns (errors, warnings) located at workbook cells."""
    keys = [cells[()] for cells in parsed.cells]  # the study's id cell, unique
    mine = [i for i, ok in enumerate(parsed.checked) if ok]
    combined = Corpus(
        studies=(*others, *(parsed.studies[i] for i in mine)),
        files=(*other_files, *(keys[i] for i in mine)),
    )
    where = dict(zip(keys, parsed.cells, strict=True))
    errors: list[str] = []
    warnings: list[str] = []
    for problem in combined.validate():
        if problem.file in where:
            line = _located(where[problem.file], _path_key(problem.path), problem.message)
        else:
            continue  # about the other studies alone: reported by their own validation
        (errors if problem.level == "error" else warnings).append(line)
    return errors, warnings


def read_workbook(path: str | os.PathLike[str]) -> Corpus:
    """Read and validate an extraction workbook; return its studies as a :class:`Corpus`.

    Applies the schema and every rule of ``metaresp validate`` (within-study rules and
    those across studies of the workbook). Raises :class:`InputError` with one line per
    problem, each naming sheet and cell (``Outcomes!M12: responders 12 > evaluable 10``);
    warnings are kept in ``Corpus.warnings``. ``Corpus.files[i]`` names the Studies row
    of ``studies[i]`` (``book.xlsx!Studies!A3``).
    """
    parsed = _parse_book(path)
    errors, warnings = _rules(parsed)
    if parsed.problems or errors:
        raise InputError(parsed.problems + errors)
    name = Path(path).name
    return Corpus(
        studies=tuple(parsed.studies),
        files=tuple(f"{name}!{parsed.cells[i][()]}" for i in range(len(parsed.studies))),
        warnings=tuple(parsed.warnings + warnings),
    )


# --------------------------------------------------------------------------- import


@dataclass(frozen=True)
class Change:
    """What importing one study did to the folder."""

    study: str
    file: Path
    status: Literal["new", "updated", "unchanged"]
    changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportResult:
    """Per study what changed, and the warnings found (one line each)."""

    changes: tuple[Change, ...]
    warnings: tuple[str, ...]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def diff_studies(old: Study, new: Study) -> list[str]:
    """Field-level differences ``path: old -> new`` between two versions of a study."""
    lines: list[str] = []

    def walk(a: object, b: object, path: tuple[str | int, ...]) -> None:
        if a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in list(a) + [k for k in b if k not in a]:
                walk(a.get(key), b.get(key), (*path, key))
            return
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            items_are_records = any(isinstance(x, dict) for x in (*a, *b))
            if items_are_records:
                for i in range(max(len(a), len(b))):
                    here = format_path((*path, i))
                    if i >= len(a):
                        lines.append(f"{here}: added")
                    elif i >= len(b):
                        lines.append(f"{here}: removed")
                    else:
                        walk(a[i], b[i], (*path, i))
                return
        lines.append(f"{format_path(path)}: {_short(a)} -> {_short(b)}")

    walk(old.model_dump(), new.model_dump(), ())
    return lines


def import_workbook(
    book: str | os.PathLike[str],
    to: str | os.PathLike[str] = "extractions",
    *,
    update: bool = False,
) -> ImportResult:
    """Validate ``book`` against itself and the studies already in ``to``; then write one
    extraction file per study (``<id>.yaml``), each atomically, all only if nothing is wrong.

    Without ``update`` a study id already in ``to`` is an error; with it the study's file is
    replaced and the field-level changes are returned. Raises :class:`InputError` (one line
    per problem, nothing written) on any error.
    """
    folder = Path(to)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: --to must be a folder")
    parsed = _parse_book(book)
    existing: dict[str, tuple[Study, str]] = {}
    others: list[Study] = []
    other_files: list[str] = []
    folder_errors: list[Problem] = []
    incoming = {s.id for s in parsed.studies}
    if folder.is_dir():
        report = check_extractions(folder)
        for known, known_file in zip(report.studies, report.study_files, strict=True):
            existing.setdefault(known.id, (known, known_file))
            if known.id not in incoming:
                others.append(known)
                other_files.append(known_file)
        replaced = {existing[i][1] for i in incoming if i in existing and update}
        if update:
            replaced |= {(folder / f"{i}.yaml").as_posix() for i in incoming}
        folder_errors = [p for p in report.errors if p.file not in replaced]

    problems: list[str] = list(parsed.problems)
    targets: dict[str, Path] = {}
    for study, cells in zip(parsed.studies, parsed.cells, strict=True):
        ref = cells[("id",)]
        if study.id in existing:
            file = Path(existing[study.id][1])
            if not update:
                problems.append(
                    f"{ref}: study {study.id!r} already exists in {file}; use --update to "
                    "replace it"
                )
            targets[study.id] = file
            continue
        file = folder / f"{study.id}.yaml"
        if file.exists() and not update:
            problems.append(
                f"{ref}: {file} already exists (a file that does not hold a valid study "
                f"{study.id!r}); use --update to replace it"
            )
        targets[study.id] = file
    errors, warnings = _rules(parsed, others, other_files)
    problems.extend(errors)
    problems.extend(
        f"{p} (in the target folder; fix it first: metaresp validate {folder})"
        for p in folder_errors
    )
    if problems:
        raise InputError(problems)

    changes: list[Change] = []
    pending: list[tuple[Path, str]] = []
    for study in parsed.studies:
        file = targets[study.id]
        if study.id in existing:
            old = existing[study.id][0]
            lines = diff_studies(old, study)
            if not lines:
                changes.append(Change(study.id, file, "unchanged"))
                continue
            changes.append(Change(study.id, file, "updated", tuple(lines)))
        else:
            changes.append(Change(study.id, file, "new"))
        pending.append((file, dump_study(study)))
    _write_all(folder, pending)
    return ImportResult(tuple(changes), tuple(parsed.warnings + warnings))


def _write_all(folder: Path, pending: Sequence[tuple[Path, str]]) -> None:
    """Write every file to a temporary name first, then rename them all into place."""
    if not pending:
        return
    folder.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[str, Path]] = []
    try:
        for target, text in pending:
            handle, temp = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
            )
            temps.append((temp, target))
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
                out.write(text)
        for temp, target in temps:
            os.replace(temp, target)
    finally:
        for temp, _ in temps:
            Path(temp).unlink(missing_ok=True)
