"""A forest plot taller than a page, split into pages with whole subgroups; a cumulative
plot taller than a page, split into pages with whole steps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from metaresp._forest_table import _forest_table, _Table, _validate
from metaresp.forestdata import ForestData

__all__ = [
    "PAGE_HEIGHT_IN",
    "cumulative_pages",
    "page_paths",
    "page_room",
    "paginate",
    "split_pages",
]

PAGE_HEIGHT_IN = 9.0
"""Tallest figure on one page (a journal page's text height is about 9 in)."""


def split_pages(data: ForestData, table_height: Callable[[_Table], float]) -> list[ForestData]:
    """``data`` split into pages no taller than :data:`PAGE_HEIGHT_IN`, whole subgroups
    to a page (a subgroup taller than a page gets a page of its own). Every page repeats
    the title (pages after the first say "continued") and the column headers; the overall
    estimate, the test for subgroup differences and the footnotes come once, on the last
    page. One page when everything fits. ``table_height`` gives a drawn table's height in
    inches (:func:`metaresp.forest.forest_pages` passes the plot's own layout)."""
    _validate(data)
    room = page_room(data)

    def height(subgroups: Sequence[Any], last: bool) -> float:
        page = replace(data, subgroups=tuple(subgroups))
        if not last:
            page = replace(page, overall=None, subgroup_test=None, footnotes=(), model_note="")
        table = _forest_table(page, data, room)
        if not last:
            table.footnotes = ()
        return table_height(table)

    if len(data.subgroups) < 2:
        return [data]
    chunks = paginate(data.subgroups, height)
    pages: list[ForestData] = []
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        title = data.title if i == 0 or not data.title else f"{data.title} (continued)"
        page = replace(data, subgroups=tuple(chunk), title=title)
        if not last:
            page = replace(page, overall=None, subgroup_test=None, footnotes=(), model_note="")
        pages.append(page)
    return pages


def paginate(
    items: Sequence[Any], height: Callable[[Sequence[Any], bool], float]
) -> list[list[Any]]:
    """``items`` (subgroups, or a cumulative plot's steps) in order to pages no taller
    than :data:`PAGE_HEIGHT_IN`; ``height(items, last)`` is the height of a page holding
    them (the last page also holds the closing rows and the footnotes). One page when
    everything fits; otherwise as few pages as a greedy fill needs, filled evenly where
    that still fits (a first page holding one subgroup of ten reads as a mistake). An
    item taller than a page gets a page of its own."""
    whole = height(items, True)
    if whole <= PAGE_HEIGHT_IN or len(items) < 2:
        return [list(items)]
    chunks = _fill(items, height, PAGE_HEIGHT_IN)
    limit = whole / len(chunks)
    while limit < PAGE_HEIGHT_IN:  # the lowest fill that still needs no more pages
        even = _fill(items, height, limit)
        if len(even) == len(chunks) and all(
            height(c, i == len(even) - 1) <= PAGE_HEIGHT_IN for i, c in enumerate(even)
        ):
            return even
        limit += 0.25
    return chunks


def cumulative_pages(table: _Table, table_height: Callable[[_Table], float]) -> list[_Table]:
    """A cumulative plot's table split into pages no taller than :data:`PAGE_HEIGHT_IN`,
    whole steps (a step with the further lines of its label) to a page; pages after the
    first say "continued" in the title, the footnotes come on the last."""
    steps: list[list[Any]] = []
    for row in table.sections[0].rows:
        if row.kind == "cumulative" or not steps:
            steps.append([row])
        else:
            steps[-1].append(row)

    def page(chunk: Sequence[list[Any]], last: bool, first: bool = False) -> _Table:
        section = replace(table.sections[0], rows=[r for step in chunk for r in step])
        title = table.title if first or not table.title else f"{table.title} (continued)"
        notes = table.footnotes if last else ()
        return replace(table, sections=[section], title=title, footnotes=notes)

    chunks = paginate(steps, lambda chunk, last: table_height(page(chunk, last)))
    return [page(chunk, i == len(chunks) - 1, first=i == 0) for i, chunk in enumerate(chunks)]


def page_room(data: ForestData) -> float:
    """The width the labels of every page of ``data`` wrap to: the whole plot's."""
    from metaresp._forest_cells import whole_plot

    return whole_plot(_forest_table(data))[0]


def _fill(
    subgroups: Sequence[Any], height: Callable[[Sequence[Any], bool], float], limit: float
) -> list[list[Any]]:
    """Subgroups to pages in order, each page filled up to ``limit`` inches; the last
    page also holds the overall rows and the footnotes, so while it is too tall its
    first subgroups move to a page of their own before it."""
    chunks: list[list[Any]] = [[]]
    for sub in subgroups:
        trial = [*chunks[-1], sub]
        if chunks[-1] and height(trial, False) > limit:
            chunks.append([sub])
        else:
            chunks[-1] = trial
    moved: list[Any] = []
    while len(chunks[-1]) > 1 and height(chunks[-1], True) > PAGE_HEIGHT_IN:
        moved.append(chunks[-1].pop(0))
    if moved:
        chunks.insert(len(chunks) - 1, moved)
    return [c for c in chunks if c]


def page_paths(png: Path, n: int) -> list[tuple[Path, Path]]:
    """``NAME.png``/``NAME.svg``, then ``NAME-p2.png``/``.svg``, ... for ``n`` pages."""
    png = Path(png)
    out = [(png, png.with_suffix(".svg"))]
    for i in range(2, n + 1):
        other = png.with_name(f"{png.stem}-p{i}{png.suffix}")
        out.append((other, other.with_suffix(".svg")))
    return out
