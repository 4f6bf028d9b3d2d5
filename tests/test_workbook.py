"""Workbook template, export and import: round trips, layout, and every kind of bad input.

Expected cell references are worked out from the documented column layout
(``OUTCOME_COLUMNS``), never copied from our own output.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.utils import get_column_letter
from pydantic import ValidationError

from metaresp import vocab, workbook
from metaresp.corpus import load_extractions
from metaresp.errors import InputError
from metaresp.schema import Study, check_study
from metaresp.workbook import (
    OUTCOME_COLUMNS,
    STUDY_COLUMNS,
    escape_text,
    import_workbook,
    read_workbook,
    unescape_text,
    write_template,
    write_workbook,
)

REPO = Path(__file__).resolve().parents[1]
EXTRACTIONS = REPO / "extractions"


def make_study(study_id: str = "alpha-2023", **outcome: Any) -> Study:
    record = {
        "outcome": "ORR",
        "responders": 5,
        "evaluable": 7,
        "percent": "71.4",
        "derived": False,
        "quote": "5 out of 7 (71.4%)",
        "location": "Table 2",
        **outcome,
    }
    return Study.model_validate(
        {
            "id": study_id,
            "citation": "Test study.",
            "year": 2023,
            "design": "retrospective cohort",
            "population": "post-bcma-cart",
            "cohort": study_id,
            "source": "test.txt",
            "groups": [
                {
                    "id": "tec",
                    "name": "Teclistamab",
                    "agents": ["teclistamab"],
                    "modality": "bispecific",
                    "target": ["BCMA"],
                    "setting": "first-salvage",
                    "unit": "patients",
                    "outcomes": [record],
                }
            ],
        }
    )


def letter(name: str, columns: tuple[workbook.Column, ...] = OUTCOME_COLUMNS) -> str:
    return get_column_letter([c.name for c in columns].index(name) + 1)


def edited(
    tmp_path: Path,
    edit: Callable[[openpyxl.Workbook], None],
    studies: list[Study] | None = None,
    name: str = "book.xlsx",
) -> Path:
    """A workbook exported from ``studies`` and changed by ``edit`` (saved by openpyxl)."""
    path = tmp_path / name
    write_workbook(studies or [make_study()], path)
    wb = openpyxl.load_workbook(path)
    edit(wb)
    wb.save(path)
    return path


def problems_of(path: Path) -> tuple[str, ...]:
    with pytest.raises(InputError) as info:
        read_workbook(path)
    return info.value.problems


def patch_sheet(path: Path, sheet: str, old: str, new: str) -> None:
    """Rewrite raw sheet XML (to build cells openpyxl cannot write, e.g. cached formulas)."""
    wb = openpyxl.load_workbook(path)
    index = wb.sheetnames.index(sheet) + 1
    member = f"xl/worksheets/sheet{index}.xml"
    with zipfile.ZipFile(path) as src:
        items = {n: src.read(n) for n in src.namelist()}
    text = items[member].decode("utf-8")
    assert re.search(old, text), old
    items[member] = re.sub(old, new, text, count=1).encode("utf-8")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for n, data in items.items():
            out.writestr(n, data)


# ---------------------------------------------------------------- round trips


def test_shipped_corpus_round_trip(tmp_path: Path) -> None:
    corpus = load_extractions(EXTRACTIONS)
    path = tmp_path / "corpus.xlsx"
    write_workbook(corpus, path)
    back = read_workbook(path)
    assert back.studies == corpus.studies
    assert len(back.warnings) == len(corpus.warnings)


def test_shipped_corpus_export_import_load(tmp_path: Path) -> None:
    corpus = load_extractions(EXTRACTIONS)
    path = tmp_path / "corpus.xlsx"
    write_workbook(corpus, path)
    result = import_workbook(path, tmp_path / "out")
    assert {c.status for c in result.changes} == {"new"}
    again = load_extractions(tmp_path / "out")
    by_id = {s.id: s for s in corpus.studies}
    assert len(again.studies) == len(corpus.studies)
    for study in again.studies:
        assert study == by_id[study.id]


_SPECIAL = st.sampled_from(
    [
        '=HYPERLINK("http://x","y")',
        "+1",
        "-2",
        "@SUM(A1)",
        "\tindented",
        "\rreturn",
        "line\nbreak",
        "crlf\r\nline",
        "_x0041_ literal",
        "ctl\x01\x1f",
        " padded  ",
        "ünïcødé ≥PR 😀",
        "64.0",
        "'apostrophe",
        "a; b",
    ]
)
_ANY = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)
TEXT = st.one_of(_ANY, _SPECIAL, st.tuples(_SPECIAL, _ANY).map("".join))
SLUG = st.from_regex(r"[a-z0-9]{1,5}(-[a-z0-9]{1,4}){0,2}", fullmatch=True)
PERCENT = st.from_regex(r"(100|[1-9]?[0-9])(\.[0-9]{1,2})?", fullmatch=True)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "outcome": draw(st.sampled_from(list(vocab.OUTCOMES))),
        "quote": draw(TEXT),
        "location": draw(TEXT),
        "note": draw(st.none() | TEXT),
    }
    if draw(st.booleans()):
        n = draw(st.integers(1, 500))
        r = draw(st.integers(0, n))
        rec |= {"responders": r, "evaluable": n}
        if draw(st.booleans()):
            rec["percent"] = f"{100 * r / n:.{draw(st.integers(0, 2))}f}"
            if draw(st.booleans()):
                rec |= {"derived": True, "derivation": draw(TEXT)}
    else:
        rec["percent"] = draw(PERCENT)
    return rec


@st.composite
def studies(draw: st.DrawFn) -> list[Study]:
    ids = draw(st.lists(SLUG, min_size=1, max_size=3, unique=True))
    out: list[Study] = []
    for sid in ids:
        group_ids = draw(st.lists(SLUG, max_size=3, unique=True))
        groups = []
        for gi, gid in enumerate(group_ids):
            groups.append(
                {
                    "id": gid,
                    "name": draw(TEXT),
                    "agents": draw(st.lists(TEXT, min_size=1, max_size=3)),
                    "modality": draw(st.sampled_from(list(vocab.MODALITIES))),
                    "target": draw(
                        st.lists(st.sampled_from(list(vocab.TARGETS)), min_size=1, max_size=3)
                    ),
                    "setting": draw(st.sampled_from(list(vocab.SETTINGS))),
                    "unit": draw(st.sampled_from(list(vocab.UNITS))),
                    "population": draw(st.none() | st.sampled_from(list(vocab.POPULATIONS))),
                    "cohort": draw(st.none() | SLUG),
                    "components": group_ids[:gi] if draw(st.booleans()) else [],
                    "outcomes": draw(st.lists(records(), min_size=1, max_size=3)),
                }
            )
        review = draw(
            st.none()
            | st.fixed_dictionaries(
                {"authors": TEXT, "reference": st.integers(1, 300)},
                optional={"year": st.integers(1900, 2100)},
            )
        )
        data = {
            "id": sid,
            "citation": draw(TEXT),
            "doi": draw(st.none() | st.just("10.1182/blood.2022017848")),
            "year": draw(st.integers(1900, 2100)),
            "published": draw(st.none() | st.sampled_from(["2023", "2023-02", "2023-02-28"])),
            "design": draw(st.sampled_from(list(vocab.DESIGNS))),
            "centres": draw(st.none() | st.integers(1, 50)),
            "population": draw(st.sampled_from(list(vocab.POPULATIONS))),
            "cohort": draw(SLUG),
            "source": draw(TEXT),
            "via_review": review,
            "notes": draw(st.none() | TEXT),
            "groups": groups,
        }
        try:
            study = Study.model_validate(data)
        except ValidationError:  # e.g. an agent name that is only spaces
            from hypothesis import reject

            reject()
        if any(f.level == "error" for f in check_study(study)):
            from hypothesis import reject

            reject()
        out.append(study)
    return out


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(studies())
def test_generated_corpora_round_trip(items: list[Study]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gen.xlsx"
        write_workbook(items, path)
        assert read_workbook(path).studies == tuple(items)


@given(st.text(st.characters(exclude_categories=("Cs",))))
def test_escape_is_inverted(text: str) -> None:
    escaped = escape_text(text)
    assert unescape_text(escaped) == text
    assert "\r" not in escaped
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", escaped)


def test_empty_text_is_not_a_value_of_the_format() -> None:
    """The workbook reads an empty cell as null; that is lossless only while the format has
    no empty texts. If the schema ever allows "", this fails and the convention must change."""
    for field in ("quote", "location", "note", "derivation"):
        with pytest.raises(ValidationError):
            make_study(**{field: ""})


def test_percent_strings_and_derived_survive(tmp_path: Path) -> None:
    items = [
        make_study("a-2020", responders=16, evaluable=25, percent="64"),
        make_study("b-2020", responders=16, evaluable=25, percent="64.0"),
        make_study(
            "c-2020", responders=16, evaluable=25, percent="64.00", derived=True, derivation="x"
        ),
    ]
    path = tmp_path / "p.xlsx"
    write_workbook(items, path)
    back = read_workbook(path).studies
    percents = [s.groups[0].outcomes[0].percent for s in back]
    assert percents == ["64", "64.0", "64.00"]
    assert [s.groups[0].outcomes[0].derived for s in back] == [False, False, True]


# ---------------------------------------------------------------- formula injection


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_like_text_is_stored_as_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "inj.xlsx"
    write_workbook([make_study(quote=text)], path)
    wb = openpyxl.load_workbook(path)  # not data_only: a formula would show as one
    cell = wb["Outcomes"][f"{letter('quote')}2"]
    assert cell.data_type == "s"
    assert cell.quotePrefix
    assert unescape_text(str(cell.value)) == text
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                xml = archive.read(name)
                assert b"<f>" not in xml
                assert b"<f " not in xml
    assert read_workbook(path).studies[0].groups[0].outcomes[0].quote == text


# ---------------------------------------------------------------- template


def test_template_layout(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    write_template(path)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Studies", "Outcomes", "README", "Lists"]
    assert wb["Lists"].sheet_state == "hidden"
    assert wb["Studies"].freeze_panes == "B2"
    assert wb["Outcomes"].freeze_panes == "C2"
    studies_ws, outcomes_ws = wb["Studies"], wb["Outcomes"]
    assert [c.value for c in studies_ws[1]] == [c.name for c in STUDY_COLUMNS]
    assert [c.value for c in outcomes_ws[1]] == [c.name for c in OUTCOME_COLUMNS]
    assert studies_ws.max_row == 2  # one example row
    assert outcomes_ws.max_row == 2
    # every controlled vocabulary feeds a dropdown; every count has whole-number validation
    for ws, columns in ((studies_ws, STUDY_COLUMNS), (outcomes_ws, OUTCOME_COLUMNS)):
        rules = {
            str(rng).split(":")[0].rstrip("0123456789"): dv
            for dv in ws.data_validations.dataValidation
            for rng in dv.sqref.ranges
        }
        for column in columns:
            col = letter(column.name, columns)
            if column.vocabulary is not None:
                assert rules[col].type == "list", column.name
                assert rules[col].formula1.startswith("Lists!"), column.name
            if column.kind == "count":
                assert rules[col].type == "whole", column.name
            assert ws.column_dimensions[col].width == column.width
    lists = wb["Lists"]
    for ci in range(1, lists.max_column + 1):
        name = lists.cell(row=1, column=ci).value
        values = [lists.cell(row=r, column=ci).value for r in range(2, lists.max_row + 1)]
        wanted = list(vocab.AGENTS) if name == "agents" else list(vocab.VOCABULARIES[str(name)])
        assert [v for v in values if v is not None] == wanted
    readme = "\n".join(
        str(c.value) for row in wb["README"].iter_rows() for c in row if c.value is not None
    )
    for column in (*STUDY_COLUMNS, *OUTCOME_COLUMNS):
        assert column.name in readme
    for terms in vocab.VOCABULARIES.values():
        for definition in terms.values():
            assert definition in readme
    assert "Empty cell" in readme


def test_template_example_is_valid_but_refused_on_import(tmp_path: Path) -> None:
    assert not [f for f in check_study(workbook.example_study()) if f.level == "error"]
    path = tmp_path / "t.xlsx"
    write_template(path)
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith("Studies!A2: 'example-2024' is the template's example")


# ---------------------------------------------------------------- located problems


def test_responders_above_evaluable_names_the_cell(tmp_path: Path) -> None:
    path = tmp_path / "b.xlsx"
    write_workbook([make_study(responders=5, evaluable=7, percent=None)], path)
    wb = openpyxl.load_workbook(path)
    wb["Outcomes"][f"{letter('responders')}2"] = 12
    wb.save(path)
    assert problems_of(path) == (f"Outcomes!{letter('responders')}2: responders 12 > evaluable 7",)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        ws = wb["Outcomes"]
        ws[f"{letter('evaluable')}2"] = "seven"
        ws[f"{letter('modality')}3"] = "CAR T"
        ws[f"{letter('responders')}4"] = 9

    items = [make_study("a-2020"), make_study("b-2020"), make_study("c-2020", percent=None)]
    problems = problems_of(edited(tmp_path, edit, items))
    assert (
        problems[0]
        == f"Outcomes!{letter('evaluable')}2: evaluable: expected a whole number, got 'seven'"
    )
    assert any(
        p.startswith(f"Outcomes!{letter('modality')}3: modality: unknown modality 'CAR T'")
        for p in problems
    )
    assert f"Outcomes!{letter('responders')}4: responders 9 > evaluable 7" in problems
    assert len(problems) == 3


def test_group_columns_must_agree(tmp_path: Path) -> None:
    study = make_study()
    two = study.model_copy(
        update={
            "groups": (
                study.groups[0].model_copy(
                    update={
                        "outcomes": (
                            study.groups[0].outcomes[0],
                            study.groups[0].outcomes[0].model_copy(update={"outcome": "CR+"}),
                        )
                    }
                ),
            )
        }
    )

    def edit(wb: openpyxl.Workbook) -> None:
        wb["Outcomes"][f"{letter('modality')}3"] = "CAR-T"

    problems = problems_of(edited(tmp_path, edit, [two]))
    assert len(problems) == 1
    assert problems[0].startswith(
        f"Outcomes!{letter('modality')}3: modality of group 'tec' of study 'alpha-2023'"
    )


def test_outcome_row_of_unknown_study(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Outcomes"]["A2"] = "alpha-2032"

    problems = problems_of(edited(tmp_path, edit))
    assert problems[0].startswith("Outcomes!A2: study 'alpha-2032' has no row on the Studies")
    assert "did you mean 'alpha-2023'?" in problems[0]


def test_duplicate_study_ids(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Studies"]["A3"] = "a-2020"

    problems = problems_of(edited(tmp_path, edit, [make_study("a-2020"), make_study("b-2020")]))
    assert "Studies!A3: duplicate study id 'a-2020' (first at Studies!A2)" in problems


def test_missing_required_value(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Outcomes"][f"{letter('quote')}2"] = None

    assert problems_of(edited(tmp_path, edit)) == (
        f"Outcomes!{letter('quote')}2: quote: required, but the cell is empty",
    )


# ---------------------------------------------------------------- formulas and error cells


def test_program_written_formula_is_rejected(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Outcomes"][f"{letter('responders')}2"] = "=2+3"

    problems = problems_of(edited(tmp_path, edit))
    assert len(problems) == 1
    assert problems[0].startswith(
        f"Outcomes!{letter('responders')}2: responders: the cell holds the formula =2+3"
    )


def test_formula_with_cached_value_is_read(tmp_path: Path) -> None:
    path = tmp_path / "f.xlsx"
    write_workbook([make_study()], path)
    cell = f"{letter('responders')}2"
    patch_sheet(
        path, "Outcomes", rf'<c r="{cell}"[^>]*>.*?</c>', f'<c r="{cell}"><f>2+3</f><v>5</v></c>'
    )
    assert openpyxl.load_workbook(path)["Outcomes"][cell].data_type == "f"
    assert read_workbook(path).studies == (make_study(),)


def test_error_cell_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "e.xlsx"
    write_workbook([make_study()], path)
    cell = f"{letter('responders')}2"
    patch_sheet(
        path, "Outcomes", rf'<c r="{cell}"[^>]*>.*?</c>', f'<c r="{cell}" t="e"><v>#DIV/0!</v></c>'
    )
    assert problems_of(path) == (
        f"Outcomes!{letter('responders')}2: responders: the cell holds the error #DIV/0!",
    )


# ---------------------------------------------------------------- cells typed by hand


def test_numbers_stored_as_text_are_accepted(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Outcomes"][f"{letter('responders')}2"] = " 5 "
        wb["Outcomes"][f"{letter('evaluable')}2"] = "7"
        wb["Studies"][f"{letter('year', STUDY_COLUMNS)}2"] = "2023"

    assert read_workbook(edited(tmp_path, edit)).studies == (make_study(),)


def test_spaces_stripped_from_ids_and_terms_kept_in_text(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        ws = wb["Outcomes"]
        ws["A2"] = " alpha-2023 "
        ws[f"{letter('modality')}2"] = "bispecific "
        ws[f"{letter('target')}2"] = " BCMA ;"
        ws[f"{letter('outcome')}2"] = "ORR "
        ws[f"{letter('percent')}2"] = " 71.4% "
        ws[f"{letter('quote')}2"] = "  5 out of 7 (71.4%)  "
        wb["Studies"]["A2"] = "alpha-2023  "

    rec = read_workbook(edited(tmp_path, edit)).studies[0].groups[0].outcomes[0]
    assert rec.quote == "  5 out of 7 (71.4%)  "
    assert rec.percent == "71.4"
    assert read_workbook(edited(tmp_path, edit)).studies[0].model_copy(
        update={"groups": ()}
    ) == make_study().model_copy(update={"groups": ()})


def test_lists_by_semicolon_or_line_break(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Outcomes"][f"{letter('agents')}2"] = "Tec; daratumumab"
        wb["Outcomes"][f"{letter('target')}2"] = "BCMA\nCD38"

    group = read_workbook(edited(tmp_path, edit)).studies[0].groups[0]
    assert group.agents == ("teclistamab", "daratumumab")
    assert group.target == ("BCMA", "CD38")


def test_percent_typed_as_number(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Outcomes"][f"{letter('percent')}2"] = 71.4

    assert read_workbook(edited(tmp_path, edit)).studies == (make_study(),)


def test_percent_formatted_cell_is_rejected(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        cell = wb["Outcomes"][f"{letter('percent')}2"]
        cell.value = 0.714
        cell.number_format = "0.0%"

    (problem,) = problems_of(edited(tmp_path, edit))
    assert problem.startswith(
        f"Outcomes!{letter('percent')}2: percent: the cell is formatted as a percentage"
    )


def test_date_in_published_is_rejected(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Studies"][f"{letter('published', STUDY_COLUMNS)}2"] = dt.datetime(2023, 2, 1)

    (problem,) = problems_of(edited(tmp_path, edit))
    assert problem.startswith("Studies!E2: published: the cell is a date")


def test_derived_as_text(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Outcomes"][f"{letter('derived')}2"] = "no"

    assert read_workbook(edited(tmp_path, edit)).studies == (make_study(),)


# ---------------------------------------------------------------- sheets and columns


def test_missing_sheet(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        del wb["Outcomes"]

    (problem,) = problems_of(edited(tmp_path, edit))
    assert problem.startswith("book.xlsx: missing sheet 'Outcomes'")


def test_missing_required_column(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        quote = next(c for c in workbook.RECORD_COLUMNS if c.name == "quote")
        wb["Outcomes"].delete_cols(OUTCOME_COLUMNS.index(quote) + 1)

    assert problems_of(edited(tmp_path, edit)) == ("Outcomes!1: missing column 'quote'",)


def test_missing_optional_column_is_accepted(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Outcomes"].delete_cols([c.name for c in OUTCOME_COLUMNS].index("note") + 1)

    assert read_workbook(edited(tmp_path, edit)).studies == (make_study(),)


def test_columns_in_another_order(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        ws = wb["Outcomes"]
        for cell_a, cell_b in zip(ws["A"], ws["T"], strict=True):
            cell_a.value, cell_b.value = cell_b.value, cell_a.value

    assert read_workbook(edited(tmp_path, edit)).studies == (make_study(),)


def test_unknown_column_with_suggestion(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Outcomes"][f"{letter('responders')}1"] = "respnders"

    (problem,) = problems_of(edited(tmp_path, edit))
    assert problem.startswith(
        f"Outcomes!{letter('responders')}1: unknown column 'respnders'; did you mean 'responders'?"
    )


def test_merged_header_cells(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Outcomes"].merge_cells("A1:B1")

    (problem,) = problems_of(edited(tmp_path, edit))
    assert problem.startswith("Outcomes!A1:B1: merged cells in the header row")


def test_merged_data_cells(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Outcomes"].merge_cells("S2:S3")

    (problem,) = problems_of(edited(tmp_path, edit))
    assert problem.startswith("Outcomes!S2:S3: merged cells")


# ---------------------------------------------------------------- files that are not workbooks


def test_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "junk.xlsx"
    path.write_bytes(bytes(range(256)) * 4)
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: not a workbook")


def test_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "book.csv"
    path.write_text("id,citation\nalpha-2023,Test\n", encoding="utf-8")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: a text file (CSV?)")


def test_xls_file(tmp_path: Path) -> None:
    # An OLE compound file header (the container of .xls) with a "Workbook" stream name:
    # synthetic, enough for the sniffing that happens before any parsing.
    path = tmp_path / "old.xls"
    path.write_bytes(
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "Workbook".encode("utf-16-le")
    )
    (problem,) = problems_of(path)
    assert "Excel 97-2003 (.xls)" in problem


def test_password_protected_file(tmp_path: Path) -> None:
    # Excel stores an encrypted .xlsx as an OLE compound file holding an "EncryptedPackage"
    # stream ([MS-OFFCRYPTO] 2.3.4.4); synthetic header with that stream name.
    path = tmp_path / "locked.xlsx"
    path.write_bytes(
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + bytes(504)
        + "EncryptionInfo".encode("utf-16-le")
        + bytes(8)
        + "EncryptedPackage".encode("utf-16-le")
    )
    (problem,) = problems_of(path)
    assert "password-protected" in problem


def test_corrupt_zip(tmp_path: Path) -> None:
    path = tmp_path / "cut.xlsx"
    write_workbook([make_study()], path)
    path.write_bytes(path.read_bytes()[:2000])
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: corrupt workbook")


def test_damaged_sheet_xml(tmp_path: Path) -> None:
    path = tmp_path / "bad.xlsx"
    write_workbook([make_study()], path)
    patch_sheet(path, "Outcomes", r"</sheetData>", "<row><c>")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: corrupt workbook, cannot be read")


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "doc.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<w/>")
    (problem,) = problems_of(path)
    assert "not an Excel workbook" in problem


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.xlsx"
    empty.write_bytes(b"")
    assert problems_of(empty) == (f"{empty}: the file is empty, not a workbook",)
    assert problems_of(tmp_path / "none.xlsx") == (f"{tmp_path / 'none.xlsx'}: no such file",)


def test_file_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.xlsx"
    write_workbook([make_study()], path)
    monkeypatch.setattr(workbook._open, "MAX_FILE_BYTES", path.stat().st_size - 1)
    (problem,) = problems_of(path)
    assert "too large to import" in problem


def test_too_many_rows(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        ws = wb["Outcomes"]
        for row in range(3, workbook.MAX_ROWS + 3):
            ws.cell(row=row, column=1, value="alpha-2023")

    (problem,) = problems_of(edited(tmp_path, edit))
    assert "at most 10000 data rows" in problem


def test_stray_cell_far_below(tmp_path: Path) -> None:
    def edit(wb: openpyxl.Workbook) -> None:
        wb["Studies"].cell(row=500_000, column=1, value="x")

    (problem,) = problems_of(edited(tmp_path, edit))
    assert problem.startswith("Studies!A500000: the sheet reaches row 500000")


def test_zip_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workbook._open, "MAX_WORKBOOK_UNZIPPED_BYTES", 2**20)
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", " " * (3 * 2**20))
    (problem,) = problems_of(path)
    assert "too large to import" in problem


# ---------------------------------------------------------------- import into a folder


def test_import_checks_the_folder_too(tmp_path: Path) -> None:
    folder = tmp_path / "ex"
    folder.mkdir()
    existing = make_study("alpha-2023")
    (folder / "alpha-2023.yaml").write_text(
        (EXTRACTIONS / "merz-2024.yaml")
        .read_text(encoding="utf-8")
        .replace("id: merz-2024", "id: alpha-2023"),
        encoding="utf-8",
    )
    path = tmp_path / "b.xlsx"
    write_workbook([existing], path)
    with pytest.raises(InputError) as info:
        import_workbook(path, folder)
    assert info.value.problems[0].startswith("Studies!A2: study 'alpha-2023' already exists in")
    result = import_workbook(path, folder, update=True)
    (change,) = result.changes
    assert change.status == "updated"
    assert "citation: " in "\n".join(change.changes)
    assert load_extractions(folder).studies == (existing,)


def test_import_warns_about_cohort_overlap_with_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ex"
    import_workbook(
        _exported(tmp_path, make_study("a-2020").model_copy(update={"cohort": "shared"})),
        folder,
    )
    book = _exported(tmp_path, make_study("b-2020").model_copy(update={"cohort": "shared"}))
    result = import_workbook(book, folder)
    (warning,) = result.warnings
    assert warning.startswith(
        f"Outcomes!{letter('outcome')}2: cohort 'shared' has another ORR record"
    )
    assert "in study 'a-2020'" in warning


def _exported(tmp_path: Path, study: Study) -> Path:
    path = tmp_path / f"{study.id}.xlsx"
    write_workbook([study], path)
    return path


def test_unreadable_value_types_never_crash() -> None:
    column = OUTCOME_COLUMNS[0]
    with pytest.raises(ValueError, match="unreadable"):
        workbook._parse(io.BytesIO(), column, "General")
