"""The results folder as it was before a command that changes the corpus and re-runs
the plan (``metaresp add``), kept until the change is complete.

:func:`make` puts a copy of the folder beside it (``.<name>.undo-<pid>-<token>``; hard
links, else copies, so it costs no space on most file systems): it is built under a
``.part`` name and renamed, so it is there whole or not at all. When the change is undone
(a failure inside the command, or :func:`metaresp._journal.recover` after a kill),
:func:`put_back` makes the folder that copy again, whatever the command left there (its
own run, nothing, or a run set aside inside the swap); a folder that did not exist before
the command is removed. When the change completes, :func:`drop` removes the copy. Every
step can be repeated after a kill in the middle of it: the copy stays until the folder
is the copy.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

__all__ = ["RESULT_MARKERS", "checked", "drop", "make", "plan", "put_back"]

RESULT_MARKERS = ("summary.json", "pooled.csv")
"""A folder holding one of these is a results folder (:data:`metaresp.runner.MARKER_NAMES`;
not imported from there, which would make an import cycle through the journal)."""


def plan(folder: Path) -> dict[str, Any]:
    """What the journal records about ``folder`` before anything changes."""
    target = Path(os.path.abspath(folder))
    backup = target.parent / f".{target.name}.undo-{os.getpid()}-{secrets.token_hex(4)}"
    return {"path": str(target), "backup": str(backup), "existed": target.is_dir()}


def checked(value: Any) -> dict[str, Any] | None:
    """The ``keep`` entry of a journal read back (``ValueError`` when malformed)."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or not all(isinstance(value.get(k), str) for k in ("path", "backup"))
        or not isinstance(value.get("existed"), bool)
    ):
        raise ValueError("journal: malformed 'keep' entry")
    return value


def _part(backup: Path) -> Path:
    return backup.with_name(backup.name + ".part")


def _link_tree(source: Path, dest: Path) -> None:
    dest.mkdir()
    for root, dirs, files in os.walk(source):
        here = dest / Path(root).relative_to(source)
        for d in dirs:
            (here / d).mkdir()
        for f in files:
            try:
                os.link(Path(root) / f, here / f)
            except OSError:
                shutil.copy2(Path(root) / f, here / f)


def make(kept: dict[str, Any]) -> None:
    """Copy the folder (when it exists) to the backup named in ``kept``."""
    if not kept["existed"]:
        return
    target, backup = Path(kept["path"]), Path(kept["backup"])
    part = _part(backup)
    shutil.rmtree(part, ignore_errors=True)
    try:
        _link_tree(target, part)
        os.rename(part, backup)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise


def _looks_like_results(folder: Path) -> bool:
    return any((folder / name).exists() for name in RESULT_MARKERS)


def _fill(target: Path, backup: Path) -> None:
    """Make what ``target`` (a mount point: it cannot be renamed) holds a copy of what
    ``backup`` holds."""
    for entry in list(target.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in backup.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, target / entry.name, follow_symlinks=False)


def put_back(kept: dict[str, Any]) -> bool:
    """Make the folder what it was before the command; ``True`` when something was done
    (``False``: the command had not got as far as copying it, so it did not touch it)."""
    target, backup = Path(kept["path"]), Path(kept["backup"])
    shutil.rmtree(_part(backup), ignore_errors=True)
    if not kept["existed"]:
        if target.is_dir() and not os.path.ismount(target) and _looks_like_results(target):
            shutil.rmtree(target)
            return True
        return False
    if not backup.is_dir():
        return False
    if target.is_dir() and os.path.ismount(target):
        _fill(target, backup)
        shutil.rmtree(backup)
        return True
    if target.exists():
        # the command's folder goes to a name the next run removes should this be killed
        undone = target.parent / f".{target.name}.tmp-{os.getpid()}-undone-{backup.name[-8:]}"
        os.rename(target, undone)
        os.rename(backup, target)
        shutil.rmtree(undone, ignore_errors=True)
    else:
        os.rename(backup, target)
    return True


def drop(kept: dict[str, Any]) -> None:
    """Remove the copy (the change is complete)."""
    backup = Path(kept["backup"])
    shutil.rmtree(_part(backup), ignore_errors=True)
    shutil.rmtree(backup, ignore_errors=True)
