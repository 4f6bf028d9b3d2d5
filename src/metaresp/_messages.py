"""Pydantic's errors as the one-line messages metaresp prints, shared by the extraction
files (:mod:`metaresp.corpus`) and the workbook (:mod:`metaresp.workbook`), which differ
only in how they name a place (a file line, a cell) and an empty value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

__all__ = ["bounded_repr", "field_name", "generic_message", "meaningful_errors", "pattern_message"]

_SELF_EXPLAINED = ("vocabulary", "percent_range")
"""Error kinds of the schema's own checks: their message already shows the value."""

_PATTERN_HINTS: dict[str, str] = {
    "percent": 'a number as printed, without "%", e.g. {example}',
    "published": "YYYY, YYYY-MM or YYYY-MM-DD",
    "doi": "10.xxxx/...",
}
_SLUG_HINT = "a lower-case slug (a-z, 0-9 and '-')"


def meaningful_errors(exc: ValidationError) -> list[Mapping[str, Any]]:
    """The errors worth a line: a list "too short" only because its invalid items were
    dropped is left out (its items are reported)."""
    errors = exc.errors()
    locs = [tuple(e["loc"]) for e in errors]
    return [
        err
        for err, loc in zip(errors, locs, strict=True)
        if not (err["type"] == "too_short" and any(o[: len(loc)] == loc and o != loc for o in locs))
    ]


def field_name(err: Mapping[str, Any]) -> str:
    """The name of the field the error is about (the last name in its location)."""
    return next((str(p) for p in reversed(tuple(err["loc"])) if isinstance(p, str)), "")


def pattern_message(err: Mapping[str, Any], percent_example: str) -> str:
    """A value that does not fit its field's pattern, with what the field expects."""
    hint = _PATTERN_HINTS.get(field_name(err), _SLUG_HINT)
    expected = hint.format(example=percent_example)
    return f"{bounded_repr(err['input'])} is not valid here: expected {expected}"


def bounded_repr(value: Any) -> str:
    """``repr(value)`` cut short: a few items of each list, a few levels, at most
    :data:`~metaresp.limits.MAX_MESSAGE_CHARS` characters (a message never echoes a
    large input)."""
    import reprlib

    from metaresp.limits import shorten

    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxtuple = 3, 6, 6, 6
    short.maxstring = short.maxother = 120
    short.maxlong = 40
    try:
        return shorten(short.repr(value))
    except ValueError:  # an int too long to convert to text
        return f"a number of more than {4300} digits"


def generic_message(err: Mapping[str, Any]) -> str:
    """Pydantic's message, with the value given unless the message already shows it."""
    message = str(err["msg"])
    if "input" in err and err["type"] not in _SELF_EXPLAINED:
        message += f" (got {bounded_repr(err['input'])})"
    return message
