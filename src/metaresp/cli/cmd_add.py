"""``metaresp add``: validate a new study, place it in the corpus, re-run, show the diff."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["add"]

FILE_ARGUMENT = typer.Argument(help="An extraction file (.yaml) or a workbook (.xlsx).")
EXTRACTIONS_OPTION = typer.Option("--extractions", help="Folder of extraction files.")
RESULTS_OPTION = typer.Option("--results", help="Results folder written by the re-run.")
UPDATE_OPTION = typer.Option("--update", help="Replace a study whose id is already in the corpus.")
FORCE_OPTION = typer.Option(
    "--force",
    help="With --update: replace a study even when its file has edits not yet published.",
)
PLAN_OPTION = typer.Option("--plan", help="Analysis plan (YAML).")
PUBLISHED_OPTION = typer.Option(
    "--published", help="The published state file: compared with, then rewritten."
)


def add(
    file: Annotated[Path, FILE_ARGUMENT],
    extractions: Annotated[Path, EXTRACTIONS_OPTION] = Path("extractions"),
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
    update: Annotated[bool, UPDATE_OPTION] = False,
    plan: Annotated[Path, PLAN_OPTION] = Path("analysis-plan.yaml"),
    published: Annotated[Path, PUBLISHED_OPTION] = Path("published/summary.json"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Add a study to the corpus, re-run the plan and show what changed.

    The new study is validated with the corpus (schema and the rules across files) on a
    temporary copy first; nothing in the corpus changes when that fails. Then the file is
    written into the extractions folder (atomically; an id already there is refused
    unless --update), the plan is run into the results folder, the published state is
    rewritten and the diff against the previous published state is printed. If the run
    or the publishing fails, or the command is interrupted, the corpus, the published
    state and the results folder are put back as they were (an interrupted add is undone,
    or finished when it had published, by the next command). Commands that change the
    corpus run one at a time (a lock in the extractions folder). --update refuses to
    replace a file that differs from the published state (an edit not yet published)
    where the new file changes it again, and lists those fields; --force replaces it
    anyway.
    """
    import json
    import sys

    from metaresp import _faults, living
    from metaresp._journal import journal, recover_project
    from metaresp._lock import project_lock
    from metaresp._writable import require_writable
    from metaresp.plan import load_plan
    from metaresp.runner import SUMMARY_NAME, check_out_folder, run_plan_files

    new = living.read_new_studies(file)
    load_plan(plan)
    check_out_folder(results)
    require_writable(extractions, "the new study", "--extractions")
    require_writable(published.parent, "the published state", "--published")
    with project_lock(extractions):
        for line in recover_project(extractions, results):
            sys.stderr.write(f"note: {line}\n")
        previous, label = living.load_previous(None, published)
        placements, warnings = living.plan_addition(extractions, new, update=update)
        if not force:
            lost = living.unpublished_edits(placements, previous)
            if lost:
                from metaresp.errors import InputError

                raise InputError(lost)
        for line in warnings:
            sys.stderr.write(f"warning: {line}\n")
        files = [(p.target, p.text.encode("utf-8")) for p in placements]
        journaled = [*files, (published, None)]
        with journal(extractions, "add", journaled, commit=published, keep=results):
            living.place(placements)
            _faults.at("add-placed")
            ran = run_plan_files(plan, extractions, results, progress=False)
            _faults.at("add-ran")
            done = living.finish_run(results, published)
            _faults.at("add-published")
        state = living.read_state_file(results / SUMMARY_NAME)

    found = living.compare(previous, state, against=label)
    if as_json:
        typer.echo(json.dumps(living.diff_dict(found), indent=2, ensure_ascii=False))
        return
    for p in placements:
        verb = "replaced" if p.previous is not None else "added"
        typer.echo(f"{verb} {p.target} (study {p.study})")
    typer.echo(ran.message())
    for line in ran.warnings:
        sys.stderr.write(f"note: {line}\n")
    for line in done:
        typer.echo(line)
    typer.echo("")
    typer.echo(living.format_diff(found))
