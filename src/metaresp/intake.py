"""Putting studies into the extraction folder: the one way ``metaresp add`` and
``metaresp import`` write it.

Both commands first validate everything they bring (each locates its problems its own
way: lines of an extraction file, cells of a workbook), then hand the studies here:

1. :func:`plan_placements` decides, for every study, the file it goes to (its existing
   file when the id is already in the folder, else ``<id>.yaml``), refuses an id given
   twice, an id already in the folder without ``update``, and a file name taken by
   another study; every refusal is one line of a single :class:`InputError`, and nothing
   is written;
2. :func:`place` writes all files through temporary files and renames them into place
   only when all are written (:func:`metaresp.files.write_files_atomic`); on any error
   no file is left half-written or changed;
3. :func:`unplace` puts the folder back as it was (``metaresp add`` does so when the
   re-run after the addition fails).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from metaresp.errors import InputError
from metaresp.files import restore_files, write_files_atomic
from metaresp.schema import Study, format_path

__all__ = [
    "Incoming",
    "Placement",
    "diff_studies",
    "place",
    "plan_placements",
    "unplace",
]

Status = Literal["new", "updated", "unchanged"]


@dataclass(frozen=True)
class Incoming:
    """A validated study to put into the folder."""

    study: Study
    text: str | None
    """The file content to write (an extraction file is kept byte for byte); ``None``: the
    study itself is written, as an edit of its existing file that changes only what
    changed (:func:`metaresp._yaml_edit.edit_study`), or in the standard layout
    (:func:`metaresp._yaml.dump_study`) for a new file."""
    source: str
    """Where it came from, as problems name it (a file, or a workbook cell)."""


@dataclass(frozen=True)
class Placement:
    """One study file to write, and what writing it changes."""

    study: str
    target: Path
    text: str
    previous: bytes | None
    """The bytes the target held before (``None``: a new file)."""
    status: Status = "new"
    changes: tuple[str, ...] = ()
    """Field-level changes (``path: old -> new``) when an existing study is replaced."""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def diff_studies(old: Study, new: Study) -> list[str]:
    """Field-level differences ``path: old -> new`` between two versions of a study."""
    lines: list[str] = []

    def walk(a: object, b: object, path: tuple[str | int, ...]) -> None:
        if a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in list(a) + [k for k in b if k not in a]:
                walk(a.get(key), b.get(key), (*path, key))
            return
        if (
            isinstance(a, list | tuple)
            and isinstance(b, list | tuple)
            and any(isinstance(x, dict) for x in (*a, *b))
        ):
            for i in range(max(len(a), len(b))):
                here = format_path((*path, i))
                if i >= len(a):
                    lines.append(f"{here}: added")
                elif i >= len(b):
                    lines.append(f"{here}: removed")
                else:
                    walk(a[i], b[i], (*path, i))
            return
        lines.append(f"{format_path(path)}: {_short(a)} -> {_short(b)}")

    walk(old.model_dump(), new.model_dump(), ())
    return lines


def _exists_message(item: Incoming, file: Path, wording: Literal["corpus", "folder"]) -> str:
    if wording == "corpus":
        return (
            f"{item.source}: id: study {item.study.id!r} is already in the corpus "
            f"({file.as_posix()}); use --update to replace it"
        )
    return (
        f"{item.source}: study {item.study.id!r} already exists in {file}; use --update "
        "to replace it"
    )


def plan_placements(
    folder: Path,
    incoming: Sequence[Incoming],
    existing: Mapping[str, tuple[Study, Path]],
    *,
    update: bool = False,
    wording: Literal["corpus", "folder"] = "folder",
) -> list[Placement]:
    """The file each incoming study goes to, and what writing it changes.

    ``existing`` maps the ids already in ``folder`` to their study and file. Refusals
    (one :class:`InputError`, one line each; see the module docstring) name each study
    by its ``source``; ``wording`` says whether the folder is spoken of as the corpus
    (``metaresp add``) or as the target folder (``metaresp import``).
    """
    problems: list[str] = []
    out: list[Placement] = []
    seen: set[str] = set()
    taken = {file: sid for sid, (_, file) in existing.items()}
    for item in incoming:
        sid = item.study.id
        if sid in seen:
            problems.append(f"{item.source}: id: study {sid!r} is given twice")
            continue
        seen.add(sid)
        if sid in existing:
            old, target = existing[sid]
            if not update:
                problems.append(_exists_message(item, target, wording))
                continue
            changes = tuple(diff_studies(old, item.study))
            status: Status = "updated" if changes else "unchanged"
        else:
            target = folder / f"{sid}.yaml"
            if target in taken:
                problems.append(
                    f"{item.source}: {target} exists and holds another study "
                    f"({taken[target]!r}); rename one of them"
                )
                continue
            if target.exists() and not update:
                problems.append(
                    f"{item.source}: {target} already exists (a file that does not hold a "
                    f"valid study {sid!r}); use --update to replace it"
                )
                continue
            changes, status = (), "new"
        previous = target.read_bytes() if target.exists() else None
        out.append(Placement(sid, target, _text_of(item, previous), previous, status, changes))
    if problems:
        raise InputError(problems)
    return out


def _text_of(item: Incoming, previous: bytes | None) -> str:
    """What to write for ``item`` over a file that held ``previous``."""
    from metaresp._yaml import dump_study
    from metaresp._yaml_edit import edit_study

    if item.text is not None:
        return item.text
    if previous is not None:
        try:
            return edit_study(previous.decode("utf-8"), item.study)
        except UnicodeDecodeError:
            pass
    return dump_study(item.study)


def _changes_bytes(p: Placement) -> bool:
    return p.previous != p.text.encode("utf-8")


def place(placements: Sequence[Placement]) -> None:
    """Write every placement whose file content changes, all or none (temporary files
    first, renamed into place only when all are written)."""
    write_files_atomic([(p.target, p.text) for p in placements if _changes_bytes(p)])


def unplace(placements: Sequence[Placement]) -> None:
    """Undo :func:`place`: restore the previous bytes, or remove a new file."""
    todo = [p for p in placements if _changes_bytes(p)]
    restore_files([p.target for p in todo], [p.previous for p in todo])
