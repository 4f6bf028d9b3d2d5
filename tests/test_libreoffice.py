"""A real spreadsheet application in the loop: the template and an exported corpus,
re-saved by LibreOffice Calc, import without loss and keep their validation rules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from factories import SHIPPED_EXTRACTIONS
from metaresp.corpus import load_extractions
from metaresp.workbook import import_workbook, read_workbook, write_template, write_workbook

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")

pytestmark = [
    pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed"),
    pytest.mark.slow,
]


def resave(tmp_path: Path, *books: Path) -> list[Path]:
    """Open and save ``books`` in LibreOffice Calc (one headless call, its own profile)."""
    assert SOFFICE is not None
    out = tmp_path / "calc"
    out.mkdir()
    profile = (tmp_path / "lo-profile").as_uri()
    subprocess.run(
        [
            SOFFICE,
            f"-env:UserInstallation={profile}",
            "--headless",
            "--norestore",
            "--convert-to",
            "xlsx:Calc MS Excel 2007 XML",
            "--outdir",
            str(out),
            *map(str, books),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    saved = [out / b.name for b in books]
    for path in saved:
        assert path.is_file(), f"LibreOffice wrote no {path.name}"
    return saved


def rules(path: Path) -> dict[str, dict[str, str]]:
    """sheet -> first column letter of each validated range -> validation type."""
    import openpyxl

    wb = openpyxl.load_workbook(path)
    out: dict[str, dict[str, str]] = {}
    for name in ("Studies", "Outcomes"):
        out[name] = {
            str(rng).split(":")[0].rstrip("0123456789"): str(dv.type)
            for dv in wb[name].data_validations.dataValidation
            for rng in dv.sqref.ranges
        }
    return out


def cells(path: Path) -> dict[str, list[list[object]]]:
    """Every sheet's values, empty trailing cells dropped (the template's example study
    is refused on import by design, so the template is compared cell by cell)."""
    import openpyxl

    wb = openpyxl.load_workbook(path, data_only=True)  # Calc writes TRUE as =TRUE()
    out: dict[str, list[list[object]]] = {}
    for ws in wb.worksheets:
        rows = []
        for row in ws.iter_rows(values_only=True):
            values = list(row)
            while values and values[-1] in (None, ""):
                values.pop()
            rows.append(values)
        while rows and not rows[-1]:
            rows.pop()
        out[ws.title] = rows
    return out


def test_calc_resaved_workbooks_import_without_loss(tmp_path: Path) -> None:
    template = tmp_path / "template.xlsx"
    write_template(template)
    corpus = load_extractions(SHIPPED_EXTRACTIONS)
    export = tmp_path / "corpus.xlsx"
    write_workbook(corpus, export)

    calc_template, calc_export = resave(tmp_path, template, export)

    # the data: every study as it was
    assert read_workbook(calc_export).studies == corpus.studies
    assert cells(calc_template) == cells(template)  # headers, example row, lists, README
    extractions = Path(shutil.copytree(SHIPPED_EXTRACTIONS, tmp_path / "extractions"))
    before = {p.name: p.read_bytes() for p in extractions.iterdir()}
    result = import_workbook(calc_export, extractions, update=True)
    assert {c.status for c in result.changes} == {"unchanged"}
    assert {p.name: p.read_bytes() for p in extractions.iterdir()} == before

    # the dropdowns and the number rules are still there, of the same kinds
    for original, saved in ((template, calc_template), (export, calc_export)):
        want, got = rules(original), rules(saved)
        for sheet, columns in want.items():
            assert columns, sheet
            assert got[sheet] == columns, sheet
        assert "list" in want["Outcomes"].values()
        assert "whole" in want["Outcomes"].values()
