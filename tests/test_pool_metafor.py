"""Agreement with R's metafor on every inverse-variance model.

Reference values come from ``tests/fixtures/metafor/make_reference.R`` (metafor 3.8.1;
the R and metafor versions and the exact calls are stored in the JSON). R is not needed
to run these tests.

Tolerances (relative, with a tiny absolute floor for values that are 0):

* 1e-6 for closed forms (``yi``, ``vi``; FE, DL, HE, HS, SJ and everything derived from
  them): both sides evaluate the same formulas in double precision; the JSON keeps 15
  significant digits.
* 1e-4 for the iterative estimators (REML, ML, EB by Fisher scoring; PM by root finding):
  metafor stops Fisher scoring at an absolute change of 1e-5 and solves PM with
  ``uniroot(tol = eps^0.25)``.
* 1e-3 (and 3e-4 absolute) for the Q-profile τ² CI: metafor finds the bounds with
  ``uniroot(tol = eps^0.25 ≈ 1.2e-4)`` (an absolute tolerance on τ²).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metaresp.pooling import pool
from metaresp.transforms import effect_sizes

REFERENCE = Path(__file__).parent / "fixtures" / "metafor" / "reference.json"
DATA: dict[str, Any] = json.loads(REFERENCE.read_text())

TRANSFORMS = ["logit", "freeman-tukey", "arcsine", "raw", "log"]
ESTIMATORS = ["FE", "DL", "REML", "ML", "PM", "SJ", "HE", "EB", "HS"]
CIS = ["z", "t", "hksj", "hksj-adhoc"]
ITERATIVE = {"REML", "ML", "EB", "PM"}

CLOSED_RTOL = 1e-6
ITERATIVE_RTOL = 1e-4
TAU2_CI_RTOL = 1e-3
TAU2_CI_ATOL = 3e-4  # about 2x uniroot's absolute tolerance eps^0.25
ZERO_ATOL = 1e-12  # values that are 0 in both (e.g. I² = 0, tau2 = 0)


def _close(ours: float | None, ref: float | None, rtol: float, atol: float = ZERO_ATOL) -> bool:
    if ref is None:
        return ours is None or (isinstance(ours, float) and math.isnan(ours))
    if ours is None:
        return False
    return bool(np.isclose(ours, ref, rtol=rtol, atol=atol))


def _check(
    problems: list[str], what: str, ours: Any, ref: Any, rtol: float, atol: float = ZERO_ATOL
) -> None:
    if not _close(ours, ref, rtol, atol):
        problems.append(f"{what}: ours {ours!r}, metafor {ref!r}")


def test_reference_records_versions_and_calls() -> None:
    assert DATA["metafor_version"] == "3.8.1"
    assert DATA["r_version"].startswith("R version")
    assert {"escalc", "rma", "tau2_ci", "weights", "pi"} <= set(DATA["calls"])


def test_grid_is_complete() -> None:
    """The reference grid cannot shrink quietly: ≥30 datasets, each with every transform ×
    estimator × CI, and the special cases the issue names."""
    assert DATA["transforms"] == TRANSFORMS
    assert DATA["estimators"] == ESTIMATORS
    assert DATA["cis"] == CIS
    datasets = DATA["datasets"]
    assert len(datasets) >= 30
    for name, ds in datasets.items():
        assert sorted(ds["transforms"]) == sorted(TRANSFORMS), name
        for tname, tr in ds["transforms"].items():
            assert sorted(tr["estimators"]) == sorted(ESTIMATORS), (name, tname)
            for ename, est in tr["estimators"].items():
                assert sorted(est["cis"]) == sorted(CIS), (name, tname, ename)
                assert "stats" in est, (name, tname, ename)
                for cname, fit in est["cis"].items():
                    assert "error" not in fit, (name, tname, ename, cname, fit.get("error"))
    ks = [len(ds["events"]) for ds in datasets.values()]
    assert min(ks) == 2
    assert max(ks) >= 100
    assert 30 in ks
    ev = [(np.array(ds["events"]), np.array(ds["totals"])) for ds in datasets.values()]
    assert any((x == 0).any() for x, _ in ev), "a dataset with a zero-event study"
    assert any((x == n).any() for x, n in ev), "a dataset with an all-event study"
    assert any((n <= 5).all() for _, n in ev), "a dataset with tiny totals"
    assert any(len(set((x / n).tolist())) == 1 for x, n in ev), "a homogeneous dataset"
    assert len(DATA["sequential"]) >= 4


CASES = [
    pytest.param(d, t, e, id=f"{d}-{t}-{e}")
    for d in DATA["datasets"]
    for t in TRANSFORMS
    for e in ESTIMATORS
]


@pytest.mark.parametrize("dataset", list(DATA["datasets"]))
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_effect_sizes_match_escalc(dataset: str, transform: str) -> None:
    ds = DATA["datasets"][dataset]
    ref = ds["transforms"][transform]
    yi, vi = effect_sizes(
        transform, np.array(ds["events"], dtype=np.int64), np.array(ds["totals"], dtype=np.int64)
    )
    np.testing.assert_allclose(yi, ref["yi"], rtol=CLOSED_RTOL, atol=ZERO_ATOL)
    np.testing.assert_allclose(vi, ref["vi"], rtol=CLOSED_RTOL, atol=ZERO_ATOL)


@pytest.mark.parametrize(("dataset", "transform", "estimator"), CASES)
def test_every_field_matches_metafor(dataset: str, transform: str, estimator: str) -> None:
    ds = DATA["datasets"][dataset]
    ref_est = ds["transforms"][transform]["estimators"][estimator]
    stats = ref_est["stats"]
    rtol = ITERATIVE_RTOL if estimator in ITERATIVE else CLOSED_RTOL
    problems: list[str] = []
    for ci in CIS:
        ref = ref_est["cis"][ci]
        res = pool(ds["events"], ds["totals"], transform=transform, estimator=estimator, ci=ci)
        tag = f"{ci}:"
        _check(problems, f"{tag}estimate", res.estimate, ref["estimate"], rtol)
        _check(problems, f"{tag}se", res.se, ref["se"], rtol)
        _check(problems, f"{tag}ci_lb", res.estimate_ci_low, ref["ci_lb"], rtol)
        _check(problems, f"{tag}ci_ub", res.estimate_ci_high, ref["ci_ub"], rtol)
        _check(problems, f"{tag}pi_lb", res.estimate_pi_low, ref["pi_lb"], rtol)
        _check(problems, f"{tag}pi_ub", res.estimate_pi_high, ref["pi_ub"], rtol)
        _check(problems, f"{tag}proportion", res.proportion, ref["proportion"], rtol)
        _check(problems, f"{tag}ci_low", res.ci_low, ref["ci_low"], rtol)
        _check(problems, f"{tag}ci_high", res.ci_high, ref["ci_high"], rtol)
        _check(problems, f"{tag}pi_low", res.pi_low, ref["pi_low"], rtol)
        _check(problems, f"{tag}pi_high", res.pi_high, ref["pi_high"], rtol)
        _check(problems, f"{tag}tau2", res.tau2, stats["tau2"], rtol)
        _check(problems, f"{tag}I2", res.i2, stats["I2"], rtol)
        _check(problems, f"{tag}H2", res.h2, stats["H2"], rtol)
        # Q and its p-value use fixed-effect weights only: a closed form for every model
        _check(problems, f"{tag}Q", res.q, stats["QE"], CLOSED_RTOL)
        _check(problems, f"{tag}Qp", res.q_pvalue, stats["QEp"], CLOSED_RTOL)
        _check(
            problems,
            f"{tag}tau2_ci_lb",
            res.tau2_ci_low,
            stats["tau2_ci_lb"],
            TAU2_CI_RTOL,
            TAU2_CI_ATOL,
        )
        _check(
            problems,
            f"{tag}tau2_ci_ub",
            res.tau2_ci_high,
            stats["tau2_ci_ub"],
            TAU2_CI_RTOL,
            TAU2_CI_ATOL,
        )
        assert res.weights is not None
        if not np.allclose(res.weights, stats["weights"], rtol=rtol, atol=ZERO_ATOL):
            problems.append(f"{tag}weights differ")
        # a bound set to 0 or 1 after back-transformation is recorded
        for bound in ("ci_lb", "ci_ub", "pi_lb", "pi_ub"):
            value = ref[bound]
            if value is None:
                continue
            outside = (transform == "raw" and not 0.0 <= value <= 1.0) or (
                transform == "log" and value > 0.0
            )
            if outside and not any("outside [0, 1]" in w for w in res.warnings):
                problems.append(f"{tag}{bound} clipped without a warning")
        if not res.converged:
            problems.append(f"{tag}not converged")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "case",
    DATA["sequential"],
    ids=[f"{c['dataset']}-{c['transform']}-{c['estimator']}" for c in DATA["sequential"]],
)
def test_leave_one_out_and_cumulative_match_metafor(case: dict[str, Any]) -> None:
    ds = DATA["datasets"][case["dataset"]]
    est = case["estimator"]
    rtol = ITERATIVE_RTOL if est in ITERATIVE else CLOSED_RTOL
    res = pool(
        ds["events"], ds["totals"], transform=case["transform"], estimator=est, ci=case["ci"]
    )
    cum_ref = case["cumul"]
    order = [int(i) for i in cum_ref["order0"]]
    tables = {"leave1out": res.leave_one_out(), "cumul": res.cumulative(order)}
    columns = {
        "estimate": "estimate",
        "se": "se",
        "tau2": "tau2",
        "i2": "I2",
        "h2": "H2",
        "q": "QE",
        "q_pvalue": "QEp",
        "proportion": "proportion",
        "ci_low": "ci_low",
        "ci_high": "ci_high",
    }
    problems: list[str] = []
    for name, table in tables.items():
        ref = case[name]
        for ours_col, ref_col in columns.items():
            if ref[ref_col] is None:  # metafor reports no tau2 for FE models
                assert ours_col == "tau2"
                assert est == "FE"
                assert (table["tau2"] == 0.0).all()
                continue
            for row, (ours, theirs) in enumerate(
                zip(table[ours_col].tolist(), ref[ref_col], strict=True)
            ):
                _check(problems, f"{name}[{row}].{ours_col}", ours, theirs, rtol)
    assert not problems, "\n".join(problems)
