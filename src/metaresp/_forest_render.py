"""Rendering helpers of the forest plot: containment of the ``forestplot`` package's
side effects (:func:`_contained`) and the split of each padded table row into one SVG
text element per cell (:func:`_split_columns`), so browsers keep the columns apart.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from metaresp._forest_table import MONO_ADVANCE_EM, MONO_FONT

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
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
    text is measured on the figure being drawn and pyplot creates no figure.
    Not thread-safe (neither is the package).
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
        try:
            yield forestplot
        finally:
            graph_utils.plt = original_plt
            UnitData._str_is_convertible = original_check  # type: ignore[method-assign]


_RUN = re.compile(r"\S+(?: \S+)*")
"""A cell of a space-padded table line: text whose words are one space apart (columns are
at least two spaces apart; no-break spaces, which only make labels unique, count as blank)."""


def _split_columns(ax: Axes, fig: Figure) -> None:
    """Redraw every space-padded table line as one text per cell.

    ``forestplot`` writes each row as one monospace string (label and left columns as a y
    tick label, the right columns as one text) and aligns columns with runs of spaces.
    SVG viewers collapse runs of spaces (SVG has no ``white-space: pre`` by default), so
    in a browser the columns run together, and a reader without DejaVu Sans Mono gets
    other glyph widths. Here each cell becomes its own text, anchored where the padded
    string put it: the first cell of a tick label (the study label, a group header or
    "Study") by its left edge, every other cell (numbers and their headers, which are
    right-justified) by its right edge, so ``text-anchor: end`` keeps the columns aligned
    whatever font the viewer substitutes. x is in inches from the figure's left edge and
    y is the row's data coordinate, so the positions hold at any dpi.
    """
    from matplotlib.text import Text
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(fig.dpi_scale_trans, ax.transData)
    to_inches = fig.dpi_scale_trans.inverted()

    def redraw(t: Text, y_data: float, first_left: bool) -> None:
        text = t.get_text()
        if not text.strip():
            return
        anchor_px = t.get_transform().transform(t.get_unitless_position())
        advance_px = MONO_ADVANCE_EM * float(t.get_fontsize()) * fig.dpi / 72.0
        mono = MONO_FONT in t.get_fontfamily()
        ha = t.get_horizontalalignment()
        width_px = len(text) * advance_px if mono else 0.0
        start_px = float(anchor_px[0]) - {"left": 0.0, "center": width_px / 2}.get(ha, width_px)
        runs = list(_RUN.finditer(text)) if mono else []
        if not runs:  # proportional text (group headers): one cell as it stands
            runs = []
            cells = [(text.strip(), start_px, "left")]
        else:
            cells = []
            for i, m in enumerate(runs):
                left = first_left and i == 0
                edge = m.start() if left else m.end()
                cells.append((m.group(), start_px + edge * advance_px, "left" if left else "right"))
        for cell, x_px, align in cells:
            x_in = float(to_inches.transform((x_px, 0.0))[0])
            ax.text(
                x_in,
                y_data,
                cell,
                transform=trans,
                ha=align,
                va=t.get_verticalalignment(),
                fontsize=t.get_fontsize(),
                fontfamily=t.get_fontfamily(),
                fontweight=t.get_fontweight(),
                fontstyle=t.get_fontstyle(),
                color=t.get_color(),
                clip_on=False,
            )

    padded = [t for t in ax.texts if MONO_FONT in t.get_fontfamily()]
    labels = [lab for lab in ax.get_yticklabels() if lab.get_visible()]
    for lab in labels:
        redraw(lab, float(lab.get_position()[1]), first_left=True)
    for t in padded:
        y = float(ax.yaxis.convert_units(t.get_position()[1]))  # type: ignore[no-untyped-call]
        redraw(t, y, first_left=False)
        t.remove()
    ax.tick_params(axis="y", which="both", labelleft=False, labelright=False)


__all__ = ["RENDER_RC", "_contained", "_split_columns"]
