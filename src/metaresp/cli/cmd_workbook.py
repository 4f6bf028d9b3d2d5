"""``metaresp template``, ``metaresp import`` and ``metaresp export``: the corpus as a workbook.

The layout and its conventions are described in :mod:`metaresp.workbook` and on the
README sheet of every workbook these commands write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["export", "import_", "template"]


def _check_target(out: Path, force: bool) -> None:
    from metaresp.errors import InputError

    if out.is_dir():
        raise InputError(f"{out}: is a folder; give a file name ending in .xlsx")
    if out.exists() and out.stat().st_size > 0 and not force:
        raise InputError(f"{out}: already exists; use --force to overwrite it")


def template(
    out: Annotated[Path, typer.Argument(help="The workbook to write (.xlsx).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
) -> None:
    """Write an empty extraction workbook (Studies, Outcomes, README) with one example row."""
    from metaresp.workbook import write_template

    _check_target(out, force)
    write_template(out)
    typer.echo(f"wrote {out}")


def import_(
    book: Annotated[Path, typer.Argument(help="The extraction workbook (.xlsx) to import.")],
    to: Annotated[
        Path, typer.Option("--to", help="Folder of extraction files to write into.")
    ] = Path("extractions"),
    update: Annotated[
        bool,
        typer.Option("--update", help="Replace studies that already exist and print the changes."),
    ] = False,
) -> None:
    """Validate a workbook and write one extraction file per study (nothing on any error)."""
    import sys

    from metaresp._journal import recover_project
    from metaresp._lock import project_lock
    from metaresp.workbook import import_workbook

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
    out: Annotated[Path, typer.Argument(help="The workbook to write (.xlsx).")],
    extractions: Annotated[
        Path, typer.Option("--extractions", help="Folder of extraction files to export.")
    ] = Path("extractions"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
) -> None:
    """Write the whole corpus to a workbook in the import layout."""
    from metaresp.corpus import load_extractions
    from metaresp.workbook import write_workbook

    _check_target(out, force)
    corpus = load_extractions(extractions)
    write_workbook(corpus, out)
    typer.echo(f"wrote {out}: {len(corpus)} studies, {corpus.n_records} outcome records")
