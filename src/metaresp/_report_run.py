"""What the report needs from a run beyond its analyses: the header (dates, versions,
models in plain words), the certainty settings of the plan, which sensitivity analyses
are the other model family, and what changed since the published state.

:func:`report_context` is the one hook :mod:`metaresp.runner` calls; the corpus version
is the one the run records in ``summary.json`` (passed in, never recomputed here).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from metaresp._plan_spec import FigureScope
    from metaresp._report_sections import ReportHeader
    from metaresp.analysis import AnalysisResult
    from metaresp.plan import Plan
    from metaresp.report import Certainty, Changes


def write_report_files(
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
        if not figs and not result.empty:
            from metaresp._figure_bounds import missing_forest_sentence
            from metaresp._run_figures import drawn

            studies = sum(len(g.records) for g in result.pooled.groups)
            in_scope = context is None or drawn(context.figures, a)
            sentence = missing_forest_sentence(studies, drawn=in_scope)
            if sentence and not description.rstrip().endswith("."):
                description = description.rstrip() + "."
            description = " ".join(filter(None, (description, sentence)))
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


__all__ = [
    "ReportContext",
    "other_family_names",
    "report_context",
    "write_report_files",
]


@dataclass(frozen=True)
class ReportContext:
    """The report's keyword arguments that come from the run, not from one analysis."""

    header: ReportHeader
    certainty: Certainty
    changes: Changes | None
    other_family: frozenset[str]
    figures: FigureScope = "primary"
    """The run's figure scope: an analysis outside it has no plot by design."""

    def report_kwargs(self) -> dict[str, Any]:
        return {"header": self.header, "certainty": self.certainty, "changes": self.changes}


def other_family_names(plan: Plan) -> frozenset[str]:
    """Names of the analyses that pool a primary with the plan's other model family."""
    if plan.other_family is None:
        return frozenset()
    suffix = plan.other_family.suffix
    names: set[str] = set()
    for a in plan.expanded():
        if a.role != "sensitivity" or a.sensitivity_of is None:
            continue
        base = a.sensitivity_of
        slug = base.rsplit("-", 1)
        candidates = {f"{base}-{suffix}"}
        if len(slug) == 2:
            candidates.add(f"{slug[0]}-{suffix}-{slug[1]}")
        if a.name in candidates:
            names.add(a.name)
    return frozenset(names)


def _population_words(code: str | None) -> str | None:
    if code is None:
        return None
    from metaresp import vocab

    text = vocab.POPULATIONS.get(code, code).split(" (")[0]
    return (
        "patients " + text[len("every patient ") :] if text.startswith("every patient ") else text
    )


def _changes(state: Mapping[str, Any], published: Path | None) -> Changes | None:
    from metaresp.errors import InputError
    from metaresp.living import changelog, compare, format_diff, load_previous
    from metaresp.report import Changes

    if published is None:
        return None
    try:
        previous, label = load_previous(None, published)
    except InputError as exc:
        return Changes(None, against=f"{published}: could not be read ({exc})")
    if previous is None:
        return Changes(None, against=label)
    diff = compare(previous, state, against=label)
    return Changes(changelog(diff), format_diff(diff), label)


def report_context(
    plan: Plan,
    results: Sequence[AnalysisResult],
    state: Mapping[str, Any],
    corpus_version: str,
    published: Path | None,
    now: datetime.datetime | None = None,
) -> ReportContext:
    """Everything the report takes from the run (see the module docstring)."""
    from metaresp import __version__
    from metaresp._report_sections import ReportHeader, model_words
    from metaresp.report import Certainty

    primary = list(dict.fromkeys(r.analysis.model for r in results if r.analysis.role == "primary"))
    others = other_family_names(plan)
    other_models = list(
        dict.fromkeys(r.analysis.model for r in results if r.analysis.name in others)
    )
    when = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    header = ReportHeader(
        run_date=when,
        search_date=None if plan.search_date is None else plan.search_date.isoformat(),
        corpus_version=corpus_version,
        software=f"metaresp {__version__}",
        primary_model="; ".join(model_words(m) for m in primary) or "none",
        other_model="; ".join(model_words(m) for m in other_models),
    )
    overrides = {
        name: {sub: (o.rating, o.reason) for sub, o in subs.items()}
        for name, subs in plan.certainty.overrides.items()
    }
    certainty = Certainty(
        population=plan.certainty.population,
        words=_population_words(plan.certainty.population),
        overrides=overrides,
    )
    return ReportContext(header, certainty, _changes(state, published), others, plan.figures)
