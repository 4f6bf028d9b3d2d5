"""metaresp: evidence synthesis of response rates.

Public API (see the README):

- :func:`pool` -- random-effects pooling of proportions (GLMM and every
  inverse-variance model of R's metafor);
- :func:`load_extractions` -- the validated extraction corpus;
- :func:`read_workbook` / :func:`write_workbook` -- spreadsheet import/export.

Names are resolved lazily so that ``import metaresp`` stays cheap; the numeric
core is only imported when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "pool": "metaresp.pooling",
    "PoolResult": "metaresp.pooling",
    "load_extractions": "metaresp.corpus",
    "Corpus": "metaresp.corpus",
    "dump_study": "metaresp.corpus",
    "read_workbook": "metaresp.workbook",
    "write_workbook": "metaresp.workbook",
    "MetarespError": "metaresp.errors",
    "InputError": "metaresp.errors",
    "ConvergenceError": "metaresp.errors",
    "StatisticalWarning": "metaresp.errors",
}

__all__ = [*sorted(_LAZY), "__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from metaresp.corpus import Corpus as Corpus
    from metaresp.corpus import dump_study as dump_study
    from metaresp.corpus import load_extractions as load_extractions
    from metaresp.errors import ConvergenceError as ConvergenceError
    from metaresp.errors import InputError as InputError
    from metaresp.errors import MetarespError as MetarespError
    from metaresp.errors import StatisticalWarning as StatisticalWarning
    from metaresp.pooling import PoolResult as PoolResult
    from metaresp.pooling import pool as pool
    from metaresp.workbook import read_workbook as read_workbook
    from metaresp.workbook import write_workbook as write_workbook

def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'metaresp' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
