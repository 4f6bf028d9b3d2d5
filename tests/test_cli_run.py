"""``metaresp run`` end to end on the shipped plan and corpus, and its error handling."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import metaresp
from factories import SHIPPED_EXTRACTIONS as EXTRACTIONS
from factories import SHIPPED_PLAN as PLAN
from factories import CliResult, ShippedRun

Cli = Callable[..., CliResult]


def shipped(test: Callable[..., None]) -> Callable[..., None]:
    """A test reading the shared run of the shipped plan: slow (the run draws every
    figure), and run on the xdist worker that holds that run."""
    return pytest.mark.slow(pytest.mark.xdist_group("shipped")(test))


@shipped
def test_writes_every_output(shipped_run: ShippedRun) -> None:
    out = shipped_run.out
    from metaresp.plan import load_plan

    plan = load_plan(PLAN)
    for name in (
        "pooled.csv",
        "pooled.xlsx",
        "pooled.md",
        "set-aside.csv",
        "summary.json",
        "report.html",
        "reproduce.R",
    ):
        assert (out / name).stat().st_size > 0, name
    state = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    names = [a["analysis"] for a in state["analyses"]]
    assert names == [a.name for a in plan.expanded()]
    roles = {entry["analysis"]: entry["role"] for entry in state["analyses"]}
    assert set(roles.values()) == {"primary", "sensitivity"}
    for entry in state["analyses"]:
        if entry["estimates"] and entry["role"] == "sensitivity":
            # the shipped plan draws the primary analyses' figures only (figures: primary)
            assert not (out / "figures" / f"{entry['analysis']}.png").exists()
            assert not list((out / "figures" / "cumulative").glob(f"{entry['analysis']}--*"))
        elif entry["estimates"]:
            png = (out / "figures" / f"{entry['analysis']}.png").read_bytes()
            assert png[:4] == b"\x89PNG"
            # the run draws at 300 dpi (tests elsewhere may draw quicker; this one may not)
            at = png.index(b"pHYs") + 4  # pixels per metre, then the unit (1: metre)
            assert round(int.from_bytes(png[at : at + 4], "big") * 0.0254) == 300
            assert (out / "figures" / f"{entry['analysis']}.svg").stat().st_size > 0
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".results.")]


@shipped
def test_every_figure_prints_at_page_width_with_8_pt_text(shipped_run: ShippedRun) -> None:
    """Journals print a full-width figure about 7 in wide and ask for text of at least
    8 pt at that size: every PNG of the run is at most 7 in wide at its 300 dpi (so its
    8 pt text is not shrunk) and at most a page (9 in) tall."""
    from PIL import Image

    from metaresp._forest_pages import PAGE_HEIGHT_IN

    pngs = sorted((shipped_run.out / "figures").rglob("*.png"))
    assert len(pngs) > 25  # the primary analyses' forest plots, their pages, the cumulative plots
    too_big = []
    for png in pngs:
        with Image.open(png) as im:
            width, height = im.size
        if width > 7.0 * 300 or height > PAGE_HEIGHT_IN * 300:
            too_big.append((png.name, width / 300, height / 300))
    assert too_big == []


@shipped
def test_summary_agrees_with_corpus_and_engine(shipped_run: ShippedRun) -> None:
    """Every estimate's records exist in the corpus with the analysis's outcome, every
    record pooled once per analysis, and a pooled estimate is the engine on those counts."""
    out = shipped_run.out
    frame = metaresp.load_extractions(EXTRACTIONS).to_frame().set_index("record")
    state = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    checked = 0
    for entry in state["analyses"]:
        used: list[str] = []
        for est in entry["estimates"]:
            rows = frame.loc[est["records"]]
            assert set(rows["outcome"]) == {entry["outcome"]}
            assert set(rows["unit"]) <= set(entry["selection"]["unit"])
            # disjoint groups of one study combined into one entry count once in k
            merged = sum(len(c["records"]) - 1 for c in est["combined"])
            assert est["k"] == len(est["records"]) - merged
            assert est["patients"] == int(rows["evaluable"].sum())
            # one cohort, one vote within a subgroup (a combined entry is one vote)
            inside = {i for c in est["combined"] for i in c["records"][1:]}
            assert rows.loc[[i for i in est["records"] if i not in inside], "cohort"].is_unique
            used.extend(est["records"])
            if est["pooled"] and checked < 3:
                m = entry["model"]
                direct = metaresp.pool(
                    list(rows["responders"]),
                    list(rows["evaluable"]),
                    transform=m["transform"],
                    estimator=m["estimator"],
                    ci=m["ci"],
                    level=m["level"],
                )
                assert est["estimate"] == pytest.approx(direct.proportion, rel=1e-12)
                checked += 1
        assert len(used) == len(set(used))
        for aside in entry["set_aside"]:
            assert aside["record"] in frame.index
            assert aside["reason"]
            assert aside["record"] not in used
    assert checked == 3


@shipped
def test_tables_agree_with_summary(shipped_run: ShippedRun) -> None:
    import pandas as pd

    out = shipped_run.out
    table = pd.read_csv(out / "pooled.csv")
    state = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rows = table[table["row"] == "subgroup"]
    expected = [
        (a["analysis"], e["subgroup"], e["k"], e["patients"])
        for a in state["analyses"]
        for e in a["estimates"]
    ]
    got = list(zip(rows["analysis"], rows["subgroup"], rows["k"], rows["patients"], strict=True))
    assert got == expected
    aside = pd.read_csv(out / "set-aside.csv")
    assert len(aside) == sum(len(a["set_aside"]) for a in state["analyses"])
    xlsx = pd.read_excel(out / "pooled.xlsx", sheet_name=None)
    assert set(xlsx) == {"Pooled", "Set aside"}
    assert len(xlsx["Pooled"]) == len(table)
    assert "## " in (out / "pooled.md").read_text(encoding="utf-8")


@pytest.fixture
def run_cli(cli: Cli) -> Callable[..., tuple[int, str]]:
    """``metaresp run --quiet ARGS``: exit code and standard error."""

    def run(*args: str) -> tuple[int, str]:
        code, _, err = cli("run", "--quiet", *args)
        return code, err

    return run


def test_bad_plan_one_line(tmp_path: Path, run_cli: Callable[..., tuple[int, str]]) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        PLAN.read_text(encoding="utf-8").replace("estimator: GLMM", "estimator: GLM"),
        encoding="utf-8",
    )
    code, err = run_cli(
        "--plan",
        str(plan),
        "--extractions",
        str(EXTRACTIONS),
        "--results",
        str(tmp_path / "out"),
    )
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith(f"error: {plan}:")
    assert "model.estimator: must be one of" in line
    assert not (tmp_path / "out").exists()


def test_missing_inputs(tmp_path: Path, run_cli: Callable[..., tuple[int, str]]) -> None:
    code, err = run_cli("--plan", str(tmp_path / "none.yaml"))
    assert (code, err) == (1, f"error: {tmp_path / 'none.yaml'}: plan file not found\n")
    code, err = run_cli("--plan", str(PLAN), "--extractions", str(tmp_path / "x"))
    assert (code, err) == (1, f"error: {tmp_path / 'x'}: extractions folder not found\n")


def test_refuses_foreign_out_folder(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str]]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("precious", encoding="utf-8")
    code, err = run_cli(
        "--plan", str(PLAN), "--extractions", str(EXTRACTIONS), "--results", str(out)
    )
    assert code == 1
    assert "non-empty folder without earlier results" in err
    assert (out / "thesis.docx").read_text(encoding="utf-8") == "precious"


@pytest.mark.usefixtures("quick_figures")  # no figure worker processes for a failing run
def test_failure_leaves_previous_results(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while writing (here: the report) leaves the old folder as it was and no
    temporary folder behind."""
    from metaresp import runner

    extractions = tmp_path / "extractions"
    extractions.mkdir()
    shutil.copy(EXTRACTIONS / "merz-2024.yaml", extractions)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "analyses:\n  - {name: a, title: A, selection: {population: post-bcma-cart, "
        "setting: first-salvage, outcome: ORR}}\n",
        encoding="utf-8",
    )
    out = tmp_path / "results"
    out.mkdir()
    (out / "summary.json").write_text('{"old": true}', encoding="utf-8")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(runner, "_write_report", broken)
    monkeypatch.setattr(runner, "_save_one", lambda job: None)
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(
        "--plan", str(plan), "--extractions", str(extractions), "--results", str(out)
    )
    assert code == 1
    assert "disk full" in err
    assert (out / "summary.json").read_text(encoding="utf-8") == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extractions", "plan.yaml", "results"]


@shipped
def test_pooled_md_says_once_why_an_interval_spans_almost_everything(
    shipped_run: ShippedRun,
) -> None:
    """Read as a clinician: every pooled interval wider than 90 points in pooled.md has,
    in its analysis's section, a sentence that says why and names its subgroup; no
    sentence is repeated in a section."""
    import re

    text = (shipped_run.out / "pooled.md").read_text(encoding="utf-8")
    checked = 0
    for section in text.split("\n## ")[1:]:
        lines = section.splitlines()
        notes = [line for line in lines if line and not line.startswith(("|", "#", "-", "†"))]
        assert len(notes) == len(set(notes)), section.splitlines()[0]
        for line in lines:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) < 4 or "not pooled" in line:
                continue
            found = re.fullmatch(r"[\d.]+% \(([\d.]+) to ([\d.]+)\)", cells[3])
            if found is None or float(found[2]) - float(found[1]) <= 90:
                continue
            why = [
                n
                for n in notes
                if ("instead of 1.96" in n or "interval is wide" in n) and cells[0] in n
            ]
            assert why, (lines[0], cells[0])
            checked += 1
    assert checked > 10  # the shipped corpus has many classes of two studies
