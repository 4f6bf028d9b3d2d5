"""How every output writes a number: one function per kind of value.

Tables (Markdown, HTML), forest plots, the CLI and the report all print through these
functions, so a percentage, an interval or a p-value reads the same everywhere. Files
meant for machines (CSV, XLSX, JSON) keep numbers as numbers and do not use them.

The conventions, each decided once:

- **Missing values** (``None`` or NaN) print as :data:`MISSING`, an en dash.
- **Percentages** of a 0-1 proportion, one decimal: ``41.0%``. A point estimate strictly
  between 0 and 1 that would round to ``0.0%`` or ``100.0%`` prints as ``< 0.1%`` or
  ``> 99.9%`` (a pooled rate is never exactly 0 or 1 and should not read so); interval
  bounds round plainly (an exact interval can end at 100%).
- **Intervals**, one style: ``22.7 to 59.4`` (the word "to", never a dash, so negative
  bounds on the logit scale stay readable); with an estimate ``41.0% (22.7 to 59.4)``,
  and with the level named ``41.0% (95% CI 22.7 to 59.4)``.
- **p-values**: ``< 0.001``; below 0.01 three decimals (``0.004``); otherwise two
  (``0.12``); above 0.99 ``> 0.99``. :func:`p_text` adds ``p = ``/``p < ``.
- **τ² and τ**: ``0`` when zero, ``< 0.0001`` when below that, else four significant
  digits with at most four decimals and no exponent (``0.2100``, ``1.234``); from 1000
  on, the whole number (``98765``).
- **I²**: one decimal with a percent sign (``85.3%``).
- **Heterogeneity Q**: named by kind, with its df and p: ``Cochran's Q = 12.34, df = 4,
  p = 0.02``; the GLMM reports a Wald-type test (``Wald Q``), as metafor's ``rma.glmm``.
- **Counts**: ``22/46``.
"""

from __future__ import annotations

import math
from typing import Literal

__all__ = [
    "MISSING",
    "QKind",
    "ci_label",
    "counts",
    "estimate_interval",
    "i2",
    "interval",
    "is_missing",
    "level_text",
    "lrt_test",
    "number",
    "p_text",
    "percent",
    "percent_number",
    "pvalue",
    "q_name",
    "q_test",
    "subgroup_test",
    "tau2",
]

MISSING = "–"
"""What a missing value (``None`` or NaN) prints as."""

QKind = Literal["cochran", "wald", "none"]
"""Which heterogeneity statistic a Q is: Cochran's (inverse variance), Wald-type (GLMM),
or none (a model without a Q test)."""

_Q_NAMES: dict[str, str] = {"cochran": "Cochran's Q", "wald": "Wald Q"}


def is_missing(value: float | None) -> bool:
    """``True`` for ``None`` and NaN (and infinities, which no output should print)."""
    return value is None or not math.isfinite(value)


def number(value: float | None, digits: int = 2) -> str:
    """A plain number with ``digits`` decimals; :data:`MISSING` when missing."""
    if value is None or is_missing(value):
        return MISSING
    text = f"{value:.{digits}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def percent_number(p: float | None, digits: int = 1) -> str:
    """A 0-1 proportion as a percent number without the sign, plain rounding: ``41.0``."""
    if p is None or is_missing(p):
        return MISSING
    return number(100.0 * p, digits)


def percent(p: float | None, digits: int = 1, *, sign: bool = True) -> str:
    """A 0-1 point estimate in percent: ``41.0%``; never ``0.0%``/``100.0%`` unless exact.

    ``sign=False`` leaves out the percent sign (for a column headed "%").
    """
    if p is None or is_missing(p):
        return MISSING
    suffix = "%" if sign else ""
    text = percent_number(p, digits)
    smallest = 10.0**-digits
    if 0.0 < p < 1.0 and float(text) <= 0.0:
        return f"< {smallest:.{digits}f}{suffix}"
    if 0.0 < p < 1.0 and float(text) >= 100.0:
        return f"> {100.0 - smallest:.{digits}f}{suffix}"
    return text + suffix


def interval(
    low: float | None,
    high: float | None,
    digits: int = 1,
    *,
    scale: Literal["percent", "raw", "tau2", "i2"] = "percent",
) -> str:
    """An interval in the one style of every output: ``22.7 to 59.4``.

    ``scale="percent"`` multiplies 0-1 bounds by 100; ``"raw"`` prints them as given with
    ``digits`` decimals (e.g. H or a logit estimate); ``"tau2"`` prints each bound as
    :func:`tau2` does; ``"i2"`` takes bounds already in percent (I²) and prints one decimal.
    :data:`MISSING` when either bound is missing.
    """
    if low is None or high is None or is_missing(low) or is_missing(high):
        return MISSING
    if scale == "percent":
        return f"{percent_number(low, digits)} to {percent_number(high, digits)}"
    if scale == "tau2":
        return f"{tau2(low)} to {tau2(high)}"
    if scale == "i2":
        return f"{number(low, 1)} to {number(high, 1)}"
    return f"{number(low, digits)} to {number(high, digits)}"


def level_text(level: float) -> str:
    """``0.95`` -> ``95%``; ``0.9`` -> ``90%``."""
    return f"{100.0 * level:g}%"


def ci_label(level: float, what: str = "CI") -> str:
    """A column header or label naming the level: ``95% CI``, ``90% PI``."""
    return f"{level_text(level)} {what}"


def estimate_interval(
    p: float | None,
    low: float | None,
    high: float | None,
    *,
    level: float | None = None,
    digits: int = 1,
    what: str = "CI",
) -> str:
    """``41.0% (22.7 to 59.4)``, or ``41.0% (95% CI 22.7 to 59.4)`` with ``level``;
    ``what="CrI"`` names a credible interval (``41.0% (95% CrI 22.7 to 59.4)``)."""
    if p is None or is_missing(p):
        return MISSING
    named = "" if level is None else ci_label(level, what) + " "
    return f"{percent(p, digits)} ({named}{interval(low, high, digits)})"


def pvalue(p: float | None) -> str:
    """A p-value: ``< 0.001``, ``0.004``, ``0.12``, ``> 0.99``; :data:`MISSING` if missing."""
    if p is None or is_missing(p):
        return MISSING
    if p < 0.001:
        return "< 0.001"
    if p < 0.01:
        return f"{p:.3f}"
    if p > 0.99:
        return "> 0.99"
    text = f"{p:.2f}"
    return "0.01" if text == "0.00" else text


def p_text(p: float | None) -> str:
    """``p = 0.12``, ``p < 0.001``, ``p > 0.99``, ``p = –`` when missing."""
    text = pvalue(p)
    return f"p {text}" if text[0] in "<>" else f"p = {text}"


def tau2(value: float | None) -> str:
    """τ² (or τ): ``0``, ``< 0.0001``, else 4 significant digits, at most 4 decimals,
    and whole numbers from 1000 on."""
    if value is None or is_missing(value):
        return MISSING
    if value <= 0.0:
        return "0"
    if value < 0.0001:
        return "< 0.0001"
    rounded = float(f"{value:.4g}")
    if rounded >= 1000.0:
        return f"{value:.0f}"
    decimals = min(4, max(0, 3 - math.floor(math.log10(rounded))))
    return f"{rounded:.{decimals}f}"


def i2(value: float | None) -> str:
    """I² (already in percent): ``85.3%``; :data:`MISSING` when missing."""
    if value is None or is_missing(value):
        return MISSING
    return f"{number(value, 1)}%"


def q_name(kind: str) -> str:
    """``Cochran's Q`` or ``Wald Q``; raises ``ValueError`` naming the kinds otherwise."""
    try:
        return _Q_NAMES[kind]
    except KeyError:
        raise ValueError(f"q kind: {kind!r} is not one of {', '.join(_Q_NAMES)}") from None


def q_test(q: float | None, df: int | None, p: float | None, kind: str = "cochran") -> str:
    """``Cochran's Q = 12.34, df = 4, p = 0.02``; :data:`MISSING` when Q is missing."""
    if q is None or is_missing(q) or kind == "none":
        return MISSING
    df_text = MISSING if df is None else str(df)
    return f"{q_name(kind)} = {number(q, 2)}, df = {df_text}, {p_text(p)}"


def lrt_test(stat: float | None, df: int | None, p: float | None) -> str:
    """A likelihood-ratio test: ``LRT = 12.17, df = 4, p = 0.02``."""
    if stat is None or is_missing(stat):
        return MISSING
    return f"LRT = {number(stat, 2)}, df = {MISSING if df is None else df}, {p_text(p)}"


def subgroup_test(q: float | None, df: int | None, p: float | None) -> str:
    """The between-subgroup test: ``Q = 5.21, df = 3, p = 0.16``."""
    if q is None or is_missing(q):
        return MISSING
    return f"Q = {number(q, 2)}, df = {MISSING if df is None else df}, {p_text(p)}"


def counts(events: int | None, total: int | None) -> str:
    """``22/46``; :data:`MISSING` when either count is missing."""
    if events is None or total is None:
        return MISSING
    return f"{events}/{total}"
