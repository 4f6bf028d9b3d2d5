"""The extraction corpus as an Excel workbook: template, import and export.

Layout (one header row per sheet, frozen; columns found by header name, in any order):

* **Studies**: one row per study, the study-level fields of the extraction format;
  ``via_review`` is split into ``via_review_authors``, ``via_review_year`` and
  ``via_review_reference``.
* **Outcomes**: long, one row per group × outcome. The group's columns (``study``,
  ``group_id``, then the other fields of a group) are repeated on each of its rows and
  must be the same on all of them; rows of one group need not be adjacent. Groups keep
  the order of their first row, outcome records the order of their rows.
* **README**: every column explained (from :mod:`metaresp.vocab` and the model field docs),
  and the conventions below.
* **Lists** (hidden): the controlled vocabularies that feed the dropdowns.

The columns are derived from the schema models (:mod:`metaresp.fields`), so a field added
to the extraction format becomes a column of both sheets' layout without another edit.

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

Where things live: :mod:`._layout` (sheets, limits, columns), :mod:`._escape` (OOXML text
escapes), :mod:`._writer` (export and template), :mod:`._open` (file guards),
:mod:`._cells` (reading and parsing cells), :mod:`._reader` (rows to validated studies),
:mod:`._import` (``metaresp import``).
"""

from __future__ import annotations

from metaresp.intake import diff_studies
from metaresp.workbook._cells import parse_cell as _parse  # noqa: F401  (tests of odd cell values)
from metaresp.workbook._escape import escape_text, unescape_text
from metaresp.workbook._import import Change, ImportResult, import_workbook
from metaresp.workbook._layout import (
    GROUP_COLUMNS,
    MAX_COLUMNS,
    MAX_FILE_BYTES,
    MAX_ROWS,
    MAX_XML_BYTES,
    OUTCOME_COLUMNS,
    RECORD_COLUMNS,
    STUDY_COLUMNS,
    Column,
)
from metaresp.workbook._reader import read_workbook
from metaresp.workbook._writer import example_study, write_template, write_workbook

__all__ = [
    "GROUP_COLUMNS",
    "MAX_COLUMNS",
    "MAX_FILE_BYTES",
    "MAX_ROWS",
    "MAX_XML_BYTES",
    "OUTCOME_COLUMNS",
    "RECORD_COLUMNS",
    "STUDY_COLUMNS",
    "Change",
    "Column",
    "ImportResult",
    "diff_studies",
    "escape_text",
    "example_study",
    "import_workbook",
    "read_workbook",
    "unescape_text",
    "write_template",
    "write_workbook",
]
