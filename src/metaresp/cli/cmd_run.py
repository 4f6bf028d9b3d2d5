"""``metaresp run``: the analysis plan on the extractions, into a results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["run"]

PLAN_OPTION = typer.Option("--plan", help="Analysis plan (YAML).")
EXTRACTIONS_OPTION = typer.Option("--extractions", help="Folder of extraction files.")
RESULTS_OPTION = typer.Option(
    "--results",
    help="Results folder (created if missing, inside an existing folder); its contents are "
    "replaced as a whole when the run succeeds.",
)
OLD_OUT_OPTION = typer.Option("--out", hidden=True, help="Deprecated spelling of --results.")


def run(
    plan: Annotated[Path, PLAN_OPTION] = Path("analysis-plan.yaml"),
    extractions: Annotated[Path, EXTRACTIONS_OPTION] = Path("extractions"),
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
    old_out: Annotated[Path | None, OLD_OUT_OPTION] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    published: Annotated[
        Path, typer.Option("--published", help="Published state file (tracked in git).")
    ] = Path("published/summary.json"),
    publish: Annotated[
        bool,
        typer.Option("--publish/--no-publish", help="Copy summary.json to the published state."),
    ] = True,
    pdf: Annotated[
        bool,
        typer.Option(
            "--pdf",
            help="Also print the report to report.pdf with headless Chromium (found on "
            "PATH). Where Chromium or Playwright is missing the run stops before writing "
            "anything and exits 1 with one line saying so.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Redo every fit and figure (ignore the previous run's cache)."
        ),
    ] = False,
    figures: Annotated[
        str | None,
        typer.Option(
            "--figures",
            help="Which analyses get forest and cumulative plots: primary or all (default: "
            "the plan's 'figures', itself primary unless set).",
        ),
    ] = None,
) -> None:
    """Run the analysis plan on the extractions and write results/.

    Writes, per primary analysis (per analysis with --figures all or the plan's
    'figures: all'), a forest plot (figures/NAME.png at 300 dpi and figures/NAME.svg);
    for all analyses the pooled tables (pooled.csv, pooled.xlsx, pooled.md), the records
    set aside with their reasons (set-aside.csv), summary.json (every estimate, for the
    living-update diff) and report.html; then the cumulative analyses by date
    (cumulative.csv, figures/cumulative/), reproduce.R (the estimates recreated with R's
    metafor) and a copy of summary.json as the published
    state (published/summary.json, kept in git; --no-publish skips it). The results are
    built in a temporary folder and moved into place only when the whole run succeeded
    (what an interrupted run left is cleaned up first; a results folder that is a mount
    point is filled in place).
    An analysis whose records, settings and figures are unchanged since the last run is
    taken from that run (its cache in results/.cache/), not refitted and redrawn;
    --force redoes everything.
    """
    import sys

    from metaresp._journal import recover_project
    from metaresp._lock import project_lock
    from metaresp._run_figures import figure_scope
    from metaresp._writable import require_writable
    from metaresp.cli._conventions import deprecated
    from metaresp.errors import InputError
    from metaresp.living import finish_run
    from metaresp.runner import run_plan_files

    out = deprecated("--out", "--results", old_out, results)
    scope = None if figures is None else figure_scope(figures, "--figures")
    if pdf:
        from metaresp._report_pdf import pdf_unavailable

        missing = pdf_unavailable()
        if missing:
            raise InputError(f"--pdf: report.pdf cannot be written here: {missing}")
    if publish:
        require_writable(published.parent, "the published state", "--published")
    from metaresp.plan import load_plan

    load_plan(plan)  # a mistake in the plan is told at once, not after waiting for the lock
    with project_lock(extractions):
        for line in recover_project(extractions, out):
            sys.stderr.write(f"note: {line}\n")
        written = run_plan_files(
            plan,
            extractions,
            out,
            progress=not quiet,
            published=published,
            force=force,
            figures=scope,
        )
        done = finish_run(out, published if publish else None)
    typer.echo(written.message())
    for line in written.warnings:
        sys.stderr.write(f"note: {line}\n")
    for line in done:
        typer.echo(line)
    if pdf:
        from metaresp._report_pdf import write_pdf

        typer.echo(f"wrote {write_pdf(out / 'report.html', out / 'report.pdf')}")
