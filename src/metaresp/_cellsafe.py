"""Text cells that a spreadsheet would run as a formula, made inert: the one rule every
table metaresp writes follows (CSV and XLSX alike).

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
what OWASP calls CSV injection: Excel or LibreOffice opening the file evaluates it
(``=cmd|' /C calc'!A0``). Such text is written with a leading apostrophe, which the
spreadsheet shows as text and does not evaluate. Numbers are left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["FORMULA_START", "formula_safe", "formula_safe_frame"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a text cell as a formula."""


def formula_safe(value: Any) -> Any:
    """``value`` with a leading apostrophe when it is text a spreadsheet would evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def formula_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with :func:`formula_safe` applied to its text columns."""
    from pandas.api.types import is_numeric_dtype

    out = frame.copy()
    for column in out.columns:
        if not is_numeric_dtype(out[column]):
            out[column] = out[column].map(formula_safe)
    return out
