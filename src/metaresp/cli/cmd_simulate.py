"""``metaresp simulate``: coverage simulation of the interval methods."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from metaresp.errors import InputError


def simulate(
    quick: Annotated[
        bool, typer.Option("--quick", help="Small grid (k 2 and 5, p 0.2 and 0.5, tau 0 and 1).")
    ] = False,
    reps: Annotated[
        int | None,
        typer.Option("--reps", help="Replicates per cell [default: 2000; 200 with --quick]."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random streams.")] = 20240607,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for coverage.csv, the heatmap and summary.md.")
    ] = Path("results/simulation"),
    jobs: Annotated[
        int, typer.Option("--jobs", help="Worker processes (results do not depend on it).")
    ] = 1,
    min_total: Annotated[int, typer.Option("--min-total", help="Smallest study total.")] = 5,
    max_total: Annotated[int, typer.Option("--max-total", help="Largest study total.")] = 60,
) -> None:
    """Monte Carlo coverage of the pooled-proportion CIs and prediction intervals.

    Data are drawn from the binomial-normal model over a grid of k (2, 3, 5, 10 studies),
    true median-study proportion p (0.05 to 0.95) and tau (0, 0.5, 1 on the logit scale);
    each method (GLMM z/t, REML-logit z/HKSJ/HKSJ ad hoc, DL-logit z, FE-logit z,
    Freeman-Tukey REML HKSJ) is fitted to every replicate. Writes a CSV of the grid, a
    heatmap of CI coverage and a Markdown summary.
    """
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from metaresp import simulate as sim

    problems = []
    n_reps = reps if reps is not None else (sim.QUICK_REPS if quick else sim.DEFAULT_REPS)
    if n_reps < 1:
        problems.append(f"--reps: must be at least 1, got {n_reps}")
    if jobs < 1:
        problems.append(f"--jobs: must be at least 1, got {jobs}")
    if not 1 <= min_total <= max_total:
        problems.append(
            f"--min-total/--max-total: need 1 <= min <= max, got {min_total} and {max_total}"
        )
    if problems:
        raise InputError(problems)
    cells = sim.quick_grid() if quick else sim.grid()
    console = Console(stderr=True)
    start = time.perf_counter()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(f"simulating {len(cells)} cells x {n_reps} reps", total=len(cells))
        frame = sim.run_grid(
            cells,
            n_reps,
            seed,
            jobs=jobs,
            totals=(min_total, max_total),
            on_cell_done=lambda _cell: progress.advance(task),
        )
    seconds = time.perf_counter() - start
    written = sim.write_outputs(frame, out, reps=n_reps, seed=seed, seconds=seconds)
    for path in (written.csv, written.heatmap, written.summary):
        typer.echo(str(path))
    console.print(f"done in {seconds:.1f} s")


__all__ = ["simulate"]
