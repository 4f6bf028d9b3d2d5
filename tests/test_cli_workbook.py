"""``metaresp template`` / ``import`` / ``export``: exit codes, messages, files written."""

from __future__ import annotations

import shutil
from pathlib import Path

import openpyxl
import pytest

from metaresp.cli import main
from metaresp.corpus import load_extractions

REPO = Path(__file__).resolve().parents[1]
EXTRACTIONS = REPO / "extractions"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("template", "import", "export"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0
        assert "Usage" in out


def test_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "t.xlsx"
    code, out, _ = run(capsys, "template", "-o", out_file)
    assert code == 0
    assert out.strip() == f"wrote {out_file}"
    assert openpyxl.load_workbook(out_file).sheetnames[:3] == ["Studies", "Outcomes", "README"]
    before = out_file.read_bytes()
    code, _, err = run(capsys, "template", "-o", out_file)
    assert code == 1
    assert err.strip() == f"error: {out_file}: already exists; use --force to overwrite it"
    assert out_file.read_bytes() == before
    assert run(capsys, "template", "-o", out_file, "--force")[0] == 0


def test_template_needs_xlsx_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "template", "-o", tmp_path / "t.csv")
    assert code == 1
    assert "must end in .xlsx" in err
    assert not (tmp_path / "t.csv").exists()


def test_export_import_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = tmp_path / "corpus.xlsx"
    code, out, _ = run(capsys, "export", "-o", book, "--extractions", EXTRACTIONS)
    corpus = load_extractions(EXTRACTIONS)
    assert code == 0
    assert out.strip() == f"wrote {book}: {len(corpus)} studies, {corpus.n_records} outcome records"
    target = tmp_path / "out"
    code, out, err = run(capsys, "import", book, "--extractions", target)
    assert code == 0, err
    assert out.splitlines()[-1] == (
        f"imported {len(corpus)} studies into {target}: {len(corpus)} new, 0 updated, 0 unchanged"
    )
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{s.id}.yaml" for s in corpus)
    again = {s.id: s for s in load_extractions(target)}
    assert all(again[s.id] == s for s in corpus)

    # A second import without --update refuses and writes nothing.
    before = snapshot(target)
    code, _, err = run(capsys, "import", book, "--extractions", target)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == len(corpus)
    assert lines[0] == (
        f"error: Studies!A2: study {corpus.studies[0].id!r} already exists in "
        f"{(target / corpus.files[0].split('/')[-1]).as_posix()}; use --update to replace it"
    )
    assert snapshot(target) == before

    # --update with one edited cell prints the field-level change and rewrites that file only.
    wb = openpyxl.load_workbook(book)
    wb["Studies"]["D2"] = 1999  # the year column of the first study
    wb.save(book)
    code, out, err = run(capsys, "import", book, "--extractions", target, "--update")
    assert code == 0, err
    first = corpus.studies[0]
    assert f"  year: {first.year} -> 1999" in out.splitlines()
    after = snapshot(target)
    changed = [name for name in after if after[name] != before[name]]
    assert changed == [f"{first.id}.yaml"]
    assert out.splitlines()[-1].endswith(f"0 new, 1 updated, {len(corpus) - 1} unchanged")


def letter(name: str) -> str:
    """The column letter of an Outcomes header (the layout follows the schema's fields)."""
    from openpyxl.utils import get_column_letter

    from metaresp.workbook import OUTCOME_COLUMNS

    return get_column_letter([c.name for c in OUTCOME_COLUMNS].index(name) + 1)


def test_failed_import_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "ex"
    target.mkdir()
    for name in ("merz-2024.yaml", "chari-2020.yaml"):
        shutil.copy(EXTRACTIONS / name, target / name)
    before = snapshot(target)
    book = tmp_path / "b.xlsx"
    assert run(capsys, "export", "-o", book, "--extractions", EXTRACTIONS)[0] == 0
    wb = openpyxl.load_workbook(book)
    ws = wb["Outcomes"]
    cell = f"{letter('responders')}2"
    ws[cell] = 10_000  # responders far above evaluable
    wb.save(book)
    code, out, err = run(capsys, "import", book, "--extractions", target, "--update")
    assert code == 1
    assert out == ""
    assert err.splitlines()[0].startswith(f"error: Outcomes!{cell}: responders 10000 > evaluable")
    assert "Traceback" not in err
    assert snapshot(target) == before


def test_failed_import_creates_no_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.xlsx"
    junk.write_text("not a workbook\n", encoding="utf-8")
    code, _, err = run(capsys, "import", junk, "--extractions", tmp_path / "new")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: {junk}: a text file (CSV?)")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "the file is empty"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "Excel 97-2003"),
        (b"PK\x03\x04broken", "corrupt workbook"),
        (bytes(range(256)), "not a workbook"),
    ],
)
def test_bad_files_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, fragment: str
) -> None:
    path = tmp_path / "book.xlsx"
    path.write_bytes(content)
    code, out, err = run(capsys, "import", path, "--extractions", tmp_path / "ex")
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1
    assert fragment in err
    assert "Traceback" not in err


def test_export_of_a_broken_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ex").mkdir()
    (tmp_path / "ex" / "a.yaml").write_text("id: [\n", encoding="utf-8")
    code, _, err = run(
        capsys, "export", "-o", tmp_path / "o.xlsx", "--extractions", tmp_path / "ex"
    )
    assert code == 1
    assert "YAML syntax error" in err
    assert not (tmp_path / "o.xlsx").exists()


def test_import_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "import", tmp_path / "nope.xlsx")
    assert code == 1
    assert err.strip() == f"error: {tmp_path / 'nope.xlsx'}: no such file"
