"""``metaresp add`` and ``metaresp diff`` end to end through the command line.

The workflow is tested on a small corpus (``factories.SMALL_CORPUS``: three bispecific and
two CAR T studies, first salvage after BCMA CAR T) with a one-analysis plan (ORR by
modality, threshold 50%), figures drawn quickly (``quick_figures``). Expected movements
are computed independently: :func:`metaresp.pool` on the counts written in the factories
and in this file. Adding a study to a copy of the shipped corpus under the shipped plan is
tested in ``test_add_shipped.py`` (with the figures drawn as users get them).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import metaresp
from factories import (
    SMALL_ANALYSIS,
    SMALL_CORPUS,
    CliResult,
    Repo,
    git,
    study_text,
)
from metaresp import living

pytestmark = pytest.mark.usefixtures("quick_figures")

Cli = Callable[..., CliResult]

NEW_RECORD = "testnew-2025/tec/ORR"
SUBGROUP = (SMALL_ANALYSIS, "Bispecific antibody")
BISPECIFIC = [c for c in SMALL_CORPUS if c.modality == "bispecific"]


def new_study(responders: int = 9, evaluable: int = 12) -> str:
    return study_text("testnew-2025", responders, evaluable, year=2025, published="2025-03")


def test_add_names_the_study_and_the_estimates_it_moved(
    small_repo: Repo, tmp_path: Path, cli: Cli
) -> None:
    repo = small_repo
    before = repo.publish_current()
    old = living.estimates_of(before)[SUBGROUP]
    assert sorted(old.records) == sorted(c.record for c in BISPECIFIC)
    new_file = tmp_path / "testnew.yaml"
    new_file.write_text(new_study(9, 12), encoding="utf-8")

    code, out, err = cli("add", new_file, *repo.options(), "--results", repo.results, "--json")
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
    assert change["new"]["k"] == len(BISPECIFIC) + 1

    # the new estimate, computed directly from the counts: the class's studies + 9/12
    direct = metaresp.pool(
        [c.responders for c in BISPECIFIC] + [9],
        [c.evaluable for c in BISPECIFIC] + [12],
        transform="logit",
        estimator="GLMM",
        ci="t",
    )
    # same data and settings through the same engine: equal to floating-point rounding
    assert change["new"]["estimate"] == pytest.approx(direct.proportion, abs=1e-9)
    assert change["new"]["ci_low"] == pytest.approx(direct.ci_low, abs=1e-9)
    assert change["new"]["ci_high"] == pytest.approx(direct.ci_high, abs=1e-9)

    # only estimates holding the new record moved
    for other in diff["estimates"]:
        assert NEW_RECORD in other["records_in"]

    # the published state now equals the corpus: a plain diff finds nothing
    code, out, err = cli("diff", *repo.options())
    assert code == 0, err
    assert "No pooled estimate changed." in out
    assert "Records: 0 added, 0 removed, 0 edited" in out


def test_add_prints_a_readable_diff(small_repo: Repo, tmp_path: Path, cli: Cli) -> None:
    repo = small_repo
    repo.publish_current()
    new_file = tmp_path / "testnew.yaml"
    new_file.write_text(new_study(9, 12), encoding="utf-8")
    code, out, err = cli("add", new_file, *repo.options(), "--results", repo.results)
    assert code == 0, err
    assert f"added {repo.extractions / 'testnew-2025.yaml'}" in out
    assert f"+ {NEW_RECORD}  9/12" in out
    assert f"moved: {SMALL_ANALYSIS} · Bispecific antibody" in out
    assert "Changelog:" in out
    assert "added testnew-2025 (1 record)" in out


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        (new_study(13, 12), "testnew.yaml", "responders"),
        (
            new_study().replace("id: testnew-2025", f"id: {SMALL_CORPUS[0].sid}"),
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
    small_repo: Repo, tmp_path: Path, cli: Cli, text: str, name: str, message: str
) -> None:
    repo = small_repo
    repo.publish_current()
    before = repo.snapshot()
    new_file = tmp_path / name
    new_file.write_text(text, encoding="utf-8")
    code, out, err = cli("add", new_file, *repo.options(), "--results", repo.results)
    assert code == 1
    assert out == ""
    assert message in err
    assert "Traceback" not in err
    assert all(line.startswith("error: ") for line in err.splitlines())
    assert repo.snapshot() == before  # every file, byte for byte; nothing new
    assert not repo.results.exists()


def test_update_replaces_and_reports_an_edit(small_repo: Repo, tmp_path: Path, cli: Cli) -> None:
    repo = small_repo
    first = tmp_path / "testnew.yaml"
    first.write_text(new_study(9, 12), encoding="utf-8")
    assert cli("add", first, *repo.options(), "--results", repo.results).code == 0
    second = tmp_path / "testnew-corrected.yaml"
    second.write_text(new_study(10, 12), encoding="utf-8")
    code, _, err = cli("add", second, *repo.options(), "--results", repo.results)
    assert code == 1
    assert "--update" in err
    code, out, err = cli(
        "add", second, *repo.options(), "--results", repo.results, "--update", "--json"
    )
    assert code == 0, err
    (record,) = json.loads(out)["records"]
    assert record["change"] == "edited"
    assert {"field": "responders", "old": 9, "new": 10} in record["fields"]
    assert {"analysis": SUBGROUP[0], "subgroup": SUBGROUP[1]} in record["moved"]


def test_threshold_crossing_on_a_constructed_corpus(
    make_repo: Callable[..., Repo], tmp_path: Path, cli: Cli
) -> None:
    from factories import write_corpus

    corpus = write_corpus(
        tmp_path / "corpus",
        {
            "one-2020.yaml": study_text("one-2020", 6, 10, year=2020),
            "two-2021.yaml": study_text("two-2021", 7, 10, year=2021),
        },
    )
    repo = make_repo(corpus)
    repo.publish_current()
    new_file = tmp_path / "three.yaml"
    new_file.write_text(study_text("three-2024", 90, 120, year=2024), encoding="utf-8")

    # the crossing, established independently of the diff
    before = metaresp.pool([6, 7], [10, 10], transform="logit", estimator="GLMM", ci="t")
    after = metaresp.pool([6, 7, 90], [10, 10, 120], transform="logit", estimator="GLMM", ci="t")
    assert before.ci_low < 0.5 < before.ci_high
    assert after.ci_low > 0.5

    code, out, err = cli("add", new_file, *repo.options(), "--results", repo.results, "--json")
    assert code == 0, err
    diff = json.loads(out)
    crossings = [c for c in diff["crossings"] if c["kind"] == "ci"]
    assert [(c["analysis"], c["subgroup"], c["old"], c["new"]) for c in crossings] == [
        (SMALL_ANALYSIS, "Bispecific antibody", "includes", "above")
    ]
    assert crossings[0]["message"].startswith("CI lower bound now above 50%")
    assert any("lower bound now above 50%" in line for line in diff["changelog"])


def test_diff_bad_against_is_one_line(small_repo: Repo, cli: Cli) -> None:
    repo = small_repo
    code, _, err = cli("diff", *repo.options(), "--against", repo.root / "missing.json")
    assert code == 1
    assert len(err.splitlines()) == 1
    (repo.root / "bad.json").write_text("[]", encoding="utf-8")
    code, _, err = cli("diff", *repo.options(), "--against", repo.root / "bad.json")
    assert code == 1
    assert "not a metaresp summary" in err


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_diff_against_a_git_revision(small_repo: Repo, tmp_path: Path, cli: Cli) -> None:
    repo = small_repo
    repo.publish_current()
    git(repo.root, "init", "-q")
    git(repo.root, "add", "extractions", "analysis-plan.yaml", "published")
    git(repo.root, "commit", "-q", "-m", "published state")
    git(repo.root, "tag", "v1")
    new_file = tmp_path / "testnew.yaml"
    new_file.write_text(new_study(9, 12), encoding="utf-8")
    assert cli("add", new_file, *repo.options(), "--results", repo.results).code == 0

    code, out, err = cli("diff", *repo.options(), "--against", "v1", "--json")
    assert code == 0, err
    diff = json.loads(out)
    assert diff["against"].startswith("v1:")
    assert [r["record"] for r in diff["records"]] == [NEW_RECORD]
    assert [(e["analysis"], e["subgroup"]) for e in diff["estimates"]] == [SUBGROUP]

    code, _, err = cli("diff", *repo.options(), "--against", "no-such-ref")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert "no-such-ref" in err


def test_run_writes_cumulative_analyses_and_the_published_state(small_repo: Repo, cli: Cli) -> None:
    repo = small_repo
    run = ["run", "-q", "--plan", repo.plan, "--extractions", repo.extractions]
    code, _, err = cli(*run, "--results", repo.results, "--published", repo.published)
    assert code == 0, err
    summary = (repo.results / "summary.json").read_bytes()
    assert repo.published.read_bytes() == summary
    state = json.loads(summary)
    assert living.RECORDS_KEY in state

    with (repo.results / "cumulative.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    figures = repo.results / "figures" / "cumulative"
    estimates = living.estimates_of(state)
    for subgroup, studies in (
        ("Bispecific antibody", BISPECIFIC),
        ("CAR T", [c for c in SMALL_CORPUS if c.modality == "CAR-T"]),
    ):
        steps = [r for r in rows if (r["analysis"], r["subgroup"]) == (SMALL_ANALYSIS, subgroup)]
        # one step per study of the class, in date order, each step adding one study
        in_order = sorted(studies, key=lambda c: c.year)
        assert [row["record"] for row in steps] == [c.record for c in in_order]
        assert [int(row["k"]) for row in steps] == list(range(1, len(studies) + 1))
        assert [row["date"] for row in steps] == [str(c.year) for c in in_order]
        # the last step pools every record of the class: it is the class's estimate
        direct = metaresp.pool(
            [c.responders for c in studies],
            [c.evaluable for c in studies],
            transform="logit",
            estimator="GLMM",
            ci="t",
        )
        assert float(steps[-1]["proportion"]) == pytest.approx(direct.proportion, abs=1e-9)
        estimate = estimates[(SMALL_ANALYSIS, subgroup)].estimate
        assert estimate is not None
        assert float(steps[-1]["proportion"]) == pytest.approx(estimate, abs=1e-12)
        # a cumulative plot is drawn for classes of three or more studies
        slug = subgroup.lower().replace(" ", "-")
        drawn = len(studies) >= 3
        assert (figures / f"{SMALL_ANALYSIS}--{slug}.png").is_file() == drawn
        assert (figures / f"{SMALL_ANALYSIS}--{slug}.svg").is_file() == drawn
    assert (figures / f"{SMALL_ANALYSIS}--bispecific-antibody.png").is_file()

    # --no-publish leaves the published state alone
    repo.published.unlink()
    code, _, err = cli(
        *run, "--results", repo.results, "--published", repo.published, "--no-publish"
    )
    assert code == 0, err
    assert not repo.published.exists()


def test_add_from_a_workbook(small_repo: Repo, tmp_path: Path, cli: Cli) -> None:
    from metaresp.corpus import parse_study
    from metaresp.workbook import write_workbook

    repo = small_repo
    study, _, problems = parse_study(new_study(9, 12), "testnew.yaml")
    assert study is not None, problems
    book = tmp_path / "new.xlsx"
    write_workbook([study], book)
    repo.publish_current()
    code, out, err = cli("add", book, *repo.options(), "--results", repo.results, "--json")
    assert code == 0, err
    placed, _, _ = parse_study((repo.extractions / "testnew-2025.yaml").read_text("utf-8"))
    assert placed == study
    assert [r["record"] for r in json.loads(out)["records"]] == [NEW_RECORD]
