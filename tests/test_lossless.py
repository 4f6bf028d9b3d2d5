"""Import and add edit extraction files in place: an unchanged workbook changes no byte
of the shipped corpus, one changed cell is one changed line, comments stay."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from factories import SHIPPED_EXTRACTIONS
from metaresp._yaml_edit import edit_study, merge3
from metaresp.corpus import load_extractions, parse_study
from metaresp.workbook import import_workbook, write_workbook


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def changed_lines(old: bytes, new: bytes) -> list[str]:
    diff = difflib.unified_diff(
        old.decode().splitlines(), new.decode().splitlines(), lineterm="", n=0
    )
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SHIPPED_EXTRACTIONS, tmp_path / "extractions"))


def test_unchanged_workbook_changes_no_byte(corpus_copy: Path, tmp_path: Path) -> None:
    before = snapshot(corpus_copy)
    commented = [n for n, b in before.items() if b.startswith(b"#")]
    assert len(commented) >= 20  # the provenance comments that must survive
    book = tmp_path / "corpus.xlsx"
    write_workbook(load_extractions(corpus_copy), book)
    result = import_workbook(book, corpus_copy, update=True)
    assert {c.status for c in result.changes} == {"unchanged"}
    assert snapshot(corpus_copy) == before


def test_one_cell_is_one_line(corpus_copy: Path, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    before = snapshot(corpus_copy)
    book = tmp_path / "corpus.xlsx"
    write_workbook(load_extractions(corpus_copy), book)
    wb = load_workbook(book)
    ws = wb["Outcomes"]
    header = [c.value for c in ws[1]]
    col = header.index("location") + 1
    study_col = header.index("study") + 1
    row = 5
    study = ws.cell(row, study_col).value
    ws.cell(row, col).value = "Table 9 (corrected)"
    wb.save(book)

    import_workbook(book, corpus_copy, update=True)
    after = snapshot(corpus_copy)
    differing = [n for n in before if before[n] != after[n]]
    assert differing == [f"{study}.yaml"]
    lines = changed_lines(before[differing[0]], after[differing[0]])
    assert len(lines) == 2
    assert lines[1].removeprefix("+").strip() == "location: Table 9 (corrected)"


def test_edit_keeps_comments_nulls_and_places_new_fields() -> None:
    text = (
        "# provenance: Table 2 of the paper\n"
        "id: x-2020\n"
        'citation: "X. A study. J. 2020."\n'
        "year: 2020\n"
        "design: retrospective cohort\n"
        "population: post-bcma-cart\n"
        "cohort: x\n"
        "source: x.txt\n"
        "groups:\n"
        "  - id: g\n"
        "    name: G  # the name as printed\n"
        "    agents: [teclistamab]\n"
        "    modality: bispecific\n"
        "    target: [BCMA]\n"
        "    setting: first-salvage\n"
        "    unit: patients\n"
        "    outcomes:\n"
        "      - outcome: ORR\n"
        "        responders: 3\n"
        "        evaluable: 9\n"
        "        percent: null\n"
        "        derived: false\n"
        "        derivation: null\n"
        '        quote: "3 of 9 responded"\n'
        "        location: Table 2\n"
    )
    study, _, problems = parse_study(text, "x.yaml")
    assert study is not None, problems
    assert edit_study(text, study) == text
    outcome = study.groups[0].outcomes[0].model_copy(update={"responders": 4})
    group = study.groups[0].model_copy(update={"outcomes": (outcome,)})
    edited = edit_study(
        text, study.model_copy(update={"groups": (group,), "notes": "Checked twice."})
    )
    assert changed_lines(text.encode(), edited.encode()) == [
        "-        responders: 3",
        "+notes: Checked twice.",
        "+        responders: 4",
    ] or changed_lines(text.encode(), edited.encode()) == [
        "+notes: Checked twice.",
        "-        responders: 3",
        "+        responders: 4",
    ]
    assert edited.index("notes:") > edited.index("source:")
    assert edited.index("notes:") < edited.index("groups:")
    assert "# provenance: Table 2 of the paper" in edited
    assert "# the name as printed" in edited
    assert "derivation: null" in edited


def test_merge3_keeps_ours_where_theirs_did_not_change() -> None:
    base = "a\nb\nc\nd\n"
    ours = "a\nB (our spelling)\nc\nd\n"
    theirs = "a\nb\nc\nD\n"
    assert merge3(base, ours, theirs) == "a\nB (our spelling)\nc\nD\n"
    assert merge3(base, ours, "a\nb2\nc\nd\n") == "a\nb2\nc\nd\n"  # both: theirs wins
