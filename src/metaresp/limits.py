"""The limits metaresp holds every input to, checked early and cheaply.

Every number here is stated in ``docs/limits.md``. A value over a limit is one located
error line, never a long computation or a memory blow-up: files are measured before they
are parsed, zip members by their declared and their streamed sizes, counts by their value.
"""

from __future__ import annotations

__all__ = [
    "MAX_CELLS",
    "MAX_COUNT",
    "MAX_MESSAGE_CHARS",
    "MAX_PLOT_ROWS",
    "MAX_TABLE_BYTES",
    "MAX_WORKBOOK_PART_BYTES",
    "MAX_WORKBOOK_UNZIPPED_BYTES",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "count_problem",
    "shorten",
]

MAX_YAML_BYTES = 1 * 2**20
"""An extraction file or an analysis plan may hold at most 1 MiB of text (the largest
extraction file of the shipped corpus is under 10 KiB)."""

MAX_YAML_NODES = 100_000
"""At most this many YAML nodes (keys, values, list items) in one file."""

MAX_YAML_DEPTH = 50
"""At most this many levels of nested mappings and lists in one file."""

MAX_WORKBOOK_UNZIPPED_BYTES = 200 * 2**20
"""The parts of a workbook (every zip member: sheets, styles, shared strings, ...) may
unpack to at most 200 MiB together, by their declared sizes and by the bytes streamed."""

MAX_WORKBOOK_PART_BYTES = 100 * 2**20
"""One part of a workbook may unpack to at most 100 MiB."""

MAX_CELLS = 1_000_000
"""A workbook may hold at most one million cells (``<c>`` elements) over all sheets."""

MAX_TABLE_BYTES = 50 * 2**20
"""A CSV table given to ``metaresp pool`` may be at most 50 MiB."""

MAX_COUNT = 10**9
"""Responders, evaluable counts and alternative counts are at most one billion (a
response rate is counted in patients or lines of therapy; ten digits fit every machine
integer and keep every check exact and quick)."""

MAX_PLOT_ROWS = 500
"""``metaresp pool --plot`` draws at most 500 study rows; a larger table is refused with
a line saying so (pool it without --plot, or split it with --by)."""

MAX_MESSAGE_CHARS = 300
"""A quoted input value in an error line is cut to at most 300 characters."""


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters (with ``...`` and the full length when cut)."""
    if len(text) <= limit:
        return text
    return f"{text[: max(limit - 40, 10)]}... ({len(text)} characters)"


def count_problem(value: int) -> str | None:
    """Why ``value`` is not an acceptable count, or ``None``."""
    if value < 0:
        return f"{value} is negative"
    if value > MAX_COUNT:
        digits = len(str(value)) if value < 10**4000 else "thousands of"
        return f"a count of {digits} digits is above the limit of {MAX_COUNT:,} (one billion)"
    return None
