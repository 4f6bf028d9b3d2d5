"""``metaresp import``: a workbook's studies into the extraction folder, all or nothing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from metaresp._journal import place_journaled
from metaresp.corpus import Problem, check_extractions
from metaresp.errors import InputError
from metaresp.intake import Incoming, plan_placements
from metaresp.schema import Study
from metaresp.workbook._reader import _parse_book, _rules

__all__ = ["Change", "ImportResult", "import_workbook"]


@dataclass(frozen=True)
class Change:
    """What importing one study did to the folder."""

    study: str
    file: Path
    status: Literal["new", "updated", "unchanged"]
    changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportResult:
    """Per study what changed, and the warnings found (one line each)."""

    changes: tuple[Change, ...]
    warnings: tuple[str, ...]


def import_workbook(
    book: str | os.PathLike[str],
    to: str | os.PathLike[str] = "extractions",
    *,
    update: bool = False,
) -> ImportResult:
    """Validate ``book`` against itself and the studies already in ``to``; then write one
    extraction file per study (``<id>.yaml``), all only if nothing is wrong
    (:mod:`metaresp.intake`).

    Without ``update`` a study id already in ``to`` is an error; with it the study's file is
    replaced and the field-level changes are returned. Raises :class:`InputError` (one line
    per problem, nothing written) on any error.
    """
    folder = Path(to)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: --to must be a folder")
    parsed = _parse_book(book)
    existing: dict[str, tuple[Study, Path]] = {}
    others: list[Study] = []
    other_files: list[str] = []
    folder_errors: list[Problem] = []
    incoming = {s.id for s in parsed.studies}
    if folder.is_dir():
        report = check_extractions(folder)
        for known, known_file in zip(report.studies, report.study_files, strict=True):
            existing.setdefault(known.id, (known, Path(known_file)))
            if known.id not in incoming:
                others.append(known)
                other_files.append(known_file)
        replaced = {existing[i][1].as_posix() for i in incoming if i in existing and update}
        if update:
            replaced |= {(folder / f"{i}.yaml").as_posix() for i in incoming}
        folder_errors = [p for p in report.errors if p.file not in replaced]

    items = [
        Incoming(study, None, cells[("id",)])
        for study, cells in zip(parsed.studies, parsed.cells, strict=True)
    ]
    problems: list[str] = list(parsed.problems)
    placements = []
    try:
        placements = plan_placements(folder, items, existing, update=update)
    except InputError as exc:
        problems.extend(exc.problems)
    errors, warnings = _rules(parsed, others, other_files)
    problems.extend(errors)
    problems.extend(
        f"{p} (in the target folder; fix it first: metaresp validate {folder})"
        for p in folder_errors
    )
    if problems:
        raise InputError(problems)
    place_journaled(folder, "import", placements)
    changes = tuple(Change(p.study, p.target, p.status, p.changes) for p in placements)
    return ImportResult(changes, tuple(parsed.warnings + warnings))
