"""Atomic writes leave the target whole or untouched; unreadable files are one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaresp.errors import InputError
from metaresp.files import atomic_write, read_text_file, write_text_atomic


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old", encoding="utf-8")

    def half_then_fail(temp: Path) -> None:
        temp.write_text("half", encoding="utf-8")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, half_then_fail)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_writes_replace_the_target_and_keep_its_suffix(tmp_path: Path) -> None:
    seen: list[str] = []
    atomic_write(
        tmp_path / "a.xlsx", lambda temp: (seen.append(temp.suffix), temp.write_bytes(b"x"))
    )
    assert seen == [".xlsx"]
    assert (tmp_path / "a.xlsx").read_bytes() == b"x"
    write_text_atomic(tmp_path / "sub" / "b.txt", "é\n")
    assert (tmp_path / "sub" / "b.txt").read_bytes() == "é\n".encode()


def test_read_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="plan file not found"):
        read_text_file(tmp_path / "missing.yaml", "plan file")
    with pytest.raises(InputError, match="is a folder, not a plan file"):
        read_text_file(tmp_path, "plan file")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="not UTF-8 text") as info:
        read_text_file(tmp_path / "bin.yaml", "plan file")
    assert len(info.value.problems) == 1


def test_several_files_land_together_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from metaresp import files

    old = tmp_path / "a.yaml"
    old.write_text("old a\n", encoding="utf-8")
    new = tmp_path / "b.yaml"
    real_replace = os.replace
    calls: list[str] = []

    def second_rename_fails(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(Path(dst).name)
        if len(calls) == 2:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", second_rename_fails)
    with pytest.raises(OSError, match="disk full"):
        files.write_files_atomic([(old, "new a\n"), (new, "new b\n")])
    monkeypatch.setattr(files.os, "replace", real_replace)
    # the first file was renamed, then put back; the second never appeared
    assert calls[:2] == ["a.yaml", "b.yaml"]
    assert old.read_text(encoding="utf-8") == "old a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml"]

    previous = files.write_files_atomic([(old, "new a\n"), (new, "new b\n")])
    assert previous == [b"old a\n", None]
    assert (old.read_text(encoding="utf-8"), new.read_text(encoding="utf-8")) == (
        "new a\n",
        "new b\n",
    )
    files.restore_files([old, new], previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml"]
    assert old.read_text(encoding="utf-8") == "old a\n"


def test_a_folder_is_replaced_whole_or_left_alone(tmp_path: Path) -> None:
    from metaresp.files import atomic_folder

    out = tmp_path / "results"
    out.mkdir()
    (out / "old.txt").write_text("old", encoding="utf-8")

    def failed_run() -> None:
        with atomic_folder(out) as temp:
            (temp / "new.txt").write_text("half", encoding="utf-8")
            raise RuntimeError("failed run")

    with pytest.raises(RuntimeError):
        failed_run()
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["results"]
    with atomic_folder(out) as temp:
        (temp / "new.txt").write_text("new", encoding="utf-8")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["results"]
