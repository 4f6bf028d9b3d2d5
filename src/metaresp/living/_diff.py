"""The diff model: which estimates and records changed between two states, and why.

:func:`compare` takes two states and returns a :class:`StateDiff`:

- estimates are matched by (analysis, subgroup); an estimate *changed* when its records,
  its k or its pooled value or interval moved by more than :data:`TOLERANCE`;
- records are matched by record id (``study/group/outcome``); *edited* means the same id
  with a different count or field;
- each record change names the estimates it moved, and each changed estimate the records
  that entered, left or were edited;
- a *threshold crossing* is a change of where the confidence interval stands against a
  threshold of the plan (``thresholds:`` in ``analysis-plan.yaml``, e.g. ORR 50%): wholly
  above it, wholly below it, or including it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from metaresp.living._state import FINGERPRINT_KEY, RECORD_FIELDS, RECORDS_KEY, TEXTS_KEY

__all__ = [
    "TOLERANCE",
    "Crossing",
    "Estimate",
    "EstimateChange",
    "FieldChange",
    "Position",
    "RecordChange",
    "StateDiff",
    "compare",
    "estimates_of",
    "pct",
]

TOLERANCE = 1e-6
"""Smallest change of an estimate or CI bound (proportion scale) reported as a change.

Far below the printed precision (0.1 percentage point) and far above the floating-point
noise of refitting the same data on another machine, so that an unchanged estimate never
shows up as changed."""


Position = Literal["above", "below", "includes"]


@dataclass(frozen=True)
class Estimate:
    """One estimate of a state (pooled, or a single study shown); proportions 0-1."""

    analysis: str
    title: str
    subgroup: str
    overall: bool
    pooled: bool
    k: int
    patients: int
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    level: float
    threshold: float | None
    records: tuple[str, ...]
    model: Mapping[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.analysis, self.subgroup)

    def name(self) -> str:
        """ "title, subgroup" (just the title for an analysis without subgroups)."""
        from metaresp.analysis import ALL_STUDIES

        return self.title if self.subgroup == ALL_STUDIES else f"{self.title}, {self.subgroup}"

    def position(self) -> Position | None:
        """Where the CI stands against the threshold (``None`` without one)."""
        if self.threshold is None or self.ci_low is None or self.ci_high is None:
            return None
        t = self.threshold / 100.0
        if self.ci_low > t:
            return "above"
        if self.ci_high < t:
            return "below"
        return "includes"


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _estimate(analysis: Mapping[str, Any], item: Mapping[str, Any], overall: bool) -> Estimate:
    model = analysis.get("model") if isinstance(analysis.get("model"), dict) else None
    level = _float((model or {}).get("level")) or 0.95
    return Estimate(
        analysis=str(analysis["analysis"]),
        title=str(analysis.get("title") or analysis["analysis"]),
        subgroup=str(item.get("subgroup", "")),
        overall=overall,
        pooled=bool(item.get("pooled", False)),
        k=int(item.get("k") or 0),
        patients=int(item.get("patients") or 0),
        estimate=_float(item.get("estimate")),
        ci_low=_float(item.get("ci_low")),
        ci_high=_float(item.get("ci_high")),
        level=level,
        threshold=_float(analysis.get("threshold_percent")),
        records=tuple(str(r) for r in item.get("records") or ()),
        model=item.get("model") if isinstance(item.get("model"), dict) else None,
    )


def estimates_of(state: Mapping[str, Any]) -> dict[tuple[str, str], Estimate]:
    """Every estimate of a state keyed by (analysis, subgroup), in the state's order."""
    out: dict[tuple[str, str], Estimate] = {}
    for analysis in state.get("analyses", ()):
        for item in analysis.get("estimates", ()):
            est = _estimate(analysis, item, overall=False)
            out[est.key] = est
        if isinstance(analysis.get("overall"), dict):
            est = _estimate(analysis, analysis["overall"], overall=True)
            out[est.key] = est
    return out


def _set_aside_of(state: Mapping[str, Any]) -> dict[str, list[str]]:
    """record id -> "analysis: reason" for every record an analysis set aside."""
    out: dict[str, list[str]] = {}
    for analysis in state.get("analyses", ()):
        for item in analysis.get("set_aside", ()) or ():
            if isinstance(item, dict) and "record" in item:
                out.setdefault(str(item["record"]), []).append(
                    f"{analysis.get('analysis')}: {item.get('reason', 'set aside')}"
                )
    return out


def _records_of(state: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
    records = state.get(RECORDS_KEY)
    return dict(records) if isinstance(records, dict) else None


def _ids_used(state: Mapping[str, Any]) -> set[str]:
    ids = {r for est in estimates_of(state).values() for r in est.records}
    return ids | set(_set_aside_of(state))


@dataclass(frozen=True)
class FieldChange:
    """One field of an edited record, old and new value (``field == "text"``: a text field
    of a state that keeps the text fields only as a digest, so that neither which one nor
    the values are known)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class RecordChange:
    """A record added, removed or edited, and the estimates it moved."""

    record: str
    study: str
    kind: Literal["added", "removed", "edited"]
    fields: tuple[FieldChange, ...] = ()
    moved: tuple[tuple[str, str], ...] = ()
    """(analysis, subgroup) of every estimate that changed with this record in it."""
    why_not: str = ""
    """When it moved nothing: where it was set aside, or that no analysis selects it."""
    counts: str = ""
    """``responders/evaluable`` of the record (the new one unless removed)."""


@dataclass(frozen=True)
class Crossing:
    """The estimate's CI (or point estimate) moved across a threshold of the plan."""

    key: tuple[str, str]
    threshold: float
    kind: Literal["ci", "estimate"]
    old: str
    new: str
    message: str


@dataclass(frozen=True)
class EstimateChange:
    """One estimate in either state, and what happened to it."""

    key: tuple[str, str]
    status: Literal["changed", "new", "vanished", "unchanged"]
    old: Estimate | None
    new: Estimate | None
    entered: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()
    reason: str = ""
    """Why it moved when no record explains it (the plan or the model changed)."""

    @property
    def current(self) -> Estimate:
        est = self.new if self.new is not None else self.old
        assert est is not None
        return est


@dataclass(frozen=True)
class StateDiff:
    """Everything :func:`compare` found."""

    against: str
    estimates: tuple[EstimateChange, ...]
    records: tuple[RecordChange, ...]
    crossings: tuple[Crossing, ...]
    old_version: str | None = None
    new_version: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def with_status(self, *status: str) -> list[EstimateChange]:
        return [e for e in self.estimates if e.status in status]

    @property
    def changed(self) -> list[EstimateChange]:
        return self.with_status("changed")

    @property
    def new(self) -> list[EstimateChange]:
        return self.with_status("new")

    @property
    def vanished(self) -> list[EstimateChange]:
        return self.with_status("vanished")

    @property
    def unchanged(self) -> list[EstimateChange]:
        return self.with_status("unchanged")

    def records_of(self, kind: str) -> list[RecordChange]:
        return [r for r in self.records if r.kind == kind]

    @property
    def empty(self) -> bool:
        return not self.records and not any(e.status != "unchanged" for e in self.estimates)


def _moved(old: Estimate, new: Estimate) -> bool:
    if old.k != new.k or old.pooled != new.pooled or set(old.records) != set(new.records):
        return True
    for a, b in (
        (old.estimate, new.estimate),
        (old.ci_low, new.ci_low),
        (old.ci_high, new.ci_high),
    ):
        if (a is None) != (b is None):
            return True
        if a is not None and b is not None and abs(a - b) > TOLERANCE:
            return True
    return False


def pct(value: float | None) -> str:
    return "NA" if value is None else f"{100.0 * value:.1f}%"


def _threshold_text(t: float) -> str:
    return f"{t:g}%"


def _crossings(change: EstimateChange) -> list[Crossing]:
    old, new = change.old, change.new
    if old is None or new is None or new.threshold is None:
        return []
    out: list[Crossing] = []
    t = new.threshold
    tt = _threshold_text(t)
    before = replace(old, threshold=t).position()  # judged against today's threshold
    after = new.position()
    if before is not None and after is not None and before != after:
        if after == "above":
            msg = (
                f"CI lower bound now above {tt} ({pct(old.ci_low)} → {pct(new.ci_low)})"
                if before == "includes"
                else f"CI now wholly above {tt} (was wholly below)"
            )
        elif after == "below":
            msg = (
                f"CI upper bound now below {tt} ({pct(old.ci_high)} → {pct(new.ci_high)})"
                if before == "includes"
                else f"CI now wholly below {tt} (was wholly above)"
            )
        elif before == "above":
            msg = (
                f"CI now includes {tt}: lower bound {pct(old.ci_low)} → "
                f"{pct(new.ci_low)} (was wholly above)"
            )
        else:
            msg = (
                f"CI now includes {tt}: upper bound {pct(old.ci_high)} → "
                f"{pct(new.ci_high)} (was wholly below)"
            )
        out.append(Crossing(change.key, t, "ci", before, after, msg))
    if old.estimate is not None and new.estimate is not None:
        side_old = old.estimate * 100 >= t
        side_new = new.estimate * 100 >= t
        if side_old != side_new:
            word = "above" if side_new else "below"
            out.append(
                Crossing(
                    change.key,
                    t,
                    "estimate",
                    "above" if side_old else "below",
                    word,
                    f"point estimate now {word} {tt} ({pct(old.estimate)} → {pct(new.estimate)})",
                )
            )
    return out


def _field_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], digests: bool = True
) -> tuple[FieldChange, ...]:
    out = [
        FieldChange(name, old.get(name), new.get(name))
        for name in RECORD_FIELDS
        if old.get(name) != new.get(name)
    ]
    if digests and old.get("digest") != new.get("digest"):
        before, after = old.get(TEXTS_KEY), new.get(TEXTS_KEY)
        if isinstance(before, dict) and isinstance(after, dict):
            out.extend(
                FieldChange(name, before.get(name), after.get(name))
                for name in sorted(set(before) | set(after))
                if before.get(name) != after.get(name)
            )
        else:
            out.append(FieldChange("text", None, None))
    return tuple(out)


def _counts(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return ""
    r, n = entry.get("responders"), entry.get("evaluable")
    return f"{'?' if r is None else r}/{'?' if n is None else n}"


def compare(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], against: str = "the published state"
) -> StateDiff:
    """What changed from state ``old`` (``None``: nothing published yet) to ``new``.

    Without an earlier state every estimate is new and the records are not listed (they
    would all be "added")."""
    notes: list[str] = []
    if old is None:
        notes.append("no earlier state: every estimate is new")
        old = {
            "analyses": [],
            RECORDS_KEY: _records_of(new) or {},
            FINGERPRINT_KEY: new.get(FINGERPRINT_KEY),
        }
    before, after = estimates_of(old), estimates_of(new)
    recs_old, recs_new = _records_of(old), _records_of(new)

    # records
    edited_fields: dict[str, tuple[FieldChange, ...]] = {}
    if not old["analyses"] and not recs_old:
        added, removed = [], []
    elif recs_old is not None and recs_new is not None:
        added = sorted(set(recs_new) - set(recs_old))
        removed = sorted(set(recs_old) - set(recs_new))
        digests = old.get(FINGERPRINT_KEY) == new.get(FINGERPRINT_KEY)
        if not digests:
            notes.append(
                "the two states fingerprint their records differently "
                f"({FINGERPRINT_KEY} {old.get(FINGERPRINT_KEY)} and "
                f"{new.get(FINGERPRINT_KEY)}): edits of counts and fields are found, edits "
                "of the text fields are not"
            )
        for rid in sorted(set(recs_old) & set(recs_new)):
            found = _field_changes(recs_old[rid], recs_new[rid], digests)
            if found:
                edited_fields[rid] = found
    else:
        ids_old, ids_new = _ids_used(old), _ids_used(new)
        if recs_old is not None:
            ids_old = set(recs_old)
        if recs_new is not None:
            ids_new = set(recs_new)
        added, removed = sorted(ids_new - ids_old), sorted(ids_old - ids_new)
        which = "the earlier state" if recs_old is None else "the current state"
        notes.append(
            f"{which} has no record fingerprints ({RECORDS_KEY}): added and "
            "removed records are those an analysis used or set aside, and edited "
            "records cannot be detected"
        )

    # estimates
    changes: list[EstimateChange] = []
    edited = set(edited_fields)
    for key in [*after, *(k for k in before if k not in after)]:
        o, n = before.get(key), after.get(key)
        if o is None:
            assert n is not None
            changes.append(EstimateChange(key, "new", None, n, entered=n.records))
            continue
        if n is None:
            changes.append(EstimateChange(key, "vanished", o, None, left=o.records))
            continue
        entered = tuple(r for r in n.records if r not in o.records)
        left = tuple(r for r in o.records if r not in n.records)
        touched = tuple(sorted(edited & (set(o.records) | set(n.records))))
        if not _moved(o, n):
            changes.append(EstimateChange(key, "unchanged", o, n, edited=touched))
            continue
        reason = ""
        if not entered and not left and not touched:
            reason = (
                "the model changed"
                if (o.model or {}) != (n.model or {})
                else "no record changed: the plan or the engine changed"
            )
        changes.append(EstimateChange(key, "changed", o, n, entered, left, touched, reason))

    # which estimates each record moved
    moved_by: dict[str, list[tuple[str, str]]] = {}
    for ch in changes:
        if ch.status == "unchanged":
            continue
        for rid in (*ch.entered, *ch.left, *ch.edited):
            moved_by.setdefault(rid, []).append(ch.key)
    aside_new, aside_old = _set_aside_of(new), _set_aside_of(old)
    record_changes: list[RecordChange] = []

    def why(rid: str, aside: Mapping[str, list[str]]) -> str:
        if rid in aside:
            return "set aside (" + "; ".join(aside[rid]) + ")"
        return "not selected by any analysis of the plan"

    def study_of(rid: str, entry: Mapping[str, Any] | None) -> str:
        return str((entry or {}).get("study") or rid.split("/")[0])

    sides: tuple[tuple[Literal["added", "removed"], Any, Any, Any], ...] = (
        ("added", added, recs_new, aside_new),
        ("removed", removed, recs_old, aside_old),
    )
    for kind, rids, recs, aside in sides:
        for rid in rids:
            entry = (recs or {}).get(rid)
            moved = tuple(dict.fromkeys(moved_by.get(rid, [])))
            record_changes.append(
                RecordChange(
                    rid,
                    study_of(rid, entry),
                    kind,
                    moved=moved,
                    counts=_counts(entry),
                    why_not="" if moved else why(rid, aside),
                )
            )
    for rid, fields_changed in edited_fields.items():
        entry = (recs_new or {}).get(rid)
        moved = tuple(dict.fromkeys(moved_by.get(rid, [])))
        record_changes.append(
            RecordChange(
                rid,
                study_of(rid, entry),
                "edited",
                fields=fields_changed,
                moved=moved,
                counts=_counts(entry),
                why_not="" if moved else why(rid, aside_new),
            )
        )

    crossings = [c for ch in changes for c in _crossings(ch)]
    version_old = old.get("corpus_version")
    version_new = new.get("corpus_version")
    return StateDiff(
        against=against,
        estimates=tuple(changes),
        records=tuple(record_changes),
        crossings=tuple(crossings),
        old_version=str(version_old) if version_old is not None else None,
        new_version=str(version_new) if version_new is not None else None,
        notes=tuple(notes),
    )
