"""``metaresp validate`` (check the extraction files) and ``metaresp schema`` (their schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["schema", "validate"]


def validate(
    extractions: Annotated[
        Path,
        typer.Option("--extractions", help="Folder of extraction files (or one file)."),
    ] = Path("extractions"),
    old_path: Annotated[
        Path | None,
        typer.Argument(
            hidden=True, metavar="[FOLDER]", help="Deprecated: the folder as a positional argument."
        ),
    ] = None,
) -> None:
    """Validate the extraction files: one line per problem, exit 1 on any error (also when
    the folder holds no extraction file). A positional FOLDER still works (deprecated:
    use --extractions)."""
    from metaresp.cli._conventions import deprecated
    from metaresp.corpus import check_extractions
    from metaresp.errors import InputError

    path = deprecated("a positional folder", "--extractions FOLDER", old_path, extractions)
    report = check_extractions(path)
    if not report.files:
        raise InputError(f"{path}: no extraction files (.yaml) found; nothing to validate")
    for problem in report.problems:
        typer.echo(f"{problem.level}: {problem}")
    typer.echo(report.summary())
    if report.errors:
        raise typer.Exit(1)


def schema(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the JSON Schema to this file instead of stdout."),
    ] = None,
) -> None:
    """Print the JSON Schema of the extraction file format (for editors)."""
    import json

    from metaresp.schema import json_schema

    text = json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    from metaresp.cli._conventions import check_parent
    from metaresp.files import write_text_atomic

    check_parent(out, "--out")
    write_text_atomic(out, text)
    typer.echo(f"wrote {out}")
