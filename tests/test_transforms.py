"""Transforms and back-transforms: metafor's continuity-correction rules and inverses.

Expected values are written from the formulas in metafor's ``escalc`` documentation
(the full metafor comparison is in test_pool_metafor.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metaresp.transforms import (
    METAFOR_MEASURE,
    TRANSFORMS,
    back_transform,
    effect_sizes,
    harmonic_mean,
)

XI = np.array([0, 3, 10], dtype=np.int64)
NI = np.array([10, 10, 10], dtype=np.int64)


def test_names_map_to_metafor_measures() -> None:
    assert METAFOR_MEASURE == {
        "logit": "PLO",
        "freeman-tukey": "PFT",
        "arcsine": "PAS",
        "raw": "PR",
        "log": "PLN",
    }


def test_logit_corrects_zero_and_all_event_studies_only() -> None:
    yi, vi = effect_sizes("logit", XI, NI)
    assert yi.tolist() == pytest.approx(
        [math.log(0.5 / 10.5), math.log(3 / 7), math.log(10.5 / 0.5)], rel=1e-14
    )
    assert vi.tolist() == pytest.approx(
        [1 / 0.5 + 1 / 10.5, 1 / 3 + 1 / 7, 1 / 10.5 + 1 / 0.5], rel=1e-14
    )


def test_log_and_raw_use_the_corrected_counts_for_yi_and_vi() -> None:
    yi, vi = effect_sizes("log", XI, NI)
    assert yi[0] == pytest.approx(math.log(0.5 / 11))
    assert vi[0] == pytest.approx(1 / 0.5 - 1 / 11)
    assert vi[2] == pytest.approx(1 / 10.5 - 1 / 11)
    yi, vi = effect_sizes("raw", XI, NI)
    p0 = 0.5 / 11
    assert yi[0] == pytest.approx(p0)
    assert vi[0] == pytest.approx(p0 * (1 - p0) / 11)
    assert yi[1] == pytest.approx(0.3)
    assert vi[1] == pytest.approx(0.3 * 0.7 / 10)


def test_arcsine_and_freeman_tukey_are_not_corrected() -> None:
    yi, vi = effect_sizes("arcsine", XI, NI)
    assert yi.tolist() == pytest.approx([0.0, math.asin(math.sqrt(0.3)), math.pi / 2])
    assert vi.tolist() == pytest.approx([1 / 40] * 3)
    yi, vi = effect_sizes("freeman-tukey", XI, NI)
    expected0 = 0.5 * (math.asin(0.0) + math.asin(math.sqrt(1 / 11)))
    assert yi[0] == pytest.approx(expected0)
    assert vi.tolist() == pytest.approx([1 / 42] * 3)


@pytest.mark.parametrize("n", [1, 2, 5, 17, 300])
def test_freeman_tukey_inverse_recovers_each_proportion(n: int) -> None:
    """Miller (1978): with a single total the inversion is exact."""
    xs = np.arange(0, n + 1, dtype=np.int64)
    yi, _ = effect_sizes("freeman-tukey", xs, np.full(xs.size, n, dtype=np.int64))
    for x, y in zip(xs.tolist(), yi.tolist(), strict=True):
        p, clipped = back_transform("freeman-tukey", y, float(n))
        assert p == pytest.approx(x / n, abs=1e-9)
        assert not clipped


def test_harmonic_mean() -> None:
    assert harmonic_mean(np.array([2, 6], dtype=np.int64)) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("transform", "value", "expected", "clipped"),
    [
        ("logit", 0.0, 0.5, False),
        ("logit", -800.0, 0.0, False),
        ("logit", 800.0, 1.0, False),
        ("log", math.log(0.25), 0.25, False),
        ("log", 0.2, 1.0, True),
        ("raw", -0.05, 0.0, True),
        ("raw", 1.02, 1.0, True),
        ("raw", 0.4, 0.4, False),
        ("arcsine", -0.1, 0.0, True),
        ("arcsine", 2.0, 1.0, True),
        ("arcsine", math.asin(math.sqrt(0.3)), 0.3, False),
        ("freeman-tukey", -0.2, 0.0, True),
        ("freeman-tukey", 1.7, 1.0, True),
    ],
)
def test_back_transforms_stay_in_unit_interval(
    transform: str, value: float, expected: float, clipped: bool
) -> None:
    p, was_clipped = back_transform(transform, value, 10.0)
    assert p == pytest.approx(expected, abs=1e-12)
    assert was_clipped is clipped


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_unknown_transform_is_rejected_by_name(transform: str) -> None:
    with pytest.raises(ValueError, match="transform must be one of"):
        effect_sizes(transform + "x", XI, NI)
