"""metaresp: evidence synthesis of response rates.

Public API (see the README):

- :func:`pool` -- random-effects pooling of proportions (GLMM and every
  inverse-variance model of R's metafor);
- :func:`regress` -- meta-regression of proportions on study-level moderators
  (:class:`RegressionResult`), :func:`bubble_plot` to draw one;
- :func:`pool_subgroups` -- each subgroup pooled with its own τ², and the test for
  subgroup differences (``metaprop(subgroup=)``);
- :func:`load_extractions` -- the validated extraction corpus;
- :func:`read_workbook` / :func:`write_workbook` -- spreadsheet import/export;
- :func:`load_plan`, :func:`run_plan` (what ``metaresp run`` does), :func:`run_analyses`
  (pool a plan without writing files), :func:`records_from_corpus`;
- :func:`draw_forest` / :func:`save_forest` -- forest plots of an analysis
  (``result.forest_data()``);
- :func:`current_state`, :func:`load_previous`, :func:`compare`, :func:`format_diff`,
  :func:`changelog` -- what changed between two states of the evidence;
- :class:`ModelSpec` -- the one type that names a model.

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
    "pool_subgroups": "metaresp.subgroups",
    "SubgroupPool": "metaresp.subgroups",
    "ModelSpec": "metaresp.models",
    "regress": "metaresp.regression",
    "RegressionResult": "metaresp.regression",
    "bubble_plot": "metaresp.bubble",
    "load_plan": "metaresp.plan",
    "Plan": "metaresp.plan",
    "run_plan": "metaresp.runner",
    "run_analyses": "metaresp.runner",
    "RunOutput": "metaresp.runner",
    "records_from_corpus": "metaresp.records",
    "draw_forest": "metaresp.forest",
    "save_forest": "metaresp.forest",
    "current_state": "metaresp.living",
    "load_previous": "metaresp.living",
    "compare": "metaresp.living",
    "format_diff": "metaresp.living",
    "changelog": "metaresp.living",
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
    from metaresp.bubble import bubble_plot as bubble_plot
    from metaresp.corpus import Corpus as Corpus
    from metaresp.corpus import dump_study as dump_study
    from metaresp.corpus import load_extractions as load_extractions
    from metaresp.errors import ConvergenceError as ConvergenceError
    from metaresp.errors import InputError as InputError
    from metaresp.errors import MetarespError as MetarespError
    from metaresp.errors import StatisticalWarning as StatisticalWarning
    from metaresp.forest import draw_forest as draw_forest
    from metaresp.forest import save_forest as save_forest
    from metaresp.living import changelog as changelog
    from metaresp.living import compare as compare
    from metaresp.living import current_state as current_state
    from metaresp.living import format_diff as format_diff
    from metaresp.living import load_previous as load_previous
    from metaresp.models import ModelSpec as ModelSpec
    from metaresp.plan import Plan as Plan
    from metaresp.plan import load_plan as load_plan
    from metaresp.pooling import PoolResult as PoolResult
    from metaresp.pooling import pool as pool
    from metaresp.records import records_from_corpus as records_from_corpus
    from metaresp.regression import RegressionResult as RegressionResult
    from metaresp.regression import regress as regress
    from metaresp.runner import RunOutput as RunOutput
    from metaresp.runner import run_analyses as run_analyses
    from metaresp.runner import run_plan as run_plan
    from metaresp.subgroups import SubgroupPool as SubgroupPool
    from metaresp.subgroups import pool_subgroups as pool_subgroups
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
