"""Reading an extraction workbook into validated studies, every problem located at its
sheet and cell."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from metaresp import vocab
from metaresp._messages import generic_message, meaningful_errors, pattern_message
from metaresp.corpus import Corpus
from metaresp.errors import InputError
from metaresp.schema import Study
from metaresp.workbook._cells import (
    Book,
    CellReader,
    cell_ref,
    data_rows,
    find_columns,
    find_sheet,
    hidden_warnings,
)
from metaresp.workbook._layout import (
    EXAMPLE_ID,
    GROUP_COLUMNS,
    GROUP_ID,
    OUTCOME_COLUMNS,
    OUTCOMES,
    RECORD_COLUMNS,
    STUDIES,
    STUDY_COLUMNS,
    Column,
)
from metaresp.workbook._open import open_book

if TYPE_CHECKING:  # pragma: no cover
    from openpyxl.worksheet.worksheet import Worksheet

__all__ = ["PathKey", "read_workbook"]

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
        return pattern_message(err, "71.4")
    if kind == "too_short":
        return "needs at least one item, but the cell is empty"
    return generic_message(err)


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _path_key(text: str) -> PathKey:
    if text == "(file)":
        return ()
    return tuple(int(i) if i else n for n, i in _PATH_PART.findall(text))


def _nested_dict(values: Mapping[str, object], columns: Sequence[Column]) -> dict[str, object]:
    """The model data of one row: each column's value at its field's path (empty cells
    and empty nested models left out)."""
    data: dict[str, object] = {}
    for column in columns:
        value = values.get(column.name)
        if value is None or column.field is None:
            continue
        target = data
        for part in column.field.path[:-1]:
            inner = target.setdefault(part, {})
            assert isinstance(inner, dict)
            target = inner
        target[column.field.path[-1]] = value
    return data


def _comparable(name: str, value: object) -> object:
    if name == "agents" and isinstance(value, tuple):
        return tuple(vocab.normalise_agent(v) for v in value)
    return value


Row = tuple[int, dict[str, object]]
"""A data row: its row number and the parsed value of each column."""


@dataclass
class _Sheets:
    """The two data sheets with their header-to-column maps, and the cell reader."""

    reader: CellReader
    studies: Worksheet
    outcomes: Worksheet
    study_cols: dict[str, int]
    outcome_cols: dict[str, int]

    def row_values(
        self, ws: Worksheet, cols: Mapping[str, int], columns: Sequence[Column], row: int
    ) -> dict[str, object]:
        return {
            c.name: self.reader.value(ws, row, cols[c.name], c) for c in columns if c.name in cols
        }

    def study_ref(self, column: str, row: int) -> str:
        return cell_ref(self.studies.title, self.study_cols[column], row)

    def outcome_ref(self, column: str, row: int) -> str:
        return cell_ref(self.outcomes.title, self.outcome_cols[column], row)

    def required(self, ref: str, name: str, value: object) -> bool:
        """False (and the problem noted, unless the cell was reported) when empty."""
        if value is not None:
            return True
        if ref not in self.reader.bad:
            self.reader.problems.append(f"{ref}: {name}: required, but the cell is empty")
        return False


def _open_sheets(path: str | os.PathLike[str]) -> _Sheets | list[str]:
    """The data sheets ready to read, or the problems that stop reading."""
    content, wb = open_book(path)
    name = Path(path).name
    reader = CellReader(Book(content, wb))
    problems = reader.problems
    studies_ws = find_sheet(wb, STUDIES, name, problems)
    outcomes_ws = find_sheet(wb, OUTCOMES, name, problems)
    if studies_ws is None or outcomes_ws is None:
        return problems
    study_cols = find_columns(studies_ws, STUDY_COLUMNS, problems)
    outcome_cols = find_columns(outcomes_ws, OUTCOME_COLUMNS, problems)
    if study_cols is None or outcome_cols is None:
        return problems
    reader.warnings.extend(hidden_warnings(studies_ws) + hidden_warnings(outcomes_ws))
    return _Sheets(reader, studies_ws, outcomes_ws, study_cols, outcome_cols)


def _study_rows(sheets: _Sheets) -> dict[str, Row]:
    """The Studies sheet: study id -> its row, in sheet order (the example, duplicates and
    rows without an id are reported and left out)."""
    out: dict[str, Row] = {}
    problems = sheets.reader.problems
    for row in data_rows(sheets.studies):
        values = sheets.row_values(sheets.studies, sheets.study_cols, STUDY_COLUMNS, row)
        sid = values.get("id")
        id_ref = sheets.study_ref("id", row)
        if not sheets.required(id_ref, "id", sid):
            continue
        assert isinstance(sid, str)
        if sid == EXAMPLE_ID:
            problems.append(
                f"{id_ref}: {EXAMPLE_ID!r} is the template's example; delete its rows on "
                f"{STUDIES} and {OUTCOMES} before importing"
            )
            continue
        if sid in out:
            seen = sheets.study_ref("id", out[sid][0])
            problems.append(f"{id_ref}: duplicate study id {sid!r} (first at {seen})")
            continue
        out[sid] = (row, values)
    return out


def _group_rows(sheets: _Sheets, order: Sequence[str]) -> dict[str, dict[str, list[Row]]]:
    """The Outcomes sheet: rows grouped by (study, group id), in order of first appearance."""
    groups: dict[str, dict[str, list[Row]]] = {s: {} for s in order}
    problems = sheets.reader.problems
    for row in data_rows(sheets.outcomes):
        values = sheets.row_values(sheets.outcomes, sheets.outcome_cols, OUTCOME_COLUMNS, row)
        sid, gid = values.get("study"), values.get(GROUP_ID)
        if not sheets.required(sheets.outcome_ref("study", row), "study", sid):
            continue
        assert isinstance(sid, str)
        if sid == EXAMPLE_ID:
            continue  # reported once, on the Studies sheet
        if sid not in groups:
            known = vocab.suggest(sid, order)
            hint = f"; did you mean {known!r}?" if known else ""
            problems.append(
                f"{sheets.outcome_ref('study', row)}: study {sid!r} has no row on "
                f"the {STUDIES} sheet{hint}"
            )
            continue
        if not sheets.required(sheets.outcome_ref(GROUP_ID, row), GROUP_ID, gid):
            continue
        assert isinstance(gid, str)
        groups[sid].setdefault(gid, []).append((row, values))
    return groups


def _study_cells(sheets: _Sheets, row: int) -> dict[PathKey, str]:
    """The cell behind each study-level path (a nested model: its first column's cell)."""
    cells: dict[PathKey, str] = {(): sheets.study_ref("id", row)}
    for column in STUDY_COLUMNS:
        if column.name not in sheets.study_cols or column.field is None:
            continue
        ref = sheets.study_ref(column.name, row)
        path = column.field.path
        for depth in range(1, len(path)):
            cells.setdefault(path[:depth], ref)
        cells[path] = ref
    cells[("groups",)] = cells[()]
    return cells


def _check_group_rows(
    sheets: _Sheets, sid: str, gid: str, rows: Sequence[Row], cells: dict[PathKey, str]
) -> None:
    """A group's columns must be the same on all its rows; each difference is a problem."""
    first_row, first = rows[0]
    for column in GROUP_COLUMNS:
        if column.name not in sheets.outcome_cols:
            continue
        for row, values in rows[1:]:
            a = _comparable(column.name, first.get(column.name))
            b = _comparable(column.name, values.get(column.name))
            if a != b:
                ref = sheets.outcome_ref(column.name, row)
                sheets.reader.fail(
                    ref,
                    f"{column.name} of group {gid!r} of study {sid!r} is {_show(b)} "
                    f"here but {_show(a)} on row {first_row}; a group's columns must "
                    "be the same on all its rows",
                )
                cells[("mismatch", row, sheets.outcome_cols[column.name])] = ref


def _group_data(
    sheets: _Sheets, gi: int, rows: Sequence[Row], cells: dict[PathKey, str]
) -> dict[str, object]:
    """The model data of one group (from its first row) with its outcome records; the
    cell of every path is noted in ``cells``."""
    first_row, first = rows[0]
    cells[("groups", gi)] = sheets.outcome_ref(GROUP_ID, first_row)
    for column in GROUP_COLUMNS:
        if column.name in sheets.outcome_cols and column.field is not None:
            cells[("groups", gi, *column.field.path)] = sheets.outcome_ref(column.name, first_row)
    data = _nested_dict(first, GROUP_COLUMNS)
    cells[("groups", gi, "outcomes")] = cells[("groups", gi)]
    records: list[dict[str, object]] = []
    for oi, (row, values) in enumerate(rows):
        at = ("groups", gi, "outcomes", oi)
        cells[at] = cell_ref(sheets.outcomes.title, sheets.outcome_cols.get("outcome", 1), row)
        for column in RECORD_COLUMNS:
            if column.name in sheets.outcome_cols:
                cells[(*at, column.name)] = sheets.outcome_ref(column.name, row)
        records.append(_nested_dict(values, RECORD_COLUMNS))
    data["outcomes"] = records
    return data


def _validate(
    data: Mapping[str, object], cells: Mapping[PathKey, str], sheets: _Sheets
) -> Study | None:
    """The study, or ``None`` with its schema problems located at their cells."""
    try:
        return Study.model_validate(data)
    except ValidationError as exc:
        for err in meaningful_errors(exc):
            loc = tuple(err["loc"])
            if _cell_for(cells, loc)[0] not in sheets.reader.bad:
                sheets.reader.problems.append(_located(cells, loc, _pydantic_message(err)))
        return None


def _parse_book(path: str | os.PathLike[str]) -> _Parsed:
    """Every study of the workbook with the cell behind each of its paths, and every
    problem found on the way (nothing raised for bad content)."""
    sheets = _open_sheets(path)
    if isinstance(sheets, list):
        return _Parsed(problems=sheets)
    study_rows = _study_rows(sheets)
    groups = _group_rows(sheets, list(study_rows))
    out = _Parsed()
    for sid, (row, values) in study_rows.items():
        cells = _study_cells(sheets, row)
        data = _nested_dict(values, STUDY_COLUMNS)
        group_data: list[dict[str, object]] = []
        for gi, (gid, rows) in enumerate(groups[sid].items()):
            _check_group_rows(sheets, sid, gid, rows, cells)
            group_data.append(_group_data(sheets, gi, rows, cells))
        data["groups"] = group_data
        study = _validate(data, cells, sheets)
        if study is None:
            continue
        # A study with a cell already reported is not checked by the rules: its empty
        # stand-in values would only cause follow-up messages.
        out.studies.append(study)
        out.cells.append(cells)
        out.checked.append(not sheets.reader.bad.intersection(cells.values()))
    out.problems = sheets.reader.problems
    out.warnings = sheets.reader.warnings
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
