"""Writing the corpus (or the template) as an extraction workbook."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from metaresp import vocab
from metaresp.corpus import Corpus
from metaresp.errors import InputError
from metaresp.fields import attribute
from metaresp.files import write_bytes_atomic
from metaresp.schema import Study
from metaresp.workbook._escape import escape_text
from metaresp.workbook._layout import (
    _CONVENTIONS,
    _FORMULA_START,
    _WRAPPED,
    EXAMPLE_ID,
    EXCEL_CELL_CHARS,
    GROUP_COLUMNS,
    LISTS,
    MAX_ROWS,
    OUTCOME_COLUMNS,
    OUTCOMES,
    README,
    RECORD_COLUMNS,
    STUDIES,
    STUDY_COLUMNS,
    Column,
)

if TYPE_CHECKING:  # pragma: no cover
    from openpyxl.workbook.workbook import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

__all__ = ["example_study", "write_template", "write_workbook"]


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
            bounds = column.field
            low = bounds.minimum if bounds is not None and bounds.minimum is not None else 0
            high = bounds.maximum if bounds is not None and bounds.maximum is not None else 10**7
            dv = DataValidation(
                type="whole",
                operator="between",
                formula1=str(low),
                formula2=str(high),
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


def _row_values(obj: object, columns: Sequence[Column]) -> dict[str, object]:
    """Each column's value on ``obj`` (a study, group or outcome record)."""
    return {c.name: attribute(obj, c.field) for c in columns if c.field is not None}


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
        values = _row_values(study, STUDY_COLUMNS)
        for ci, column in enumerate(STUDY_COLUMNS, start=1):
            where = f"study {study.id!r}: {column.name}"
            _put(studies_ws, si, ci, _cell_value(values[column.name], column), where)
        for group in study.groups:
            gvalues = {**_row_values(group, GROUP_COLUMNS), "study": study.id}
            for rec in group.outcomes:
                out_row += 1
                row_values = {**gvalues, **_row_values(rec, RECORD_COLUMNS)}
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
