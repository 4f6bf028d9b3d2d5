"""``metaresp run``: the analysis plan on the extractions, into a results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["run"]

PLAN_OPTION = typer.Option("--plan", help="Analysis plan (YAML).")
EXTRACTIONS_OPTION = typer.Option("--extractions", help="Folder of extraction files.")
OUT_OPTION = typer.Option(
    "--out", help="Results folder; its contents are replaced as a whole when the run succeeds."
)


def run(
    plan: Annotated[Path, PLAN_OPTION] = Path("analysis-plan.yaml"),
    extractions: Annotated[Path, EXTRACTIONS_OPTION] = Path("extractions"),
    out: Annotated[Path, OUT_OPTION] = Path("results"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    published: Annotated[
        Path, typer.Option("--published", help="Published state file (tracked in git).")
    ] = Path("published/summary.json"),
    publish: Annotated[
        bool,
        typer.Option("--publish/--no-publish", help="Copy summary.json to the published state."),
    ] = True,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Redo every fit and figure (ignore the previous run's cache)."
        ),
    ] = False,
) -> None:
    """Run the analysis plan on the extractions and write results/.

    Writes, per analysis, a forest plot (figures/NAME.png at 300 dpi and figures/NAME.svg);
    for all analyses the pooled tables (pooled.csv, pooled.xlsx, pooled.md), the records
    set aside with their reasons (set-aside.csv), summary.json (every estimate, for the
    living-update diff) and report.html; then the cumulative analyses by date
    (cumulative.csv, figures/cumulative/) and a copy of summary.json as the published
    state (published/summary.json, kept in git; --no-publish skips it). The results are
    built in a temporary folder and moved into place only when the whole run succeeded.
    An analysis whose records, settings and figures are unchanged since the last run is
    taken from that run (its cache in results/.cache/), not refitted and redrawn;
    --force redoes everything.
    """
    from metaresp.living import finish_run
    from metaresp.runner import run_plan_files

    written = run_plan_files(plan, extractions, out, progress=not quiet, force=force)
    done = finish_run(out, published if publish else None)
    typer.echo(written.message())
    for line in done:
        typer.echo(line)
