"""The living-update diff on constructed states, reading states from files and git, and the
cumulative meta-analysis by date.

States are built by hand here (the numbers are arbitrary but chosen so that each test's
expectation follows from them by inspection); the cumulative test checks each step against
:func:`metaresp.pool` run directly on the first j studies in date order.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import metaresp
from factories import git
from metaresp import living
from metaresp.analysis import Record, pool_groups
from metaresp.cumulative import csv_text, cumulative_class, date_order, date_text
from metaresp.errors import InputError
from metaresp.plan import Model


def fingerprint(study: str, responders: int, evaluable: int, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {name: None for name in living.RECORD_FIELDS}
    entry.update(
        study=study, responders=responders, evaluable=evaluable, outcome="ORR", digest="0" * 16
    )
    entry.update(extra)
    return entry


def estimate(
    subgroup: str, records: list[str], est: float, low: float, high: float, patients: int = 40
) -> dict[str, Any]:
    return {
        "subgroup": subgroup,
        "pooled": len(records) > 1,
        "k": len(records),
        "patients": patients,
        "responders": 0,
        "estimate": est,
        "ci_low": low,
        "ci_high": high,
        "model": {"transform": "logit", "estimator": "GLMM", "ci": "t", "level": 0.95},
        "records": records,
    }


def state(
    estimates: list[dict[str, Any]],
    records: dict[str, dict[str, Any]] | None,
    threshold: float | None = 50.0,
    set_aside: list[dict[str, Any]] | None = None,
    version: str = "v1",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "metaresp": "0",
        "corpus_version": version,
        "analyses": [
            {
                "analysis": "orr",
                "title": "Response after CAR T",
                "outcome": "ORR",
                "model": {"level": 0.95},
                "threshold_percent": threshold,
                "estimates": estimates,
                "overall": None,
                "set_aside": set_aside or [],
            }
        ],
    }
    if records is not None:
        out[living.RECORDS_KEY] = records
    return out


A, B, C = "a-2020/g/ORR", "b-2021/g/ORR", "c-2025/g/ORR"
OLD_RECORDS = {A: fingerprint("a-2020", 10, 20), B: fingerprint("b-2021", 12, 20)}
OLD = state([estimate("Bispecific", [A, B], 0.55, 0.45, 0.65)], OLD_RECORDS)


def test_identical_states_give_an_empty_diff() -> None:
    diff = living.compare(OLD, json.loads(json.dumps(OLD)))
    assert diff.empty
    assert [e.status for e in diff.estimates] == ["unchanged"]
    assert "No pooled estimate changed." in living.changelog(diff)


def test_added_record_names_the_estimate_it_moved_and_the_crossing() -> None:
    new = state(
        [estimate("Bispecific", [A, B, C], 0.62, 0.53, 0.70)],
        {**OLD_RECORDS, C: fingerprint("c-2025", 30, 40)},
        version="v2",
    )
    diff = living.compare(OLD, new, against="published/summary.json")
    (added,) = diff.records
    assert (added.kind, added.record, added.study) == ("added", C, "c-2025")
    assert added.moved == (("orr", "Bispecific"),)
    (change,) = diff.changed
    assert change.entered == (C,)
    assert change.old is not None
    assert change.new is not None
    assert (change.old.k, change.new.k) == (2, 3)
    # 0.45 <= 0.50 <= 0.65 before; 0.53 > 0.50 after: the CI left the threshold below it
    ci = [c for c in diff.crossings if c.kind == "ci"]
    assert len(ci) == 1
    assert (ci[0].old, ci[0].new) == ("includes", "above")
    assert ci[0].message.startswith("CI lower bound now above 50%")
    # the point estimate was above 50% already
    assert not [c for c in diff.crossings if c.kind == "estimate"]
    text = living.format_diff(diff)
    assert C in text
    assert "55.0% (45.0 to 65.0)" in text
    assert "62.0% (53.0 to 70.0)" in text
    log = living.changelog(diff)
    assert "added c-2025 (1 record)" in log
    (line,) = [x for x in log.splitlines() if x.startswith("- ")]  # one moved estimate
    assert line.startswith("- Response after CAR T, Bispecific: 55.0% (95% CI 45.0 to 65.0; k 2, ")
    assert "→ 62.0% (95% CI 53.0 to 70.0; k 3, " in line
    assert "CI lower bound now above 50% (45.0% → 53.0%)" in line
    assert line.endswith(f"because: added {C}")
    json.dumps(living.diff_dict(diff))  # JSON-ready


@pytest.mark.parametrize(
    ("low", "high", "est", "expected"),
    [
        (0.40, 0.49, 0.45, ("includes", "below", "CI upper bound now below 50%")),
        (0.51, 0.70, 0.60, ("includes", "above", "CI lower bound now above 50%")),
    ],
)
def test_crossings_from_an_interval_including_the_threshold(
    low: float, high: float, est: float, expected: tuple[str, str, str]
) -> None:
    new = state([estimate("Bispecific", [A, B], est, low, high)], OLD_RECORDS)
    (crossing,) = [c for c in living.compare(OLD, new).crossings if c.kind == "ci"]
    assert (crossing.old, crossing.new) == expected[:2]
    assert crossing.message.startswith(expected[2])


def test_interval_falling_back_over_the_threshold_and_point_estimate_crossing() -> None:
    before = state([estimate("Bispecific", [A, B], 0.60, 0.52, 0.68)], OLD_RECORDS)
    after = state([estimate("Bispecific", [A, B], 0.48, 0.30, 0.66)], OLD_RECORDS)
    kinds = {c.kind: c for c in living.compare(before, after).crossings}
    assert kinds["ci"].message.startswith("CI now includes 50%")
    assert kinds["estimate"].message.startswith("point estimate now below 50%")


def test_no_threshold_no_crossing() -> None:
    before = state([estimate("Bispecific", [A, B], 0.55, 0.45, 0.65)], OLD_RECORDS, threshold=None)
    after = state([estimate("Bispecific", [A, B], 0.62, 0.53, 0.70)], OLD_RECORDS, threshold=None)
    assert living.compare(before, after).crossings == ()


def test_edited_record_lists_the_fields_and_the_estimate() -> None:
    records = {A: fingerprint("a-2020", 11, 20), B: OLD_RECORDS[B]}
    new = state([estimate("Bispecific", [A, B], 0.57, 0.46, 0.67)], records)
    diff = living.compare(OLD, new)
    (edited,) = diff.records
    assert edited.kind == "edited"
    assert [(f.field, f.old, f.new) for f in edited.fields] == [("responders", 10, 11)]
    assert edited.moved == (("orr", "Bispecific"),)
    assert diff.changed[0].edited == (A,)
    assert "responders 10 → 11" in living.format_diff(diff)
    assert "corrected a-2020 (1 record)" in living.changelog(diff)


def test_text_only_edit_moves_nothing() -> None:
    records = {A: {**OLD_RECORDS[A], "digest": "1" * 16}, B: OLD_RECORDS[B]}
    diff = living.compare(OLD, state(OLD["analyses"][0]["estimates"], records))
    (edited,) = diff.records
    assert [f.field for f in edited.fields] == ["text"]
    assert edited.moved == ()
    assert diff.changed == []


def test_removed_record_and_vanished_and_new_estimates() -> None:
    new = state(
        [estimate("CAR T", [C], 0.75, 0.51, 0.90)],
        {A: OLD_RECORDS[A], C: fingerprint("c-2025", 30, 40)},
        set_aside=[{"record": A, "reason": "percent only"}],
    )
    diff = living.compare(OLD, new)
    kinds = {r.record: r for r in diff.records}
    assert kinds[B].kind == "removed"
    assert kinds[B].moved == (("orr", "Bispecific"),)
    assert kinds[C].moved == (("orr", "CAR T"),)
    assert [e.key for e in diff.vanished] == [("orr", "Bispecific")]
    assert [e.key for e in diff.new] == [("orr", "CAR T")]
    log = living.changelog(diff)
    assert "No longer estimated: Response after CAR T, Bispecific" in log
    assert "New estimate, Response after CAR T, CAR T: 75.0%" in log
    assert "a single study, not pooled" in log


def test_record_set_aside_says_why_it_moved_nothing() -> None:
    aside = [{"record": C, "reason": "same cohort as a-2020/g/ORR"}]
    new = state(
        OLD["analyses"][0]["estimates"],
        {**OLD_RECORDS, C: fingerprint("c-2025", 1, 2)},
        set_aside=aside,
    )
    (added,) = living.compare(OLD, new).records
    assert added.moved == ()
    assert "same cohort as a-2020/g/ORR" in added.why_not


def test_states_without_fingerprints_still_find_added_records() -> None:
    old = state([estimate("Bispecific", [A, B], 0.55, 0.45, 0.65)], None)
    new = state([estimate("Bispecific", [A, B, C], 0.62, 0.53, 0.70)], None)
    diff = living.compare(old, new)
    assert [(r.kind, r.record) for r in diff.records] == [("added", C)]
    assert any("no record fingerprints" in n for n in diff.notes)


def test_first_state_lists_estimates_as_new_without_records() -> None:
    diff = living.compare(None, OLD)
    assert diff.records == ()
    assert [e.status for e in diff.estimates] == ["new"]


def test_estimate_moved_without_record_change_says_so() -> None:
    new = state([estimate("Bispecific", [A, B], 0.56, 0.45, 0.65)], OLD_RECORDS)
    (change,) = living.compare(OLD, new).changed
    assert "plan or the engine changed" in change.reason


def test_tolerance_hides_floating_point_noise() -> None:
    # a refit on another machine may differ in the last digits; TOLERANCE is 1e-6
    new = state([estimate("Bispecific", [A, B], 0.55 + 1e-12, 0.45, 0.65)], OLD_RECORDS)
    assert living.compare(OLD, new).changed == []


# --------------------------------------------------------------------------- reading states


def test_state_files_bad_input_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as missing:
        living.read_state_file(tmp_path / "none.json")
    assert len(missing.value.problems) == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        living.read_state_file(bad)
    bad.write_text('{"analyses": 3}', encoding="utf-8")
    with pytest.raises(InputError, match="not a metaresp summary"):
        living.read_state_file(bad)


def test_load_previous_default_missing_means_nothing_published(tmp_path: Path) -> None:
    previous, label = living.load_previous(None, tmp_path / "published" / "summary.json")
    assert previous is None
    assert "not written yet" in label


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_state_at_a_git_revision(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    published = repo / "published" / "summary.json"
    living.publish(OLD, published)
    git(repo.parent, "init", "-q", str(repo))
    git(repo, "add", "published/summary.json")
    git(repo, "commit", "-q", "-m", "first")
    newer = state([estimate("Bispecific", [A, B, C], 0.62, 0.53, 0.70)], OLD_RECORDS)
    living.publish(newer, published)
    at_head, label = living.load_previous("HEAD", published)
    assert at_head == OLD
    assert label == f"HEAD:{published.as_posix()}"
    with pytest.raises(InputError) as bad:
        living.load_previous("no-such-revision", published)
    assert len(bad.value.problems) == 1
    assert "no-such-revision" in bad.value.problems[0]
    with pytest.raises(InputError):
        living.load_previous("--output=x", published)


def test_a_run_that_reproduces_the_published_numbers_leaves_the_file_alone(
    tmp_path: Path,
) -> None:
    """The last bits of a float differ between machines; a run that gives the published
    numbers to 12 digits must not rewrite published/summary.json (git status stays clean),
    while a real change is written."""
    from metaresp.living._state import same_state

    out = tmp_path / "results"
    out.mkdir()
    published = tmp_path / "published" / "summary.json"
    living.publish(OLD, published)
    before = published.read_bytes()
    nudged = json.loads(json.dumps(OLD))
    first = nudged["analyses"][0]["estimates"][0]
    first["estimate"] = first["estimate"] * (1 + 4e-16)
    assert first["estimate"] != OLD["analyses"][0]["estimates"][0]["estimate"]
    living.publish(nudged, out / "summary.json")
    assert living.finish_run(out, published) == [f"published state unchanged ({published})"]
    assert published.read_bytes() == before

    first["estimate"] += 1e-6
    living.publish(nudged, out / "summary.json")
    assert living.finish_run(out, published) == [f"published state written to {published}"]
    assert json.loads(published.read_text())["analyses"][0]["estimates"][0] == first

    assert same_state({"a": [1.0, float("nan"), None]}, {"a": [1.0, float("nan"), None]})
    assert not same_state({"a": 1.0}, {"a": None})
    assert not same_state({"a": 1.0}, {"b": 1.0})
    assert not same_state([1.0, 2.0], [1.0])
    assert not same_state({"a": "1"}, {"a": 1.0})
    assert not same_state({"a": True}, {"a": 1.0})


# --------------------------------------------------------------------------- cumulative


def _record(i: int, events: int, total: int, date: tuple[int, int, int]) -> Record:
    return Record(
        record_id=f"s{i}/g/ORR",
        study=f"s{i}",
        group_id="g",
        group="g",
        cohort=f"c{i}",
        outcome="ORR",
        population="post-bcma-cart",
        setting="first-salvage",
        unit="patients",
        events=events,
        total=total,
        label=f"Study {i}",
        year=date[0],
        date=date,
    )


def test_cumulative_follows_publication_date_and_matches_direct_pools() -> None:
    records = [
        _record(1, 12, 20, (2024, 5, 0)),
        _record(2, 5, 10, (2021, 0, 0)),
        _record(3, 30, 40, (2023, 2, 1)),
        _record(4, 3, 9, (2023, 0, 0)),
    ]
    assert date_order(records) == [1, 3, 2, 0]  # 2021, 2023, 2023-02-01, 2024-05
    model = Model(transform="logit", estimator="REML", ci="hksj", level=0.95)
    group = pool_groups({"All studies": records}, model).groups[0]
    steps = cumulative_class("orr", group)
    assert [s.record for s in steps] == ["s2/g/ORR", "s4/g/ORR", "s3/g/ORR", "s1/g/ORR"]
    assert [s.date for s in steps] == ["2021", "2023", "2023-02-01", "2024-05"]
    order = [1, 3, 2, 0]
    # the first step is one study: its exact Clopper-Pearson interval (5/10: beta
    # quantiles B(0.025; 5, 6) and B(0.975; 6, 5)), the forest plot's interval for it
    from scipy.stats import beta

    assert steps[0].k == 1
    assert steps[0].proportion == pytest.approx(0.5, abs=1e-12)
    assert steps[0].ci_low == pytest.approx(beta.ppf(0.025, 5, 6), abs=1e-9)
    assert steps[0].ci_high == pytest.approx(beta.ppf(0.975, 6, 5), abs=1e-9)
    for j, step in enumerate(steps[1:], start=2):
        chosen = [records[i] for i in order[:j]]
        direct = metaresp.pool(
            [r.events for r in chosen],
            [r.total for r in chosen],
            transform="logit",
            estimator="REML",
            ci="hksj",
        )
        assert step.k == j
        # same data, same settings: the engine must give the same numbers to rounding
        assert step.proportion == pytest.approx(direct.proportion, abs=1e-12)
        assert step.ci_low == pytest.approx(direct.ci_low, abs=1e-12)
        assert step.ci_high == pytest.approx(direct.ci_high, abs=1e-12)
    assert csv_text(steps).splitlines()[0].startswith("analysis,subgroup,step,record")


def test_date_text() -> None:
    assert date_text((2024, 12, 5)) == "2024-12-05"
    assert date_text((2023, 2, 0)) == "2023-02"
    assert date_text((2020, 0, 0)) == "2020"
    assert date_text((0, 0, 0)) == ""


def test_a_wider_interval_after_a_study_is_added_is_explained() -> None:
    from metaresp.living._diff import Estimate
    from metaresp.living._render import widening

    def est(k: int, pooled: bool, low: float, high: float) -> Estimate:
        return Estimate("a", "A", "B", False, pooled, k, 30, 0.7, low, high, 0.95, 50.0, ())

    one = est(1, False, 0.59, 0.92)
    two = est(2, True, 0.03, 0.996)
    assert "exact binomial interval" in str(widening(one, two))
    assert "between-study variation" in str(
        widening(est(2, True, 0.4, 0.8), est(3, True, 0.2, 0.9))
    )
    assert widening(est(2, True, 0.4, 0.8), est(3, True, 0.45, 0.75)) is None
    assert widening(est(3, True, 0.4, 0.8), est(2, True, 0.2, 0.9)) is None
