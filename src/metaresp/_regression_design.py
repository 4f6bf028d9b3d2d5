"""The design matrix of a meta-regression, coded as R's ``model.matrix`` codes a formula.

* A numeric moderator enters as it is (one column, named after the moderator).
* A text, boolean or categorical moderator is a factor with treatment (dummy) coding: the
  reference level is the first level, the other levels each get a column named
  ``<moderator><level>`` (``settingfirst-salvage``), as R's ``factor`` and metafor print
  them. Levels are sorted by code point (R's ``sort`` in the C locale); booleans have the
  levels ``FALSE`` and ``TRUE``; a pandas ``Categorical`` keeps its own category order (as an
  R factor keeps its ``levels``), with unused categories dropped.
* The intercept column ``intrcpt`` comes first. A column that is a linear combination of
  the columns before it (a constant numeric moderator, two moderators that say the same
  thing) is dropped with a warning, as metafor does ("Redundant predictors dropped from
  the model"; R's ``lm`` finds them with a pivoted QR decomposition, tolerance 1e-7).

Pandas is imported by nobody here: a data frame is read through its ``columns`` and item
access, a categorical column through its ``cat`` accessor.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from metaresp.errors import InputError

__all__ = ["Design", "Term", "build_design", "design_rows"]

FloatArray = NDArray[np.float64]

#: R's ``lm`` tolerance for a column that adds nothing to the ones before it (``qr`` tol).
RANK_TOL: Final[float] = 1e-7
#: metafor's ``evtol``: an eigenvalue of X'X at or below it means X is not of full rank.
EVTOL: Final[float] = 1e-7


@dataclass(frozen=True, slots=True)
class Term:
    """One moderator: ``kind`` "numeric" or "factor"; ``levels`` of a factor (reference
    first); ``mean`` of a numeric moderator (for predictions holding it fixed)."""

    name: str
    kind: str
    levels: tuple[str, ...] = ()
    mean: float = math.nan


@dataclass(frozen=True, slots=True)
class Design:
    """The coded moderators: ``matrix`` (k × p, intercept first), the coefficient
    ``names`` (metafor's), the ``terms`` in order, the ``columns`` of each term that stayed
    in the model, and the names of ``dropped`` (redundant) columns."""

    matrix: FloatArray
    names: tuple[str, ...]
    terms: tuple[Term, ...]
    dropped: tuple[str, ...]

    @property
    def p(self) -> int:
        return len(self.names)


def _is_frame(obj: object) -> bool:
    return hasattr(obj, "columns") and hasattr(obj, "iloc") and not isinstance(obj, Mapping)


def _columns(moderators: object) -> list[tuple[str, Any]]:
    if _is_frame(moderators):
        frame: Any = moderators
        return [(str(c), frame[c]) for c in frame.columns]
    if isinstance(moderators, Mapping):
        return [(k, v) for k, v in moderators.items()]
    raise InputError(
        "moderators: must be a mapping of name to sequence, or a data frame; got "
        f"{type(moderators).__name__}"
    )


def _category_order(values: Any) -> tuple[str, ...] | None:
    """The category order of a pandas categorical column (None for anything else)."""
    dtype = getattr(values, "dtype", None)
    if getattr(dtype, "name", None) != "category":
        return None
    if hasattr(values, "cat"):  # a Series of categorical dtype
        cats = values.cat.remove_unused_categories().cat.categories
    else:  # a pandas.Categorical
        cats = values.remove_unused_categories().categories
    return tuple(str(c) for c in cats)


def _missing(v: object) -> bool:
    if v is None:
        return True
    if isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_):
        return math.isnan(float(v))
    return False


def _code_term(
    name: str, values: Any, k: int, problems: list[str]
) -> tuple[Term, list[tuple[str, FloatArray]]] | None:
    if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        problems.append(f"moderators[{name!r}]: must be a sequence of values, one per study")
        return None
    order = _category_order(values)
    seq = list(values.tolist() if hasattr(values, "tolist") else values)
    if len(seq) != k:
        problems.append(f"moderators[{name!r}]: {len(seq)} values for {k} studies; need one each")
        return None
    bad = [i for i, v in enumerate(seq) if _missing(v)]
    if bad:
        where = ", ".join(str(i) for i in bad[:5])
        problems.append(
            f"moderators[{name!r}]: missing value (NaN/None) at study {where}; meta-regression "
            "needs a value for every study (drop those studies or fill the moderator in)"
        )
        return None
    numeric = all(isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in seq)
    if numeric and order is None:
        col = np.asarray(seq, dtype=np.float64)
        if not np.isfinite(col).all():
            problems.append(f"moderators[{name!r}]: values must be finite numbers")
            return None
        return Term(name, "numeric", mean=float(col.mean())), [(name, col)]
    if all(isinstance(v, bool | np.bool_) for v in seq):
        labels = ["TRUE" if v else "FALSE" for v in seq]
    elif all(isinstance(v, str) for v in seq) or order is not None:
        labels = [str(v) for v in seq]
    else:
        problems.append(
            f"moderators[{name!r}]: mixes numbers and text; give numbers (a numeric "
            "moderator) or text (a categorical one)"
        )
        return None
    levels = order if order is not None else tuple(sorted(set(labels)))
    if len(levels) < 2:
        problems.append(
            f"moderators[{name!r}]: every study has the value {levels[0]!r}; a categorical "
            "moderator needs at least two levels (R: contrasts need two levels)"
        )
        return None
    arr = np.asarray(labels, dtype=object)
    cols = [(f"{name}{lev}", (arr == lev).astype(np.float64)) for lev in levels[1:]]
    return Term(name, "factor", levels=levels), cols


def _independent(matrix: FloatArray) -> list[int]:
    """Columns that are not linear combinations of the columns before them (R's ``lm``
    with its pivoted QR: a column whose remaining norm is below 1e-7 of its own norm)."""
    keep: list[int] = []
    basis = np.zeros((matrix.shape[0], 0))
    for j in range(matrix.shape[1]):
        col = matrix[:, j]
        norm = float(np.linalg.norm(col))
        if norm == 0.0:
            continue
        resid = col - basis @ (basis.T @ col) if basis.shape[1] else col
        resid = resid - basis @ (basis.T @ resid) if basis.shape[1] else resid
        rnorm = float(np.linalg.norm(resid))
        if rnorm < RANK_TOL * norm:
            continue
        keep.append(j)
        basis = np.column_stack([basis, resid / rnorm])
    return keep


def build_design(moderators: object, k: int) -> Design:
    """Code ``moderators`` (a mapping name → sequence or a data frame) for ``k`` studies;
    :class:`~metaresp.errors.InputError` names every problem."""
    problems: list[str] = []
    columns = _columns(moderators)
    if not columns:
        problems.append("moderators: at least one moderator is needed")
    terms: list[Term] = []
    named: list[tuple[str, FloatArray]] = [("intrcpt", np.ones(k))]
    seen: set[str] = set()
    for name, values in columns:
        if not isinstance(name, str) or not name:
            problems.append(f"moderators: names must be non-empty strings; got {name!r}")
            continue
        if name in seen or name == "intrcpt":
            problems.append(f"moderators: the name {name!r} is used twice (or is 'intrcpt')")
            continue
        seen.add(name)
        coded = _code_term(name, values, k, problems)
        if coded is not None:
            terms.append(coded[0])
            named.extend(coded[1])
    if problems:
        raise InputError(problems)
    matrix = np.column_stack([c for _, c in named])
    keep = _independent(matrix)
    dropped = tuple(named[j][0] for j in range(len(named)) if j not in keep)
    matrix = matrix[:, keep]
    eig = np.linalg.eigvalsh(matrix.T @ matrix)
    if (eig <= EVTOL).any():
        raise InputError(
            "moderators: the design matrix is not of full rank (an eigenvalue of X'X is "
            f"below {EVTOL:g}); rescale the moderators (metafor stops here too)"
        )
    return Design(matrix, tuple(named[j][0] for j in keep), tuple(terms), dropped)


def design_rows(design: Design, newmods: Mapping[str, Sequence[Any]]) -> FloatArray:
    """Rows of the design matrix for new moderator values (a mapping of every moderator's
    name to values; a factor's values are level names). Columns dropped from the fit are
    dropped here too."""
    names = [t.name for t in design.terms]
    missing = [n for n in names if n not in newmods]
    extra = [n for n in newmods if n not in names]
    if missing or extra:
        raise InputError(
            f"newmods: needs exactly the moderators {', '.join(names)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(map(str, extra))}" if extra else "")
        )
    lengths = {len(list(newmods[n])) for n in names}
    if len(lengths) != 1:
        raise InputError("newmods: every moderator needs the same number of values")
    m = lengths.pop()
    cols: dict[str, FloatArray] = {"intrcpt": np.ones(m)}
    for term in design.terms:
        vals = list(newmods[term.name])
        if term.kind == "numeric":
            cols[term.name] = np.asarray(vals, dtype=np.float64)
            continue
        labels = [("TRUE" if v else "FALSE") if isinstance(v, bool) else str(v) for v in vals]
        unknown = sorted(set(labels) - set(term.levels))
        if unknown:
            raise InputError(
                f"newmods[{term.name!r}]: unknown level(s) {', '.join(unknown)}; levels are "
                f"{', '.join(term.levels)}"
            )
        arr = np.asarray(labels, dtype=object)
        for lev in term.levels[1:]:
            cols[f"{term.name}{lev}"] = (arr == lev).astype(np.float64)
    out: FloatArray = np.column_stack([cols[n] for n in design.names])
    return out
