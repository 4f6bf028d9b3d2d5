"""Plain data behind a forest plot, independent of how it is drawn.

The analysis layer fills these from fitted :class:`~metaresp.pooling.PoolResult`
objects; the plotting adapter (:mod:`metaresp.forest`) and the report only read
them. All proportions are on the 0-1 scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StudyRow:
    """One study (record) in a forest plot."""

    label: str
    """What the reader sees, e.g. ``"Merz 2024 · talquetamab"``; unique within a plot."""
    events: int
    total: int
    proportion: float
    ci_low: float
    """Exact (Clopper-Pearson) interval."""
    ci_high: float
    weight: float | None = None
    """Weight in percent within its subgroup's model; ``None`` when the model has none."""
    record_id: str = ""
    """Stable id of the record (study/group/setting/outcome), for tables and diffs."""
    year: int | None = None


@dataclass(frozen=True)
class PooledRow:
    """A pooled estimate (a diamond), or a single study shown but not pooled."""

    label: str
    k: int
    events: int
    total: int
    proportion: float
    ci_low: float
    ci_high: float
    pi_low: float | None = None
    pi_high: float | None = None
    i2: float | None = None
    tau2: float | None = None
    q: float | None = None
    q_df: int | None = None
    q_pvalue: float | None = None
    pooled: bool = True
    """False when k == 1: the study is shown, not pooled."""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subgroup:
    """A block of studies with its own pooled estimate."""

    name: str
    studies: tuple[StudyRow, ...]
    pooled: PooledRow | None = None


@dataclass(frozen=True)
class SubgroupTest:
    """Test for subgroup differences: between-subgroup Q (fixed-effect test on estimates)."""

    q: float
    df: int
    pvalue: float


@dataclass(frozen=True)
class ForestData:
    """Everything one forest plot shows."""

    title: str
    outcome: str
    """``ORR``, ``VGPR+`` or ``CR+``; the x axis reads e.g. "Overall response rate (%)"."""
    subgroups: tuple[Subgroup, ...]
    overall: PooledRow | None = None
    subgroup_test: SubgroupTest | None = None
    model_note: str = ""
    """Footnote naming the model, e.g. "Random effects, binomial-normal GLMM (logit), t CI"."""
    footnotes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class CumulativeRow:
    """One step of a cumulative meta-analysis: the pooled estimate after adding a study.

    Rows are drawn in the order given (the caller sorts them by publication date).
    """

    label: str
    """The study added at this step, e.g. ``"Merz 2024 · talquetamab"``."""
    k: int
    """Number of studies pooled at this step."""
    proportion: float
    ci_low: float
    ci_high: float


FEW_STUDIES = 3
"""Pooled estimates from this many studies or fewer are flagged in every output: in the
project's coverage simulation (docs/simulation) no interval method kept 93-97% coverage
in every scenario with k <= 3."""


def few_studies_note(k: int) -> str:
    """The flag a pooled estimate from ``k <= FEW_STUDIES`` studies carries."""
    return (f"pooled from {k} studies: with 3 or fewer studies no interval method keeps its "
            "95% promise in every scenario of our coverage simulation; the interval is "
            "either too wide to inform or may be too narrow. Interpret with caution")
