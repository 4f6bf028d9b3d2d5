"""End to end: ``metaresp add`` and ``metaresp diff`` on a copy of the shipped corpus.

The copy lives in ``tmp_path`` with a small plan of its own (first salvage after BCMA CAR T,
ORR by modality, threshold 50%), so the test does not depend on the choices of the shipped
plan. Expected movements are computed independently: the subgroup's records are read from
the published state before the addition, their counts from the corpus files, and pooled
with :func:`metaresp.pool` together with the new study's counts as written in this file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import metaresp
from metaresp import living
from metaresp.cli import main

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # each addition re-runs the plan and draws its figures

PLAN = """\
version: 1
title: Test plan
thresholds:
  ORR: 50
groupings:
  modality:
    title: Treatment modality
    classes:
      Bispecific antibody:
        modality: {any: [bispecific]}
      CAR T:
        modality: {any: [CAR-T]}
    other: Other
analyses:
  - name: post-cart-orr
    title: "First salvage after BCMA CAR T: {outcome}"
    selection:
      population: post-bcma-cart
      setting: first-salvage
      outcome: ORR
    grouping: modality
"""

NEW_STUDY = """\
# a report that is not in the corpus (made up for the test)
id: testnew-2025
citation: "Doe J, Roe R. Bispecific antibodies after CAR T. Test J. 2025;1:1-2."
year: 2025
published: 2025-03
design: retrospective cohort
population: post-bcma-cart
cohort: testnew-cohort
source: testnew.txt
groups:
  - id: tec
    name: Teclistamab
    agents: [teclistamab]
    modality: bispecific
    target: [BCMA]
    setting: first-salvage
    unit: patients
    outcomes:
      - outcome: ORR
        responders: {responders}
        evaluable: {evaluable}
        percent: null
        derived: false
        quote: "{responders} of {evaluable} patients responded"
        location: Table 1
"""
NEW_RECORD = "testnew-2025/tec/ORR"
SUBGROUP = ("post-cart-orr", "Bispecific antibody")


def new_study(responders: int = 9, evaluable: int = 12) -> str:
    return NEW_STUDY.format(responders=responders, evaluable=evaluable)


class Repo:
    """A working copy: extractions/, analysis-plan.yaml, published/summary.json."""

    def __init__(self, root: Path, extractions: Path, plan: str = PLAN) -> None:
        self.root = root
        self.extractions = root / "extractions"
        shutil.copytree(extractions, self.extractions)
        self.plan = root / "analysis-plan.yaml"
        self.plan.write_text(plan, encoding="utf-8")
        self.results = root / "results"
        self.published = root / "published" / "summary.json"

    def options(self) -> list[str]:
        return [
            "--plan",
            str(self.plan),
            "--extractions",
            str(self.extractions),
            "--published",
            str(self.published),
        ]

    def publish_current(self) -> dict[str, Any]:
        state = living.current_state(self.plan, self.extractions)
        living.publish(state, self.published)
        return state

    def snapshot(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file()
        }


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo", ROOT / "extractions")


def test_add_names_the_study_and_the_estimates_it_moved(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = repo.publish_current()
    old = living.estimates_of(before)[SUBGROUP]
    new_file = tmp_path / "testnew.yaml"
    new_file.write_text(new_study(9, 12), encoding="utf-8")

    code, out, err = run_cli(
        capsys, "add", str(new_file), *repo.options(), "--results", str(repo.results), "--json"
    )
    assert code == 0, err
    diff = json.loads(out)

    placed = repo.extractions / "testnew-2025.yaml"
    assert placed.read_text(encoding="utf-8") == new_study(9, 12)  # comments kept
    assert (repo.results / "summary.json").is_file()

    (record,) = [r for r in diff["records"] if r["record"] == NEW_RECORD]
    assert record["change"] == "added"
    assert {"analysis": SUBGROUP[0], "subgroup": SUBGROUP[1]} in record["moved"]
    moved = [e for e in diff["estimates"] if (e["analysis"], e["subgroup"]) == SUBGROUP]
    assert len(moved) == 1
    change = moved[0]
    assert change["status"] == "changed"
    assert change["records_in"] == [NEW_RECORD]
    assert change["new"]["k"] == old.k + 1

    # the new estimate, computed directly: the subgroup's earlier entries + the new study
    # (disjoint groups of one study combined into one entry are summed, as the analysis does)
    frame = metaresp.load_extractions(repo.extractions).to_frame().set_index("record")
    (item,) = [e for a in before["analyses"] if a["analysis"] == SUBGROUP[0]
               for e in a["estimates"] if e["subgroup"] == SUBGROUP[1]]
    inside = {i for c in item.get("combined", ()) for i in c["records"]}
    entries = [[r] for r in old.records if r not in inside] + [
        list(c["records"]) for c in item.get("combined", ())]
    events = [sum(int(frame.loc[r, "responders"]) for r in e) for e in entries] + [9]
    totals = [sum(int(frame.loc[r, "evaluable"]) for r in e) for e in entries] + [12]
    direct = metaresp.pool(events, totals, transform="logit", estimator="GLMM", ci="t")
    # same data and settings through the same engine: equal to floating-point rounding
    assert change["new"]["estimate"] == pytest.approx(direct.proportion, abs=1e-9)
    assert change["new"]["ci_low"] == pytest.approx(direct.ci_low, abs=1e-9)
    assert change["new"]["ci_high"] == pytest.approx(direct.ci_high, abs=1e-9)

    # only estimates holding the new record moved
    for other in diff["estimates"]:
        assert NEW_RECORD in other["records_in"]

    # the published state now equals the corpus: a plain diff finds nothing
    code, out, err = run_cli(capsys, "diff", *repo.options())
    assert code == 0, err
    assert "No pooled estimate changed." in out
    assert "Records: 0 added, 0 removed, 0 edited" in out


def test_add_prints_a_readable_diff(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.publish_current()
    new_file = tmp_path / "testnew.yaml"
    new_file.write_text(new_study(9, 12), encoding="utf-8")
    code, out, err = run_cli(
        capsys, "add", str(new_file), *repo.options(), "--results", str(repo.results)
    )
    assert code == 0, err
    assert f"added {repo.extractions / 'testnew-2025.yaml'}" in out
    assert f"+ {NEW_RECORD}  9/12" in out
    assert "moved: post-cart-orr · Bispecific antibody" in out
    assert "Changelog:" in out
    assert "added testnew-2025 (1 record)" in out


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        (new_study(13, 12), "testnew.yaml", "responders"),
        (
            new_study().replace("id: testnew-2025", "id: merz-2024"),
            "dup.yaml",
            "already in the corpus",
        ),
        (
            new_study().replace("modality: bispecific", "modality: bispecifc"),
            "typo.yaml",
            "modality",
        ),
        ("id: [unclosed\n", "broken.yaml", "broken.yaml"),
        ("irrelevant", "notes.txt", "expected an extraction file"),
    ],
    ids=["count", "existing-id", "vocabulary", "yaml", "extension"],
)
def test_rejected_study_leaves_the_corpus_byte_identical(
    repo: Repo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    name: str,
    message: str,
) -> None:
    repo.publish_current()
    before = repo.snapshot()
    new_file = tmp_path / name
    new_file.write_text(text, encoding="utf-8")
    code, out, err = run_cli(
        capsys, "add", str(new_file), *repo.options(), "--results", str(repo.results)
    )
    assert code == 1
    assert out == ""
    assert message in err
    assert "Traceback" not in err
    assert all(line.startswith("error: ") for line in err.splitlines())
    assert repo.snapshot() == before  # every file, byte for byte; nothing new
    assert not repo.results.exists()


def test_update_replaces_and_reports_an_edit(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "testnew.yaml"
    first.write_text(new_study(9, 12), encoding="utf-8")
    assert (
        run_cli(capsys, "add", str(first), *repo.options(), "--results", str(repo.results))[0] == 0
    )
    second = tmp_path / "testnew-corrected.yaml"
    second.write_text(new_study(10, 12), encoding="utf-8")
    code, _, err = run_cli(
        capsys, "add", str(second), *repo.options(), "--results", str(repo.results)
    )
    assert code == 1
    assert "--update" in err
    code, out, err = run_cli(
        capsys,
        "add",
        str(second),
        *repo.options(),
        "--results",
        str(repo.results),
        "--update",
        "--json",
    )
    assert code == 0, err
    (record,) = json.loads(out)["records"]
    assert record["change"] == "edited"
    assert {"field": "responders", "old": 9, "new": 10} in record["fields"]
    assert {"analysis": SUBGROUP[0], "subgroup": SUBGROUP[1]} in record["moved"]


def _counts_study(sid: str, responders: int, evaluable: int, year: int) -> str:
    return (
        new_study(responders, evaluable)
        .replace("testnew-2025", sid)
        .replace("testnew-cohort", f"{sid}-cohort")
        .replace("year: 2025", f"year: {year}")
        .replace("published: 2025-03\n", "")
    )


def test_threshold_crossing_on_a_constructed_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "one-2020.yaml").write_text(_counts_study("one-2020", 6, 10, 2020), "utf-8")
    (corpus / "two-2021.yaml").write_text(_counts_study("two-2021", 7, 10, 2021), "utf-8")
    repo = Repo(tmp_path / "repo", corpus)
    repo.publish_current()
    new_file = tmp_path / "three.yaml"
    new_file.write_text(_counts_study("three-2024", 90, 120, 2024), encoding="utf-8")

    # the crossing, established independently of the diff
    before = metaresp.pool([6, 7], [10, 10], transform="logit", estimator="GLMM", ci="t")
    after = metaresp.pool([6, 7, 90], [10, 10, 120], transform="logit", estimator="GLMM", ci="t")
    assert before.ci_low < 0.5 < before.ci_high
    assert after.ci_low > 0.5

    code, out, err = run_cli(
        capsys, "add", str(new_file), *repo.options(), "--results", str(repo.results), "--json"
    )
    assert code == 0, err
    diff = json.loads(out)
    crossings = [c for c in diff["crossings"] if c["kind"] == "ci"]
    assert [(c["analysis"], c["subgroup"], c["old"], c["new"]) for c in crossings] == [
        ("post-cart-orr", "Bispecific antibody", "includes", "above")
    ]
    assert crossings[0]["message"].startswith("CI lower bound now above 50%")
    assert "lower bound now above 50%" in diff["changelog"]


def test_diff_bad_against_is_one_line(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        capsys, "diff", *repo.options(), "--against", str(repo.root / "missing.json")
    )
    assert code == 1
    assert len(err.splitlines()) == 1
    (repo.root / "bad.json").write_text("[]", encoding="utf-8")
    code, _, err = run_cli(
        capsys, "diff", *repo.options(), "--against", str(repo.root / "bad.json")
    )
    assert code == 1
    assert "not a metaresp summary" in err


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_diff_against_a_git_revision(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.publish_current()
    _git(repo.root, "init", "-q")
    _git(repo.root, "add", "extractions", "analysis-plan.yaml", "published")
    _git(repo.root, "commit", "-q", "-m", "published state")
    _git(repo.root, "tag", "v1")
    new_file = tmp_path / "testnew.yaml"
    new_file.write_text(new_study(9, 12), encoding="utf-8")
    assert (
        run_cli(capsys, "add", str(new_file), *repo.options(), "--results", str(repo.results))[0]
        == 0
    )

    code, out, err = run_cli(capsys, "diff", *repo.options(), "--against", "v1", "--json")
    assert code == 0, err
    diff = json.loads(out)
    assert diff["against"].startswith("v1:")
    assert [r["record"] for r in diff["records"]] == [NEW_RECORD]
    assert [(e["analysis"], e["subgroup"]) for e in diff["estimates"]] == [SUBGROUP]

    code, _, err = run_cli(capsys, "diff", *repo.options(), "--against", "no-such-ref")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert "no-such-ref" in err


def test_run_writes_cumulative_analyses_and_the_published_state(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys,
        "run",
        "-q",
        "--plan",
        str(repo.plan),
        "--extractions",
        str(repo.extractions),
        "--out",
        str(repo.results),
        "--published",
        str(repo.published),
    )
    assert code == 0, err
    summary = (repo.results / "summary.json").read_bytes()
    assert repo.published.read_bytes() == summary
    state = json.loads(summary)
    assert living.RECORDS_KEY in state

    import csv

    with (repo.results / "cumulative.csv").open(encoding="utf-8") as handle:
        steps = [
            row for row in csv.DictReader(handle) if (row["analysis"], row["subgroup"]) == SUBGROUP
        ]
    bispecific = living.estimates_of(state)[SUBGROUP]
    # one step per entry of the class, in date order, each step adding one study (an entry
    # that combines disjoint groups of one study stands for the records it sums)
    (item,) = [e for a in state["analyses"] if a["analysis"] == SUBGROUP[0]
               for e in a["estimates"] if e["subgroup"] == SUBGROUP[1]]
    members = {c["entry"]: c["records"] for c in item.get("combined", ())}
    assert sorted(r for row in steps for r in members.get(row["record"], [row["record"]])) \
        == sorted(bispecific.records)
    assert [int(row["k"]) for row in steps] == list(range(1, bispecific.k + 1))
    assert [row["date"] for row in steps] == sorted(row["date"] for row in steps)
    # the last step pools every record of the class: it is the class's estimate
    assert bispecific.estimate is not None
    assert float(steps[-1]["proportion"]) == pytest.approx(bispecific.estimate, abs=1e-12)
    # a cumulative plot is drawn for classes of three or more studies
    figures = repo.results / "figures" / "cumulative"
    drawn = bispecific.k >= 3
    assert (figures / "post-cart-orr--bispecific-antibody.png").is_file() == drawn
    assert (figures / "post-cart-orr--bispecific-antibody.svg").is_file() == drawn

    # --no-publish leaves the published state alone
    repo.published.unlink()
    code, _, err = run_cli(
        capsys,
        "run",
        "-q",
        "--plan",
        str(repo.plan),
        "--extractions",
        str(repo.extractions),
        "--out",
        str(repo.results),
        "--published",
        str(repo.published),
        "--no-publish",
    )
    assert code == 0, err
    assert not repo.published.exists()


def test_add_from_a_workbook(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from metaresp.corpus import parse_study
    from metaresp.workbook import write_workbook

    study, _, problems = parse_study(new_study(9, 12), "testnew.yaml")
    assert study is not None, problems
    book = tmp_path / "new.xlsx"
    write_workbook([study], book)
    repo.publish_current()
    code, out, err = run_cli(
        capsys, "add", str(book), *repo.options(), "--results", str(repo.results), "--json"
    )
    assert code == 0, err
    placed, _, _ = parse_study((repo.extractions / "testnew-2025.yaml").read_text("utf-8"))
    assert placed == study
    assert [r["record"] for r in json.loads(out)["records"]] == [NEW_RECORD]
