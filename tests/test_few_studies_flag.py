"""Pooled estimates from three or fewer studies carry a flag in every table.

The threshold comes from the coverage simulation (docs/simulation/summary.md): with
k <= 3 no interval method kept 93-97% coverage in every scenario.
"""

from __future__ import annotations

from pathlib import Path

from metaresp.forestdata import FEW_STUDIES
from metaresp.plan import load_plan
from metaresp.runner import run_analyses
from metaresp.tables import markdown, pooled_rows

ROOT = Path(__file__).resolve().parents[1]


def test_flag_marks_exactly_the_pooled_rows_with_few_studies() -> None:
    from metaresp import load_extractions

    results = run_analyses(
        load_plan(ROOT / "analysis-plan.yaml"), load_extractions(ROOT / "extractions")
    )
    rows = [r for r in pooled_rows(results) if r["row"] in ("subgroup", "overall")]
    pooled = [r for r in rows if r["model"] != "not pooled (one study)"]
    assert any(r["k"] <= FEW_STUDIES for r in pooled)
    assert any(r["k"] > FEW_STUDIES for r in pooled)
    for r in rows:
        expected = r in pooled and r["k"] <= FEW_STUDIES
        assert r["few_studies"] is expected, (r["analysis"], r["subgroup"], r["k"])
        assert ("pooled from" in (r["note"] or "")) is expected
    text = markdown(results)
    assert "† Pooled from 3 or fewer studies" in text
