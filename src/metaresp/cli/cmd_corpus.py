"""``metaresp validate`` (check the extraction files) and ``metaresp schema`` (their schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["schema", "validate"]


def validate(
    path: Annotated[
        Path,
        typer.Argument(help="Folder of extraction files (or one file)."),
    ] = Path("extractions"),
) -> None:
    """Validate the extraction files: one line per problem, exit 1 on any error."""
    from metaresp.corpus import check_extractions

    report = check_extractions(path)
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
    from metaresp.files import write_text_atomic

    write_text_atomic(out, text)
    typer.echo(f"wrote {out}")
