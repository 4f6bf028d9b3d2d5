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
    atomic_write(tmp_path / "a.xlsx", lambda temp: (seen.append(temp.suffix),
                                                    temp.write_bytes(b"x")))
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
