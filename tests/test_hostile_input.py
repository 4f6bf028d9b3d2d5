"""Hostile input: every problem is a bounded, located line, found across all files.

Bombs run in a subprocess under an address-space limit and a timeout, so a regression
fails the test instead of exhausting the machine.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest

from factories import SHIPPED_EXTRACTIONS, SMALL_PLAN, CliResult, Repo, study_text
from metaresp import workbook
from metaresp.errors import InputError
from metaresp.files import write_text_atomic
from metaresp.limits import MAX_COUNT, MAX_PLOT_ROWS
from metaresp.plan import parse_plan
from metaresp.workbook import read_workbook

SRC = Path(__file__).resolve().parents[1] / "src"

ALIAS_BOMB = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)
"""A few hundred bytes that expand to 9**9 (387 million) strings."""

BOUNDED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from metaresp.cli import main
sys.exit(main(sys.argv[1:]))
"""


def bounded_cli(*args: str | Path, timeout: float = 30) -> CliResult:
    """``metaresp ARGS`` in a subprocess limited to 1 GiB of address space."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", BOUNDED, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def one_study(sid: str = "doe-2024", **changes: str) -> str:
    text = study_text(sid, 5, 10, year=2024)
    for old, new in changes.items():
        text = text.replace(old, new)
    return text


def test_alias_bomb_is_refused_quickly_and_other_files_still_checked(tmp_path: Path) -> None:
    folder = tmp_path / "ex"
    folder.mkdir()
    (folder / "bomb.yaml").write_text(ALIAS_BOMB, encoding="utf-8")
    (folder / "doe-2024.yaml").write_text(
        one_study(**{"responders: 5": "responders: 50"}), encoding="utf-8"
    )
    (folder / "date-2024.yaml").write_text(
        one_study("date-2024", **{"year: 2024\n": "year: 2024\npublished: 2025-02-30\n"}),
        encoding="utf-8",
    )
    (folder / "loop-2024.yaml").write_text(
        one_study("loop-2024", **{"design:": "notes: &r [*r]\ndesign:"}), encoding="utf-8"
    )
    result = bounded_cli("validate", folder, timeout=20)
    shown = result.out + result.err
    assert result.code == 1, shown
    assert "Traceback" not in shown
    assert "internal error" not in shown
    lines = shown.splitlines()
    assert len(shown) < 5000  # nothing echoes the expanded input
    assert any("bomb.yaml:" in line and "aliases" in line for line in lines)
    assert any(
        "doe-2024.yaml:" in line and "responders 50 > evaluable 10" in line for line in lines
    )
    assert any("date-2024.yaml:5: published: cannot read" in line for line in lines)
    assert any("loop-2024.yaml:" in line and "recursive anchor" in line for line in lines)


def test_plan_alias_bomb_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(ALIAS_BOMB, encoding="utf-8")
    (tmp_path / "ex").mkdir()
    result = bounded_cli(
        "run", "--plan", plan, "--extractions", tmp_path / "ex", "--results", tmp_path / "r"
    )
    assert result.code == 1
    assert f"{plan}:" in result.err
    assert "expands to more than" in result.err
    assert len(result.err) < 2000


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"evaluable: 10": "evaluable: 700000000000", "percent: null": 'percent: "50"'},
            "1000000000",
        ),
        ({"responders: 5": "responders: " + "9" * 5000}, "cannot read the value"),
    ],
    ids=["beyond-the-count-bound", "five-thousand-digits"],
)
def test_huge_counts_are_located(
    tmp_path: Path, cli: Callable[..., CliResult], change: dict[str, str], expected: str
) -> None:
    folder = tmp_path / "ex"
    folder.mkdir()
    (folder / "doe-2024.yaml").write_text(one_study(**change), encoding="utf-8")
    result = cli("validate", folder)
    shown = result.out + result.err
    assert result.code == 1, shown
    assert "doe-2024.yaml:" in shown
    assert expected in shown
    assert "internal error" not in shown
    assert len(shown) < 2000


def test_derived_count_check_is_arithmetic() -> None:
    from metaresp.schema import matching_counts

    fits = matching_counts(MAX_COUNT, "50")  # ten million candidates, never listed
    assert isinstance(fits, range)
    assert len(fits) == 10_000_001
    assert MAX_COUNT // 2 in fits
    assert MAX_COUNT // 2 - 5_000_001 not in fits


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  ORR: 50", "  ORR: 50\n  ORR: 70", "thresholds.ORR: key 'ORR' appears twice"),
        ("version: 1\n", "version: 1\nmodel: {}\nmodel: {}\n", "key 'model' appears twice"),
        (
            "      CAR T:",
            "      car-t:\n        modality: {any: [CAR-T]}\n      CAR T:",
            "classes 'car-t' and 'CAR T' give the same file name 'car-t'",
        ),
    ],
    ids=["duplicate-threshold", "two-model-blocks", "class-file-names"],
)
def test_plan_problems_are_errors(old: str, new: str, message: str) -> None:
    assert old in SMALL_PLAN
    with pytest.raises(InputError) as info:
        parse_plan(SMALL_PLAN.replace(old, new, 1), "plan.yaml")
    assert any(line.startswith("plan.yaml:") and message in line for line in info.value.problems)


def test_shipped_plan_with_anchors_still_loads() -> None:
    from factories import SHIPPED_PLAN
    from metaresp.plan import load_plan

    assert load_plan(SHIPPED_PLAN).analyses


def _workbook(tmp_path: Path) -> Path:
    from metaresp.corpus import load_extractions
    from metaresp.workbook import write_workbook

    path = tmp_path / "book.xlsx"
    write_workbook(load_extractions(SHIPPED_EXTRACTIONS / "merz-2024.yaml"), path)
    return path


def test_zip_bomb_in_styles_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workbook._open, "MAX_WORKBOOK_UNZIPPED_BYTES", 2**20)
    good = _workbook(tmp_path)
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/styles.xml":
                data = data + b" " * (3 * 2**20)
            out.writestr(info.filename, data)
    with pytest.raises(InputError) as info:
        read_workbook(bomb)
    (line,) = info.value.problems
    assert "bomb.xlsx" in line
    assert "too large to import" in line
    from metaresp.poolcli import read_table

    with pytest.raises(InputError, match="too large"):
        read_table(bomb)


def test_cell_count_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workbook._open, "MAX_CELLS", 50)
    with pytest.raises(InputError, match="more than 50 cells"):
        read_workbook(_workbook(tmp_path))


def test_hidden_rows_and_sheets_are_reported(tmp_path: Path) -> None:
    path = _workbook(tmp_path)
    wb = openpyxl.load_workbook(path)
    wb["Outcomes"].row_dimensions[2].hidden = True
    wb["Studies"].sheet_state = "hidden"
    wb.active = wb.sheetnames.index("Outcomes")
    wb.save(path)
    corpus = read_workbook(path)
    assert corpus.studies
    warnings = [w for w in corpus.warnings if "hidden" in w]
    assert any(w.startswith("Outcomes!A2: 1 hidden row(s)") for w in warnings), warnings
    assert any(w.startswith("Studies: the sheet is hidden") for w in warnings), warnings


def test_pool_counts_beyond_a_machine_integer(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    table = tmp_path / "t.csv"
    table.write_text("r,n\n3,10\n5,99999999999999999999999\n", encoding="utf-8")
    result = cli("pool", table, "--events", "r", "--totals", "n")
    assert result.code == 1
    assert "row 3, column 'n'" in result.err
    assert "1,000,000,000" in result.err


def test_pool_plot_rows_are_bounded(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    table = tmp_path / "t.csv"
    rows = "".join(f"{i % 7},{10 + i % 5}\n" for i in range(MAX_PLOT_ROWS + 1))
    table.write_text("r,n\n" + rows, encoding="utf-8")
    result = cli("pool", table, "--events", "r", "--totals", "n", "--plot", tmp_path / "f.png")
    assert result.code == 1
    assert f"at most {MAX_PLOT_ROWS}" in result.err
    assert not (tmp_path / "f.png").exists()


def test_csv_cells_are_escaped(small_repo: Repo, tmp_path: Path) -> None:
    from metaresp.corpus import load_extractions
    from metaresp.cumulative import write_cumulative
    from metaresp.plan import load_plan
    from metaresp.runner import run_analyses
    from metaresp.tables import write_tables

    evil = "=cmd|' /C calc'!A0"
    for sid, year, unit in (("evil-2024", 2024, "lines"), ("evil-2025", 2025, "patients")):
        text = study_text(sid, 5, 10, year=year).replace(
            'citation: "Doe J, Roe R.', f'citation: "{evil} J, Roe R.'
        )  # the lines one is set aside: another unit
        (small_repo.extractions / f"{sid}.yaml").write_text(
            text.replace("unit: patients", f"unit: {unit}"), encoding="utf-8"
        )
    results = run_analyses(load_plan(small_repo.plan), load_extractions(small_repo.extractions))
    out = tmp_path / "out"
    out.mkdir()
    write_tables(results, out)
    write_cumulative(out, results)
    for name in ("cumulative.csv", "set-aside.csv", "pooled.csv"):
        text = (out / name).read_text(encoding="utf-8")
        cells = [c.strip('"') for line in text.splitlines() for c in line.split(",")]
        assert not any(c.startswith(("=", "+", "@")) for c in cells), name
        if name != "pooled.csv":
            assert "'=cmd" in text, name


def test_files_get_the_users_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        path = write_text_atomic(tmp_path / "a.txt", "x")
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        os.umask(0o022)
        path = write_text_atomic(tmp_path / "b.txt", "x")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_environment_errors_name_the_path() -> None:
    import errno

    from metaresp._environment import environment_message

    full = OSError(errno.ENOSPC, "No space left on device", "results/pooled.csv")
    assert environment_message(full).startswith("results/pooled.csv: no space left")
    busy = OSError(errno.EBUSY, "Device or resource busy", "results", None, ".results.old-1")
    assert environment_message(busy).startswith("results -> .results.old-1: the path is busy")


def test_results_on_a_mount_point_are_filled_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metaresp import files

    out = tmp_path / "results"
    out.mkdir()
    (out / "old.txt").write_text("old", encoding="utf-8")
    inode = out.stat().st_ino
    monkeypatch.setattr(files.os.path, "ismount", lambda p: Path(p) == out)
    with files.atomic_folder(out) as tmp:
        assert tmp.parent == out  # built inside: a mount point cannot be renamed
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    assert out.stat().st_ino == inode
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
