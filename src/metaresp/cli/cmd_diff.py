"""``metaresp diff``: which pooled estimates changed since the published state, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["diff"]

AGAINST_OPTION = typer.Option(
    "--against",
    help="'published' (the published state file, the default), 'run' (the summary.json "
    "of the last run in the results folder, published or not), a summary JSON file, or a "
    "git revision (the published state file as of that revision).",
)
LAST_RUN_OPTION = typer.Option(
    "--last-run", help="Results folder of the last run (for --against run)."
)
RESULTS_OPTION = typer.Option(
    "--results",
    help="Compare the summary.json of this results folder instead of running the plan "
    "on the extractions.",
)
PUBLISHED_OPTION = typer.Option("--published", help="The published state file.")
PLAN_OPTION = typer.Option("--plan", help="Analysis plan (YAML).")
EXTRACTIONS_OPTION = typer.Option("--extractions", help="Folder of extraction files.")


def diff(
    against: Annotated[str | None, AGAINST_OPTION] = None,
    results: Annotated[Path | None, RESULTS_OPTION] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
    plan: Annotated[Path, PLAN_OPTION] = Path("analysis-plan.yaml"),
    extractions: Annotated[Path, EXTRACTIONS_OPTION] = Path("extractions"),
    published: Annotated[Path, PUBLISHED_OPTION] = Path("published/summary.json"),
    last_run: Annotated[Path, LAST_RUN_OPTION] = Path("results"),
) -> None:
    """Show which pooled estimates changed since the published state, and why.

    Runs the plan on the extractions in memory (nothing is written) and compares every
    estimate with the published state: estimates that changed (old -> new, CI, k), new and
    vanished ones, the records added, removed or edited (every changed field, old -> new)
    and the estimates each moved, confidence intervals that crossed a threshold of the
    plan, and a changelog to paste (one line per moved estimate). --against run compares
    with the last run instead, which shows edits made since then even when that run was
    not published.
    """
    import json

    from metaresp import living

    previous: dict[str, Any] | None
    if against == "run":
        summary = last_run / living.SUMMARY_NAME
        if not summary.is_file():
            from metaresp.errors import InputError

            raise InputError(f"--against run: {summary} not found (run metaresp run first)")
        previous, label = living.read_state_file(summary), f"the last run ({summary})"
    else:
        previous, label = living.load_previous(
            None if against == "published" else against, published
        )
    if results is not None:
        current = living.read_state_file(results / living.SUMMARY_NAME)
    else:
        current = living.current_state(plan, extractions)
    found = living.compare(previous, current, against=label)
    if as_json:
        typer.echo(json.dumps(living.diff_dict(found), indent=2, ensure_ascii=False))
    else:
        typer.echo(living.format_diff(found))
