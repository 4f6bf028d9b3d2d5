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
failure leaves the previous results untouched and no half-written folder behind. Files of
the previous folder that no run wrote (listed in no cache manifest, outside ``figures/``)
are carried over. What did not change since the previous run is taken from it
(:mod:`metaresp._runcache`): an unchanged analysis is neither refitted nor redrawn.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaresp import _faults, _figure_worker
from metaresp._progress import Progress as _Progress
from metaresp._report_run import report_context
from metaresp._report_run import write_report_files as _write_report
from metaresp._run_figures import (
    Job,
    cumulative_data,
    cumulative_jobs,
    drawn,
    figure_notes,
    figure_scope,
    forest_job,
    more_pages,
    with_pages,
)
from metaresp._runcache import (
    CACHE_FOLDER,
    FIGURE_DPI,
    FIGURE_SETTINGS,
    Fingerprints,
    NewCache,
    PreviousRun,
)
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
    from metaresp._plan_spec import Analysis, FigureScope
    from metaresp.corpus import Corpus
    from metaresp.cumulative import CumulativeStep

__all__ = [
    "FIGURE_DPI",
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
PARALLEL_CUMULATIVE_STUDIES = 200
"""From this many studies in the pooled classes of an analysis (and two classes or
more), their cumulative refits run in the worker processes, one class each."""
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
    reused: int = 0
    """Analyses with figures whose fit and figures were taken from the previous run."""
    with_figures: int = 0
    """Analyses with at least one figure."""
    figures_drawn: int = 0
    figures_total: int = 0
    not_drawn: int = 0
    """Sensitivity analyses left without figures by the figure scope (``figures: primary``)."""

    def message(self) -> str:
        pooled = sum(1 for r in self.results for g in r.pooled.groups if g.result is not None)
        aside = sum(len(r.set_aside) for r in self.results)
        return (
            f"{len(self.results)} analyses, {pooled} pooled estimates, {aside} records set "
            f"aside; reused {self.reused} of {self.with_figures} analyses' figures, drew "
            f"{self.figures_drawn} of {self.figures_total} figures"
            + (
                f" (none for the {self.not_drawn} sensitivity analyses: --figures all)"
                if self.not_drawn
                else ""
            )
            + f"; wrote {len(self.files)} files to {self.out} in {self.seconds:.1f} s"
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
    from metaresp._writable import require_writable

    # the results are built beside the folder and renamed (inside it for a mount point)
    inside = out.is_dir() and os.path.ismount(out)
    require_writable(out if inside else out.parent, "the results folder", "--results")


def run_plan(
    plan: str | Path = "analysis-plan.yaml",
    extractions: str | Path = "extractions",
    out: str | Path = "results",
    *,
    progress: bool = False,
    force: bool = False,
    figures: FigureScope | None = None,
) -> RunOutput:
    """What ``metaresp run`` does, from Python: run the analysis plan on the extraction
    folder and replace ``out`` with the pooled tables, forest plots, report and
    ``summary.json`` (atomically: a failure leaves the old results whole). Returns what was
    written, with every :class:`~metaresp.analysis.AnalysisResult`. ``figures``: which
    analyses get forest and cumulative plots, ``"primary"`` or ``"all"`` (default: the
    plan's ``figures``, itself ``"primary"`` unless set). To pool without writing files,
    use :func:`run_analyses` with :func:`metaresp.load_plan` and
    :func:`metaresp.load_extractions`."""
    return run_plan_files(
        Path(plan), Path(extractions), Path(out), progress=progress, force=force, figures=figures
    )


def run_analyses(plan: Plan, corpus: Corpus) -> list[AnalysisResult]:
    """Every analysis of ``plan`` on a loaded corpus (no files written)."""
    records = records_from_corpus(corpus)
    return [run_analysis(a, records) for a in plan.expanded()]


def run_plan_files(
    plan_path: Path,
    extractions: Path,
    out: Path,
    *,
    progress: bool = True,
    published: Path | None = PUBLISHED_PATH,
    force: bool = False,
    figures: FigureScope | None = None,
) -> RunOutput:
    """Run ``plan_path`` on ``extractions`` and replace ``out`` with the results, reusing
    the fits and figures of the analyses whose inputs did not change since the run that
    wrote ``out`` (:mod:`metaresp._runcache`; ``force``: redo everything); the report says
    what changed since the state at ``published`` (``None``: not compared). ``figures``
    overrides the plan's figure scope (:attr:`metaresp.plan.Plan.figures`)."""
    started = time.perf_counter()
    plan = load_plan(plan_path)
    if figures is not None:
        plan = plan.model_copy(update={"figures": figure_scope(figures, "figures")})
    if not extractions.is_dir():
        raise InputError(f"{extractions}: extractions folder not found")
    check_out_folder(out)
    previous = PreviousRun(out, force=force)
    with _FigurePool(start=previous.empty) as pool:
        return _run_into(
            plan, plan_path, extractions, out, progress, pool, previous, started, published
        )


@dataclass
class _Planned:
    """One analysis of this run: its fit, cumulative steps and figure files."""

    result: AnalysisResult
    steps: dict[str, list[CumulativeStep]]
    fingerprint: str
    files: list[Path]
    reused: bool


def _run_into(
    plan: Plan,
    plan_path: Path,
    extractions: Path,
    out: Path,
    progress: bool,
    pool: _FigurePool,
    previous: PreviousRun,
    started: float,
    published: Path | None = None,
) -> RunOutput:
    from metaresp.corpus import load_extractions

    corpus = load_extractions(extractions)
    if not corpus.studies:
        raise InputError(f"{extractions}: no extraction files in the folder; nothing to run")
    analyses = plan.expanded()

    with atomic_folder(out) as tmp, pool.stopping():
        # the figures are counted in once it is known how many there are
        with _Progress(progress, total=len(analyses) + 2) as bar:
            records = records_from_corpus(corpus)
            prints = Fingerprints(records, {**FIGURE_SETTINGS, "dpi": FIGURE_DPI})
            cache = NewCache(tmp)
            planned: list[_Planned] = []
            figures: dict[str, tuple[Path, ...]] = {}
            notes: list[str] = []
            (tmp / "figures").mkdir()
            fitted: list[tuple[Analysis, bool, str, Any, _Steps | None, list[Path]]] = []

            def plan_figure(job: Job, files: list[Path]) -> None:
                """Take the figure from the previous run when it draws the same, or draw it."""
                kind, data, png, svg = job
                names = [png.relative_to(tmp).as_posix(), svg.relative_to(tmp).as_posix()]
                what = data if kind == "forest" else cumulative_data(data)
                figure_fp = prints.of_figure(names[0], what)
                cache.figures[names[0]] = figure_fp
                if previous.figure(names[0], figure_fp, names):
                    previous.bring([*names, *more_pages(previous.out, names[0])], tmp)
                else:
                    pool.submit(job)
                files.extend((png, svg))

            for analysis in analyses:  # fit; the figures and cumulative refits go to workers
                draws = drawn(plan.figures, analysis)
                fp = prints.of(analysis, drawn=draws)
                hit = previous.lookup(analysis.name, fp)
                if hit is not None:
                    bar.step(f"reusing {analysis.name}")
                    fitted.append((analysis, draws, fp, hit, None, []))
                    continue
                bar.step(f"pooling {analysis.name}")
                result = run_analysis(analysis, records)
                drawn_files: list[Path] = []
                # a cumulative analysis is a figure's data: none outside the figure scope
                new_steps = _Steps({})
                if draws:
                    new_steps = pool.cumulative(result)
                    forest = forest_job(tmp, result)
                    if forest is not None:  # drawn while the next analyses are fitted
                        plan_figure(forest, drawn_files)
                fitted.append((analysis, draws, fp, result, new_steps, drawn_files))
            for analysis, draws, fp, done, steps, drawn_files in fitted:
                if steps is None:
                    previous.bring(done.files, tmp)
                    item = _Planned(
                        done.result, done.steps, fp, [tmp / f for f in done.files], reused=True
                    )
                    for f in item.files:
                        name = f.relative_to(tmp).as_posix()
                        if name in previous.figures:
                            cache.figures[name] = previous.figures[name]
                else:
                    item = _Planned(done, steps.result(), fp, drawn_files, reused=False)
                    if draws:
                        for job in cumulative_jobs(tmp, item.result, item.steps):
                            plan_figure(job, item.files)
                if draws:
                    notes.extend(figure_notes(tmp, item.result, item.steps))
                planned.append(item)
                png = tmp / "figures" / f"{analysis.name}.png"
                if png in item.files:
                    figures[analysis.name] = (png, png.with_suffix(".svg"))
            results = [item.result for item in planned]
            meta = state_meta(plan_path, plan.title, extractions, corpus, len(records))
            run_fp = prints.of_run([item.fingerprint for item in planned], meta)
            same = previous.run_files(run_fp)
            state: dict[str, Any] = {}

            def tables() -> None:  # while the workers draw: everything but the report
                if same is None:
                    state.update(_write_tables(tmp, plan, results, planned, corpus, meta, bar))

            bar.grow(pool.submitted)
            pool.draw(bar, meanwhile=tables)
            for item in planned:  # a plot taller than a page has further pages
                for png in [f for f in item.files if f.suffix == ".png"]:
                    item.files.extend(
                        tmp / f
                        for f in more_pages(tmp, png.relative_to(tmp).as_posix())
                        if tmp / f not in item.files
                    )
            figures = {name: with_pages(tmp, files) for name, files in figures.items()}
            if same is not None:
                bar.step("reusing the tables and the report")
                previous.bring(same, tmp)
            else:
                bar.step("writing the report")
                version = str(meta["corpus_version"])
                context = report_context(plan, results, state, version, published)
                _write_report(tmp, results, plan.title, version, figures, context)
            for analysis, item in zip(analyses, planned, strict=True):
                cache.keep(
                    analysis.name,
                    item.fingerprint,
                    item.result,
                    item.steps,
                    item.files,
                    previous if item.reused else None,
                )
            figure_files = {f for item in planned for f in item.files}
            kept = [f for f in previous.foreign() if not (tmp / f).exists()]
            previous.bring(kept, tmp)  # what the run does not own stays
            figure_files |= {tmp / f for f in kept}
            cache.keep_run(
                run_fp,
                [
                    p
                    for p in tmp.rglob("*")
                    if p.is_file() and p not in figure_files and CACHE_FOLDER not in p.parts
                ],
            )
            cache.write()
        files = tuple(
            sorted(
                str(p.relative_to(tmp))
                for p in tmp.rglob("*")
                if p.is_file()
                and CACHE_FOLDER not in p.relative_to(tmp).parts
                and p.relative_to(tmp).as_posix() not in kept
            )
        )
    with_files = [item for item in planned if item.files]
    if pool.note is not None:
        notes.append(pool.note)
    return RunOutput(
        out=out,
        results=tuple(results),
        files=files,
        seconds=time.perf_counter() - started,
        reused=sum(1 for item in with_files if item.reused),
        figures_total=sum(len(item.files) // 2 for item in with_files),
        with_figures=len(with_files),
        figures_drawn=pool.submitted,
        not_drawn=sum(1 for a in analyses if not drawn(plan.figures, a)),
        warnings=tuple(notes),
    )


def _write_tables(
    tmp: Path,
    plan: Plan,
    results: Sequence[AnalysisResult],
    planned: Sequence[_Planned],
    corpus: Corpus,
    meta: dict[str, Any],
    bar: _Progress,
) -> dict[str, Any]:
    """What is written from all analyses together, but the report (which waits for the
    figures): cumulative.csv, the tables, the meta-regressions, summary.json and
    reproduce.R. Returns the state written as summary.json."""
    from metaresp.cumulative import write_csv
    from metaresp.reproduce import REPRODUCE_NAME, reproduce_script
    from metaresp.tables import write_tables

    write_csv(tmp, [s for item in planned for g in item.steps.values() for s in g])
    bar.step("writing tables")
    write_tables(results, tmp)
    state = build_state(results, corpus.to_frame(), **meta)
    outcomes: list[Any] = []
    if plan.regressions:
        from metaresp.regressions import regression_state, run_regressions, write_regressions

        outcomes = run_regressions(plan.regressions, results)
        write_regressions(tmp, outcomes)
        state["regressions"] = regression_state(outcomes)
    (tmp / SUMMARY_NAME).write_text(state_text(state), encoding="utf-8")
    (tmp / REPRODUCE_NAME).write_text(reproduce_script(results, outcomes), encoding="utf-8")
    return state


def _save_one(job: tuple[str, Any, Path, Path]) -> None:
    """Draw one figure job in this process (:func:`metaresp._figure_worker.save`)."""
    _figure_worker.save(job, FIGURE_DPI)


class _Steps:
    """The cumulative steps of one analysis, by class: computed, or still in a worker."""

    def __init__(self, steps: dict[str, Any]) -> None:
        self._steps = steps

    def result(self) -> dict[str, list[CumulativeStep]]:
        return {
            name: _worker_result(s, f"the cumulative analysis of {name}")
            if isinstance(s, Future)
            else s
            for name, s in self._steps.items()
        }


def _worker_result(future: Future[Any], doing: str) -> Any:
    """``future.result()``; a worker process that died (killed, out of memory) is one
    line saying so, not the executor's traceback."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool:
        raise InputError(
            f"a worker process of this run ended unexpectedly while {doing} (killed, or "
            "out of memory?); nothing was changed: run again, or free memory first"
        ) from None


class _FigurePool:
    """Worker processes for the figures and the cumulative refits, one per core up to
    :data:`FIGURE_WORKERS`.

    With ``start`` (a cold run: every figure will be drawn) they are started at once, so
    that their imports overlap the reading and pooling in this process; otherwise at the
    second figure to draw (one figure is drawn sooner here, after the tables, than by a
    worker that must first import the plotting stack: an add of one study was 3.3 s
    against 4.1 s). Each figure goes to them as soon as it is known, and is drawn while
    this process fits the next analyses and writes the tables. On a single core the
    figures are drawn in this process, after the tables."""

    def __init__(self, start: bool) -> None:
        self._pool: Executor | None = None
        self._start = start
        self._jobs: list[Job] = []
        self._futures: dict[Future[None], str] = {}
        self.note: str | None = None
        """Why there are no worker processes, when they could not be started."""

    def __enter__(self) -> _FigurePool:
        if self._start:
            self._open()
        return self

    def _open(self) -> Executor | None:
        workers = min(FIGURE_WORKERS, os.cpu_count() or 1)
        if self._pool is None and workers >= 2 and self.note is None:
            from metaresp._workers import start_pool

            self._pool, self.note = start_pool(workers, _figure_worker.warm, (os.getpid(),))
        return self._pool

    @property
    def submitted(self) -> int:
        """Figures given to :meth:`submit` so far."""
        return len(self._jobs)

    def cumulative(self, result: AnalysisResult) -> _Steps:
        """The cumulative steps of every pooled class of ``result``
        (:func:`metaresp.cumulative.cumulative_class`; the refits grow with the square of
        a class's size): in the worker processes, one class each, when there are two
        classes or more of :data:`PARALLEL_CUMULATIVE_STUDIES` studies together (smaller
        ones are done sooner here than sent to a worker that is drawing)."""
        from metaresp.cumulative import cumulative_class, pooled_classes

        name = result.analysis.name
        classes = pooled_classes(result)
        big = sum(len(g.records) for g in classes) >= PARALLEL_CUMULATIVE_STUDIES
        pool = self._open() if len(classes) >= 2 and big else None
        if pool is None:
            return _Steps({g.name: cumulative_class(name, g) for g in classes})
        return _Steps({g.name: pool.submit(cumulative_class, name, g) for g in classes})

    def submit(self, job: Job) -> None:
        """Draw ``job``: at once in a worker (they are started at the second figure);
        until then, or without workers, in :meth:`draw`."""
        self._jobs.append(job)
        if len(self._jobs) >= 2:
            self._open()
        if self._pool is not None:
            for queued in self._jobs[len(self._futures) :]:
                future = self._pool.submit(_figure_worker.save, queued, FIGURE_DPI)
                self._futures[future] = queued[2].stem

    def draw(self, bar: _Progress, meanwhile: Callable[[], None] = lambda: None) -> None:
        """Wait for every figure submitted, running ``meanwhile`` in this process while
        the workers draw (without workers: first ``meanwhile``, then the figures here)."""
        if self._pool is None:
            meanwhile()
            for job in self._jobs:
                bar.step(f"drawing {job[2].stem}")
                _save_one(job)
            return
        from concurrent.futures import as_completed

        futures = self._futures
        try:
            meanwhile()
            _faults.at("figures-drawing")
            for future in as_completed(futures):
                _worker_result(future, f"drawing {futures[future]}")
                bar.step(f"drew {futures[future]}")
        except BaseException:
            self._stop()
            raise

    @contextmanager
    def stopping(self) -> Iterator[None]:
        """On an error inside the block, cancel the figures not yet drawn and wait for
        those being drawn: no worker may write on into the temporary folder (or into a
        folder it re-creates) once it is removed."""
        try:
            yield
        except BaseException:
            self._stop()
            raise

    def _stop(self) -> None:
        from concurrent.futures import wait

        for future in self._futures:
            future.cancel()
        wait(self._futures)

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
