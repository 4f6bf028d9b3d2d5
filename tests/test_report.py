"""The HTML report: content, escaping, self-containment, and a headless-Chromium render."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaresp import forest, report
from metaresp.forestdata import ForestData, PooledRow, StudyRow, Subgroup, SubgroupTest


def make_forest() -> ForestData:
    # Proportions and exact limits of 5/7, 12/17, 0/5, 2/9 (Clopper-Pearson, rounded).
    a = (
        StudyRow("Van Oekelen 2023 · teclistamab (first salvage)", 5, 7, 5 / 7, 0.290, 0.963, 45.0),
        StudyRow("Merz 2024 · talquetamab", 12, 17, 12 / 17, 0.440, 0.897, 55.0),
    )
    b = (StudyRow("Van Oekelen 2023 · BCMA CAR T re-infusion", 0, 5, 0.0, 0.0, 0.522),)
    return ForestData(
        title="ORR after BCMA CAR-T relapse <first salvage>",
        outcome="ORR",
        subgroups=(
            Subgroup(
                "Bispecific antibodies",
                a,
                PooledRow(
                    "Random effects model",
                    2,
                    17,
                    24,
                    0.70,
                    0.21,
                    0.95,
                    i2=0.0,
                    tau2=0.0,
                    q=0.01,
                    q_df=1,
                    q_pvalue=0.93,
                ),
            ),
            Subgroup(
                "CAR T retreatment",
                b,
                PooledRow(b[0].label, 1, 0, 5, 0.0, 0.0, 0.522, pooled=False),
            ),
        ),
        subgroup_test=SubgroupTest(4.1, 1, 0.043),
        model_note="Binomial-normal GLMM (logit), t-based 95% CI.",
    )


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    included = pd.DataFrame(
        {
            "analysis": ["orr-first-salvage"] * 3,
            "record_id": ["vanoekelen-2023/tec", "merz-2024/tal", "vanoekelen-2023/cart"],
            "study": ["Van Oekelen 2023", "Merz 2024", "Van Oekelen 2023"],
            "responders": [5, 12, 0],
            "evaluable": [7, 17, 5],
        }
    )
    excluded = pd.DataFrame(
        {
            "record_id": ["reyes-2024/any", "news-2024/tal"],
            "reason": ["percent only (no denominator)", "same cohort as merz-2024 (older report)"],
        }
    )
    return included, excluded


def render(tmp_path: Path, **kw: object) -> str:
    data = make_forest()
    png, svg = tmp_path / "f.png", tmp_path / "f.svg"
    forest.save_forest(data, png, svg, dpi=100)
    included, excluded = frames()
    args: dict[str, object] = {
        "title": "Salvage after BCMA CAR-T: pooled response rates",
        "corpus_version": "corpus 2025-01-15 (git 1a2b3c4)",
        "analyses": [
            report.ReportAnalysis(
                "ORR, first salvage, by class",
                description="Patients relapsing after BCMA CAR T <all centres>.",
                forest=data,
                figures=(report.ReportFigure.from_files("Forest plot: ORR by class", png, svg),),
            )
        ],
        "included": included,
        "excluded": excluded,
        "warnings": ("GLMM did not converge for 'VGPR+ any line'; REML-HKSJ used",),
    }
    args.update(kw)
    return report.render_report(**args)  # type: ignore[arg-type]


def test_report_content(tmp_path: Path) -> None:
    page = render(tmp_path)
    assert "corpus 2025-01-15 (git 1a2b3c4)" in page
    for cite in ("Stijnen", "Schwarzer", "IntHout", "Higgins", "Viechtbauer", "Clopper"):
        assert cite in page
    assert "doi:10.1002/sim.4040" in page  # Stijnen 2010, full reference
    assert "one cohort, one vote" in page
    assert "percentage without a denominator" in page
    # pooled table derived from the forest data: 70.0 (21.0 to 95.0), and the subgroup test
    assert '<td class="num">70.0</td><td class="num">21.0 to 95.0</td>' in page
    assert "Test for subgroup differences" in page
    # k <= 3 is flagged (the coverage simulation found no interval reliable there)
    assert "Bispecific antibodies: pooled from 2 studies: with 3 or fewer studies" in page
    assert "CAR T retreatment: one study, shown, not pooled" in page
    # the summary a panel reads first counts the estimates from few studies
    assert "Read this first" in page
    assert "pooled estimates rest on 3 or fewer studies" in page
    assert "REML-HKSJ used" in page
    assert "a percentage without the counts needed to pool" in page  # grouped, plain words
    assert "merz-2024/tal" in page
    assert '<td class="num">12</td>' in page


def test_report_escapes_data_and_is_self_contained(tmp_path: Path) -> None:
    page = render(tmp_path, warnings=("<script>alert(1)</script> & more",))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "<script" not in page
    assert "&lt;all centres&gt;" in page
    assert "<first salvage>" not in page  # the forest title reaches the page only as an image
    sources = re.findall(r'\ssrc="([^"]*)"', page)
    assert sources
    assert all(s.startswith("data:image/") for s in sources)
    assert "<link" not in page
    assert "@import" not in page
    assert "url(" not in page


def test_png_only_figure_and_missing_columns(tmp_path: Path) -> None:
    png = tmp_path / "f.png"
    forest.save_forest(make_forest(), png, dpi=60)
    fig = report.ReportFigure.from_files("png only", png)
    page = report.render_report(
        title="t", corpus_version="v1", analyses=[report.ReportAnalysis("a", figures=(fig,))]
    )
    assert 'src="data:image/png;base64,' in page
    with pytest.raises(ValueError, match="excluded: missing column"):
        report.render_report(
            title="t",
            corpus_version="v1",
            analyses=[],
            excluded=pd.DataFrame({"record_id": ["x"]}),
        )
    with pytest.raises(ValueError, match="figures"):
        report.render_report(
            title="t",
            corpus_version="v1",
            analyses=[report.ReportAnalysis("a", figures=(report.ReportFigure("empty"),))],
        )


def test_write_report_is_atomic(tmp_path: Path) -> None:
    out = tmp_path / "results" / "report.html"
    report.write_report(out, title="t", corpus_version="v1", analyses=[report.ReportAnalysis("a")])
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium (Debian package 'chromium') is not installed")
    page = tmp_path / "report.html"
    page.write_text(render(tmp_path), encoding="utf-8")
    shot = tmp_path / "shot.png"
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        page.as_uri(),
    ]
    # Generous limit: a guard against a hung browser, not a speed requirement.
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.exists(), "Chromium wrote no screenshot"
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2000, 1200)
    dark = (pixels < 128).mean()
    # A blank page has no dark pixels; text, tables and the figure give well over 1%.
    assert dark > 0.01
    assert pixels.std() > 20
