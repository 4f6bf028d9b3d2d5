"""One way to put studies into the extraction folder (``metaresp add`` and ``import``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaresp.corpus import dump_study, load_extractions
from metaresp.errors import InputError
from metaresp.intake import Incoming, place, plan_placements, unplace
from metaresp.schema import Study


def study(sid: str, responders: int = 3) -> Study:
    return Study.model_validate(
        {
            "id": sid,
            "citation": "A test.",
            "year": 2023,
            "design": "retrospective-cohort",
            "population": "post-bcma-cart",
            "cohort": sid,
            "source": "test.txt",
            "groups": [
                {
                    "id": "tec",
                    "name": "Teclistamab",
                    "agents": ["teclistamab"],
                    "modality": "bispecific",
                    "target": ["BCMA"],
                    "setting": "any-line",
                    "unit": "patients",
                    "outcomes": [
                        {
                            "outcome": "ORR",
                            "responders": responders,
                            "evaluable": 5,
                            "quote": f"{responders} of 5",
                            "location": "Table 1",
                        }
                    ],
                }
            ],
        }
    )


def incoming(s: Study) -> Incoming:
    return Incoming(s, dump_study(s), f"{s.id}.xlsx")


def test_new_studies_are_placed_and_undone(tmp_path: Path) -> None:
    placements = plan_placements(
        tmp_path, [incoming(study("a-2023")), incoming(study("b-2023"))], {}
    )
    assert [(p.target.name, p.status, p.previous) for p in placements] == [
        ("a-2023.yaml", "new", None),
        ("b-2023.yaml", "new", None),
    ]
    place(placements)
    assert [s.id for s in load_extractions(tmp_path)] == ["a-2023", "b-2023"]
    unplace(placements)
    assert list(tmp_path.iterdir()) == []


def test_existing_ids_are_refused_without_update(tmp_path: Path) -> None:
    old = study("a-2023")
    (tmp_path / "a.yaml").write_text(dump_study(old), encoding="utf-8")
    existing = {"a-2023": (old, tmp_path / "a.yaml")}
    new = [incoming(study("a-2023", responders=4)), incoming(study("a-2023"))]
    with pytest.raises(InputError) as info:
        plan_placements(tmp_path, new, existing)
    assert info.value.problems == (
        f"a-2023.xlsx: study 'a-2023' already exists in {tmp_path / 'a.yaml'}; use "
        "--update to replace it",
        "a-2023.xlsx: id: study 'a-2023' is given twice",
    )
    (edit,) = plan_placements(tmp_path, new[:1], existing, update=True)
    assert (edit.target.name, edit.status) == ("a.yaml", "updated")
    assert edit.changes == (
        "groups[0].outcomes[0].responders: 3 -> 4",
        "groups[0].outcomes[0].quote: '3 of 5' -> '4 of 5'",
    )
    assert edit.previous == dump_study(old).encode()
    place([edit])
    assert load_extractions(tmp_path).studies[0].groups[0].outcomes[0].responders == 4
    unplace([edit])
    assert (tmp_path / "a.yaml").read_text(encoding="utf-8") == dump_study(old)


def test_a_file_name_taken_by_another_study_is_refused(tmp_path: Path) -> None:
    other = study("b-2023")
    (tmp_path / "a-2023.yaml").write_text(dump_study(other), encoding="utf-8")
    with pytest.raises(InputError, match=r"holds another study \('b-2023'\)"):
        plan_placements(
            tmp_path,
            [incoming(study("a-2023"))],
            {"b-2023": (other, tmp_path / "a-2023.yaml")},
            update=True,
        )


def test_an_unchanged_study_is_not_rewritten(tmp_path: Path) -> None:
    same = study("a-2023")
    path = tmp_path / "a-2023.yaml"
    path.write_text(dump_study(same), encoding="utf-8")
    before = path.stat().st_mtime_ns
    (p,) = plan_placements(tmp_path, [incoming(same)], {"a-2023": (same, path)}, update=True)
    assert p.status == "unchanged"
    place([p])
    assert path.stat().st_mtime_ns == before
