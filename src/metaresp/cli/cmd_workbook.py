"""``metaresp template``, ``metaresp import`` and ``metaresp export``: the corpus as a workbook.

The layout and its conventions are described in :mod:`metaresp.workbook` and on the
README sheet of every workbook these commands write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["export", "import_", "template"]


OUT_OPTION = typer.Option("-o", "--out", help="The workbook to write (.xlsx).")
OLD_OUT_ARGUMENT = typer.Argument(
    hidden=True,
    metavar="[FILE]",
    help="Deprecated: the workbook as a positional argument (use -o/--out).",
)


def _target(out: Path | None, old: Path | None, force: bool) -> Path:
    """The workbook to write: ``-o/--out`` (or the deprecated positional), checked."""
    from metaresp.cli._conventions import check_parent, deprecated
    from metaresp.errors import InputError

    chosen = deprecated("a positional workbook", "-o/--out FILE", old, out) if out is None else out
    if chosen is None:
        raise InputError("-o/--out: give the workbook to write, e.g. -o extractions.xlsx")
    check_parent(chosen, "--out")
    _check_target(chosen, force)
    return chosen


def _check_target(out: Path, force: bool) -> None:
    from metaresp.errors import InputError

    if out.is_dir():
        raise InputError(f"{out}: is a folder; give a file name ending in .xlsx")
    if out.exists() and out.stat().st_size > 0 and not force:
        raise InputError(f"{out}: already exists; use --force to overwrite it")


def template(
    out: Annotated[Path | None, OUT_OPTION] = None,
    old_out: Annotated[Path | None, OLD_OUT_ARGUMENT] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the file if it exists.")
    ] = False,
) -> None:
    """Write an empty extraction workbook (Studies, Outcomes, README) with one example row.

    A positional FILE still works (deprecated: use -o/--out)."""
    from metaresp.workbook import write_template

    target = _target(out, old_out, force)
    write_template(target)
    typer.echo(f"wrote {target}")


def import_(
    book: Annotated[Path, typer.Argument(help="The extraction workbook (.xlsx) to import.")],
    extractions: Annotated[
        Path,
        typer.Option(
            "--extractions",
            help="Folder of extraction files to write into (created if missing, inside an "
            "existing folder).",
        ),
    ] = Path("extractions"),
    old_to: Annotated[
        Path | None, typer.Option("--to", hidden=True, help="Deprecated spelling of --extractions.")
    ] = None,
    update: Annotated[
        bool,
        typer.Option("--update", help="Replace studies that already exist and print the changes."),
    ] = False,
) -> None:
    """Validate a workbook and write one extraction file per study (nothing on any error)."""
    import sys

    from metaresp._journal import recover_project
    from metaresp._lock import project_lock
    from metaresp._writable import require_writable
    from metaresp.cli._conventions import deprecated
    from metaresp.errors import InputError
    from metaresp.workbook import import_workbook

    to = deprecated("--to", "--extractions", old_to, extractions)
    if not to.exists() and not to.parent.is_dir():
        raise InputError(
            f"--extractions: {to.parent}: folder not found (the extractions folder is created "
            "only inside an existing folder)"
        )
    require_writable(to, "the imported studies", "--extractions")
    with project_lock(to):
        for line in recover_project(to):
            sys.stderr.write(f"note: {line}\n")
        result = import_workbook(book, to, update=update)
    for line in result.warnings:
        typer.echo(f"warning: {line}")
    for change in result.changes:
        if change.status == "new":
            typer.echo(f"wrote {change.file}")
        elif change.status == "unchanged":
            typer.echo(f"unchanged {change.file}")
        else:
            typer.echo(f"updated {change.file}:")
            for line in change.changes:
                typer.echo(f"  {line}")
    counts = {s: sum(c.status == s for c in result.changes) for s in ("new", "updated")}
    n = len(result.changes)
    typer.echo(
        f"imported {n} stud{'y' if n == 1 else 'ies'} into {to}: {counts['new']} new, "
        f"{counts['updated']} updated, {n - counts['new'] - counts['updated']} unchanged"
    )


def export(
    out: Annotated[Path | None, OUT_OPTION] = None,
    old_out: Annotated[Path | None, OLD_OUT_ARGUMENT] = None,
    extractions: Annotated[
        Path, typer.Option("--extractions", help="Folder of extraction files to export.")
    ] = Path("extractions"),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the file if it exists.")
    ] = False,
) -> None:
    """Write the whole corpus to a workbook in the import layout.

    A positional FILE still works (deprecated: use -o/--out)."""
    from metaresp.corpus import load_extractions
    from metaresp.errors import InputError
    from metaresp.workbook import write_workbook

    target = _target(out, old_out, force)
    if not extractions.is_dir():
        raise InputError(f"{extractions}: extractions folder not found")
    corpus = load_extractions(extractions)
    if len(corpus) == 0:
        raise InputError(f"{extractions}: no extraction files in the folder; nothing to export")
    write_workbook(corpus, target)
    typer.echo(f"wrote {target}: {len(corpus)} studies, {corpus.n_records} outcome records")
