"""The figures of a run kept to a bounded size, whatever the size of the corpus.

- A forest plot draws at most :data:`~metaresp.limits.MAX_PLOT_ROWS` studies (the bound of
  ``metaresp pool --plot``). An analysis with more gets no forest plot: one note says so,
  and its studies stay in the tables (``pooled.csv``, the report's tables).
- A class taller than a page is cut into runs of whole study rows that each fit a page
  (:func:`paged`), so that the forest plot's pages (:mod:`metaresp._forest_pages`, which
  keeps a subgroup whole on a page) are pages: every run is headed by the class name
  and the study numbers it holds, and the class's pooled rows follow its last run.
- A cumulative plot draws at most :data:`MAX_CUMULATIVE_PLOT_ROWS` steps. A class with
  more is drawn at evenly spaced steps (the first and the last among them), and the
  plot's footnote says which; ``cumulative.csv`` keeps every step.

Each bound makes a figure's cost (about a second of CPU per page) independent of the
number of studies; docs/limits.md states them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from metaresp.limits import MAX_PLOT_ROWS

if TYPE_CHECKING:  # pragma: no cover
    from metaresp.cumulative import CumulativeFigure
    from metaresp.forestdata import ForestData, StudyRow, Subgroup

__all__ = [
    "MAX_CUMULATIVE_PLOT_ROWS",
    "PAGE_LINES",
    "bounded_cumulative",
    "forest_note",
    "paged",
    "thinned_steps",
]

MAX_CUMULATIVE_PLOT_ROWS = 100
"""A cumulative plot draws at most this many steps (about two and a half pages of rows in
one figure); a class with more studies is drawn at evenly spaced steps."""

PAGE_LINES = 34
"""Table lines of study rows in one run of a class (a 9 in page holds about 40 lines of
0.19 in, less its title, headers, axis and footnotes)."""


def forest_note(analysis: str, studies: int) -> str | None:
    """Why the forest plot of ``analysis`` is not drawn (``None`` when it is)."""
    if studies <= MAX_PLOT_ROWS:
        return None
    return (
        f"{analysis}: {studies:,} studies, more than the {MAX_PLOT_ROWS} a forest plot "
        "draws; no forest plot was drawn (every study is in pooled.csv and in the report's "
        "tables)"
    )


def missing_forest_sentence(studies: int, drawn: bool = True) -> str:
    """The report's sentence on an analysis without a forest plot: one too large to draw,
    or (``drawn`` false) a sensitivity analysis outside the plan's figure scope."""
    if studies <= MAX_PLOT_ROWS:
        if drawn:
            return ""
        return (
            "No forest plot: a run draws the primary analyses' plots, and this sensitivity "
            "analysis is in the table below ('figures: all' in the plan draws its plot too)."
        )
    return (
        f"No forest plot: its {studies:,} studies are more than the {MAX_PLOT_ROWS} a "
        "forest plot draws; every study is listed under Records included."
    )


def _lines(study: StudyRow) -> int:
    """Table lines of a study's label: wrapped to the narrowest label column the forest
    plot uses (:data:`metaresp._forest_cells.MIN_LABEL_IN`), so never too few."""
    return _label_lines(study.label)


@functools.lru_cache(maxsize=4096)
def _label_lines(label: str) -> int:  # a label recurs in most analyses of a run
    from metaresp._forest_cells import MIN_LABEL_IN, wrap_to_width
    from metaresp._forest_table import FONT_SIZE

    return len(wrap_to_width(label, MIN_LABEL_IN, FONT_SIZE))


def _runs(studies: Sequence[StudyRow], lines: int) -> list[tuple[StudyRow, ...]]:
    runs: list[list[StudyRow]] = [[]]
    used = 0
    for s in studies:
        n = _lines(s)
        if runs[-1] and used + n > lines:
            runs.append([])
            used = 0
        runs[-1].append(s)
        used += n
    return [tuple(r) for r in runs]


def paged(data: ForestData, lines: int = PAGE_LINES) -> ForestData:
    """``data`` with every class of more than ``lines`` table lines of studies cut into
    runs of at most ``lines`` lines (whole studies, in their order). Run ``i`` is named
    ``"<class> (studies a-b of n)"``; only the last run carries the class's pooled row.
    Classes that fit are left as they are."""
    subgroups: list[Subgroup] = []
    for sub in data.subgroups:
        runs = _runs(sub.studies, lines)
        if len(runs) == 1:
            subgroups.append(sub)
            continue
        name = sub.name.strip()
        first = 1
        for i, run in enumerate(runs):
            last = first + len(run) - 1
            span = f"studies {first:,}\u2013{last:,} of {len(sub.studies):,}"
            subgroups.append(
                replace(
                    sub,
                    name=f"{name} ({span})" if name else span.capitalize(),
                    studies=run,
                    pooled=sub.pooled if i == len(runs) - 1 else None,
                )
            )
            first = last + 1
    return replace(data, subgroups=tuple(subgroups))


def thinned_steps(n: int, most: int = MAX_CUMULATIVE_PLOT_ROWS) -> list[int]:
    """Indices of the ``n`` steps to draw: all when ``n <= most``, else ``most`` evenly
    spaced ones from the first to the last."""
    if n <= most:
        return list(range(n))
    if most < 2:
        return [n - 1]
    return sorted({round(i * (n - 1) / (most - 1)) for i in range(most)})


def bounded_cumulative(fig: CumulativeFigure) -> tuple[CumulativeFigure, str | None]:
    """``fig`` with at most :data:`MAX_CUMULATIVE_PLOT_ROWS` rows, and the note saying
    so when rows were left out (``None`` when every step is drawn)."""
    n = len(fig.rows)
    keep = thinned_steps(n)
    if len(keep) == n:
        return fig, None
    said = (
        f"{len(keep)} of {n:,} steps drawn, evenly spaced, the first and the last "
        "included; cumulative.csv lists every step."
    )
    note = " ".join(t for t in (fig.model_note, said) if t)
    thinned = replace(fig, rows=tuple(fig.rows[i] for i in keep), model_note=note)
    from metaresp.cumulative import FIGURE_FOLDER

    return thinned, f"{(FIGURE_FOLDER / fig.png.name).as_posix()}: {said[:-1]}"
