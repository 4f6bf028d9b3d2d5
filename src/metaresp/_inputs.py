"""Checking what a user passes to :func:`metaresp.pool`: whole counts, equal lengths,
events within totals, one label per study; every problem one line naming the argument."""

from __future__ import annotations

import math
import numbers
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from metaresp.errors import InputError

__all__ = ["MAX_COUNT", "validate_counts"]

IntArray = NDArray[np.int64]


#: Counts at or above this are refused: no study has a billion patients, and the arithmetic
#: stays exact in double precision well below it.
MAX_COUNT: Final[int] = 10**9


def _counts(name: str, values: Any, problems: list[str]) -> IntArray | None:
    """Whole, finite, non-boolean counts as an int64 array; problems are appended."""
    if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        problems.append(f"{name}: must be a sequence of whole numbers; got {type(values).__name__}")
        return None
    if isinstance(values, np.ndarray):
        arr = values
    else:
        seq = list(values)
        if any(isinstance(v, bool | np.bool_) for v in seq):
            arr = np.asarray(seq, dtype=object)
        else:
            try:
                arr = np.asarray(seq)
            except (TypeError, ValueError, OverflowError):
                arr = np.asarray(seq, dtype=object)
    if arr.ndim != 1:
        problems.append(f"{name}: must be one-dimensional; got shape {arr.shape}")
        return None
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if (
        arr.dtype.kind == "f"
        and np.isfinite(arr).all()
        and (arr == np.floor(arr)).all()
        and (np.abs(arr) < MAX_COUNT).all()
    ):
        return arr.astype(np.int64)
    out: list[int] = []
    for i, v in enumerate(arr.tolist()):
        if isinstance(v, bool | np.bool_):
            problems.append(f"{name}[{i}]: must be a whole number, not a boolean ({v!r})")
        elif isinstance(v, numbers.Integral):
            if abs(int(v)) >= MAX_COUNT:
                problems.append(
                    f"{name}[{i}]: {int(v)} is beyond any study size (at most {MAX_COUNT - 1:,})"
                )
            else:
                out.append(int(v))
        elif isinstance(v, numbers.Real) and math.isnan(float(v)):
            problems.append(f"{name}[{i}]: is missing (NaN); must be a whole number")
        elif isinstance(v, numbers.Real) and math.isfinite(float(v)) and float(v).is_integer():
            if abs(float(v)) >= MAX_COUNT:
                problems.append(
                    f"{name}[{i}]: {v!r} is beyond any study size (at most {MAX_COUNT - 1:,})"
                )
            else:
                out.append(int(float(v)))
        else:
            problems.append(f"{name}[{i}]: must be a whole number; got {v!r}")
    return np.asarray(out, dtype=np.int64) if len(out) == arr.size else None


def validate_counts(
    events: Any,
    totals: Any,
    labels: Any,
    spec_problems: list[str],
) -> tuple[IntArray, IntArray, tuple[str, ...]]:
    """Checked counts and labels of one dataset, or :class:`InputError` with every problem
    (``spec_problems``, the model's, first), one line each naming the argument."""
    problems = list(spec_problems)
    xi = _counts("events", events, problems)
    ni = _counts("totals", totals, problems)
    n_ev = len(events) if hasattr(events, "__len__") and not isinstance(events, str) else None
    n_to = len(totals) if hasattr(totals, "__len__") and not isinstance(totals, str) else None
    if n_ev == 0 or n_to == 0:
        problems.append("events, totals: empty input; at least one study is needed")
    elif n_ev is not None and n_to is not None and n_ev != n_to:
        problems.append(f"events, totals: unequal lengths ({n_ev} events, {n_to} totals)")
    elif xi is not None and ni is not None:
        bad = (ni <= 0) | (xi < 0) | (xi > ni)
        if bad.any():
            for i in np.flatnonzero(bad).tolist():
                x, n = int(xi[i]), int(ni[i])
                if n <= 0:
                    problems.append(f"totals[{i}]: must be at least 1; got {n}")
                if x < 0:
                    problems.append(f"events[{i}]: must not be negative; got {x}")
                elif n > 0 and x > n:
                    problems.append(f"events[{i}]: {x} events exceed the total of {n}")
    k = n_ev or 0
    if labels is None:
        labs = tuple(f"Study {i + 1}" for i in range(k))
    elif isinstance(labels, str) or not hasattr(labels, "__len__"):
        problems.append("labels: must be a sequence of strings, one per study")
        labs = ()
    else:
        labs = tuple(str(v) for v in labels)
        if len(labs) != k:
            problems.append(f"labels: {len(labs)} labels for {k} studies; need one per study")
    if problems or xi is None or ni is None:
        raise InputError(problems)
    return xi, ni, labs
