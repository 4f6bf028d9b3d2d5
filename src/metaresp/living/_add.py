"""Adding a study: read it, check it with the corpus, and place it (``metaresp add``).

The files are written by :mod:`metaresp.intake`, the same way ``metaresp import`` writes
them (all or nothing, through temporary files).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metaresp.errors import InputError
from metaresp.intake import Incoming, Placement, place, plan_placements, unplace
from metaresp.schema import Study

__all__ = [
    "Placement",
    "place",
    "plan_addition",
    "read_new_studies",
    "unplace",
    "unpublished_edits",
]

_EXTRACTION_SUFFIXES = (".yaml", ".yml")
_WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")


def read_new_studies(path: Path) -> list[Incoming]:
    """The studies of an extraction file or a workbook, each with the text to write and
    its source name for messages. An extraction file is kept byte for byte (comments
    included); a workbook's studies are written as edits of their existing files (only
    what changed) or, when new, with :func:`metaresp.corpus.dump_study`.
    File-level errors raise :class:`InputError`."""
    from metaresp.corpus import parse_study

    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix in _EXTRACTION_SUFFIXES:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror})") from None
        study, _, problems = parse_study(text, str(path))
        errors = [str(p) for p in problems if p.level == "error"]
        if errors or study is None:
            raise InputError(errors or [f"{path}: not a valid extraction file"])
        return [Incoming(study, text, str(path))]
    if suffix in _WORKBOOK_SUFFIXES:
        from metaresp.workbook import read_workbook

        corpus = read_workbook(path)
        return [Incoming(s, None, f"{path} (study {s.id})") for s in corpus.studies]
    raise InputError(f"{path}: expected an extraction file (.yaml, .yml) or a workbook (.xlsx)")


def plan_addition(
    extractions: Path, new: Sequence[Incoming], *, update: bool = False
) -> tuple[list[Placement], list[str]]:
    """Check the new studies against the corpus without touching it.

    The placements come from :func:`metaresp.intake.plan_placements` (a study id already
    in the corpus is refused unless ``update``: its file is replaced). Then the corpus is
    copied to a temporary folder, the new files are written there, and the copy is
    validated as a whole (:func:`metaresp.corpus.check_extractions`: schema and the rules
    across files). Returns the placements and the warnings that concern the new files;
    any error raises :class:`InputError`, one line each, naming the new file.
    """
    from metaresp.corpus import check_extractions

    if not extractions.is_dir():
        raise InputError(f"{extractions}: extractions folder not found")
    before = check_extractions(extractions)
    if before.errors:
        raise InputError(
            [
                f"{extractions}: the corpus has errors before adding anything; "
                "fix them first (metaresp validate):",
                *(str(p) for p in before.errors),
            ]
        )
    existing: dict[str, tuple[Study, Path]] = {}
    for s, f in zip(before.studies, before.study_files, strict=True):
        existing.setdefault(s.id, (s, extractions / Path(f).name))
    placements = plan_placements(extractions, new, existing, update=update, wording="corpus")

    sources = {p.target.name: item.source for p, item in zip(placements, new, strict=True)}
    ids = {item.study.id for item in new}
    with tempfile.TemporaryDirectory(prefix="metaresp-add-") as tmp:
        copy = Path(tmp)
        for name in before.files:
            shutil.copyfile(name, copy / Path(name).name)
        for p in placements:
            (copy / p.target.name).write_text(p.text, encoding="utf-8", newline="")
        after = check_extractions(copy)
        inside = re.compile(re.escape(copy.as_posix() + "/") + r"([^:\s)/]+)")

        def shown(problem: Any) -> str:
            """The problem with the temporary folder's paths turned back into ours."""
            return inside.sub(
                lambda m: sources.get(m[1], (extractions / m[1]).as_posix()), str(problem)
            )

        errors = [shown(p) for p in after.errors]
        warnings = [
            shown(p)
            for p in after.warnings
            if Path(p.file).name in sources or any(s in str(p) for s in ids)
        ]
    if errors:
        raise InputError(errors)
    return placements, warnings


def unpublished_edits(
    placements: Sequence[Placement], published: dict[str, Any] | None
) -> list[str]:
    """What replacing the files of ``placements`` would lose: for each study whose file
    differs from the ``published`` state (edits made since the last published run), the
    records whose unpublished content the new file changes again, field by field. Empty
    when nothing would be lost (or nothing is published yet)."""
    from metaresp.corpus import Corpus, parse_study
    from metaresp.living._diff import _field_changes
    from metaresp.living._state import RECORDS_KEY, TEXTS_KEY, record_table

    if published is None or not isinstance(published.get(RECORDS_KEY), dict):
        return []
    known: dict[str, Any] = published[RECORDS_KEY]

    def records(text: str, source: str) -> dict[str, dict[str, Any]]:
        study, _, _ = parse_study(text, source)
        if study is None:
            return {}
        return record_table(Corpus(studies=(study,), files=(source,)).to_frame())

    lines: list[str] = []
    for p in placements:
        if p.previous is None:
            continue
        try:
            now = records(p.previous.decode("utf-8"), str(p.target))
        except UnicodeDecodeError:
            continue
        coming = records(p.text, str(p.target))
        was = {rid: e for rid, e in known.items() if rid.split("/")[0] == p.study}
        lost: list[str] = []
        for rid in sorted(set(now) | set(was)):
            here, then, after = now.get(rid), was.get(rid), coming.get(rid)
            if here == then or after == here:
                continue  # published as it is, or the new file keeps the edit
            if then is None:
                lost.append(f"{rid}: added since the last publication")
            elif here is None:
                lost.append(f"{rid}: removed since the last publication")
            else:

                def now_in(entry: Mapping[str, Any], name: str) -> Any:
                    if name in entry:
                        return entry.get(name)
                    return (entry.get(TEXTS_KEY) or {}).get(name)

                fields = [
                    "a text field (quote, location, note or citation)"
                    if f.field == "text"
                    else f"{f.field} {f.old} (published) → {f.new} (in the file now)"
                    for f in _field_changes(then, here)
                    if f.field == "text" or now_in(after or {}, f.field) != f.new
                ]
                if fields:
                    lost.append(f"{rid}: " + "; ".join(fields))
        if lost:
            lines.append(
                f"{p.target}: has edits not yet published that --update would overwrite "
                "(use --force to overwrite them): " + " | ".join(lost)
            )
    return lines
