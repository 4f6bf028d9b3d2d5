"""Forest plots: content, layout (no overlapping text), files, and containment of forestplot.

The data are built by hand (realistic sizes: 1-5 studies per subgroup, 0/n and n/n
studies, a one-study subgroup shown but not pooled, long labels). Per-study intervals are
exact Clopper-Pearson limits computed here from the beta distribution (Clopper & Pearson
1934), independently of the code under test.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.patches import Polygon, Rectangle
from matplotlib.text import Text
from scipy.stats import beta

from metaresp import forest
from metaresp.forestdata import (
    CumulativeRow,
    ForestData,
    PooledRow,
    StudyRow,
    Subgroup,
    SubgroupTest,
)

LONG = "Van Oekelen 2023 · teclistamab (first salvage)"
# A label wider than the label column (about 1.5 in at 8 pt here) is drawn over as few
# lines as fit, as even as possible, broken between words: the numbers stand on the row
# of the first.
LONG_FIRST, LONG_REST = "Van Oekelen 2023 ·", "teclistamab (first salvage)"


def exact_ci(x: int, n: int) -> tuple[float, float]:
    lo = 0.0 if x == 0 else float(beta.ppf(0.025, x, n - x + 1))
    hi = 1.0 if x == n else float(beta.ppf(0.975, x + 1, n - x))
    return lo, hi


def study(label: str, x: int, n: int, weight: float | None = None) -> StudyRow:
    lo, hi = exact_ci(x, n)
    return StudyRow(label, x, n, x / n, lo, hi, weight)


def pooled(k: int, x: int, n: int, p: float, lo: float, hi: float, **kw: object) -> PooledRow:
    return PooledRow("Random effects model", k, x, n, p, lo, hi, **kw)  # type: ignore[arg-type]


def make_data(extra_studies: int = 0, overall: bool = True) -> ForestData:
    bispecifics = [
        study(LONG, 5, 7, 18.2),
        study("Merz 2024 · talquetamab", 12, 17, 24.0),
        study("Reyes 2024 · teclistamab", 4, 4, 9.1),
        study("Cohen 2023 · elranatamab (MagnetisMM-1)", 10, 19, 26.3),
        study("Trudel 2021 · cevostamab", 6, 14, 22.4),
    ]
    bispecifics += [study(f"Extra {i} 2024 · agent", 3, 9, 5.0) for i in range(extra_studies)]
    cart = (
        study("Van Oekelen 2023 · BCMA CAR T re-infusion", 0, 5, 31.0),
        study("Mailankody 2022 · GPRC5D CAR T", 7, 10, 34.5),
        study("Bal 2023 · anito-cel", 3, 6, 34.5),
    )
    single = study("Van Oekelen 2023 · selinexor-based", 2, 9)
    other = (study("Merz 2024 · chemotherapy", 3, 11, 55.0), study("Merz 2024 · other", 2, 8, 45.0))
    return ForestData(
        title="Overall response after BCMA CAR-T relapse, by salvage class",
        outcome="ORR",
        subgroups=(
            Subgroup(
                "Bispecific antibodies",
                tuple(bispecifics),
                pooled(
                    5,
                    37,
                    61,
                    0.62,
                    0.45,
                    0.77,
                    pi_low=0.30,
                    pi_high=0.87,
                    i2=35.0,
                    tau2=0.31,
                    q=6.1,
                    q_df=4,
                    q_pvalue=0.19,
                ),
            ),
            Subgroup(
                "CAR T retreatment",
                cart,
                pooled(
                    3,
                    10,
                    21,
                    0.44,
                    0.08,
                    0.88,
                    pi_low=0.0,
                    pi_high=1.0,
                    i2=62.0,
                    tau2=1.2,
                    q=5.3,
                    q_df=2,
                    q_pvalue=0.07,
                ),
            ),
            Subgroup(
                "Selinexor-based",
                (single,),
                PooledRow(
                    single.label,
                    1,
                    2,
                    9,
                    single.proportion,
                    single.ci_low,
                    single.ci_high,
                    pooled=False,
                ),
            ),
            Subgroup(
                "Other",
                other,
                pooled(2, 5, 19, 0.26, 0.02, 0.86, i2=0.0, tau2=0.0, q=0.2, q_df=1, q_pvalue=0.65),
            ),
        ),
        overall=(
            pooled(
                11,
                54,
                110,
                0.47,
                0.35,
                0.60,
                pi_low=0.15,
                pi_high=0.82,
                i2=48.0,
                tau2=0.45,
                q=19.4,
                q_df=10,
                q_pvalue=0.035,
            )
            if overall
            else None
        ),
        subgroup_test=SubgroupTest(5.21, 3, 0.157),
        model_note="Random effects per subgroup: binomial-normal GLMM (logit, ML), t-based 95% CI.",
    )


def texts(ax: Axes) -> list[Text]:
    """Every visible, non-blank text artist of the figure."""
    fig = ax.get_figure()
    assert fig is not None
    found = fig.findobj(lambda a: isinstance(a, Text) and a.get_visible())
    return [t for t in found if isinstance(t, Text) and t.get_text().strip()]


def markers(ax: Axes) -> list[tuple[float, float]]:
    """Centres of the study squares (rows without an estimate carry NaN and are not drawn)."""
    offsets = np.ma.filled(np.ma.asarray(ax.collections[-1].get_offsets()), np.nan)
    return [(float(x), float(y)) for x, y in offsets if np.isfinite(x)]


def all_text(ax: Axes) -> str:
    return "\n".join(t.get_text() for t in texts(ax))


def row_text(ax: Axes, needle: str) -> str:
    """The cells of the table row holding a cell equal to ``needle``, left to right."""
    cell = next(t for t in ax.texts if t.get_text() == needle)
    y = cell.get_position()[1]
    same = [t for t in ax.texts if t.get_position()[1] == y and t.get_text().strip()]
    return " ".join(t.get_text() for t in sorted(same, key=lambda t: t.get_position()[0]))


# --------------------------------------------------------------------------- content


def test_forest_shows_rows_columns_diamonds_pi_and_heterogeneity() -> None:
    ax = forest.draw_forest(make_data())
    text = all_text(ax)
    for header in ("Study", "Events", "Total", "Rate (%)", "95% CI", "Weight"):
        assert header in text
    # 5/7: 71.4% with exact CI 29.0-96.3 (beta quantiles above), weight as given.
    assert row_text(ax, "71.4") == f"{LONG_FIRST} 5 7 71.4 29.0 to 96.3 18.2%"
    assert row_text(ax, LONG_REST) == LONG_REST  # the second line holds nothing else
    assert row_text(ax, "0.0 to 52.2") == (
        "Van Oekelen 2023 · 0 5 0.0 0.0 to 52.2 31.0%"
    )  # 0/5; two even lines break after the "·"
    assert row_text(ax, "BCMA CAR T re-infusion") == "BCMA CAR T re-infusion"
    assert row_text(ax, "39.8 to 100.0") == (
        "Reyes 2024 · teclistamab 4 4 100.0 39.8 to 100.0 9.1%"
    )  # 4/4
    assert "Heterogeneity: I² = 35.0%, τ² = 0.3100, Cochran's Q = 6.10, df = 4, p = 0.19" in text
    assert "Heterogeneity: I² = 48.0%, τ² = 0.4500, Cochran's Q = 19.40, df = 10, p = 0.04" in text
    assert "Test for subgroup differences: Q = 5.21, df = 3, p = 0.16" in text
    assert forest.NOT_POOLED_LABEL in text
    assert ax.get_xlim() == (0.0, 100.0)
    assert ax.get_xlabel() == "Overall response rate (%)"
    assert [float(t) for t in ax.get_xticks()] == [0, 20, 40, 60, 80, 100]
    diamonds = [p for p in ax.patches if isinstance(p, Polygon)]
    assert len(diamonds) == 4  # three pooled subgroups + overall; the single study has none
    pi_bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert sorted(round(b.get_width(), 6) for b in pi_bars) == [57.0, 67.0, 100.0]
    # Diamond of the bispecifics spans its CI (45-77%) with its centre at 62%.
    xs = sorted({round(float(x), 6) for x, _ in diamonds[0].get_xy()})
    assert xs == [45.0, 62.0, 77.0]
    assert "binomial-normal GLMM" in text  # footnote


def test_without_overall_there_is_no_overall_diamond() -> None:
    ax = forest.draw_forest(make_data(overall=False))
    assert len([p for p in ax.patches if isinstance(p, Polygon)]) == 3
    assert "Test for subgroup differences" in all_text(ax)


def test_identical_labels_get_their_own_rows() -> None:
    same = "Merz 2024 · talquetamab"
    data = ForestData(
        title="t",
        outcome="CR+",
        subgroups=(
            Subgroup("A", (study(same, 3, 10), study(same, 5, 10), study("A", 1, 4))),
            Subgroup("a", (study(same, 7, 10),)),
        ),
    )
    ax = forest.draw_forest(data)
    squares = markers(ax)
    ys = {round(float(y), 6) for _, y in squares}
    assert len(ys) == 4  # one row per study although three labels are identical
    assert [round(float(x), 6) for x, _ in squares].count(30.0) == 1
    assert ax.get_xlabel() == "Complete response or better (%)"


@pytest.mark.parametrize(
    ("field", "bad"),
    [("proportion", 1.2), ("ci_low", math.nan), ("ci_high", 0.1)],
)
def test_bad_proportions_raise_value_error_naming_the_field(field: str, bad: float) -> None:
    good = study("S", 3, 10)
    values = {"proportion": good.proportion, "ci_low": good.ci_low, "ci_high": good.ci_high}
    values[field] = bad
    row = StudyRow("S", 3, 10, values["proportion"], values["ci_low"], values["ci_high"])
    data = ForestData("t", "ORR", (Subgroup("g", (row,)),))
    with pytest.raises(ValueError, match=r"subgroups\[0\]\.studies\[0\]"):
        forest.draw_forest(data)


def test_empty_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="subgroups"):
        forest.draw_forest(ForestData("t", "ORR", ()))
    with pytest.raises(ValueError, match="rows"):
        forest.draw_cumulative([])


# --------------------------------------------------------------------------- layout


def overlaps(ax: Axes) -> list[tuple[str, str]]:
    fig = ax.get_figure()
    assert fig is not None
    fig.set_dpi(300)  # measure at the resolution that is saved
    fig.canvas.draw()  # axis labels are placed at draw time
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts(ax)]
    bad = []
    for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
        # 0.5 px tolerance for touching boxes of adjacent rows
        if a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5:
            bad.append((ta, tb))
    return bad


def outside(ax: Axes) -> list[str]:
    fig = ax.get_figure()
    assert fig is not None
    fig.set_dpi(300)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    w, h = fig.get_figwidth() * 300, fig.get_figheight() * 300
    out = []
    for t in texts(ax):
        bb = t.get_window_extent(renderer)
        if bb.x0 < 0 or bb.y0 < 0 or bb.x1 > w or bb.y1 > h:
            out.append(t.get_text())
    return out


def test_no_text_overlaps_and_everything_is_inside_the_figure() -> None:
    ax = forest.draw_forest(make_data())
    assert overlaps(ax) == []
    assert outside(ax) == []
    assert min(t.get_fontsize() for t in texts(ax)) >= forest.MIN_FONT_SIZE


def test_overlap_check_can_fail() -> None:
    ax = forest.draw_forest(make_data())
    fig = ax.get_figure()
    assert fig is not None
    fig.text(0.01, 0.99, "X" * 200, va="top")  # across the title
    assert overlaps(ax)


def test_figure_is_page_width_and_height_grows_with_rows() -> None:
    small = forest.draw_forest(make_data()).get_figure()
    large = forest.draw_forest(make_data(extra_studies=4)).get_figure()
    assert small is not None
    assert large is not None
    # a full-width figure (7 in) with 8 pt text, Weight column included: printed at
    # 7 in its text is 8 pt
    assert small.get_figwidth() == forest.FIG_WIDTH_IN
    grown = large.get_figheight() - small.get_figheight()
    assert grown == pytest.approx(4 * forest.ROW_HEIGHT_IN)


def test_very_long_labels_wrap_over_five_lines_at_most_and_the_figure_stays_page_wide() -> None:
    label = LONG + " and a much longer tail" * 8
    data = ForestData("t", "ORR", (Subgroup("g", (study(label, 3, 9),)),))
    ax = forest.draw_forest(data)
    fig = ax.get_figure()
    assert fig is not None
    assert overlaps(ax) == []
    assert outside(ax) == []
    assert fig.get_figwidth() == forest.FIG_WIDTH_IN
    first = row_text(ax, "3").split(" 3 ")[0]
    lines = [t.get_text() for t in ax.texts if t.get_horizontalalignment() == "left"]
    start = lines.index(first)
    shown = lines[start : start + 5]
    assert shown[-1].endswith(" …")  # cut after five lines, and says so
    assert " ".join(shown).removesuffix(" …") in label
    assert len(" ".join(shown)) > 100  # the lines are full, not one word each


def test_drawing_on_own_axes_returns_them() -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 8))
    ax = fig.add_axes((0.5, 0.1, 0.2, 0.8))
    assert forest.draw_forest(make_data(), ax=ax) is ax
    assert len([p for p in ax.patches if isinstance(p, Polygon)]) == 4


# --------------------------------------------------------------------------- files


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_save_forest_writes_png_at_300_dpi_and_svg_atomically(tmp_path: Path) -> None:
    png, svg = tmp_path / "out" / "orr.png", tmp_path / "out" / "orr.svg"
    png.parent.mkdir()
    png.write_bytes(b"old")
    forest.save_forest(make_data(), png, svg)
    width, _ = png_size(png)
    assert round(forest.FIG_WIDTH_IN * 300) <= width <= round(forest.FIG_WIDTH_IN * 300 * 8 / 7.75)
    assert "<svg" in svg.read_text()[:2000]
    assert sorted(p.name for p in png.parent.iterdir()) == ["orr.png", "orr.svg"]


def test_cumulative_plot(tmp_path: Path) -> None:
    rows = [
        CumulativeRow("Cohen 2019 · CAR T re-infusion", 1, 0.4, 0.05, 0.85),
        ("Trudel 2021 · cevostamab", 2, 0.45, 0.2, 0.72),
        CumulativeRow(LONG, 3, 0.55, 0.3, 0.77),
    ]
    ax = forest.draw_cumulative(rows, title="Cumulative", outcome="VGPR+")
    text = all_text(ax)
    # three number columns leave the label column room for the whole label on one line
    assert row_text(ax, "30.0 to 77.0") == f"+ {LONG} 3 55.0 30.0 to 77.0"
    assert f"+ {LONG}" in text.splitlines()
    assert len(markers(ax)) == 3
    assert overlaps(ax) == []
    forest.save_cumulative(rows, tmp_path / "c.png", tmp_path / "c.svg", dpi=150)
    assert png_size(tmp_path / "c.png")[0] == round(forest.FIG_WIDTH_IN * 150)
    with pytest.raises(ValueError, match=r"rows\[0\]"):
        forest.draw_cumulative([("x", 1, 0.9, 0.1, 0.5)])


# --------------------------------------------------------------------------- containment

_CONTAINMENT_SCRIPT = textwrap.dedent(
    """
    import json, sys, warnings
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import matplotlib
    import test_forest  # imports metaresp.forest, which must not import forestplot yet
    lazy = "forestplot" not in sys.modules and "matplotlib.pyplot" not in sys.modules
    data = test_forest.make_data()
    warnings.simplefilter("default")
    warnings.filterwarnings("error", category=FutureWarning, module="mypkg")
    np.seterr(divide="warn", over="raise", invalid="warn", under="ignore")
    before = (list(warnings.filters), np.geterr(), dict(matplotlib.rcParams))
    test_forest.forest.save_forest(data, Path(sys.argv[2]))
    after = (list(warnings.filters), np.geterr(), dict(matplotlib.rcParams))
    import matplotlib.pyplot as plt
    rc_diff = sorted(k for k in before[2] if repr(before[2][k]) != repr(after[2][k]))
    print(json.dumps({
        "lazy": lazy,
        "used": "forestplot" in sys.modules,
        "filters_same": before[0] == after[0],
        "errstate_same": before[1] == after[1],
        "rc_diff": rc_diff,
        "figures": plt.get_fignums(),
    }))
    """
)


def test_first_import_and_use_leave_process_state_alone(tmp_path: Path) -> None:
    """In a fresh interpreter, where forestplot's import-time side effects would happen."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _CONTAINMENT_SCRIPT,
            str(Path(__file__).parent),
            str(tmp_path / "f.png"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {
        "lazy": True,
        "used": True,
        "filters_same": True,
        "errstate_same": True,
        "rc_diff": [],
        "figures": [],
    }


def test_containment_check_can_fail_without_the_guard() -> None:
    """The bare package does change the state the test above checks (so that test can fail)."""
    script = textwrap.dedent(
        """
        import json, warnings, numpy as np, matplotlib
        f, e, m = list(warnings.filters), np.geterr(), list(matplotlib.rcParams["font.monospace"])
        import forestplot
        print(json.dumps([list(warnings.filters) == f, np.geterr() == e,
                          list(matplotlib.rcParams["font.monospace"]) == m]))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, False, False]


def test_state_is_restored_in_process_too() -> None:
    import warnings

    rc = dict(matplotlib.rcParams)
    filters = list(warnings.filters)
    err = np.geterr()
    forest.draw_forest(make_data())
    assert list(warnings.filters) == filters
    assert np.geterr() == err
    assert {k: repr(v) for k, v in matplotlib.rcParams.items()} == {
        k: repr(v) for k, v in rc.items()
    }


def test_without_weights_squares_show_study_size_and_say_so() -> None:
    glmm = ForestData(
        "t",
        "ORR",
        (
            Subgroup(
                "A",
                (study("Big", 10, 40), study("Small", 1, 10)),
                pooled(2, 11, 50, 0.22, 0.1, 0.5),
            ),
            Subgroup(
                "B",
                (study("Mid", 9, 20, 60.0), study("Tiny", 3, 5, 40.0)),
                pooled(2, 12, 25, 0.48, 0.3, 0.7),
            ),
        ),
    )  # B fell back and has weights
    ax = forest.draw_forest(glmm)
    text = all_text(ax)
    assert "Weight" not in text  # not a column filled for one subgroup only
    assert forest.SIZE_NOTE in text
    offsets = np.ma.filled(np.ma.asarray(ax.collections[-1].get_offsets()), np.nan)
    areas = {
        round(float(x)): float(a)
        for (x, _), a in zip(offsets, ax.collections[-1].get_sizes(), strict=True)
        if np.isfinite(x)
    }
    # area proportional to the number of patients, side at least 2.5 pt (9 pt for 40):
    # Big 25% of 40, Small 10% of 10, Mid 45% of 20, Tiny 60% of 5
    assert areas == pytest.approx(
        {
            x: max(2.5, 9 * math.sqrt(n / 40)) ** 2
            for x, n in ((25, 40), (10, 10), (45, 20), (60, 5))
        }
    )
    weighted = forest.draw_forest(make_data())
    assert forest.SIZE_NOTE not in all_text(weighted)


def test_long_titles_wrap_inside_the_figure() -> None:
    title = (
        "CAR-T retreatment by target, any prior BCMA-directed therapy: overall response "
        "(≥PR), BCMA: cumulative by publication date"
    )
    ax = forest.draw_cumulative(
        [("A 2021", 1, 0.2, 0.1, 0.4), ("B 2022", 2, 0.5, 0.2, 0.8)], title=title
    )
    assert outside(ax) == []
    assert overlaps(ax) == []
    shown = [t.get_text() for t in texts(ax) if "CAR-T retreatment" in t.get_text()]
    assert len(shown) == 1
    assert shown[0].count("\n") == 1
    assert " ".join(shown[0].split()) == title


# --------------------------------------------------------------------------- wrapping


@pytest.mark.parametrize(
    "label",
    [
        "Van Oekelen 2023 · CAR T trial",
        "Review ref. 75 · Rescue therapy with humanized BCMA CAR-T cells",
        "Chari 2020 · Selinexor combination immediately after CAR-T progression",
        "A label without an author and year that runs on for a good while",
    ],
)
@pytest.mark.parametrize("width", [1.2, 1.5, 2.0])
def test_labels_wrap_between_words_within_the_width(label: str, width: float) -> None:
    from metaresp._forest_cells import text_width_in, wrap_to_width

    lines = wrap_to_width(label, width, 8.0)
    assert " ".join(lines) == label  # nothing lost, nothing added, words whole
    assert all(text_width_in(line, 8.0) <= width for line in lines)
    assert not any(line.startswith("·") for line in lines)
    # as few lines as the greedy fill needs: even lines are not more lines
    greedy: list[list[str]] = [[]]
    for word in label.split():
        trial = " ".join([*greedy[-1], word])
        if greedy[-1] and (word == "·" or text_width_in(trial, 8.0) <= width):
            greedy[-1].append(word)
        elif greedy[-1]:
            greedy.append([word])
        else:
            greedy[-1].append(word)
    assert len(lines) <= len(greedy) + 1


def test_author_and_year_stand_on_their_own_line_when_that_costs_no_line() -> None:
    from metaresp._forest_cells import text_width_in, wrap_to_width

    label = "Van Oekelen 2023 · CAR T trial"
    width = text_width_in("Van Oekelen 2023 · CAR T", 8.0)  # all but the last word fit
    assert wrap_to_width(label, width, 8.0) == ["Van Oekelen 2023 ·", "CAR T trial"]
    assert wrap_to_width(label, text_width_in(label, 8.0), 8.0) == [label]


def test_a_label_longer_than_five_lines_is_cut_and_says_so() -> None:
    from metaresp._forest_cells import text_width_in, wrap_to_width

    label = " ".join(f"word{i}" for i in range(40))
    lines = wrap_to_width(label, 1.0, 8.0)
    assert len(lines) == 5
    assert lines[-1].endswith(" …")
    assert text_width_in(lines[-1], 8.0) <= 1.0
    assert " ".join(lines).removesuffix(" …") in label


def test_skipping_forestplots_label_measurement_changes_no_pixel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drawing skips the package's measurement of its row labels (a padding for
    columns this plot does not draw): the PNG must be the same with and without it."""
    from metaresp import _forest_render

    data = make_data(extra_studies=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shortcut may not let a warning out
        forest.save_forest(data, tmp_path / "skipped.png", dpi=100)
    monkeypatch.setattr(_forest_render, "SKIP_LABEL_PADDING", False)
    forest.save_forest(data, tmp_path / "measured.png", dpi=100)
    skipped = (tmp_path / "skipped.png").read_bytes()
    assert skipped == (tmp_path / "measured.png").read_bytes()
    import forestplot.plot

    assert forestplot.plot.right_flush_yticklabels.__module__ == "forestplot.graph_utils"
