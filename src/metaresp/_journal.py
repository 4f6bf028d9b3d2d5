"""A journal for the commands that change several files (``metaresp add``, ``import``):
a kill at any moment leaves the old or the new state, and the next command finishes or
undoes the interrupted one.

Before the first file changes, :func:`journal` writes ``.metaresp-journal.json`` in the
extractions folder (atomically: it is there whole or not at all) with the previous bytes
of every file the command may change and, where known, a digest of the new bytes. When
the command ends, normally or by an exception, the journal is settled: on success it is
removed, on failure the files are put back first. When the process is killed in between,
the journal stays, and :func:`recover` (called by the next command, under the project
lock) settles it: the change counts as done when its commit file (the published state)
was already rewritten or, without one, when every file holds its new bytes; otherwise
every file gets its previous bytes back.

A command that also rewrites a results folder (``add`` runs the plan) names it as
``keep``: before the first change, a copy of that folder (hard links, else copies) is put
beside it, and when the change is undone that copy replaces whatever the command left
there, so the results stay those of the corpus that is put back (:mod:`metaresp._keep`).
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from metaresp import _faults, _keep
from metaresp.files import write_bytes_atomic, write_text_atomic

__all__ = ["JOURNAL_NAME", "journal", "recover"]

JOURNAL_NAME = ".metaresp-journal.json"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _entry(path: Path, new: bytes | None) -> dict[str, Any]:
    old = _read(path)
    return {
        "path": str(path.resolve()),
        "previous": None if old is None else base64.b64encode(old).decode("ascii"),
        "new": None if new is None else _digest(new),
    }


def _temporaries(path: Path) -> list[Path]:
    """Temporary files a killed writer left beside ``path`` (``.<name>.*.tmp*``)."""
    if not path.parent.is_dir():
        return []
    return [p for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*") if p.is_file()]


def _put_back(entries: Sequence[dict[str, Any]]) -> None:
    for e in entries:
        path = Path(e["path"])
        for temp in _temporaries(path):
            temp.unlink(missing_ok=True)
        if e["previous"] is None:
            path.unlink(missing_ok=True)
        else:
            old = base64.b64decode(e["previous"])
            if _read(path) != old:
                write_bytes_atomic(path, old)


def _committed(data: dict[str, Any]) -> bool:
    entries = data["files"]
    commit = data.get("commit")
    if commit is not None:
        e = next(e for e in entries if e["path"] == commit)
        now = _read(Path(commit))
        before = None if e["previous"] is None else base64.b64decode(e["previous"])
        return now != before
    for e in entries:
        now = _read(Path(e["path"]))
        if e["new"] is None or now is None or _digest(now) != e["new"]:
            return False
    return True


@contextmanager
def journal(
    folder: Path,
    command: str,
    files: Sequence[tuple[Path, bytes | None]],
    *,
    commit: Path | None = None,
    keep: Path | None = None,
) -> Iterator[None]:
    """Journal the change of ``files`` (each with its new bytes, ``None`` when not known
    in advance) made inside the block; ``commit`` is the file whose rewriting completes
    the change (it must be one of ``files``); ``keep`` a folder the block may replace
    (the results), put back as it was when the change is undone."""
    entries = [_entry(path, new) for path, new in files]
    kept = None if keep is None else _keep.plan(keep)
    record = {
        "command": command,
        "pid": os.getpid(),
        "files": entries,
        "commit": None if commit is None else str(commit.resolve()),
        "keep": kept,
    }
    path = folder / JOURNAL_NAME
    write_text_atomic(path, json.dumps(record))
    _faults.at(f"{command}-journal-written")
    try:
        if kept is not None:
            _keep.make(kept)
            _faults.at(f"{command}-results-kept")
        yield
    except BaseException:
        _put_back(entries)
        if kept is not None:
            _keep.put_back(kept)
        path.unlink(missing_ok=True)
        raise
    _faults.at(f"{command}-before-journal-removed")
    if kept is not None:
        _keep.drop(kept)
    path.unlink(missing_ok=True)


def recover(folder: Path) -> list[str]:
    """Settle the journal an interrupted command left in ``folder``; one line per thing
    done (nothing when there is no journal)."""
    path = folder / JOURNAL_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    try:
        data = json.loads(text)
        entries = data["files"]
        command = str(data.get("command", "a command"))
        kept = _keep.checked(data.get("keep"))
    except (ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return [f"{path}: removed an unreadable journal"]
    if _committed(data):
        for e in entries:
            for temp in _temporaries(Path(e["path"])):
                temp.unlink(missing_ok=True)
        if kept is not None:
            _keep.drop(kept)
        path.unlink(missing_ok=True)
        return [
            f"{folder}: an interrupted 'metaresp {command}' had finished its change; kept",
            *_folder_leftovers(kept),
        ]
    _put_back(entries)
    also = ""
    if kept is not None and _keep.put_back(kept):
        also = f", and {kept['path']} as it was before it"
    path.unlink(missing_ok=True)
    return [
        f"{folder}: undid an interrupted 'metaresp {command}' "
        f"({len(entries)} file(s) put back as they were{also})",
        *_folder_leftovers(kept),
    ]


def _folder_leftovers(kept: dict[str, Any] | None) -> list[str]:
    """Remove what the interrupted command's run left beside the kept folder."""
    from metaresp.files import recover_folder

    return [] if kept is None else recover_folder(kept["path"])


def recover_project(extractions: Path, results: Path | None = None) -> list[str]:
    """What the next command does first, under the project lock: settle an interrupted
    command's journal (:func:`recover`) and the leftovers of an interrupted results swap
    (:func:`metaresp.files.recover_folder`)."""
    from metaresp.files import recover_folder

    done = recover(extractions) if extractions.is_dir() else []
    if results is not None:
        done += recover_folder(results)
    return done


def place_journaled(folder: Path, command: str, placements: Sequence[Any]) -> None:
    """:func:`metaresp.intake.place` under a journal (a kill between two renames is undone
    or finished by the next command)."""
    from metaresp.intake import place

    files = [(p.target, p.text.encode("utf-8")) for p in placements]
    if not files or not folder.is_dir():
        place(placements)
        return
    with journal(folder, command, files):
        place(placements)
