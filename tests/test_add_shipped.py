"""``metaresp add`` on a copy of the shipped corpus under the shipped plan, starting from
the shared run of the shipped plan (``shipped_run``) as the published state and as the
last run: the add refits and redraws only what the new study moves, with the figures drawn
as users get them (300 dpi, worker processes; the cache is keyed by those settings).
Expected values: :func:`metaresp.pool` on the counts read from the corpus files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import metaresp
from factories import SHIPPED_EXTRACTIONS, SHIPPED_PLAN, CliResult, Repo, ShippedRun, study_text
from metaresp import living
from metaresp.plan import load_plan

Cli = Callable[..., CliResult]

NEW_RECORD = "testnew-2025/tec/ORR"


def new_study(responders: int = 9, evaluable: int = 12) -> str:
    return study_text("testnew-2025", responders, evaluable, year=2025, published="2025-03")


@pytest.mark.slow
@pytest.mark.xdist_group("shipped")
def test_add_on_the_shipped_corpus_and_plan(
    shipped_run: ShippedRun, make_repo: Callable[..., Repo], tmp_path: Path, cli: Cli
) -> None:
    """The whole workflow on a copy of the shipped corpus under the shipped plan, the
    shared run's summary as the published state it is compared with and a copy of its
    results folder as the last run (as after ``metaresp run``: the add then refits and
    redraws only what the new study moves)."""
    repo = make_repo(SHIPPED_EXTRACTIONS, SHIPPED_PLAN)
    repo.published.parent.mkdir(parents=True)
    shutil.copyfile(shipped_run.out / "summary.json", repo.published)
    shutil.copytree(shipped_run.out, repo.results)

    before = living.read_state_file(repo.published)
    key = ("modality-first-salvage", "Bispecific antibody")
    old = living.estimates_of(before)[key]
    new_file = tmp_path / "testnew.yaml"
    new_file.write_text(new_study(9, 12), encoding="utf-8")

    code, out, err = cli("add", new_file, *repo.options(), "--results", repo.results, "--json")
    assert code == 0, err
    diff = json.loads(out)
    assert [r["record"] for r in diff["records"]] == [NEW_RECORD]
    (record,) = diff["records"]
    assert record["change"] == "added"
    assert {"analysis": key[0], "subgroup": key[1]} in record["moved"]
    (change,) = [e for e in diff["estimates"] if (e["analysis"], e["subgroup"]) == key]
    assert change["status"] == "changed"
    assert change["records_in"] == [NEW_RECORD]
    assert change["new"]["k"] == old.k + 1
    # every estimate that moved holds the new record
    assert all(NEW_RECORD in e["records_in"] for e in diff["estimates"])

    # the new estimate: the class's earlier records, their counts read from the corpus
    # files, and 9/12, pooled with the analysis's model as the plan states it
    # (disjoint groups of one study combined into one entry are summed, as the analysis does)
    frame = metaresp.load_extractions(SHIPPED_EXTRACTIONS).to_frame().set_index("record")
    (item,) = [
        e
        for a in before["analyses"]
        if a["analysis"] == key[0]
        for e in a["estimates"]
        if e["subgroup"] == key[1]
    ]
    inside = {i for c in item.get("combined", ()) for i in c["records"]}
    entries = [[r] for r in old.records if r not in inside] + [
        list(c["records"]) for c in item.get("combined", ())
    ]
    events = [sum(int(frame.loc[r, "responders"]) for r in e) for e in entries] + [9]
    totals = [sum(int(frame.loc[r, "evaluable"]) for r in e) for e in entries] + [12]
    (analysis,) = [a for a in load_plan(SHIPPED_PLAN).expanded() if a.name == key[0]]
    m = analysis.model
    direct = metaresp.pool(
        events, totals, transform=m.transform, estimator=m.estimator, ci=m.ci, level=m.level
    )
    assert change["new"]["estimate"] == pytest.approx(direct.proportion, abs=1e-9)
    assert change["new"]["ci_low"] == pytest.approx(direct.ci_low, abs=1e-9)
    assert change["new"]["ci_high"] == pytest.approx(direct.ci_high, abs=1e-9)
    # the shared run is left as it was
    assert (shipped_run.out / "summary.json").read_bytes() != repo.published.read_bytes()
