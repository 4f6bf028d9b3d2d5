"""``metaresp validate`` (check the extraction files) and ``metaresp schema`` (their schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


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
    import os
    import tempfile

    from metaresp.schema import json_schema

    text = json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    typer.echo(f"wrote {out}")
