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
        Path,
        typer.Option(
            "-o",
            "--out",
            help="Folder for coverage.csv, the heatmap and summary.md "
            "(not under results/, which metaresp run replaces).",
        ),
    ] = Path("simulation"),
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            help="Worker processes of a local Dask cluster (1: in this "
            "process; results do not depend on it).",
        ),
    ] = 1,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Address of a running Dask scheduler (e.g. tcp://host:8786) to run the cells on.",
        ),
    ] = None,
    totals: Annotated[
        str,
        typer.Option(
            "--totals",
            help="Study sizes: uniform (on --min-total..--max-total), "
            "corpus (the evaluable counts of --extractions) or both.",
        ),
    ] = "uniform",
    extractions: Annotated[
        Path,
        typer.Option("--extractions", help="Corpus whose study sizes --totals corpus draws from."),
    ] = Path("extractions"),
    bayes: Annotated[
        bool,
        typer.Option(
            "--bayes/--no-bayes",
            help="Also fit the Bayesian model under its five priors (slower).",
        ),
    ] = False,
    ks: Annotated[
        str | None,
        typer.Option(
            "--k", help="Numbers of studies to simulate, comma-separated (default 2,3,5,10)."
        ),
    ] = None,
    min_total: Annotated[int, typer.Option("--min-total", help="Smallest study total.")] = 5,
    max_total: Annotated[int, typer.Option("--max-total", help="Largest study total.")] = 60,
) -> None:
    """Monte Carlo coverage of the pooled-proportion CIs and prediction intervals.

    Data are drawn from the binomial-normal model over a grid of k (2, 3, 5, 10 studies),
    true median-study proportion p (0.05 to 0.95) and tau (0, 0.5, 1, 1.5 on the logit
    scale); each method (GLMM z/t, REML-logit z/HKSJ/HKSJ ad hoc, DL-logit z, FE-logit z,
    Freeman-Tukey REML HKSJ and, with --bayes, the Bayesian model under five priors) is
    fitted to every replicate. Writes a CSV of the grid, a heatmap of CI coverage and a
    Markdown summary with the rule's choice of default.
    """
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from metaresp import simreport
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
    if totals not in ("uniform", "corpus", "both"):
        problems.append(f"--totals: must be uniform, corpus or both; got {totals!r}")
    if not out.exists() and not out.parent.is_dir():
        problems.append(
            f"--out: {out.parent}: folder not found (the output folder is created only inside "
            "an existing folder)"
        )
    if out.resolve().parts[-1:] == ("results",) or "results" in out.parts[:1]:
        problems.append(f"--out: {out}: metaresp run replaces results/; choose another folder")
    k_values: tuple[int, ...] = sim.FULL_K
    if ks is not None:
        try:
            k_values = tuple(int(v) for v in ks.split(","))
        except ValueError:
            k_values = ()
        if not k_values or min(k_values) < 2:
            problems.append(f"--k: give whole numbers of at least 2, comma-separated; got {ks!r}")
    if problems:
        raise InputError(problems)
    designs = ("uniform", "corpus") if totals == "both" else (totals,)
    corpus: tuple[int, ...] = ()
    if "corpus" in designs:
        if not extractions.is_dir():
            raise InputError(
                f"--extractions: {extractions}: folder not found (needed by --totals corpus)"
            )
        try:
            corpus = sim.corpus_totals(extractions)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    base = sim.quick_grid() if quick else sim.grid(ks=k_values)
    cells = [sim.Cell(c.k, c.p, c.tau, d) for d in designs for c in base]
    methods = tuple(sim.METHODS) if bayes else tuple(sim.FREQUENTIST)
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
            corpus=corpus,
            methods=methods,
            scheduler=scheduler,
            on_cell_done=lambda _cell: progress.advance(task),
        )
    seconds = time.perf_counter() - start
    written = simreport.write_outputs(frame, out, reps=n_reps, seed=seed, seconds=seconds)
    for path in (written.csv, written.heatmap, written.summary):
        typer.echo(str(path))
    console.print(f"done in {seconds:.1f} s")


__all__ = ["simulate"]
