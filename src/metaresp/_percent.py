"""Printed percentages and the counts that reproduce them: a derived count must print as
its source's percentage at the source's precision (methods.md, "Derived counts"); the
checks work from the ends of the range of matching counts, never a list of candidates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction


def percent_decimals(percent: str) -> int:
    """Number of decimals printed in ``percent`` ("71.4" → 1, "64" → 0)."""
    _, _, decimals = percent.partition(".")
    return len(decimals)


def _percent_fraction(percent: str) -> Fraction:
    try:
        return Fraction(Decimal(percent))
    except InvalidOperation as exc:  # pragma: no cover - the model's pattern prevents it
        raise ValueError(f"percent {percent!r} is not a number") from exc


def reproduces(count: int, total: int, percent: str) -> bool:
    """True when ``count/total`` gives the printed ``percent`` at its printed precision.

    Rule: ``|100·count/total − p| ≤ ½·10^(−d)`` with ``d`` the number of printed decimals,
    in exact rational arithmetic. The bound is inclusive because journals round half up or
    half to even, so a value exactly half-way may be printed either way.
    """
    if total <= 0:
        raise ValueError(f"total must be positive, got {total}")
    half = Fraction(1, 2 * 10 ** percent_decimals(percent))
    return abs(Fraction(100 * count, total) - _percent_fraction(percent)) <= half


def matching_counts(total: int, percent: str) -> range:
    """Every whole count ``0..total`` that reproduces ``percent`` (rule of :func:`reproduces`),
    as a range computed from its two ends (never a list of every candidate)."""
    if total <= 0:
        raise ValueError(f"total must be positive, got {total}")
    half = Fraction(1, 2 * 10 ** percent_decimals(percent))
    p = _percent_fraction(percent)
    low = max(0, math.ceil((p - half) * total / 100))
    high = min(total, math.floor((p + half) * total / 100))
    return range(low, max(low, high + 1))


def _counts_text(fits: Sequence[int], joiner: str) -> str:
    """The candidate counts for a message: all of them when few, else the two ends."""
    if len(fits) <= 6:
        return joiner.join(str(k) for k in fits)
    return f"any of {fits[0]}..{fits[-1]}"


def _nearest(total: int, percent: str) -> list[int]:
    """The two whole counts of ``total`` nearest to ``percent`` (arithmetic, no search)."""
    exact = _percent_fraction(percent) * total / 100
    below = min(max(math.floor(exact), 0), total)
    above = min(max(math.ceil(exact), 0), total)
    return sorted({below, above} | ({below - 1} if below == above and below > 0 else set()))[:2]


def _pct(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%"


__all__ = [
    "_counts_text",
    "_nearest",
    "_pct",
    "matching_counts",
    "percent_decimals",
    "reproduces",
]
