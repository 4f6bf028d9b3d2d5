"""A forest plot taller than a page: split into pages of whole subgroups, with the
overall rows and the footnotes once, on the last page."""

from __future__ import annotations

from pathlib import Path

from metaresp import forest
from metaresp._forest_pages import PAGE_HEIGHT_IN, page_paths
from metaresp.forest import forest_pages
from metaresp.forestdata import ForestData, Subgroup, SubgroupTest
from test_forest import png_size, pooled, study


def tall(groups: int = 8, studies: int = 5) -> ForestData:
    subs = tuple(
        Subgroup(
            f"Class {g}",
            tuple(study(f"Author {g}{i} 2024 · arm", 3 + i, 10 + i) for i in range(studies)),
            pooled(studies, 20, 60, 0.33, 0.2, 0.5),
        )
        for g in range(groups)
    )
    return ForestData(
        "A tall plot",
        "ORR",
        subs,
        overall=pooled(groups * studies, 160, 480, 0.33, 0.25, 0.4),
        subgroup_test=SubgroupTest(1.0, groups - 1, 0.9),
        footnotes=("Said once.",),
    )


def test_short_plot_stays_one_page() -> None:
    data = tall(groups=2, studies=2)
    assert forest_pages(data) == [data]


def test_tall_plot_splits_between_subgroups() -> None:
    data = tall()
    pages = forest_pages(data)
    assert len(pages) > 1
    # every subgroup once, whole, in order
    names = [s.name for p in pages for s in p.subgroups]
    assert names == [s.name for s in data.subgroups]
    assert [len(s.studies) for p in pages for s in p.subgroups] == [5] * 8
    # overall, test and footnotes only on the last page; "continued" after the first
    assert all(p.overall is None and p.subgroup_test is None for p in pages[:-1])
    assert all(p.footnotes == () and p.model_note == "" for p in pages[:-1])
    assert pages[-1].overall is not None
    assert pages[-1].footnotes == ("Said once.",)
    assert pages[0].title == "A tall plot"
    assert all(p.title == "A tall plot (continued)" for p in pages[1:])


def test_pages_are_written_no_taller_than_a_page(tmp_path: Path) -> None:
    pngs = forest.save_forest(tall(), tmp_path / "t.png", tmp_path / "t.svg", dpi=50)
    assert pngs == [p for p, _ in page_paths(tmp_path / "t.png", len(pngs))]
    assert [p.name for p in pngs][:2] == ["t.png", "t-p2.png"]
    for png in pngs:
        _, height = png_size(png)
        assert height <= round(PAGE_HEIGHT_IN * 50)
        assert png.with_suffix(".svg").exists()
    # the footnote is drawn once: on the last page only
    svgs = [p.with_suffix(".svg").read_text(encoding="utf-8") for p in pngs]
    assert [("Said once." in s) for s in svgs] == [False] * (len(svgs) - 1) + [True]


def test_pages_are_filled_evenly() -> None:
    """Nine subgroups that need two pages: no page holds a small remainder."""
    pages = forest_pages(tall(groups=9, studies=4))
    counts = [len(p.subgroups) for p in pages]
    assert len(counts) == 2
    assert max(counts) - min(counts) <= 2


def test_a_tall_cumulative_plot_is_split_into_pages_of_whole_steps(tmp_path: Path) -> None:
    from metaresp.forestdata import CumulativeRow

    rows = [
        CumulativeRow(
            f"Author {i} 20{10 + i % 15} · a label long enough to wrap over lines",
            i + 1,
            0.4,
            0.2,
            0.6,
        )
        for i in range(80)
    ]
    pngs = forest.save_cumulative(
        rows, tmp_path / "c.png", tmp_path / "c.svg", dpi=50, title="Cumulative", model_note="M."
    )
    assert len(pngs) > 1
    assert pngs == [p for p, _ in page_paths(tmp_path / "c.png", len(pngs))]
    svgs = [p.with_suffix(".svg").read_text(encoding="utf-8") for p in pngs]
    widths = set()
    for png in pngs:
        width, height = png_size(png)
        widths.add(width)
        assert height <= round(PAGE_HEIGHT_IN * 50)
    assert widths == {round(forest.FIG_WIDTH_IN * 50)}
    # every step once, in order, its k on the page that holds its label's first line
    for i in range(80):
        holding = [s for s in svgs if f"+ Author {i} 20" in s]
        assert len(holding) == 1, i
    assert [("Each row pools" in s) for s in svgs] == [False] * (len(svgs) - 1) + [True]
    assert "Cumulative (continued)" in svgs[1]
    assert "(continued)" not in svgs[0]
