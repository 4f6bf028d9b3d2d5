"""The conventions every command follows, written once (docs/cli.md describes them).

* ``--extractions`` names the folder of extraction files read (or written, by ``import``);
* ``--results`` names a results folder (written by ``run`` and ``add``, read by ``diff``);
* ``-o``/``--out`` names a file written;
* no command creates a missing parent folder: a file or folder is written only inside a
  folder that exists (an error names the missing one);
* old spellings (``run --out``, ``import --to``, ``validate FOLDER``, ``template FILE``,
  ``export FILE``) still work, with a one-line notice on standard error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

__all__ = ["check_parent", "deprecated"]

T = TypeVar("T")


def deprecated(old: str, new: str, old_value: T | None, new_value: T) -> T:
    """The value of ``new``, or of the deprecated spelling ``old`` when that was given
    (with a notice on standard error)."""
    if old_value is None:
        return new_value
    sys.stderr.write(f"notice: {old} is deprecated; use {new}\n")
    return old_value


def check_parent(path: Path, option: str) -> None:
    """Refuse to write ``path`` when its folder does not exist (no folder is created
    silently): an :class:`~metaresp.errors.InputError` naming the option and the folder."""
    from metaresp.errors import InputError

    parent = path.parent
    if not parent.exists():
        raise InputError(f"{option}: {parent}: folder not found (create it first)")
    if not parent.is_dir():
        raise InputError(f"{option}: {parent}: is not a folder")
