"""Rendering helpers of the forest plot: the render settings and the containment of the
``forestplot`` package's side effects (:func:`_contained`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

# --------------------------------------------------------------------------- containment


RENDER_RC: Any = {  # rcParams keys (typed as Any: matplotlib types them as literals)
    # Hinting snaps glyphs to the pixel grid: it matters on screens at 100 dpi, not in
    # 300 dpi figures, and turning it off makes rendering about a fifth faster.
    "text.hinting": "no_hinting",
    # SVG text stays text: searchable, editable, and faster to write than glyph outlines.
    "svg.fonttype": "none",
}


@contextmanager
def _contained(fig: Figure | None = None) -> Iterator[Any]:
    """Import and run ``forestplot`` without letting it change process-wide state.

    Restores on exit: ``warnings.filters`` (it installs a blanket "ignore"), the NumPy
    floating-point error state (it calls ``np.seterr(all="ignore")``) and
    ``matplotlib.rcParams`` (it rewrites ``font.monospace``). Warnings raised by the
    package's own code are dropped (our input is validated before it gets there). While
    inside, ``forestplot.graph_utils.plt`` is a shim whose ``gcf()`` returns ``fig``, so
    text is measured on the figure being drawn and pyplot creates no figure, and (with
    :data:`SKIP_LABEL_PADDING`) the package sets its row labels without measuring them
    (:func:`_labels_unmeasured`). Not thread-safe (neither is the package).
    """
    import matplotlib
    import numpy as np
    from matplotlib.category import UnitData

    with warnings.catch_warnings(), np.errstate(), matplotlib.rc_context(RENDER_RC):
        import forestplot
        import forestplot.graph_utils as graph_utils
        from matplotlib.ticker import MaxNLocator

        warnings.filterwarnings("ignore", module=r"forestplot(\.|$)")
        original_plt = graph_utils.plt
        # The categorical y axis parses every row label with dateutil only to warn that a
        # label looks like a number or a date; our labels are text by construction, and
        # that parsing was a tenth of the drawing time.
        original_check = UnitData.__dict__["_str_is_convertible"]
        UnitData._str_is_convertible = staticmethod(  # type: ignore[method-assign]
            lambda val: False
        )
        if fig is not None:
            graph_utils.plt = SimpleNamespace(gcf=lambda: fig, MaxNLocator=MaxNLocator)
        import forestplot.plot as plot_module

        original_flush = plot_module.right_flush_yticklabels
        if SKIP_LABEL_PADDING:
            plot_module.right_flush_yticklabels = _labels_unmeasured
        try:
            yield forestplot
        finally:
            graph_utils.plt = original_plt
            plot_module.right_flush_yticklabels = original_flush
            UnitData._str_is_convertible = original_check  # type: ignore[method-assign]


SKIP_LABEL_PADDING = True
"""Let ``forestplot`` set its row labels without measuring each one's drawn width (see
:func:`_labels_unmeasured`); a test draws with and without and compares the pixels."""


def _labels_unmeasured(
    dataframe: Any, yticklabel: str, flush: bool, ax: Any, **kwargs: Any
) -> float:
    """What ``forestplot.graph_utils.right_flush_yticklabels`` does for ``flush=False``
    (the package's row labels as y tick labels, right-aligned), less its measurement.

    The package lays out the text of every row label to find the widest, for the padding
    of a left-flushed label column and of a y-axis label; the forest plot here draws
    neither (``flush=False``, no ``ylabel``: the tick labels are hidden and the table is
    drawn cell by cell), and that layout was a fifth of a figure's drawing time. The
    padding returned is therefore 0. Matplotlib's warning that the labels are set
    without a fixed locator is the package's (it places a label on every row tick) and,
    as for its other warnings, not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="set_ticklabels", category=UserWarning)
        ax.set_yticklabels(
            dataframe[yticklabel],
            fontfamily=kwargs.get("fontfamily", "monospace"),
            fontsize=kwargs.get("fontsize", 12),
            ha="left" if flush else "right",
        )
    return 0.0


__all__ = ["RENDER_RC", "_contained"]
