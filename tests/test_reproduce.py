"""``results/reproduce.R``: one block per estimate of summary.json, the data inline, and
(where R with metafor is installed) the same numbers from metafor.

The small corpus (``factories.SMALL_CORPUS``) is run with a plan that exercises every kind
of block: the GLMM (primary), REML with HKSJ, Freeman-Tukey with DL and a z interval, the
ad hoc HKSJ floor, the Bayesian other-family line, subgroups of one and several studies
and an overall pool.

Tolerance against metafor (relative to max(1e-3, |value|)): 1e-4 for the inverse-variance
models (metafor's Fisher scoring for REML stops at a change of 1e-5 in τ²), 2e-3 for the
GLMM (metafor's ``rma.glmm`` optimiser and its default tolerances; see test_glmm.py); for
the Bayesian model, recomputed by the script's base-R integration, 1e-3: metaresp's stated
accuracy (metaresp.bayes), which the R function, accurate to about 2e-5, does not limit.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from factories import SMALL_PLAN, CliResult, Repo, run_reproduce_script, study_text

pytestmark = pytest.mark.usefixtures("quick_figures")


def _plan() -> str:
    """The tests' small plan with a Bayesian other family and three sensitivity models."""
    plan = yaml.safe_load(SMALL_PLAN)
    plan["other_family"] = {
        "suffix": "bayes",
        "description": "Bayesian binomial-normal model",
        "model": {"estimator": "BAYES", "tau_prior": "half-normal(1)", "mu_prior": "normal(0, 2)"},
    }
    plan["analyses"][0]["sensitivity"] = [
        {
            "name": "post-cart-orr-reml",
            "description": "REML, HKSJ",
            "model": {"transform": "logit", "estimator": "REML", "ci": "hksj"},
        },
        {
            "name": "post-cart-orr-ft",
            "description": "Freeman-Tukey, DL, z",
            "model": {"transform": "freeman-tukey", "estimator": "DL", "ci": "z"},
        },
        {
            "name": "post-cart-orr-adhoc",
            "description": "arcsine, PM, ad hoc HKSJ",
            "model": {"transform": "arcsine", "estimator": "PM", "ci": "hksj-adhoc"},
        },
    ]
    return str(yaml.safe_dump(plan, sort_keys=False, allow_unicode=True))


PLAN = _plan()


def _run(repo: Repo, cli: Callable[..., CliResult]) -> tuple[str, dict[str, Any]]:
    result = cli("run", *repo.options(), "--results", repo.results, "--quiet", "--no-publish")
    assert result.code == 0, result.err
    script = (repo.results / "reproduce.R").read_text(encoding="utf-8")
    summary = json.loads((repo.results / "summary.json").read_text(encoding="utf-8"))
    return script, summary


def _estimates(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for a in summary["analyses"]:
        for e in a["estimates"]:
            out[f"{a['analysis']}/{e['subgroup']}"] = {**e, "bayes": a["model"]["estimator"]}
        if a["overall"] is not None:
            out[f"{a['analysis']}/overall"] = {**a["overall"], "bayes": a["model"]["estimator"]}
    return out


@pytest.fixture
def reproduce_repo(make_repo: Callable[..., Repo], small_repo: Repo) -> Repo:
    repo = make_repo(small_repo.extractions, PLAN, name="reproduce")
    # one ADC study: a subgroup ("Other") of one study, shown and not pooled
    text = study_text("adca-2023", 2, 5, year=2023).replace("modality: bispecific", "modality: ADC")
    (repo.extractions / "adca-2023.yaml").write_text(text, encoding="utf-8")
    return repo


def test_script_has_one_block_per_estimate_with_the_data_inline(
    reproduce_repo: Repo, cli: Callable[..., CliResult]
) -> None:
    script, summary = _run(reproduce_repo, cli)
    estimates = _estimates(summary)
    ids = re.findall(r'^(?:add|record)\("([^"]+)"', script, flags=re.MULTILINE)
    assert sorted(ids) == sorted(estimates)
    assert len(ids) == len(set(ids))
    blocks = script.split("# " + "-" * 88)[1:]
    tests = [b for b in blocks if "| test for subgroup differences |" in b]
    blocks = [b for b in blocks if b not in tests]
    assert len(blocks) == len(estimates)
    # one test block per analysis with a test, except the Bayesian ones (no metafor fit)
    with_test = [
        a["analysis"]
        for a in summary["analyses"]
        if a["subgroup_test"] is not None and a["model"]["estimator"] != "BAYES"
    ]
    assert len(tests) == len(with_test) >= 1
    assert all(re.search(r'^between\("[^"]+", c\("', t, flags=re.MULTILINE) for t in tests)
    for block in blocks:
        assert re.search(r"^xi <- c\(\d+(, \d+)*\)$", block, flags=re.MULTILINE), block
        assert re.search(r"^ni <- c\(\d+(, \d+)*\)$", block, flags=re.MULTILINE), block
        assert "# analysis: " in block
        assert "outcome: ORR" in block
    # the metafor calls of each model
    assert 'rma.glmm(measure = "PLO", xi = xi, ni = ni, nAGQ = 7, test = "t"' in script
    assert 'method="REML", test="knha"' in script
    assert 'escalc(measure = "PFT"' in script
    assert "transf.ipft.hm, targs = list(ni = ni)" in script
    assert 'method="PM", test="adhoc"' in script
    # the Bayesian model: recomputed by the script's own integration, priors written out
    assert "bayes_binorm <- function(" in script
    assert re.search(r'^fit <- bayes_binorm\(xi, ni, "half-[a-z]+", ', script, flags=re.MULTILINE)
    assert "binom.test(" in script  # a single-study subgroup: the exact interval
    # the counts of each block are those summary.json says it pooled
    for block in blocks:
        ident = re.search(r'^(?:add|record)\("([^"]+)"', block, flags=re.MULTILINE)
        assert ident is not None
        est = estimates[ident.group(1)]
        xi = re.search(r"^xi <- c\(([^)]*)\)$", block, flags=re.MULTILINE)
        ni = re.search(r"^ni <- c\(([^)]*)\)$", block, flags=re.MULTILINE)
        assert xi is not None
        assert ni is not None
        assert sum(map(int, xi.group(1).split(","))) == est["responders"]
        assert sum(map(int, ni.group(1).split(","))) == est["patients"]
    # the data are inline: the script names no file of the run, so it runs anywhere
    assert str(reproduce_repo.root) not in script
    assert str(Path(tempfile.gettempdir())) not in script


def _close(ours: float | None, theirs: str, rtol: float) -> bool:
    if ours is None:
        return theirs in ("NA", "")
    value = float(theirs)
    return abs(ours - value) <= rtol * max(1e-3, abs(value))


def test_script_reproduces_summary_json_with_metafor(
    reproduce_repo: Repo, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    _, summary = _run(reproduce_repo, cli)
    target = tmp_path / "estimates.csv"
    run_reproduce_script(reproduce_repo.results / "reproduce.R", target)
    with target.open(encoding="utf-8") as f:
        rows = {row["id"]: row for row in csv.DictReader(f)}
    estimates = _estimates(summary)
    assert set(rows) == set(estimates)
    problems = []
    compared = bayes_rows = 0
    for ident, est in estimates.items():
        row = rows[ident]
        assert row["check"] != "metafor-error", ident
        compared += 1
        estimator = est["model"]["estimator"] if est["model"] is not None else None
        bayes_rows += estimator == "BAYES"
        rtol = {"GLMM": 2e-3, "BAYES": 1e-3}.get(str(estimator), 1e-4)
        tau_rtol = 1e-3 if estimator == "BAYES" else 10 * rtol
        for key, col in (("estimate", "estimate"), ("ci_low", "ci_low"), ("ci_high", "ci_high")):
            if not _close(est[key], row[col], rtol):
                problems.append(f"{ident} {key}: {est[key]} vs metafor {row[col]}")
        if est["pooled"] and not _close(est["tau2"], row["tau2"], tau_rtol):
            problems.append(f"{ident} tau2: {est['tau2']} vs metafor {row['tau2']}")
    assert compared >= 10
    assert bayes_rows >= 1
    # the tests for subgroup differences, from metafor's subgroup fits
    tests_file = tmp_path / "estimates-subgroup-tests.csv"
    with tests_file.open(encoding="utf-8") as f:
        tests = {row["analysis"]: row for row in csv.DictReader(f)}
    for a in summary["analyses"]:
        if a["subgroup_test"] is None or a["model"]["estimator"] == "BAYES":
            continue
        ref = tests[a["analysis"]]
        glmm = a["model"]["estimator"] == "GLMM"
        rtol = 2e-3 if glmm else 1e-4
        assert int(ref["df"]) == a["subgroup_test"]["df"]
        if not _close(a["subgroup_test"]["q"], ref["q"], rtol):
            problems.append(f"{a['analysis']} Q between: {a['subgroup_test']['q']} vs {ref['q']}")
    assert len(tests) >= 1
    assert not problems, "\n".join(problems)
