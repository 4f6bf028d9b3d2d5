"""What a figure worker process runs (:class:`metaresp.runner._FigurePool`).

Kept apart from :mod:`metaresp.runner` so that a worker imports only the plotting stack
and the figure modules: a function sent to a spawned process is imported there by its
module's name, and the runner's module would bring the plan, the cache and pydantic
with it (about a quarter of a second per worker).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["save", "warm"]


def save(job: tuple[str, Any, Path, Path], dpi: int) -> None:
    """Draw one figure job (kind, data, PNG, SVG) at ``dpi``."""
    from metaresp.forest import save_cumulative, save_forest

    kind, data, png, svg = job
    if kind == "forest":
        save_forest(data, png, svg, dpi=dpi)
    else:
        save_cumulative(
            data.rows,
            png,
            svg,
            title=data.title,
            outcome=data.outcome,
            model_note=data.model_note,
            dpi=dpi,
        )


def warm(parent: int | None = None) -> None:
    """Import the plotting stack (matplotlib, pandas, forestplot) in a worker process
    that ends with its parent (:func:`metaresp._workers.guard_worker`)."""
    if parent is not None:
        from metaresp._workers import guard_worker

        guard_worker(parent)
    from metaresp._forest_render import _contained

    with _contained():
        pass
