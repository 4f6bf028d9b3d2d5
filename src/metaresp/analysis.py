"""Running the analysis plan: select, de-duplicate, group, pool, test, describe.

One analysis (:class:`metaresp.plan.Analysis`) goes through these steps, each of which
lists what it sets aside and why (methods.md, "Evidence handling"):

1. **Selection**: records of the analysis's outcome, population(s), setting(s) and, when
   the plan names them, modalities (other records are out of scope, not listed). A record
   that fits except for its unit (treatment lines where the analysis pools patients) is set
   aside with that reason: patients and lines are never pooled together unless the plan
   says ``mix_units: true``.
2. **Counts**: percent-only records (no responders or no denominator) and records with no
   evaluable patient are set aside.
3. **Grouping**: records the grouping excludes are set aside with the grouping's reason;
   then the grouping's first matching class names the record's subgroup. A record
   that sums groups of its own file (``components``) which the grouping places in other
   subgroups is set aside (its patients are counted through those groups); a record that
   matches no class goes to the grouping's ``other`` bucket, or is set aside.
   Records of an excluded design (``exclude_designs``, by default case reports) are set
   aside at selection; groups marked ``mixed`` are kept out of a grouping's classes
   (``several-classes`` may go to its ``other`` bucket when the grouping says
   ``mixed: other``).
4. **One cohort, one vote**: within a subgroup, records that may hold the same patients
   (one cohort, or a ``shares_patients_with`` link between groups) form a cluster. Within a
   study, groups counted in a total that is also in the subgroup are set aside, and the
   other groups of one setting and unit, different patients given different regimens, are
   combined into one entry by summing responders and evaluable (Cochrane Handbook
   6.5.2.10). Of the cluster's entries the latest report is kept and, among reports of the
   same date, the one with the largest evaluable denominator (then the study and group
   ids, so the choice is reproducible); a cluster joined only by links keeps the largest
   denominator first.
5. **Pooling**: each subgroup with two or more records is pooled on its own (its own τ²)
   by :func:`metaresp.pool`; a subgroup with one record is shown, not pooled.
6. **Subgroup differences**: the between-subgroup Q, a fixed-effect test on the pooled
   subgroup estimates and their standard errors on the transformed scale,
   ``Q = sum_j w_j (theta_j - theta_bar)^2``, ``w_j = 1/se_j^2``, ``theta_bar = sum w theta /
   sum w``, chi-square with (m - 1) df over the m pooled subgroups (Borenstein et al. 2009,
   *Introduction to Meta-Analysis*, ch. 19; R ``meta``'s default test for random-effects
   subgroups). It is reported only when no cohort appears in two subgroups (otherwise the
   subgroup estimates are not independent) and at least two subgroups are pooled.
   Single-record subgroups do not enter the test (``meta`` includes them).
7. **Overall**: with ``overall: true`` every record of the analysis is pooled together, but
   only when no cohort appears in two subgroups (one cohort, one vote).

:func:`pool_groups` runs steps 5-7 on any grouped table (``metaresp pool --by``);
:func:`run_analysis` does everything for one plan analysis; :func:`summary` gives the
JSON-ready record of every estimate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from metaresp.errors import InputError
from metaresp.fields import ANALYSIS_FIELDS
from metaresp.forestdata import ForestData
from metaresp.plan import Analysis, Model

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from metaresp.pooling import PoolResult

#: Columns of ``corpus.to_frame()`` the analysis reads (named once, in :mod:`metaresp.fields`).
REQUIRED_COLUMNS: tuple[str, ...] = ANALYSIS_FIELDS

ALL_STUDIES = "All studies"
"""Subgroup name of an analysis without a grouping."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Record:
    """One count (responders / evaluable) of one group of one study, for one outcome."""

    record_id: str
    study: str
    group_id: str
    group: str
    cohort: str
    outcome: str
    population: str
    setting: str
    unit: str
    events: int | None
    total: int | None
    label: str
    year: int | None = None
    date: tuple[int, int, int] = (0, 0, 0)
    attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    components: tuple[str, ...] = ()
    derived: bool = False
    design: str = ""
    """The study's design (vocabulary ``design``); empty when the table has none."""
    mixed: str | None = None
    """``several-classes`` or ``all-classes`` for a group that mixes salvage classes."""
    shares_patients_with: tuple[str, ...] = ()
    """Groups of other studies (``study/group_id`` or ``study``) with some of its patients."""
    alternatives: tuple[int, ...] = ()
    """Other responder counts that reproduce the printed percentage (derived counts)."""
    members: tuple[str, ...] = ()
    """For an entry that combines disjoint groups of one study: the record ids it sums."""

    @property
    def pooled_ids(self) -> tuple[str, ...]:
        """The record ids this entry stands for (itself, or the groups it combines)."""
        return self.members or (self.record_id,)


def _values(cell: Any, split: bool) -> frozenset[str]:
    """A frame cell as a set of lower-case values (lists, tuples or joined strings)."""
    if cell is None:
        return frozenset()
    if isinstance(cell, list | tuple | set | frozenset):
        items = [str(v) for v in cell]
    else:
        try:
            if cell != cell:  # NaN / NA
                return frozenset()
        except (TypeError, ValueError):
            pass
        text = str(cell)
        items = re.split(r"\s*[+;,/|]\s*", text) if split else [text]
    return frozenset(v.strip().lower() for v in items if v.strip())


def _date(published: Any, year: Any) -> tuple[int, int, int]:
    """(year, month, day) of a report for ordering; missing parts are 0."""
    text = "" if published is None else str(published)
    parts = [int(p) for p in re.findall(r"\d+", text)[:3]]
    if not parts and isinstance(year, int | float) and year == year:
        parts = [int(year)]
    return (*parts, 0, 0, 0)[:3]  # type: ignore[return-value]


def _author(citation: Any, study: str) -> str:
    """The first author's surname from a citation ("Van Oekelen O, Nath K, ..." -> "Van
    Oekelen"); the study id's name part when there is no citation."""
    if isinstance(citation, str) and citation.strip():
        first = citation.split(",")[0].strip()
        words = first.split()
        while len(words) > 1 and re.fullmatch(r"[A-Z]{1,3}\.?", words[-1]):
            words.pop()
        if words and len(" ".join(words)) <= 40:
            return " ".join(words)
    name = re.sub(r"-\d{4}[a-z]?$", "", study)
    return name.replace("-", " ").title()


LABEL_GROUP_CHARS = 40
"""Longest group name in a forest-plot label: longer ones are cut at a word with "…", so
that a figure fits a journal page (about 7 in); tables and the report keep the full name."""


def _shorten(text: str, limit: int) -> str:
    """``text`` cut at the last space before ``limit`` characters, with "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:(-–")
    return f"{cut}…"


def _label(row: Any, study: str, year: int | None) -> str:
    """What a reader sees for a record: "Merz 2024 · Teclistamab". A study known only
    through a review that does not name its authors is shown by the review's reference
    number ("Review ref. 36 · ..."), with no year, since the review prints none."""
    group = _shorten(str(row["group"]), LABEL_GROUP_CHARS)
    reference = _int_or_none(row.get("via_review_reference"))
    authors = str(row.get("via_review_authors") or "")
    if reference is not None and "not named" in authors:
        return f"Review ref. {reference} · {group}"
    author = _author(row.get("citation"), study)
    return f"{author} {year} · {group}" if year else f"{author} · {group}"


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        if value != value:
            return None
    except (TypeError, ValueError):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class GroupFacts:
    """What the analysis needs of a group beyond the corpus table's columns."""

    mixed: str | None = None
    shares_patients_with: tuple[str, ...] = ()
    alternatives: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Alternative responder counts by outcome."""


class CorpusGroups(dict[tuple[str, str], tuple[str, ...]]):
    """``{(study id, group id): component group ids}``, with :attr:`facts` beside it: the
    group fields (mixed, shared patients, alternative counts) that the corpus table may not
    carry as columns."""

    def __init__(self) -> None:
        super().__init__()
        self.facts: dict[tuple[str, str], GroupFacts] = {}


def components_from_corpus(corpus: Any) -> CorpusGroups:
    """``{(study id, group id): component group ids}`` read from a loaded corpus, with the
    groups' other analysis facts in ``.facts``.

    A ``shares_patients_with`` link naming a study or group that is not in the corpus
    raises :class:`InputError` (one line per link, naming the file).
    """
    out = CorpusGroups()
    studies = list(getattr(corpus, "studies", ()) or ())
    files = list(getattr(corpus, "files", ()) or ())
    known = {str(st.id): {str(g.id) for g in getattr(st, "groups", ())} for st in studies}
    problems: list[str] = []
    for si, study in enumerate(studies):
        for gi, group in enumerate(getattr(study, "groups", ())):
            key = (str(study.id), str(group.id))
            parts = tuple(getattr(group, "components", ()) or ())
            if parts:
                out[key] = parts
            links = tuple(getattr(group, "shares_patients_with", ()) or ())
            for li, link in enumerate(links):
                target_study, _, target_group = link.partition("/")
                if target_study not in known or (
                    target_group and target_group not in known[target_study]
                ):
                    where = files[si] if si < len(files) else str(study.id)
                    problems.append(
                        f"{where}: groups[{gi}].shares_patients_with[{li}]: "
                        f"{link!r} is not a study or study/group in the corpus"
                    )
            alternatives = {
                str(o.outcome): tuple(o.alternatives)
                for o in getattr(group, "outcomes", ())
                if getattr(o, "alternatives", ())
            }
            mixed = getattr(group, "mixed", None)
            if mixed or links or alternatives:
                out.facts[key] = GroupFacts(
                    mixed=mixed, shares_patients_with=links, alternatives=alternatives
                )
    if problems:
        raise InputError(problems)
    return out


def _cell_text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if value != value:
            return None
    except (TypeError, ValueError):
        pass
    text = str(value).strip()
    return text or None


def _cell_list(value: Any) -> tuple[str, ...]:
    return tuple(sorted(_values(value, split=True)))


def records_from_frame(
    frame: pd.DataFrame,
    components: Mapping[tuple[str, str], Sequence[str]] | None = None,
    source: str = "corpus",
) -> list[Record]:
    """Turn ``corpus.to_frame()`` into :class:`Record` objects.

    ``components`` maps (study, group id) to the ids of the groups that add up to it (see
    :func:`components_from_corpus`); a ``components`` column in the frame serves as well.
    A missing column raises :class:`InputError` naming it and ``source``.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            [
                f"{source}: column {c!r} is missing from the corpus table "
                f"(columns: {', '.join(map(str, frame.columns))})"
                for c in missing
            ]
        )
    comp = dict(components or {})
    facts: Mapping[tuple[str, str], GroupFacts] = getattr(components, "facts", {})
    records: list[Record] = []
    columns = list(frame.columns)
    for row in frame.itertuples(index=False, name=None):
        r = dict(zip(columns, row, strict=True))
        study = str(r["study"])
        group_id = str(r.get("group_id") or r["group"])
        setting = str(r["setting"])
        outcome = str(r["outcome"])
        year = _int_or_none(r.get("year"))
        parts = comp.get((study, group_id))
        if parts is None and "components" in r:
            parts = tuple(sorted(_values(r["components"], split=True)))
        label = _label(r, study, year)
        attrs = {
            "agent": _values(r["agent"], split=True),
            "modality": _values(r["modality"], split=True),
            "target": _values(r["target"], split=True),
            "group": _values(r["group"], split=False),
            "group_id": _values(group_id, split=False),
            "study": _values(study, split=False),
            "cohort": _values(r["cohort"], split=False),
            "population": _values(r["population"], split=False),
        }
        fact = facts.get((study, group_id), GroupFacts())
        mixed = _cell_text(r.get("mixed")) if "mixed" in r else fact.mixed
        shares = (
            _cell_list(r.get("shares_patients_with"))
            if "shares_patients_with" in r
            else fact.shares_patients_with
        )
        if "alternatives" in r:
            alternatives = tuple(int(v) for v in _cell_list(r.get("alternatives")))
        else:
            alternatives = tuple(fact.alternatives.get(outcome, ()))
        records.append(
            Record(
                record_id=str(r.get("record") or f"{study}/{group_id}/{outcome}"),
                study=study,
                group_id=group_id,
                group=str(r["group"]),
                cohort=str(r["cohort"]),
                outcome=outcome,
                population=str(r["population"]),
                setting=setting,
                unit=str(r["unit"]),
                events=_int_or_none(r["responders"]),
                total=_int_or_none(r["evaluable"]),
                label=label,
                year=year,
                date=_date(r.get("published"), year),
                attributes=attrs,
                components=tuple(parts or ()),
                derived=bool(r.get("derived") is True),
                design=_cell_text(r.get("design")) or "",
                mixed=mixed,
                shares_patients_with=tuple(shares),
                alternatives=alternatives,
            )
        )
    return records


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SetAside:
    """A record an analysis did not pool, and why."""

    record_id: str
    label: str
    reason: str
    subgroup: str | None = None


@dataclass(frozen=True)
class GroupResult:
    """One subgroup: its records and, when k >= 2, its pooled result."""

    name: str
    records: tuple[Record, ...]
    result: PoolResult | None
    note: str = ""

    @property
    def k(self) -> int:
        return len(self.records)

    @property
    def patients(self) -> int:
        return sum(r.total or 0 for r in self.records)

    @property
    def events(self) -> int:
        return sum(r.events or 0 for r in self.records)


@dataclass(frozen=True)
class DifferenceTest:
    """Between-subgroup Q (fixed-effect test on the subgroup estimates)."""

    q: float
    df: int
    pvalue: float
    subgroups: tuple[str, ...]


@dataclass(frozen=True)
class GroupedPool:
    """Pooled subgroups, the optional overall pool and the test for differences."""

    model: Model
    groups: tuple[GroupResult, ...]
    overall: GroupResult | None
    test: DifferenceTest | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnalysisResult:
    """Everything one plan analysis produced."""

    analysis: Analysis
    pooled: GroupedPool
    set_aside: tuple[SetAside, ...]

    @property
    def empty(self) -> bool:
        return not any(g.records for g in self.pooled.groups)

    def forest_data(self) -> ForestData:
        """The plot's data (per-study rows, subgroup diamonds, overall, test, footnotes)."""
        notes = list(self.pooled.notes)
        if self.set_aside:
            notes.append(f"{len(self.set_aside)} record(s) set aside: see the tables.")
        return forest_data(
            self.pooled, title=self.analysis.title, outcome=self.analysis.outcome, footnotes=notes
        )


# --------------------------------------------------------------------------- pooling


def exact_ci(events: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval: beta quantiles B(a/2; x, n-x+1), B(1-a/2; x+1, n-x)
    (Clopper & Pearson 1934)."""
    from scipy import special

    alpha = 1.0 - level
    low = 0.0 if events == 0 else float(special.betaincinv(events, total - events + 1, alpha / 2))
    high = (
        1.0
        if events == total
        else float(special.betaincinv(events + 1, total - events, 1 - alpha / 2))
    )
    return low, high


def _fit(records: Sequence[Record], model: Model) -> PoolResult:
    """Pool one subgroup. Its notes are kept in the result (and shown in every output), so
    they are not issued again as Python warnings here."""
    import warnings

    from metaresp.errors import StatisticalWarning
    from metaresp.pooling import pool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        return pool(
            [r.events or 0 for r in records],
            [r.total or 0 for r in records],
            labels=[r.label for r in records],
            **model.as_kwargs(),
        )


def difference_test(groups: Sequence[GroupResult]) -> DifferenceTest | None:
    """Between-subgroup Q over the pooled subgroups (see the module docstring); ``None``
    with fewer than two pooled subgroups."""
    from scipy import stats

    pooled = [g for g in groups if g.result is not None and g.result.se > 0]
    if len(pooled) < 2:
        return None
    theta = [g.result.estimate for g in pooled if g.result is not None]
    w = [1.0 / g.result.se**2 for g in pooled if g.result is not None]
    mean = sum(wi * ti for wi, ti in zip(w, theta, strict=True)) / sum(w)
    q = sum(wi * (ti - mean) ** 2 for wi, ti in zip(w, theta, strict=True))
    df = len(pooled) - 1
    return DifferenceTest(
        q=q, df=df, pvalue=float(stats.chi2.sf(q, df)), subgroups=tuple(g.name for g in pooled)
    )


def _shared_cohorts(groups: Sequence[GroupResult]) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for g in groups:
        for cohort in sorted({r.cohort for r in g.records}):
            seen.setdefault(cohort, []).append(g.name)
    return {c: names for c, names in seen.items() if len(names) > 1}


def pool_groups(
    groups: Mapping[str, Sequence[Record]], model: Model, *, overall: bool = False
) -> GroupedPool:
    """Pool each subgroup on its own, test differences, and pool overall when asked.

    The test and the overall pool need subgroups that share no cohort; when they do, the
    notes say which cohort stands in which subgroups.
    """
    results: list[GroupResult] = []
    for name, records in groups.items():
        if not records:
            continue
        if len(records) == 1:
            results.append(GroupResult(name, tuple(records), None, "one study: shown, not pooled"))
        else:
            results.append(GroupResult(name, tuple(records), _fit(records, model)))
    notes: list[str] = []
    shared = _shared_cohorts(results)
    if shared:
        cohort, names = next(iter(shared.items()))
        more = f" and {len(shared) - 1} more" if len(shared) > 1 else ""
        where = ", ".join(names) if len(names) == 2 else f"{len(names)} subgroups"
        why = f"cohort {cohort} is in {where}{more}"
    test: DifferenceTest | None = None
    if len(results) > 1:
        if shared:
            notes.append(
                "No test for subgroup differences: subgroups share a patient cohort "
                f"({why}), and the methods test only independent subgroups."
            )
        else:
            test = difference_test(results)
            if test is None:
                notes.append("No test for subgroup differences: fewer than two pooled subgroups.")
            elif len(test.subgroups) < len(results):
                notes.append(
                    "Test for subgroup differences over the pooled subgroups "
                    "(single-study subgroups left out)."
                )
    total: GroupResult | None = None
    if overall and len(results) > 1:
        if shared:
            notes.append(
                "No overall estimate: subgroups share a patient cohort "
                f"({why}), which would count it twice."
            )
        else:
            everything = [r for g in results for r in g.records]
            total = GroupResult("Overall", tuple(everything), _fit(everything, model))
    elif overall and len(results) == 1:
        notes.append("No overall estimate: a single subgroup.")
    return GroupedPool(
        model=model, groups=tuple(results), overall=total, test=test, notes=tuple(notes)
    )


# --------------------------------------------------------------------------- one analysis


def _links(a: Record, b: Record) -> bool:
    """True when either record's group says it shares patients with the other's."""

    def names(r: Record, other: Record) -> bool:
        return any(
            link in (other.study, f"{other.study}/{other.group_id}")
            for link in r.shares_patients_with
        )

    return names(a, b) or names(b, a)


def _clusters(records: Sequence[Record]) -> list[list[Record]]:
    """Records that may hold the same patients: one cohort, or linked by
    ``shares_patients_with`` (transitively), in first-appearance order."""
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(records):
        for j in range(i):
            b = records[j]
            if a.cohort == b.cohort or _links(a, b):
                parent[root(i)] = root(j)
    out: dict[int, list[Record]] = {}
    for i, r in enumerate(records):
        out.setdefault(root(i), []).append(r)
    return list(out.values())


def _combine(parts: Sequence[Record]) -> Record:
    """One entry for disjoint groups of one study: responders and evaluable summed
    (Cochrane Handbook 6.5.2.10)."""
    first = parts[0]
    prefix = first.label.split(" · ", 1)[0]
    names = " + ".join(r.group for r in parts)
    ids = tuple(i for r in parts for i in r.pooled_ids)
    group_ids = "+".join(r.group_id for r in parts)
    return replace(
        first,
        record_id=f"{first.study}/{group_ids}/{first.outcome}",
        group_id=group_ids,
        group=f"{names} (combined)",
        events=sum(r.events or 0 for r in parts),
        total=sum(r.total or 0 for r in parts),
        label=f"{prefix} · {_shorten(names, LABEL_GROUP_CHARS)} (combined)",
        components=(),
        derived=any(r.derived for r in parts),
        shares_patients_with=tuple(sorted({x for r in parts for x in r.shares_patients_with})),
        alternatives=(),
        members=ids,
    )


def _disjoint_entries(
    records: Sequence[Record], subgroup: str
) -> tuple[list[Record], list[SetAside], dict[str, str]]:
    """Entries of one study within one subgroup.

    Groups counted in a total that is also here are set aside (the total counts them);
    the remaining groups of one setting and unit are different patients given different
    regimens (same study, same unit, same setting, neither a component of the other, no
    shared-patients link between them), so they are combined into one entry. Groups of
    different settings may hold the same patients (a first-salvage group is part of the
    any-line groups): each setting gives one candidate.
    """
    aside: list[SetAside] = []
    here = {r.group_id: r for r in records}
    counted: dict[str, str] = {}
    for r in records:
        for part in r.components:
            if part in here and part != r.group_id:
                counted.setdefault(part, r.record_id)
    rest: list[Record] = []
    for r in records:
        if r.group_id in counted:
            total = counted[r.group_id]
            aside.append(
                SetAside(
                    r.record_id,
                    r.label,
                    subgroup=subgroup,
                    reason=f"one cohort, one vote: counted in its total {total} in this "
                    "subgroup (components are not added twice)",
                )
            )
        else:
            rest.append(r)
    buckets: dict[tuple[str, str], list[Record]] = {}
    for r in rest:
        buckets.setdefault((r.setting, r.unit), []).append(r)
    entries: list[Record] = []
    notes: dict[str, str] = {}
    for parts in buckets.values():
        linked = any(_links(a, b) for i, a in enumerate(parts) for b in parts[:i])
        if len(parts) == 1 or linked:
            entries.extend(parts)
            continue
        combined = _combine(parts)
        entries.append(combined)
        sums = " + ".join(f"{r.group} ({r.events}/{r.total})" for r in parts)
        notes[combined.record_id] = (
            f"{subgroup}: {combined.label.split(' · ', 1)[0]} combines disjoint groups of one "
            f"study, {sums} = {combined.events}/{combined.total} (different patients given "
            "different regimens; Cochrane Handbook 6.5.2.10)."
        )
    return entries, aside, notes


def _dedupe(records: Sequence[Record], subgroup: str) -> tuple[list[Record], list[SetAside]]:
    """One cohort, one vote within a subgroup: latest report, then largest denominator.

    (Kept for callers that need the plain rule; :func:`_one_vote` adds the combination of
    disjoint groups and shared-patients links.)"""
    keep, dropped, _ = _one_vote(records, subgroup)
    return keep, dropped


def _one_vote(
    records: Sequence[Record], subgroup: str
) -> tuple[list[Record], list[SetAside], list[str]]:
    """One cohort, one vote within a subgroup (methods, "Evidence handling").

    Records that may hold the same patients (one cohort, or a ``shares_patients_with``
    link) form a cluster. Within a cluster, each study's disjoint groups are first combined
    into one entry (:func:`_disjoint_entries`); of the entries of one cohort (versions of
    one report) the latest, then the largest evaluable denominator, then the study and
    group ids is kept; of cohorts joined by a link (not versions of one report) the largest
    denominator, then the latest report.
    """
    keep: list[Record] = []
    dropped: list[SetAside] = []
    notes: list[str] = []
    combined: dict[str, str] = {}
    for cluster in _clusters(records):
        by_study: dict[str, list[Record]] = {}
        for r in cluster:
            by_study.setdefault(r.study, []).append(r)
        candidates: list[Record] = []
        for rs in by_study.values():
            entries, aside, said = _disjoint_entries(rs, subgroup)
            candidates.extend(entries)
            dropped.extend(aside)
            combined.update(said)
        # versions of one report (one cohort): the latest, then the largest denominator
        by_cohort: dict[str, list[Record]] = {}
        for r in candidates:
            by_cohort.setdefault(r.cohort, []).append(r)
        winners: list[Record] = []
        for versions in by_cohort.values():
            ranked = sorted(
                versions,
                key=lambda r: (tuple(-d for d in r.date), -(r.total or 0), r.study, r.group_id),
            )
            winners.append(ranked[0])
            for r in ranked[1:]:
                dropped.extend(_lost(r, ranked[0], subgroup, linked=False))
        # cohorts joined by a shared-patients link are not versions of one report: the
        # larger denominator wins (a trial's own report over a series drawn from it)
        ranked = sorted(
            winners, key=lambda r: (-(r.total or 0), tuple(-d for d in r.date), r.study, r.group_id)
        )
        kept = ranked[0]
        for r in ranked[1:]:
            dropped.extend(_lost(r, kept, subgroup, linked=True))
        keep.append(kept)
        if kept.record_id in combined:
            notes.append(combined[kept.record_id])
    order = {r.record_id: i for i, r in enumerate(records)}
    keep.sort(key=lambda r: min(order.get(i, len(order)) for i in r.pooled_ids))
    return keep, dropped, notes


def _lost(r: Record, kept: Record, subgroup: str, *, linked: bool) -> list[SetAside]:
    """Set-aside entries for an entry that lost its vote to ``kept``."""
    smaller = (r.total or 0) < (kept.total or 0)
    why = (
        "a smaller denominator"
        if linked and smaller
        else "an earlier report"
        if r.date < kept.date
        else "a smaller denominator"
        if smaller
        else "the same date and denominator"
    )
    if linked:
        link = f"shares patients with {kept.record_id} (shares_patients_with)"
    else:
        link = f"same cohort ({r.cohort}) as {kept.record_id}"
    return [
        SetAside(
            rid,
            r.label,
            subgroup=subgroup,
            reason=(
                f"{link} in this subgroup; one cohort, one vote: set aside as "
                f"{why} ({r.events}/{r.total} vs {kept.events}/{kept.total})"
            ),
        )
        for rid in r.pooled_ids
    ]


def _design_reason(design: str) -> str:
    if design == "case-report":
        return (
            "design case-report: not pooled in this analysis (one or two patients, "
            "published because of the response; see the sensitivity analysis)"
        )
    return f"design {design}: not pooled in this analysis"


def _mixed_reason(analysis: Analysis, r: Record) -> tuple[str | None, str | None]:
    """(subgroup, reason set aside) for a mixed group under the analysis's grouping."""
    grouping = analysis.grouping
    assert grouping is not None
    if r.mixed == "all-classes":
        return None, (
            "mixed group (all-classes): reports every salvage class together, "
            "so it belongs to no class"
        )
    if grouping.mixed == "other" and grouping.other is not None:
        return grouping.other, None
    return None, (
        f"mixed group ({r.mixed}): mixes salvage classes, kept out of the classes "
        f"of the grouping '{analysis.grouping_name}'"
    )


def run_analysis(analysis: Analysis, records: Iterable[Record]) -> AnalysisResult:
    """Steps 1-7 of the module docstring for one analysis."""
    records = list(records)
    aside: list[SetAside] = []
    chosen: list[Record] = []
    for r in records:
        if (
            r.outcome != analysis.outcome
            or r.population not in analysis.population
            or r.setting not in analysis.setting
        ):
            continue
        if analysis.modality is not None and not (
            r.attributes.get("modality", frozenset()) & {m.lower() for m in analysis.modality}
        ):
            continue
        if r.unit not in analysis.unit:
            aside.append(
                SetAside(
                    r.record_id,
                    r.label,
                    f"counts {r.unit}; this analysis pools {' and '.join(analysis.unit)}",
                )
            )
            continue
        if r.events is None or r.total is None:
            aside.append(
                SetAside(
                    r.record_id,
                    r.label,
                    "percent only: no count of responders and evaluable patients to pool",
                )
            )
            continue
        if r.total == 0:
            aside.append(SetAside(r.record_id, r.label, "no evaluable patients (0/0)"))
            continue
        if r.design and r.design in analysis.exclude_designs:
            aside.append(SetAside(r.record_id, r.label, _design_reason(r.design)))
            continue
        if analysis.alternative_counts and r.alternatives:
            r = replace(r, events=r.alternatives[0], label=f"{r.label} (alternative count)")
        chosen.append(r)

    grouping = analysis.grouping
    order = grouping.order() if grouping is not None else [ALL_STUDIES]
    members: dict[str, list[Record]] = {name: [] for name in order}
    group_class: dict[tuple[str, str], str | None] = {}
    if grouping is not None:
        for r in records:
            group_class[(r.study, r.group_id)] = grouping.classify(r.attributes)
    for r in chosen:
        excluded = grouping.excluded(r.attributes) if grouping is not None else None
        if excluded is not None:
            aside.append(SetAside(r.record_id, r.label, f"excluded by the grouping: {excluded}"))
            continue
        name = grouping.classify(r.attributes) if grouping is not None else ALL_STUDIES
        if grouping is not None and r.mixed and grouping.mixed != "classify":
            name, why = _mixed_reason(analysis, r)
            if why is not None:
                aside.append(SetAside(r.record_id, r.label, why))
                continue
        if grouping is not None and r.components:
            others = sorted(
                {
                    c
                    for part in r.components
                    if (c := group_class.get((r.study, part), name)) != name
                },
                key=str,
            )
            if others:
                aside.append(
                    SetAside(
                        r.record_id,
                        r.label,
                        subgroup=name,
                        reason=(
                            "sums groups this analysis places in other subgroups "
                            f"({', '.join(o or 'set aside' for o in others)}); its patients "
                            "are counted through those groups"
                        ),
                    )
                )
                continue
        if name is None:
            assert grouping is not None
            aside.append(
                SetAside(
                    r.record_id,
                    r.label,
                    f"matches no class of the grouping '{analysis.grouping_name}'"
                    " and the grouping has no 'other' bucket",
                )
            )
            continue
        members[name].append(r)

    kept: dict[str, list[Record]] = {}
    combined_notes: list[str] = []
    for name, rs in members.items():
        keep, dropped, notes = _one_vote(rs, name)
        kept[name] = keep
        aside.extend(dropped)
        combined_notes.extend(notes)
    pooled = pool_groups(kept, analysis.model, overall=analysis.overall)
    if combined_notes:
        pooled = replace(pooled, notes=(*pooled.notes, *combined_notes))
    return AnalysisResult(analysis=analysis, pooled=pooled, set_aside=tuple(aside))


# --------------------------------------------------------------------------- plot data


def forest_data(
    pooled: GroupedPool, *, title: str, outcome: str, footnotes: Sequence[str] = ()
) -> ForestData:
    """Fill :class:`ForestData` from pooled subgroups (:func:`metaresp.forestdata.build`)."""
    from metaresp.forestdata import build

    return build(pooled, title=title, outcome=outcome, footnotes=footnotes)


# --------------------------------------------------------------------------- summary


def estimate_dict(g: GroupResult, level: float) -> dict[str, Any]:
    """One estimate (pooled or a single study shown) as JSON-ready values (0-1 scale)."""
    from metaresp.estimates import estimate_row, summary_dict

    return summary_dict(estimate_row(g, level=level))


def analysis_dict(result: AnalysisResult) -> dict[str, Any]:
    """A JSON-ready record of one analysis: every estimate, the test, what was set aside."""
    a = result.analysis
    p = result.pooled
    return {
        "analysis": a.name,
        "role": a.role,
        "sensitivity_of": a.sensitivity_of,
        "title": a.title,
        "description": a.description,
        "outcome": a.outcome,
        "selection": {
            "population": list(a.population),
            "setting": list(a.setting),
            "unit": list(a.unit),
            "exclude_designs": list(a.exclude_designs),
            "alternative_counts": a.alternative_counts,
        },
        "grouping": a.grouping_name,
        "model": {
            "transform": a.model.transform,
            "estimator": a.model.estimator,
            "ci": a.model.ci,
            "level": a.model.level,
            "description": a.model.describe(),
        },
        "threshold_percent": a.threshold,
        "estimates": [estimate_dict(g, a.model.level) for g in p.groups],
        "overall": None if p.overall is None else estimate_dict(p.overall, a.model.level),
        "subgroup_test": None
        if p.test is None
        else {
            "q": p.test.q,
            "df": p.test.df,
            "pvalue": p.test.pvalue,
            "subgroups": list(p.test.subgroups),
        },
        "notes": list(p.notes),
        "set_aside": [
            {"record": s.record_id, "label": s.label, "subgroup": s.subgroup, "reason": s.reason}
            for s in result.set_aside
        ],
    }


def summary(results: Sequence[AnalysisResult], **meta: Any) -> dict[str, Any]:
    """The machine-readable state of every pooled estimate (``results/summary.json``)."""
    from metaresp import __version__

    return {"metaresp": __version__, **meta, "analyses": [analysis_dict(r) for r in results]}


__all__ = [
    "ALL_STUDIES",
    "LABEL_GROUP_CHARS",
    "REQUIRED_COLUMNS",
    "AnalysisResult",
    "CorpusGroups",
    "DifferenceTest",
    "GroupFacts",
    "GroupResult",
    "GroupedPool",
    "Record",
    "SetAside",
    "analysis_dict",
    "components_from_corpus",
    "difference_test",
    "estimate_dict",
    "exact_ci",
    "forest_data",
    "pool_groups",
    "records_from_frame",
    "run_analysis",
    "summary",
]
