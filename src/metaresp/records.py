"""The analysis records of a corpus, built from its schema objects.

:func:`records_from_corpus` turns every outcome record of a loaded
:class:`~metaresp.corpus.Corpus` into an :class:`~metaresp.analysis.Record`. Lists
(agents, targets, components) are taken from the models as they are, so an agent whose
name holds a separator ("CS1/BCMA CAR-T") stays one agent; nothing is joined into a string
and split again. (:func:`metaresp.analysis.records_from_frame` remains for tables that
come as a data frame.)
"""

from __future__ import annotations

from collections.abc import Iterable

from metaresp.analysis import Record, _date, _label
from metaresp.corpus import Corpus, record_ids
from metaresp.schema import Group, Outcome, Study

__all__ = ["record_of", "records_from_corpus"]


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
    out: list[Record] = []
    for study in corpus.studies:
        for (gi, oi), record_id in record_ids(study).items():
            group = study.groups[gi]
            out.append(record_of(study, group, group.outcomes[oi], record_id))
    return out
