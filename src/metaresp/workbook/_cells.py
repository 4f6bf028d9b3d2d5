"""Reading cells: formulas resolved to their stored values, each cell parsed for its column,
headers matched to columns, problems located at sheet and cell."""

from __future__ import annotations

import datetime as _dt
import io
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from metaresp import vocab
from metaresp.workbook._escape import unescape_text
from metaresp.workbook._layout import MAX_COLUMNS, MAX_ROWS, Column

if TYPE_CHECKING:  # pragma: no cover
    from openpyxl.workbook.workbook import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

__all__ = [
    "Book",
    "CellReader",
    "cell_ref",
    "data_rows",
    "find_columns",
    "find_sheet",
    "hidden_warnings",
    "parse_cell",
]


def cell_ref(sheet: str, column: int, row: int) -> str:
    from openpyxl.utils import get_column_letter

    return f"{sheet}!{get_column_letter(column)}{row}"


class Book:
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
class CellReader:
    book: Book
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
            return parse_cell(raw, column, cell.number_format)
        except ValueError as exc:
            self.fail(ref, f"{column.name}: {exc}")
            return None


def _number_text(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    text = format(Decimal(repr(value)).normalize(), "f")
    return text


def parse_cell(raw: object, column: Column, number_format: str) -> object:
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


def find_sheet(wb: Workbook, title: str, name: str, problems: list[str]) -> Worksheet | None:
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


def find_columns(
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
            f"{cell_ref(ws.title, ws.max_column, 1)}: the sheet reaches column {ws.max_column}; "
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
                    f"{cell_ref(ws.title, ci, 1)}: the column has data but no header; name it or "
                    "delete it"
                )
            continue
        key = _key(unescape_text(str(raw)))
        if key not in wanted:
            guess = vocab.suggest(key, list(wanted))
            hint = f"did you mean {guess!r}? " if guess else ""
            problems.append(
                f"{cell_ref(ws.title, ci, 1)}: unknown column {str(raw)!r}; {hint}"
                f"columns of {ws.title}: {', '.join(wanted)}"
            )
        elif key in found:
            problems.append(
                f"{cell_ref(ws.title, ci, 1)}: column {key!r} appears twice "
                f"(first at {cell_ref(ws.title, found[key], 1)})"
            )
        else:
            found[key] = ci
    for column in columns:
        if column.required and column.name not in found:
            problems.append(f"{ws.title}!1: missing column {column.name!r}")
    return found if len(problems) == before else None


def data_rows(ws: Worksheet) -> Iterator[int]:
    """The rows below the header that hold a value. The sheet's dimensions are read once
    and the rows walked once (``ws[row]`` would measure the sheet again for every row:
    quadratic in its size)."""
    width, last = ws.max_column, ws.max_row
    rows = ws.iter_rows(min_row=2, max_row=last, max_col=width, values_only=True)
    for row, values in enumerate(rows, start=2):
        if any(v is not None and not (isinstance(v, str) and not v.strip()) for v in values):
            yield row


def hidden_warnings(ws: Worksheet) -> list[str]:
    """One warning line each for a hidden sheet, its hidden rows and hidden columns
    (they are imported all the same; a reader of the workbook in Excel may not see them)."""
    from openpyxl.utils import get_column_letter

    out: list[str] = []
    if ws.sheet_state != "visible":
        out.append(f"{ws.title}: the sheet is hidden in the workbook; it is imported all the same")
    last = ws.max_row
    rows = sorted(r for r, d in ws.row_dimensions.items() if d.hidden and 1 <= r <= last)
    if rows:
        shown = ", ".join(str(r) for r in rows[:10]) + (" ..." if len(rows) > 10 else "")
        out.append(
            f"{ws.title}!A{rows[0]}: {len(rows)} hidden row(s) ({shown}); hidden rows are "
            "imported all the same: unhide them to check what they hold"
        )
    cols = [
        k for k, d in ws.column_dimensions.items() if d.hidden and (d.min or 1) <= ws.max_column
    ]
    if cols:
        first = cols[0] if isinstance(cols[0], str) else get_column_letter(int(cols[0]))
        out.append(
            f"{ws.title}!{first}1: hidden column(s) {', '.join(map(str, cols[:10]))}; hidden "
            "columns are imported all the same: unhide them to check what they hold"
        )
    return out
