"""The extraction file format as pydantic models, and the rules one study must obey.

Two layers, kept apart on purpose:

* the models (:class:`Study`, :class:`Group`, :class:`Outcome`, :class:`ViaReview`) check
  *shape*: field names (unknown keys are errors), types, controlled vocabularies
  (:mod:`metaresp.vocab`, with a "did you mean" suggestion) and agent spelling (synonyms are
  normalised on the way in);
* :func:`check_study` checks the *rules* that relate fields to each other (counts against
  denominators, derived counts against printed percentages, group ids and components,
  parts adding up to totals) and returns every finding with its exact path.

:func:`metaresp.corpus.load_extractions` runs both and adds the rules that span files.
The file format itself is described in ``docs/extraction-format.md``.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from metaresp import vocab
from metaresp._percent import (
    _counts_text,
    _nearest,
    _pct,
    matching_counts,
    percent_decimals,
    reproduces,
)
from metaresp.limits import MAX_COUNT

__all__ = [
    "Finding",
    "Group",
    "Outcome",
    "Study",
    "ViaReview",
    "check_study",
    "format_path",
    "json_schema",
    "matching_counts",
    "percent_decimals",
    "reproduces",
]

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
PERCENT_PATTERN = r"^\d{1,3}(?:\.\d{1,10})?$"
PUBLISHED_PATTERN = r"^\d{4}(?:-(?:0[1-9]|1[0-2])(?:-(?:0[1-9]|[12]\d|3[01]))?)?$"
DOI_PATTERN = r"^10\.\d{4,9}/\S+$"


# --------------------------------------------------------------------------- vocabularies


def _vocab_schema(field: str, title: str) -> dict[str, Any]:
    terms = vocab.VOCABULARIES[field]
    lines = "; ".join(f"{value}: {text}" for value, text in terms.items())
    return {
        "type": "string",
        "title": title,
        "enum": list(terms),
        "enumDescriptions": list(terms.values()),
        "description": f"{title} (controlled vocabulary). {lines}",
    }


def _term_checker(field: str) -> Any:
    def check(value: str) -> str:
        if value not in vocab.VOCABULARIES[field]:
            raise PydanticCustomError(
                "vocabulary", "{message}", {"message": vocab.unknown_term_message(field, value)}
            )
        return value

    return AfterValidator(check)


Modality = Annotated[
    str, _term_checker("modality"), WithJsonSchema(_vocab_schema("modality", "Modality"))
]
Target = Annotated[str, _term_checker("target"), WithJsonSchema(_vocab_schema("target", "Target"))]
Population = Annotated[
    str, _term_checker("population"), WithJsonSchema(_vocab_schema("population", "Population"))
]
Setting = Annotated[
    str, _term_checker("setting"), WithJsonSchema(_vocab_schema("setting", "Setting"))
]
Unit = Annotated[str, _term_checker("unit"), WithJsonSchema(_vocab_schema("unit", "Unit"))]
OutcomeName = Annotated[
    str, _term_checker("outcome"), WithJsonSchema(_vocab_schema("outcome", "Outcome"))
]


def _design_spelling(value: object) -> object:
    """``Retrospective cohort`` and ``retrospective_cohort`` are spellings of
    ``retrospective-cohort`` (the vocabulary's form); other words are not guessed."""
    if not isinstance(value, str):
        return value
    text = "-".join(value.strip().lower().replace("_", " ").split())
    return text.replace("randomized", "randomised")


Design = Annotated[
    str,
    BeforeValidator(_design_spelling),
    _term_checker("design"),
    WithJsonSchema(_vocab_schema("design", "Design")),
]
Mixed = Annotated[str, _term_checker("mixed"), WithJsonSchema(_vocab_schema("mixed", "Mixed"))]
GROUP_REF_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*(?:/[a-z0-9]+(?:-[a-z0-9]+)*)?$"


def _normalise_agent(value: object) -> object:
    return vocab.normalise_agent(value) if isinstance(value, str) else value


Agent = Annotated[
    str,
    BeforeValidator(_normalise_agent),
    Field(min_length=1),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "description": "Agent name; known synonyms are normalised "
            "(e.g. 'tec', 'JNJ-64007957' -> 'teclistamab').",
            "examples": list(vocab.AGENTS),
        }
    ),
]


def _as_list(value: object) -> object:
    """Accept a single scalar where a list is expected (``target: BCMA``)."""
    return [value] if isinstance(value, str) else value


def _published_text(value: object) -> object:
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _percent_text(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return str(value)
    return value


def _check_percent(value: str) -> str:
    if Decimal(value) > 100:
        raise PydanticCustomError(
            "percent_range", "{message}", {"message": f"percent {value!r} is above 100"}
        )
    return value


def _count_items(value: object) -> object:
    """Whole numbers written as text (a spreadsheet cell "23; 24") are read as numbers."""
    if isinstance(value, list | tuple):
        return [int(v) if isinstance(v, str) and v.strip().isdigit() else v for v in value]
    return value


def _non_empty(value: tuple[Any, ...]) -> tuple[Any, ...]:
    # Checked after the items, so a list whose items fail is not also reported as empty.
    if not value:
        raise PydanticCustomError("too_short", "{message}", {"message": "needs at least one item"})
    return value


NonEmpty = (AfterValidator(_non_empty), Field(json_schema_extra={"minItems": 1}))

Slug = Annotated[str, Field(pattern=SLUG_PATTERN, description="lower-case slug: a-z, 0-9, '-'")]
Text = Annotated[str, Field(min_length=1)]
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_COUNT)]
Denominator = Annotated[int, Strict(), Field(ge=1, le=MAX_COUNT)]
PercentText = Annotated[str, Field(pattern=PERCENT_PATTERN), AfterValidator(_check_percent)]
PublishedText = Annotated[str, Field(pattern=PUBLISHED_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Outcome(_Model):
    """One reported count: responders out of evaluable for one outcome of one group."""

    outcome: OutcomeName
    responders: Count | None = Field(
        default=None, description="patients (or lines) with the response; null if only a percentage"
    )
    evaluable: Denominator | None = Field(
        default=None, description="the denominator; null when the source gives none"
    )
    percent: Annotated[PercentText | None, BeforeValidator(_percent_text)] = Field(
        default=None,
        description="the percentage exactly as printed, as a string (keeps its precision), "
        "without '%'; null if none is printed",
    )
    derived: Annotated[bool, Strict()] = Field(
        default=False, description="true when responders were back-calculated from percent"
    )
    derivation: Text | None = Field(default=None, description="how a derived count was obtained")
    note: Text | None = Field(
        default=None, description="e.g. which count was chosen when no whole count fits"
    )
    alternatives: Annotated[tuple[Count, ...], BeforeValidator(_count_items)] = Field(
        default=(),
        description="for a derived count: the other whole counts that also reproduce the "
        "printed percent, or, where none does, the other count next to it (pooled in a "
        "sensitivity analysis that asks for them)",
    )
    quote: Text = Field(description="the source sentence or table row, verbatim")
    location: Text = Field(description="where the quote stands (table, section, page)")


class ViaReview(_Model):
    """A review through which a primary study's results reach us."""

    authors: Text = Field(description="the primary study's authors as the review cites them")
    year: Annotated[int, Strict(), Field(ge=1900, le=2100)] | None = Field(
        default=None, description="the primary study's year"
    )
    reference: Annotated[int, Strict(), Field(ge=1)] = Field(
        description="the review's reference number for the primary study"
    )


class Group(_Model):
    """A treatment group as the source reports it, with its outcome records."""

    id: Slug = Field(description="unique within the file")
    name: Text = Field(description="the group's name as the source gives it")
    agents: Annotated[tuple[Agent, ...], BeforeValidator(_as_list), *NonEmpty]
    modality: Modality
    target: Annotated[tuple[Target, ...], BeforeValidator(_as_list), *NonEmpty]
    setting: Setting
    unit: Unit
    population: Population | None = Field(
        default=None, description="overrides the study's population for this group"
    )
    cohort: Slug | None = Field(default=None, description="overrides the study's cohort")
    components: tuple[Slug, ...] = Field(
        default=(), description="ids of groups in this file whose counts add up to this one"
    )
    mixed: Mixed | None = Field(
        default=None,
        description="the group mixes salvage classes (several-classes) or reports them all "
        "together (all-classes); kept out of class pools",
    )
    shares_patients_with: Annotated[
        tuple[Annotated[str, Field(pattern=GROUP_REF_PATTERN)], ...], BeforeValidator(_as_list)
    ] = Field(
        default=(),
        description="other groups ('study-id/group-id', or 'study-id' for every group of "
        "that study) that include some of this group's patients: a trial's patients inside "
        "a centre's series, or a subset of another group of this file that is not one of "
        "its components; one cohort, one vote never pools the two together",
    )
    outcomes: Annotated[tuple[Outcome, ...], *NonEmpty]


class Study(_Model):
    """One extraction file: one study report and every count it gives."""

    id: Slug = Field(description="unique study id: first author + year (+ a/b)")
    citation: Text
    doi: Annotated[str, Field(pattern=DOI_PATTERN)] | None = None
    year: Annotated[int, Strict(), Field(ge=1900, le=2100)]
    published: Annotated[PublishedText | None, BeforeValidator(_published_text)] = Field(
        default=None, description="YYYY, YYYY-MM or YYYY-MM-DD"
    )
    design: Design
    design_detail: Text | None = Field(
        default=None, description="the design in the source's words (phase, subgroup, ...)"
    )
    centres: Annotated[int, Strict(), Field(ge=1)] | None = None
    population: Population
    cohort: Slug = Field(description="reports of the same patients share this id")
    source: Text = Field(description="the document the numbers were read from")
    via_review: ViaReview | None = None
    notes: Text | None = None
    groups: tuple[Group, ...] = Field(
        description="treatment groups with their outcome records; empty for a report of "
        "the same patients that prints no count (e.g. a news summary)"
    )

    def group(self, group_id: str) -> Group:
        """The group with id ``group_id`` (``KeyError`` if none)."""
        for group in self.groups:
            if group.id == group_id:
                return group
        raise KeyError(group_id)


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one extraction file, vocabularies included."""
    schema = Study.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "metaresp extraction file",
        "description": "One study report and every response count it gives "
        "(see docs/extraction-format.md).",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


# --------------------------------------------------------------------------- rules

PathPart = str | int
Path_ = tuple[PathPart, ...]


@dataclass(frozen=True)
class Finding:
    """A rule violation inside one study: where (``path``), what, and how serious."""

    path: Path_
    message: str
    level: Literal["error", "warning"] = "error"


def format_path(path: Sequence[PathPart]) -> str:
    """``("groups", 2, "outcomes", 0, "responders")`` → ``"groups[2].outcomes[0].responders"``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(file)"


def _check_outcome(rec: Outcome, at: Path_) -> list[Finding]:
    found: list[Finding] = []
    err = found.append
    r, n, p = rec.responders, rec.evaluable, rec.percent
    if r is None and p is None:
        err(Finding(at, "the record has neither responders nor a printed percent"))
    if r is not None and n is not None and r > n:
        err(Finding((*at, "responders"), f"responders {r} > evaluable {n}"))
        return found
    if rec.derived:
        if rec.derivation is None:
            err(
                Finding(
                    (*at, "derivation"),
                    "derived: true needs a derivation saying how the count was obtained",
                )
            )
        if r is None:
            err(
                Finding(
                    (*at, "responders"),
                    "derived: true but there is no derived count (responders is null)",
                )
            )
    if rec.alternatives:
        found.extend(_check_alternatives(rec, at))
    if p is None or n is None:
        return found
    fits = matching_counts(n, p)
    if not fits:
        nearest = _nearest(n, p)
        options = ", ".join(f"{k}/{n} = {_pct(k, n)}" for k in nearest)
        found.append(
            Finding(
                (*at, "percent"),
                f"no whole count of {n} gives the printed {p}% (nearest: {options})",
                "warning",
            )
        )
        if r is not None and rec.note is None:
            err(
                Finding(
                    (*at, "note"),
                    f"no whole count of {n} gives {p}%: the record needs a "
                    "note saying which count was chosen and why",
                )
            )
    elif r is not None and r not in fits:
        counts = _counts_text(fits, " or ")
        if rec.derived:
            err(
                Finding(
                    (*at, "responders"),
                    f"derived count {r}/{n} = {_pct(r, n)} does not "
                    f"reproduce the printed {p}% (a count of {counts} would)",
                )
            )
        else:
            found.append(
                Finding(
                    (*at, "percent"),
                    f"printed {p}% disagrees with {r}/{n} = "
                    f"{_pct(r, n)} (a count of {counts} would give it)",
                    "warning",
                )
            )
    return found


def _check_alternatives(rec: Outcome, at: Path_) -> list[Finding]:
    where = (*at, "alternatives")
    if not rec.derived or rec.responders is None:
        return [
            Finding(
                where,
                "alternatives are other derived counts: the record needs derived: true and a count",
            )
        ]
    if rec.percent is None or rec.evaluable is None:
        return [
            Finding(
                where,
                "alternatives need the printed percent and the evaluable "
                "denominator they reproduce",
            )
        ]
    found: list[Finding] = []
    fits: Sequence[int] = matching_counts(rec.evaluable, rec.percent)
    if not fits:
        # No whole count reproduces the percent: the two counts either side of it are the
        # candidates (e.g. "64" of 37: 23 or 24).
        exact = Fraction(Decimal(rec.percent)) * rec.evaluable / 100
        fits = sorted(k for k in {math.floor(exact), math.ceil(exact)} if 0 <= k <= rec.evaluable)
    for k, count in enumerate(rec.alternatives):
        if count == rec.responders:
            found.append(Finding((*where, k), f"alternative {count} is the recorded count"))
        elif count not in fits:
            found.append(
                Finding(
                    (*where, k),
                    f"alternative {count}/{rec.evaluable} = {_pct(count, rec.evaluable)} does not "
                    f"reproduce the printed {rec.percent}% (candidates: "
                    f"{_counts_text(fits, ', ')})",
                )
            )
    return found


def _check_totals(study: Study, gi: int, ids: dict[str, int]) -> list[Finding]:
    group = study.groups[gi]
    parts = [study.groups[ids[c]] for c in group.components if c in ids and c != group.id]
    if not parts or len(parts) != len(group.components):
        return []
    found: list[Finding] = []
    for oi, rec in enumerate(group.outcomes):
        matched = [
            next((o for o in part.outcomes if o.outcome == rec.outcome), None) for part in parts
        ]
        if any(m is None for m in matched):
            continue
        for name in ("evaluable", "responders"):
            whole = getattr(rec, name)
            values = [getattr(m, name) for m in matched]
            if whole is None or any(v is None for v in values):
                continue
            total = sum(values)
            if total != whole:
                terms = " + ".join(str(v) for v in values)
                found.append(
                    Finding(
                        ("groups", gi, "outcomes", oi, name),
                        f"{rec.outcome} {name}: components {', '.join(group.components)} add up to "
                        f"{terms} = {total}, the group says {whole}",
                        "warning",
                    )
                )
    return found


def check_study(study: Study) -> list[Finding]:
    """Every rule violation within one study (errors and warnings), in file order.

    Errors: responders > evaluable; a derived record without derivation or without its
    count; a derived count that does not reproduce its printed percent where some whole
    count would; a count chosen where no whole count fits, without a ``note``; duplicate
    group ids; duplicate agents in a group; components naming unknown groups (or the group
    itself); a record with neither responders nor percent.
    Warnings: a printed percent that no whole count of the denominator reproduces; a
    non-derived count whose percentage disagrees with the printed one; the same outcome twice
    in a group; components whose counts do not add up to the group's; an agent name that
    looks like a misspelling of a known agent.
    """
    found: list[Finding] = []
    ids: dict[str, int] = {}
    for gi, group in enumerate(study.groups):
        if group.id in ids:
            found.append(
                Finding(
                    ("groups", gi, "id"),
                    f"duplicate group id {group.id!r} (first at groups[{ids[group.id]}])",
                )
            )
        else:
            ids[group.id] = gi
    for gi, group in enumerate(study.groups):
        seen_agents: set[str] = set()
        for ai, agent in enumerate(group.agents):
            at: Path_ = ("groups", gi, "agents", ai)
            if agent in seen_agents:
                found.append(Finding(at, f"agent {agent!r} is listed twice"))
            seen_agents.add(agent)
            if not vocab.is_known_agent(agent):
                guess = vocab.suggest_agent(agent)
                if guess is not None:
                    found.append(
                        Finding(
                            at,
                            f"agent {agent!r} is not in the agent table; did you mean {guess!r}?",
                            "warning",
                        )
                    )
        for ci, component in enumerate(group.components):
            at = ("groups", gi, "components", ci)
            if component == group.id:
                found.append(Finding(at, f"group {group.id!r} lists itself as a component"))
            elif component not in ids:
                guess = vocab.suggest(component, ids)
                hint = f"; did you mean {guess!r}?" if guess else ""
                found.append(
                    Finding(at, f"component {component!r} is not a group id in this file{hint}")
                )
        first: dict[str, int] = {}
        for oi, rec in enumerate(group.outcomes):
            at = ("groups", gi, "outcomes", oi)
            if rec.outcome in first:
                found.append(
                    Finding(
                        (*at, "outcome"),
                        f"{rec.outcome} appears twice in this "
                        f"group (first at outcomes[{first[rec.outcome]}]); pooling "
                        "would count the group twice",
                        "warning",
                    )
                )
            first.setdefault(rec.outcome, oi)
            found.extend(_check_outcome(rec, at))
        found.extend(_check_totals(study, gi, ids))
    return found
