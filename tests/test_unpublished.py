"""``add --update`` does not overwrite unpublished edits; ``diff --against run``; the diff
shows old → new for every changed field; the corpus version is a content hash."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from factories import CliResult, Repo, study_text
from metaresp import living
from metaresp.corpus import load_extractions

Cli = Callable[..., CliResult]

pytestmark = pytest.mark.usefixtures("quick_figures")

STUDY = "bisa-2021"
RECORD = "bisa-2021/tec/ORR"


def hand_edit(repo: Repo, old: str, new: str) -> None:
    path = repo.extractions / f"{STUDY}.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_update_refuses_to_overwrite_an_unpublished_edit(
    small_repo: Repo, tmp_path: Path, cli: Cli
) -> None:
    repo = small_repo
    repo.publish_current()
    hand_edit(repo, "responders: 6", "responders: 7")  # edited, not published
    corrected = tmp_path / "corrected.yaml"
    corrected.write_text(study_text(STUDY, 5, 10, year=2021), encoding="utf-8")
    before = repo.snapshot()

    code, _, err = cli("add", corrected, "--update", *repo.options(), "--results", repo.results)
    assert code == 1
    assert "not yet published" in err
    assert f"{RECORD}: responders 6 (published) → 7 (in the file now)" in err
    assert "--force" in err
    assert repo.snapshot() == before

    code, _, err = cli(
        "add", corrected, "--update", "--force", *repo.options(), "--results", repo.results
    )
    assert code == 0, err
    assert "responders: 5" in (repo.extractions / f"{STUDY}.yaml").read_text(encoding="utf-8")


def test_update_that_keeps_the_edit_is_allowed(small_repo: Repo, tmp_path: Path, cli: Cli) -> None:
    repo = small_repo
    repo.publish_current()
    hand_edit(repo, "responders: 6", "responders: 7")
    same = tmp_path / "same.yaml"
    text = study_text(STUDY, 7, 10, year=2021).replace("Test J.", "Test Journal.")
    same.write_text(text, encoding="utf-8")
    code, _, err = cli("add", same, "--update", *repo.options(), "--results", repo.results)
    assert code == 0, err


def test_diff_against_the_last_run_and_text_values(small_repo: Repo, cli: Cli) -> None:
    repo = small_repo
    run = ["run", "--quiet", "--no-publish", "--out", repo.results]
    assert cli(*run, "--plan", repo.plan, "--extractions", repo.extractions).code == 0
    long_quote = "6 of 10 patients responded " + "after a long course of treatment " * 4
    hand_edit(repo, '"6 of 10 patients responded"', f'"{long_quote}"')
    hand_edit(repo, "location: Table 1", "location: Table 2")
    options = [*repo.options(), "--last-run", repo.results]

    published = cli("diff", *options)
    assert published.code == 0, published.err
    assert "not written yet" in published.out  # nothing published: every estimate is new

    code, out, err = cli("diff", "--against", "run", *options)
    assert code == 0, err
    assert "Records: 0 added, 0 removed, 1 edited" in out
    assert '      location "Table 1" → "Table 2"' in out
    (quote_line,) = [line for line in out.splitlines() if line.strip().startswith("quote ")]
    assert "→" in quote_line
    assert "…" in quote_line  # the long new quote is shortened around the edit
    assert len(quote_line) < 200

    code, out, _ = cli("diff", "--against", "run", "--json", *options)
    fields = {f["field"]: f for f in json.loads(out)["records"][0]["fields"]}
    assert fields["quote"]["new"] == long_quote  # the JSON keeps the whole text
    assert fields["location"] == {"field": "location", "old": "Table 1", "new": "Table 2"}


def test_against_run_without_a_run_is_one_line(small_repo: Repo, cli: Cli) -> None:
    repo = small_repo
    code, _, err = cli("diff", "--against", "run", *repo.options(), "--last-run", repo.results)
    assert code == 1
    assert err.count("\n") == 1
    assert "--against run" in err


def test_corpus_version_is_a_hash_of_content(small_repo: Repo, tmp_path: Path) -> None:
    repo = small_repo
    version = living.corpus_version(load_extractions(repo.extractions))
    path = repo.extractions / f"{STUDY}.yaml"
    text = path.read_text(encoding="utf-8")
    # comments, quoting, key order and the file's name do not count
    reformatted = "# a new comment\n" + text.replace('citation: "', "citation: '").replace(
        '2021;1:1-2."', "2021;1:1-2.'"
    )
    lines = reformatted.splitlines(keepends=True)
    year = next(i for i, line in enumerate(lines) if line.startswith("year:"))
    lines.insert(1, lines.pop(year))
    path.unlink()
    (repo.extractions / "renamed.yaml").write_text("".join(lines), encoding="utf-8")
    assert living.corpus_version(load_extractions(repo.extractions)) == version
    (repo.extractions / "renamed.yaml").write_text(
        text.replace("responders: 6", "responders: 5"), encoding="utf-8"
    )
    assert living.corpus_version(load_extractions(repo.extractions)) != version
