"""The main job behind ``metaresp run``: plan + extractions -> a complete results folder.

Steps: read and validate the plan and the corpus, run every analysis
(:mod:`metaresp.analysis`), then write into a fresh temporary folder beside the target:

- ``figures/<analysis>.png`` (300 dpi) and ``.svg``: one forest plot per analysis that has
  at least one record;
- ``pooled.csv``, ``pooled.xlsx``, ``pooled.md`` and ``set-aside.csv`` (:mod:`metaresp.tables`);
- ``summary.json``: every estimate with the record ids it used (the published state that
  the living-update diff compares against);
- ``reproduce.R``: an R script recreating every pooled estimate with metafor
  (:mod:`metaresp.reproduce`);
- ``report.html`` (:mod:`metaresp.report`, when available);
- for a plan with ``regressions:``, ``regressions.csv``, their entries in ``summary.json``
  and bubble plots (:mod:`metaresp.regressions`).

Only when all of that succeeded does the temporary folder replace the results folder, so a
failure leaves the previous results untouched and no half-written folder behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaresp import _faults
from metaresp.analysis import AnalysisResult, run_analysis
from metaresp.errors import InputError
from metaresp.files import atomic_folder
from metaresp.living._state import (
    PUBLISHED_PATH,
    SUMMARY_NAME,
    build_state,
    corpus_version,
    state_meta,
    state_text,
)
from metaresp.plan import Plan, load_plan
from metaresp.records import records_from_corpus

if TYPE_CHECKING:  # pragma: no cover
    from metaresp._report_run import ReportContext
    from metaresp.corpus import Corpus

__all__ = [
    "FIGURE_WORKERS",
    "MARKER_NAMES",
    "SUMMARY_NAME",
    "RunOutput",
    "check_out_folder",
    "corpus_version",
    "run_analyses",
    "run_plan",
    "run_plan_files",
]

FIGURE_WORKERS = 2
"""Processes drawing figures at once (the reference machine has 2 cores)."""
MARKER_NAMES = (SUMMARY_NAME, "pooled.csv")
"""A folder holding one of these is taken to be an earlier results folder (safe to replace)."""


@dataclass(frozen=True)
class RunOutput:
    """What a run wrote."""

    out: Path
    results: tuple[AnalysisResult, ...]
    files: tuple[str, ...]
    seconds: float
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def message(self) -> str:
        pooled = sum(1 for r in self.results for g in r.pooled.groups if g.result is not None)
        aside = sum(len(r.set_aside) for r in self.results)
        return (
            f"{len(self.results)} analyses, {pooled} pooled estimates, {aside} records set "
            f"aside; wrote {len(self.files)} files to {self.out} in {self.seconds:.1f} s"
        )


def check_out_folder(out: Path) -> None:
    """Refuse to replace a folder that does not look like earlier results."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --results exists and is not a folder")
    if not out.exists() and not out.parent.is_dir():
        raise InputError(
            f"--results: {out.parent}: folder not found (the results folder is created only "
            "inside an existing folder)"
        )
    if out.is_dir() and any(out.iterdir()) and not any((out / n).exists() for n in MARKER_NAMES):
        raise InputError(
            f"{out}: --results is a non-empty folder without earlier results "
            f"({' or '.join(MARKER_NAMES)}); choose another folder or empty it"
        )


def run_plan(
    plan: str | Path = "analysis-plan.yaml",
    extractions: str | Path = "extractions",
    out: str | Path = "results",
    *,
    progress: bool = False,
) -> RunOutput:
    """What ``metaresp run`` does, from Python: run the analysis plan on the extraction
    folder and replace ``out`` with the pooled tables, forest plots, report and
    ``summary.json`` (atomically: a failure leaves the old results whole). Returns what was
    written, with every :class:`~metaresp.analysis.AnalysisResult`. To pool without writing
    files, use :func:`run_analyses` with :func:`metaresp.load_plan` and
    :func:`metaresp.load_extractions`."""
    return run_plan_files(Path(plan), Path(extractions), Path(out), progress=progress)


def run_analyses(plan: Plan, corpus: Corpus) -> list[AnalysisResult]:
    """Every analysis of ``plan`` on a loaded corpus (no files written)."""
    records = records_from_corpus(corpus)
    return [run_analysis(a, records) for a in plan.expanded()]


def _write_report(
    folder: Path,
    results: Sequence[AnalysisResult],
    title: str,
    version: str,
    figures: dict[str, tuple[Path, ...]],
    context: ReportContext | None = None,
) -> None:
    """Write report.html (:mod:`metaresp.report`): per analysis its forest data, figure and
    notes; the records pooled and the records set aside with their reasons; with
    ``context`` the header, certainty settings and changes (:mod:`metaresp._report_run`)."""
    import pandas as pd

    from metaresp import __version__
    from metaresp.report import ReportAnalysis, ReportFigure, write_report

    analyses: list[ReportAnalysis] = []
    included: list[dict[str, Any]] = []
    for result in results:
        a = result.analysis
        figs: tuple[ReportFigure, ...] = ()
        if a.name in figures:
            files = figures[a.name]
            pages = list(zip(files[0::2], files[1::2], strict=True))
            figs = tuple(
                ReportFigure.from_files(
                    f"Forest plot: {a.title}"
                    + (f" (page {i} of {len(pages)})" if len(pages) > 1 else ""),
                    png=png,
                    svg=svg,
                )
                for i, (png, svg) in enumerate(pages, 1)
            )
        description = a.description or (
            f"{a.outcome}; population {', '.join(a.population)}; setting "
            f"{', '.join(a.setting)}; unit {', '.join(a.unit)}; model {a.model.describe()}."
        )
        analyses.append(
            ReportAnalysis(
                title=a.title,
                description=description,
                forest=None if result.empty else result.forest_data(),
                figures=figs,
                warnings=tuple(result.pooled.notes) if result.empty else (),
                name=a.name,
                role=a.role,
                sensitivity_of=a.sensitivity_of,
                other_family=context is not None and a.name in context.other_family,
            )
        )
        for g in result.pooled.groups:
            for r in g.records:
                included.append(
                    {
                        "analysis": a.name,
                        "record_id": r.record_id,
                        "subgroup": g.name,
                        "study": r.label,
                        "unit": r.unit,
                        "responders": r.events,
                        "evaluable": r.total,
                    }
                )
    excluded = pd.DataFrame(
        [
            {
                "analysis": r.analysis.name,
                "record_id": s.record_id,
                "study": s.label,
                "subgroup": s.subgroup or "",
                "reason": s.reason,
            }
            for r in results
            for s in r.set_aside
        ],
        columns=["analysis", "record_id", "study", "subgroup", "reason"],
    )
    write_report(
        folder / "report.html",
        title=title,
        corpus_version=version,
        analyses=analyses,
        included=pd.DataFrame(
            included,
            columns=[
                "analysis",
                "record_id",
                "subgroup",
                "study",
                "unit",
                "responders",
                "evaluable",
            ],
        ),
        excluded=excluded,
        generated=f"metaresp {__version__}",
        **({} if context is None else context.report_kwargs()),
    )


def run_plan_files(
    plan_path: Path,
    extractions: Path,
    out: Path,
    *,
    progress: bool = True,
    published: Path | None = PUBLISHED_PATH,
) -> RunOutput:
    """Run ``plan_path`` on ``extractions`` and replace ``out`` with the results; the
    report says what changed since the state at ``published`` (``None``: not compared)."""
    started = time.perf_counter()
    plan = load_plan(plan_path)
    if not extractions.is_dir():
        raise InputError(f"{extractions}: extractions folder not found")
    check_out_folder(out)
    with _figure_pool() as pool:
        return _run_into(plan, plan_path, extractions, out, progress, pool, started, published)


def _run_into(
    plan: Plan,
    plan_path: Path,
    extractions: Path,
    out: Path,
    progress: bool,
    pool: Executor | None,
    started: float,
    published: Path | None = None,
) -> RunOutput:
    from metaresp.corpus import load_extractions

    corpus = load_extractions(extractions)
    if not corpus.studies:
        raise InputError(f"{extractions}: no extraction files in the folder; nothing to run")
    analyses = plan.expanded()
    results: list[AnalysisResult] = []
    notes: list[str] = []

    with atomic_folder(out) as tmp:
        # the figures are counted in once it is known how many there are
        with _Progress(progress, total=2 * len(analyses) + 2) as bar:
            frame = corpus.to_frame()
            records = records_from_corpus(corpus)
            for analysis in analyses:
                bar.step(f"pooling {analysis.name}")
                results.append(run_analysis(analysis, records))
            figures = _draw_figures(tmp, results, bar, pool)
            bar.step("writing tables")
            from metaresp.tables import write_tables

            write_tables(results, tmp)
            meta = state_meta(plan_path, plan.title, extractions, len(corpus.studies), len(frame))
            version = str(meta["corpus_version"])
            state = build_state(results, frame, **meta)
            if plan.regressions:
                from metaresp.regressions import (
                    regression_state,
                    run_regressions,
                    write_regressions,
                )

                outcomes = run_regressions(plan.regressions, results)
                write_regressions(tmp, outcomes)
                state["regressions"] = regression_state(outcomes)
            (tmp / SUMMARY_NAME).write_text(state_text(state), encoding="utf-8")
            from metaresp.reproduce import REPRODUCE_NAME, reproduce_script

            (tmp / REPRODUCE_NAME).write_text(reproduce_script(results), encoding="utf-8")
            bar.step("writing the report")
            from metaresp._report_run import report_context

            context = report_context(plan, results, state, version, published)
            _write_report(tmp, results, plan.title, version, figures, context)
        files = tuple(sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()))
    return RunOutput(
        out=out,
        results=tuple(results),
        files=files,
        seconds=time.perf_counter() - started,
        warnings=tuple(notes),
    )


def _save_one(job: tuple[str, Any, Path, Path]) -> None:
    from metaresp.forest import save_cumulative, save_forest

    kind, data, png, svg = job
    if kind == "forest":
        save_forest(data, png, svg)
    else:
        save_cumulative(
            data.rows, png, svg, title=data.title, outcome=data.outcome, model_note=data.model_note
        )


def _draw_figures(
    folder: Path, results: Sequence[AnalysisResult], bar: _Progress, pool: Executor | None
) -> dict[str, tuple[Path, ...]]:
    """Draw every figure; on a machine with more than one core, in worker processes."""
    figures: dict[str, tuple[Path, ...]] = {}
    jobs: list[tuple[str, Any, Path, Path]] = []
    (folder / "figures").mkdir()
    for result in results:
        if result.empty:
            bar.step(f"no figure for {result.analysis.name}")
            continue
        png = folder / "figures" / f"{result.analysis.name}.png"
        svg = png.with_suffix(".svg")
        jobs.append(("forest", result.forest_data(), png, svg))
        figures[result.analysis.name] = (png, svg)
    from metaresp.cumulative import write_cumulative

    jobs.extend(
        ("cumulative", fig, fig.png, fig.png.with_suffix(".svg"))
        for fig in write_cumulative(folder, results)
    )
    bar.grow(len(jobs) - len(figures))
    if pool is None:
        for job in jobs:
            bar.step(f"drawing {job[2].stem}")
            _save_one(job)
        return _with_pages(figures)
    from concurrent.futures import as_completed

    futures = {pool.submit(_save_one, job): job[2].stem for job in jobs}
    try:
        _faults.at("figures-drawing")
        for future in as_completed(futures):
            future.result()
            bar.step(f"drew {futures[future]}")
    except BaseException:
        # stop the other figures before the temporary folder is removed: no worker may
        # write on into it (or into a folder it re-creates)
        from concurrent.futures import wait

        for future in futures:
            future.cancel()
        wait(futures)
        raise
    return _with_pages(figures)


def _with_pages(figures: dict[str, tuple[Path, ...]]) -> dict[str, tuple[Path, ...]]:
    """Each forest plot's files with the further pages of a plot taller than a page
    (``NAME-p2.png``, ...; :func:`metaresp.forest.save_forest`), in page order."""
    from metaresp._forest_pages import page_paths

    out: dict[str, tuple[Path, ...]] = {}
    for name, files in figures.items():
        png = files[0]
        n = 1
        while page_paths(png, n + 1)[-1][0].exists():
            n += 1
        out[name] = tuple(p for pair in page_paths(png, n) for p in pair)
    return out


def _warm_worker(parent: int | None = None) -> None:
    """Import the plotting stack (matplotlib, pandas, forestplot) in a worker process
    that ends with its parent (:func:`metaresp._workers.guard_worker`)."""
    if parent is not None:
        from metaresp._workers import guard_worker

        guard_worker(parent)
    from metaresp._forest_render import _contained

    with _contained():
        pass


@contextmanager
def _figure_pool() -> Iterator[Executor | None]:
    """Worker processes for the figures, started at once so that their imports overlap
    the reading and pooling in this process; ``None`` on a single core."""
    workers = min(FIGURE_WORKERS, os.cpu_count() or 1)
    if workers < 2:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_warm_worker,
        initargs=(os.getpid(),),
    )
    try:
        from metaresp._workers import sigint_ignored

        with sigint_ignored():  # the workers start with Ctrl-C ignored: it is the parent's
            for _ in range(workers):
                pool.submit(int)
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # no worker writes on after a failure
        raise
    pool.shutdown(wait=True)


class _Progress:
    """A rich progress bar on standard error (nothing when disabled or not a terminal)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(stderr=True)
            self._progress = Progress(
                TextColumn("{task.description:<40}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("reading", total=self.total)
        return self

    def step(self, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=description)

    def grow(self, extra: int) -> None:
        """Count ``extra`` more steps (figures, once it is known how many)."""
        self.total += extra
        if self._progress is not None:
            self._progress.update(self._task, total=self.total)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
