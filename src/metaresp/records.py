"""Analysis records: one pooled-or-set-aside row of evidence, and how it is built.

A :class:`Record` is one outcome count of one group, with everything the plan's rules
read. :func:`records_from_corpus` builds them from a loaded
:class:`~metaresp.corpus.Corpus`, taking lists (agents, targets, components) from the
schema objects as they are, so an agent whose name holds a separator ("CS1/BCMA CAR-T")
stays one agent; nothing is joined into a string and split again.
:func:`records_from_frame` builds them from a data frame (``corpus.to_frame()`` or a table
a user brings). :class:`SetAside` is a record an analysis did not pool, with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metaresp.errors import InputError
from metaresp.fields import ANALYSIS_FIELDS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from metaresp.corpus import Corpus
    from metaresp.schema import Group, Outcome, Study

#: Columns of ``corpus.to_frame()`` the analysis reads (named once, in :mod:`metaresp.fields`).
REQUIRED_COLUMNS: tuple[str, ...] = ANALYSIS_FIELDS


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


LABEL_GROUP_CHARS = 100
"""Longest group name in a forest-plot label: longer ones are cut at a word with "…", so
that a figure fits a journal page (about 7 in); tables and the report keep the full name."""


def shorten(text: str, limit: int) -> str:
    """``text`` cut at the last space before ``limit`` characters, with "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:(-–")
    return f"{cut}…"


def _label(row: Any, study: str, year: int | None) -> str:
    """What a reader sees for a record: "Merz 2024 · Teclistamab". A study known only
    through a review that does not name its authors is shown by the review's reference
    number ("Review ref. 36 · ..."), with no year, since the review prints none."""
    group = shorten(str(row["group"]), LABEL_GROUP_CHARS)
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


@dataclass(frozen=True)
class SetAside:
    """A record an analysis did not pool, and why."""

    record_id: str
    label: str
    reason: str
    subgroup: str | None = None


# --------------------------------------------------------------------------- from a corpus


def _set(values: Iterable[str]) -> frozenset[str]:
    """Lower-case values, as the plan's conditions compare them."""
    return frozenset(v.strip().lower() for v in values if v.strip())


def record_of(study: Study, group: Group, rec: Outcome, record_id: str) -> Record:
    """One :class:`~metaresp.analysis.Record` (population and cohort: the group's own
    where it overrides the study's)."""
    population = group.population or study.population
    cohort = group.cohort or study.cohort
    review = study.via_review
    label = _label(
        {
            "group": group.name,
            "citation": study.citation,
            "via_review_reference": review.reference if review else None,
            "via_review_authors": review.authors if review else None,
        },
        study.id,
        study.year,
    )
    attributes = {
        "agent": _set(group.agents),
        "modality": _set([group.modality]),
        "target": _set(group.target),
        "group": _set([group.name]),
        "group_id": _set([group.id]),
        "study": _set([study.id]),
        "cohort": _set([cohort]),
        "population": _set([population]),
    }
    return Record(
        record_id=record_id,
        study=study.id,
        group_id=group.id,
        group=group.name,
        cohort=cohort,
        outcome=rec.outcome,
        population=population,
        setting=group.setting,
        unit=group.unit,
        events=rec.responders,
        total=rec.evaluable,
        label=label,
        year=study.year,
        date=_date(study.published, study.year),
        attributes=attributes,
        components=tuple(group.components),
        derived=rec.derived,
    )


def records_from_corpus(corpus: Corpus) -> list[Record]:
    """Every outcome record of ``corpus`` as an analysis record, in file order, with the
    record ids of ``corpus.to_frame()``."""
    from metaresp.corpus import record_ids

    out: list[Record] = []
    for study in corpus.studies:
        for (gi, oi), record_id in record_ids(study).items():
            group = study.groups[gi]
            out.append(record_of(study, group, group.outcomes[oi], record_id))
    return out


__all__ = [
    "LABEL_GROUP_CHARS",
    "REQUIRED_COLUMNS",
    "CorpusGroups",
    "GroupFacts",
    "Record",
    "SetAside",
    "components_from_corpus",
    "record_of",
    "records_from_corpus",
    "records_from_frame",
    "shorten",
]
