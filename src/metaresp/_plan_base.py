"""Building blocks of the plan's types (:mod:`metaresp._plan_spec`): the strict base
model, list coercion, and the certainty settings a guideline panel gives (:mod:`metaresp.grade`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


def _as_list(value: Any) -> Any:
    """Accept a single value where a list is expected."""
    if value is None:
        return value
    if isinstance(value, str | int | float):
        return [value]
    return value


def _str_list(value: Any) -> Any:
    value = _as_list(value)
    if isinstance(value, list):
        return [
            str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value
        ]
    return value


StrList = Annotated[list[str], BeforeValidator(_str_list)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Rating = Literal["high", "moderate", "low", "very low"]


def _reason_text(value: str) -> str:
    if not value.strip():
        raise ValueError("a panel's rating needs a reason (a sentence the report shows)")
    return value.strip()


class CertaintyOverride(_Strict):
    """A guideline panel's own certainty rating of one estimate, with its reason."""

    rating: Rating
    reason: Annotated[str, AfterValidator(_reason_text)]


class CertaintySettings(_Strict):
    """How the report rates certainty (:mod:`metaresp.grade`).

    ``population``: the population the review is about (vocabulary ``population``);
    an estimate with studies from another population is rated down for indirectness
    (none: indirectness is not judged). ``overrides``: per analysis name (as expanded,
    e.g. ``class-first-salvage-orr``) and subgroup name (a class of its grouping, or
    ``Overall``), a panel's rating and reason, shown beside the rules' rating."""

    population: str | None = None
    overrides: dict[str, dict[str, CertaintyOverride]] = Field(default_factory=dict)


__all__ = [
    "CertaintyOverride",
    "CertaintySettings",
    "Rating",
    "StrList",
    "_Strict",
    "_as_list",
    "_str_list",
]
