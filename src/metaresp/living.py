"""Living updates: what changed between two states of the pooled estimates, and why.

A *state* is the JSON record that ``metaresp run`` writes as ``results/summary.json``
(:func:`metaresp.analysis.summary`: every analysis, every estimate with the record ids it
used, what was set aside) plus, under ``corpus_records``, one fingerprint per extraction
record (:func:`record_table`), so that a later state can tell which records were added,
removed or edited. The state of the last run is kept in the repository, at
:data:`PUBLISHED_PATH` (``published/summary.json``), as the current published state; its
git history is the history of the published estimates.

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

:func:`format_diff` prints the table a person reads, :func:`changelog` the paragraph a
guideline author pastes, :func:`diff_dict` the JSON for machines.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from metaresp.errors import InputError
from metaresp.files import read_text_file, write_bytes_atomic, write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from metaresp.analysis import AnalysisResult

PUBLISHED_PATH = Path("published") / "summary.json"
"""The published state, tracked in git (``results/`` is not)."""

RECORDS_KEY = "corpus_records"
"""Key of the record fingerprints in a state."""

TOLERANCE = 1e-6
"""Smallest change of an estimate or CI bound (proportion scale) reported as a change.

Far below the printed precision (0.1 percentage point) and far above the floating-point
noise of refitting the same data on another machine, so that an unchanged estimate never
shows up as changed."""

#: Fields of a record compared one by one (the rest is compared through ``digest``).
RECORD_FIELDS: tuple[str, ...] = (
    "study", "cohort", "population", "setting", "group", "agent", "modality", "target",
    "unit", "outcome", "responders", "evaluable", "derived", "year", "published",
)
#: Text fields folded into the record's ``digest`` (an edit there moves no estimate).
TEXT_FIELDS: tuple[str, ...] = (
    "components", "percent_text", "derivation", "note", "quote", "location", "design",
    "source", "citation", "doi", "via_review_authors", "via_review_year",
    "via_review_reference",
)

Position = Literal["above", "below", "includes"]


# --------------------------------------------------------------------------- states


def _plain(value: Any) -> Any:
    """A frame cell as a JSON value (``None`` for NA)."""
    if value is None:
        return None
    try:
        if value != value:  # NaN, pandas NA raise or compare unequal
            return None
    except (TypeError, ValueError):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    return str(value)


def record_table(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """One fingerprint per record of ``corpus.to_frame()``, keyed by record id.

    Each fingerprint holds the fields of :data:`RECORD_FIELDS` as they are and a short
    SHA-256 ``digest`` of the text fields (:data:`TEXT_FIELDS`); the file name and line are
    left out, so moving a record within its file is not an edit.
    """
    out: dict[str, dict[str, Any]] = {}
    columns = list(frame.columns)
    for row in frame.itertuples(index=False, name=None):
        cells = dict(zip(columns, row, strict=True))
        entry = {name: _plain(cells.get(name)) for name in RECORD_FIELDS}
        text = json.dumps([_plain(cells.get(name)) for name in TEXT_FIELDS],
                          ensure_ascii=False)
        entry["digest"] = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        out[str(cells["record"])] = entry
    return dict(sorted(out.items()))


def build_state(results: Sequence[AnalysisResult], frame: pd.DataFrame,
                **meta: Any) -> dict[str, Any]:
    """The state of a run: :func:`metaresp.analysis.summary` plus the record fingerprints."""
    from metaresp.analysis import summary

    state = summary(results, **meta)
    state[RECORDS_KEY] = record_table(frame)
    return state


def state_meta(plan_path: Path, title: str, extractions: Path, n_studies: int,
               n_records: int) -> dict[str, Any]:
    """The descriptive fields of a state, as ``metaresp run`` writes them."""
    from metaresp.runner import corpus_version

    def shown(path: Path) -> str:
        return str(path) if not path.is_absolute() else path.name

    return {"title": title, "plan": shown(plan_path), "extractions": shown(extractions),
            "corpus_version": corpus_version(extractions), "studies": n_studies,
            "records": n_records}


def current_state(plan_path: Path, extractions: Path) -> dict[str, Any]:
    """The state the plan gives on the extractions now, computed in memory (no file
    written)."""
    from metaresp.analysis import components_from_corpus, records_from_frame, run_analysis
    from metaresp.corpus import load_extractions
    from metaresp.plan import load_plan

    plan = load_plan(plan_path)
    if not extractions.is_dir():
        raise InputError(f"{extractions}: extractions folder not found")
    corpus = load_extractions(extractions)
    frame = corpus.to_frame()
    records = records_from_frame(frame, components_from_corpus(corpus),
                                 source=str(extractions))
    results = [run_analysis(a, records) for a in plan.expanded()]
    return build_state(results, frame, **state_meta(plan_path, plan.title, extractions,
                                                   len(corpus.studies), len(frame)))


def state_text(state: Mapping[str, Any]) -> str:
    """The state as written to disk (indented JSON, UTF-8, final newline)."""
    return json.dumps(state, indent=2, ensure_ascii=False) + "\n"



def publish(state: Mapping[str, Any], path: Path = PUBLISHED_PATH) -> Path:
    """Write ``state`` as the published state (atomically)."""
    return write_text_atomic(Path(path), state_text(state))


def check_state(data: Any, source: str) -> dict[str, Any]:
    """``data`` if it looks like a state, else :class:`InputError` naming ``source``."""
    if not isinstance(data, dict) or not isinstance(data.get("analyses"), list):
        raise InputError(f"{source}: not a metaresp summary (no 'analyses' list)")
    for i, analysis in enumerate(data["analyses"]):
        if (not isinstance(analysis, dict) or not isinstance(analysis.get("analysis"), str)
                or not isinstance(analysis.get("estimates"), list)):
            raise InputError(f"{source}: analyses[{i}]: not a metaresp analysis summary "
                             "(needs 'analysis' and 'estimates')")
    records = data.get(RECORDS_KEY)
    if records is not None and not isinstance(records, dict):
        raise InputError(f"{source}: {RECORDS_KEY}: expected a mapping of record ids")
    return data


def parse_state(text: str, source: str) -> dict[str, Any]:
    """Read a state from JSON text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return check_state(data, source)


def read_state_file(path: Path) -> dict[str, Any]:
    """Read a state file; a missing or unreadable file is one :class:`InputError` line."""
    return parse_state(read_text_file(path, "summary file"), str(path))


def _git(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    git = shutil.which("git")
    if git is None:
        raise FileNotFoundError("git")
    return subprocess.run([git, *args], cwd=cwd, capture_output=True, text=True,
                          encoding="utf-8", check=False)


def read_state_at_ref(ref: str, path: Path = PUBLISHED_PATH) -> dict[str, Any]:
    """The state file ``path`` as of git revision ``ref`` (``git show REF:path``)."""
    where = f"--against {ref}"
    if not ref or ref.startswith("-"):
        raise InputError(f"{where}: not a file, nor a git revision")
    target = Path(path).resolve()
    folder = target.parent
    while not folder.is_dir():
        folder = folder.parent
    try:
        top = _git(["rev-parse", "--show-toplevel"], folder)
    except FileNotFoundError:
        raise InputError(f"{where}: no such file, and git is not installed to read it as a "
                         "revision") from None
    if top.returncode != 0:
        raise InputError(f"{where}: no such file, and {folder} is not in a git repository")
    root = Path(top.stdout.strip()).resolve()
    try:
        relative = target.relative_to(root).as_posix()
    except ValueError:
        raise InputError(f"{where}: the published state {path} is outside the git "
                         f"repository {root}") from None
    shown = _git(["show", f"{ref}:{relative}"], root)
    if shown.returncode != 0:
        first = (shown.stderr.strip().splitlines() or ["git show failed"])[0]
        raise InputError(f"{where}: not a file, nor a git revision holding {relative} "
                         f"({first.removeprefix('fatal: ')})")
    return parse_state(shown.stdout, f"{ref}:{relative}")


def load_previous(against: str | None, published: Path = PUBLISHED_PATH
                  ) -> tuple[dict[str, Any] | None, str]:
    """The state to compare with, and a label naming it.

    ``against`` is a summary file or a git revision (read as the published state file at
    that revision); ``None`` means the published state file, and ``(None, label)`` when it
    does not exist yet (every estimate is then new).
    """
    if against is None:
        if not published.exists():
            return None, f"{published} (not written yet)"
        return read_state_file(published), str(published)
    candidate = Path(against)
    if candidate.exists():
        return read_state_file(candidate), str(candidate)
    return read_state_at_ref(against, published), f"{against}:{published.as_posix()}"


# --------------------------------------------------------------------------- estimates


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
        """"title, subgroup" (just the title for an analysis without subgroups)."""
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


def _estimate(analysis: Mapping[str, Any], item: Mapping[str, Any], overall: bool
              ) -> Estimate:
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
                    f"{analysis.get('analysis')}: {item.get('reason', 'set aside')}")
    return out


def _records_of(state: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
    records = state.get(RECORDS_KEY)
    return dict(records) if isinstance(records, dict) else None


def _ids_used(state: Mapping[str, Any]) -> set[str]:
    ids = {r for est in estimates_of(state).values() for r in est.records}
    return ids | set(_set_aside_of(state))


# --------------------------------------------------------------------------- the diff


@dataclass(frozen=True)
class FieldChange:
    """One field of an edited record (``field == "text"``: quote, location or citation)."""

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
    for a, b in ((old.estimate, new.estimate), (old.ci_low, new.ci_low),
                 (old.ci_high, new.ci_high)):
        if (a is None) != (b is None):
            return True
        if a is not None and b is not None and abs(a - b) > TOLERANCE:
            return True
    return False


def _pct(value: float | None) -> str:
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
            msg = (f"CI lower bound now above {tt} ({_pct(old.ci_low)} → {_pct(new.ci_low)})"
                   if before == "includes" else f"CI now wholly above {tt} (was wholly below)")
        elif after == "below":
            msg = (f"CI upper bound now below {tt} ({_pct(old.ci_high)} → "
                   f"{_pct(new.ci_high)})" if before == "includes"
                   else f"CI now wholly below {tt} (was wholly above)")
        elif before == "above":
            msg = (f"CI now includes {tt}: lower bound {_pct(old.ci_low)} → "
                   f"{_pct(new.ci_low)} (was wholly above)")
        else:
            msg = (f"CI now includes {tt}: upper bound {_pct(old.ci_high)} → "
                   f"{_pct(new.ci_high)} (was wholly below)")
        out.append(Crossing(change.key, t, "ci", before, after, msg))
    if old.estimate is not None and new.estimate is not None:
        side_old = old.estimate * 100 >= t
        side_new = new.estimate * 100 >= t
        if side_old != side_new:
            word = "above" if side_new else "below"
            out.append(Crossing(
                change.key, t, "estimate", "above" if side_old else "below", word,
                f"point estimate now {word} {tt} ({_pct(old.estimate)} → "
                f"{_pct(new.estimate)})"))
    return out


def _field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    out = [FieldChange(name, old.get(name), new.get(name))
           for name in RECORD_FIELDS if old.get(name) != new.get(name)]
    if old.get("digest") != new.get("digest"):
        out.append(FieldChange("text", None, None))
    return tuple(out)


def _counts(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return ""
    r, n = entry.get("responders"), entry.get("evaluable")
    return f"{'?' if r is None else r}/{'?' if n is None else n}"


def compare(old: Mapping[str, Any] | None, new: Mapping[str, Any],
            against: str = "the published state") -> StateDiff:
    """What changed from state ``old`` (``None``: nothing published yet) to ``new``.

    Without an earlier state every estimate is new and the records are not listed (they
    would all be "added")."""
    notes: list[str] = []
    if old is None:
        notes.append("no earlier state: every estimate is new")
        old = {"analyses": [], RECORDS_KEY: _records_of(new) or {}}
    before, after = estimates_of(old), estimates_of(new)
    recs_old, recs_new = _records_of(old), _records_of(new)

    # records
    edited_fields: dict[str, tuple[FieldChange, ...]] = {}
    if not old["analyses"] and not recs_old:
        added, removed = [], []
    elif recs_old is not None and recs_new is not None:
        added = sorted(set(recs_new) - set(recs_old))
        removed = sorted(set(recs_old) - set(recs_new))
        for rid in sorted(set(recs_old) & set(recs_new)):
            found = _field_changes(recs_old[rid], recs_new[rid])
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
        notes.append(f"{which} has no record fingerprints ({RECORDS_KEY}): added and "
                     "removed records are those an analysis used or set aside, and edited "
                     "records cannot be detected")

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
            reason = ("the model changed" if (o.model or {}) != (n.model or {})
                      else "no record changed: the plan or the engine changed")
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

    for rid in added:
        entry = (recs_new or {}).get(rid)
        moved = tuple(dict.fromkeys(moved_by.get(rid, [])))
        record_changes.append(RecordChange(
            rid, study_of(rid, entry), "added", moved=moved, counts=_counts(entry),
            why_not="" if moved else why(rid, aside_new)))
    for rid in removed:
        entry = (recs_old or {}).get(rid)
        moved = tuple(dict.fromkeys(moved_by.get(rid, [])))
        record_changes.append(RecordChange(
            rid, study_of(rid, entry), "removed", moved=moved, counts=_counts(entry),
            why_not="" if moved else why(rid, aside_old)))
    for rid, fields_changed in edited_fields.items():
        entry = (recs_new or {}).get(rid)
        moved = tuple(dict.fromkeys(moved_by.get(rid, [])))
        record_changes.append(RecordChange(
            rid, study_of(rid, entry), "edited", fields=fields_changed, moved=moved,
            counts=_counts(entry), why_not="" if moved else why(rid, aside_new)))

    crossings = [c for ch in changes for c in _crossings(ch)]
    version_old = old.get("corpus_version")
    version_new = new.get("corpus_version")
    return StateDiff(
        against=against, estimates=tuple(changes), records=tuple(record_changes),
        crossings=tuple(crossings),
        old_version=str(version_old) if version_old is not None else None,
        new_version=str(version_new) if version_new is not None else None,
        notes=tuple(notes))


# --------------------------------------------------------------------------- display


def _ci(est: Estimate | None) -> str:
    if est is None or est.estimate is None:
        return "—"
    return f"{_pct(est.estimate)} ({_pct(est.ci_low)}–{_pct(est.ci_high)})"


def _k(ch: EstimateChange) -> str:
    if ch.old is None or ch.new is None:
        return str(ch.current.k)
    o, n = str(ch.old.k), str(ch.new.k)
    return n if o == n else f"{o}→{n}"


def _delta(ch: EstimateChange) -> str:
    if ch.old is None or ch.new is None or ch.old.estimate is None or ch.new.estimate is None:
        return ""
    return f"{100.0 * (ch.new.estimate - ch.old.estimate):+.1f} pp"


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def _label(key: tuple[str, str]) -> str:
    return f"{key[0]} · {key[1]}"


def _field_text(f: FieldChange) -> str:
    if f.field == "text":
        return "text (quote, location or citation) edited"
    return f"{f.field} {f.old} → {f.new}"


def format_diff(diff: StateDiff) -> str:
    """The diff as text: records, the estimates that moved, threshold crossings, changelog."""
    lines: list[str] = []
    versions = ""
    if diff.old_version or diff.new_version:
        versions = f" (corpus {diff.old_version or '—'} → {diff.new_version or '—'})"
    lines.append(f"Compared with {diff.against}{versions}")
    for note in diff.notes:
        lines.append(f"note: {note}")
    lines.append("")
    added, removed, edited = (diff.records_of(k) for k in ("added", "removed", "edited"))
    lines.append(f"Records: {len(added)} added, {len(removed)} removed, {len(edited)} edited")
    sign = {"added": "+", "removed": "-", "edited": "~"}
    for rc in diff.records:
        detail = rc.counts
        if rc.fields:
            detail = "; ".join(_field_text(f) for f in rc.fields)
        lines.append(f"  {sign[rc.kind]} {rc.record}  {detail}".rstrip())
        if rc.moved:
            lines.append("      moved: " + ", ".join(_label(k) for k in rc.moved))
        elif rc.why_not:
            lines.append(f"      moved nothing: {rc.why_not}")
    lines.append("")
    moved = [e for e in diff.estimates if e.status != "unchanged"]
    lines.append(f"Estimates: {len(diff.changed)} changed, {len(diff.new)} new, "
                 f"{len(diff.vanished)} vanished, {len(diff.unchanged)} unchanged")
    if moved:
        rows = [("", "analysis", "subgroup", "k", "before (95% CI)", "after (95% CI)", "Δ")]
        mark = {"changed": "~", "new": "+", "vanished": "-"}
        for ch in moved:
            rows.append((mark[ch.status], ch.key[0], ch.key[1], _k(ch), _ci(ch.old),
                         _ci(ch.new), _delta(ch)))
        lines.extend(_table(rows))
        for ch in moved:
            why = _why_moved(ch)
            if why:
                lines.append(f"  {_label(ch.key)}: {why}")
    lines.append("")
    if diff.crossings:
        lines.append("Threshold crossings:")
        lines.extend(f"  {_label(c.key)}: {c.message}" for c in diff.crossings)
    else:
        lines.append("Threshold crossings: none")
    lines.append("")
    lines.append("Changelog:")
    lines.append(changelog(diff))
    return "\n".join(lines)


def _why_moved(ch: EstimateChange) -> str:
    parts: list[str] = []
    if ch.entered and ch.status != "new":
        parts.append("in: " + ", ".join(ch.entered))
    if ch.left and ch.status != "vanished":
        parts.append("out: " + ", ".join(ch.left))
    if ch.edited:
        parts.append("edited: " + ", ".join(ch.edited))
    if ch.reason:
        parts.append(ch.reason)
    return "; ".join(parts)


def _describe(est: Estimate) -> str:
    level = f"{100 * est.level:g}%"
    if est.estimate is None:
        return "no estimate"
    studies = f"{est.k} stud{'y' if est.k == 1 else 'ies'}, {est.patients} patients"
    kind = "" if est.pooled else ", a single study, not pooled"
    return (f"{_pct(est.estimate)} ({level} CI {_pct(est.ci_low)} to {_pct(est.ci_high)}; "
            f"{studies}{kind})")


def _join(items: Iterable[str]) -> str:
    words = list(items)
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _studies(changes: Sequence[RecordChange]) -> str:
    count: dict[str, int] = {}
    for rc in changes:
        count[rc.study] = count.get(rc.study, 0) + 1
    return _join(f"{s} ({n} record{'' if n == 1 else 's'})" for s, n in count.items())


def changelog(diff: StateDiff) -> str:
    """A short paragraph a guideline author can paste: what was added, removed or
    corrected, which pooled estimates moved (old → new with CI and k), and which intervals
    crossed a threshold of the plan."""
    sentences: list[str] = []
    added, removed, edited = (diff.records_of(k) for k in ("added", "removed", "edited"))
    parts: list[str] = []
    if added:
        parts.append(f"added {_studies(added)}")
    if removed:
        parts.append(f"removed {_studies(removed)}")
    if edited:
        parts.append(f"corrected {_studies(edited)}")
    if parts:
        sentences.append("This update " + _join(parts) + ".")
    estimates = {e.key: e for e in diff.estimates}
    for ch in diff.changed:
        assert ch.old is not None
        assert ch.new is not None
        sentences.append(f"{ch.new.name()}: now {_describe(ch.new)}, previously "
                         f"{_describe(ch.old)}.")
    for ch in diff.new:
        assert ch.new is not None
        sentences.append(f"New estimate, {ch.new.name()}: {_describe(ch.new)}.")
    for ch in diff.vanished:
        assert ch.old is not None
        sentences.append(f"No longer estimated: {ch.old.name()} (previously "
                         f"{_describe(ch.old)}).")
    for c in diff.crossings:
        name = estimates[c.key].current.name()
        sentences.append(f"For {name}, the {c.message}.")
    if not diff.changed and not diff.new and not diff.vanished:
        sentences.append("No pooled estimate changed.")
    elif diff.unchanged:
        n = len(diff.unchanged)
        sentences.append(f"The other {n} estimate{'s are' if n != 1 else ' is'} unchanged.")
    return " ".join(sentences)


def _estimate_json(est: Estimate | None) -> dict[str, Any] | None:
    if est is None:
        return None
    return {"k": est.k, "patients": est.patients, "pooled": est.pooled,
            "estimate": est.estimate, "ci_low": est.ci_low, "ci_high": est.ci_high,
            "level": est.level, "records": list(est.records)}


def diff_dict(diff: StateDiff) -> dict[str, Any]:
    """The diff as JSON-ready values (proportions on the 0-1 scale)."""

    def key(k: tuple[str, str]) -> dict[str, str]:
        return {"analysis": k[0], "subgroup": k[1]}

    return {
        "against": diff.against,
        "corpus_version": {"old": diff.old_version, "new": diff.new_version},
        "notes": list(diff.notes),
        "records": [
            {"record": rc.record, "study": rc.study, "change": rc.kind, "counts": rc.counts,
             "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in rc.fields],
             "moved": [key(k) for k in rc.moved], "moved_nothing_because": rc.why_not or None}
            for rc in diff.records],
        "estimates": [
            {**key(ch.key), "title": ch.current.title, "status": ch.status,
             "old": _estimate_json(ch.old), "new": _estimate_json(ch.new),
             "records_in": list(ch.entered), "records_out": list(ch.left),
             "records_edited": list(ch.edited), "reason": ch.reason or None}
            for ch in diff.estimates if ch.status != "unchanged"],
        "unchanged": [key(ch.key) for ch in diff.unchanged],
        "crossings": [
            {**key(c.key), "threshold_percent": c.threshold, "kind": c.kind, "old": c.old,
             "new": c.new, "message": c.message} for c in diff.crossings],
        "changelog": changelog(diff),
    }


# --------------------------------------------------------------------------- adding a study


@dataclass(frozen=True)
class Placement:
    """One study file to put into the corpus."""

    study: str
    target: Path
    text: str
    previous: bytes | None
    """The bytes the target held before (``None``: a new file)."""


_EXTRACTION_SUFFIXES = (".yaml", ".yml")
_WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")


def read_new_studies(path: Path) -> list[tuple[str, str, str]]:
    """The studies of an extraction file or a workbook as (study id, YAML text, source
    name for messages). An extraction file is kept byte for byte (comments included); a
    workbook's studies are written with :func:`metaresp.corpus.dump_study`. File-level
    errors raise :class:`InputError`."""
    from metaresp.corpus import dump_study, parse_study

    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix in _EXTRACTION_SUFFIXES:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror})") from None
        study, _, problems = parse_study(text, str(path))
        errors = [str(p) for p in problems if p.level == "error"]
        if errors or study is None:
            raise InputError(errors or [f"{path}: not a valid extraction file"])
        return [(study.id, text, str(path))]
    if suffix in _WORKBOOK_SUFFIXES:
        try:
            from metaresp.workbook import read_workbook
        except ImportError:
            raise InputError(f"{path}: reading workbooks is not available in this "
                             "installation (metaresp.workbook is missing)") from None
        corpus = read_workbook(path)
        return [(s.id, dump_study(s), f"{path} (study {s.id})") for s in corpus.studies]
    raise InputError(f"{path}: expected an extraction file (.yaml, .yml) or a workbook "
                     "(.xlsx)")


def plan_addition(extractions: Path, new: Sequence[tuple[str, str, str]], *,
                  update: bool = False) -> tuple[list[Placement], list[str]]:
    """Check the new studies against the corpus without touching it.

    The corpus is copied to a temporary folder, the new files are written there, and the
    copy is validated as a whole (:func:`metaresp.corpus.check_extractions`: schema and
    the rules across files). Returns the placements and the warnings that concern the new
    files; any error raises :class:`InputError`, one line each, naming the new file.
    A study id already in the corpus is refused unless ``update`` (its file is replaced).
    """
    from metaresp.corpus import check_extractions

    if not extractions.is_dir():
        raise InputError(f"{extractions}: extractions folder not found")
    before = check_extractions(extractions)
    if before.errors:
        raise InputError([f"{extractions}: the corpus has errors before adding anything; "
                          "fix them first (metaresp validate):",
                          *(str(p) for p in before.errors)])
    file_of = {s.id: Path(f) for s, f in zip(before.studies, before.study_files, strict=True)}
    problems: list[str] = []
    placements: list[Placement] = []
    seen: set[str] = set()
    for study_id, text, source in new:
        if study_id in seen:
            problems.append(f"{source}: id: study {study_id!r} is given twice")
            continue
        seen.add(study_id)
        if study_id in file_of:
            if not update:
                problems.append(f"{source}: id: study {study_id!r} is already in the corpus "
                                f"({file_of[study_id].as_posix()}); use --update to replace it")
                continue
            target = extractions / file_of[study_id].name
        else:
            target = extractions / f"{study_id}.yaml"
            if target.exists():
                problems.append(f"{source}: {target} exists and holds another study; rename "
                                "one of them")
                continue
        previous = target.read_bytes() if target.exists() else None
        placements.append(Placement(study_id, target, text, previous))
    if problems:
        raise InputError(problems)

    sources = {p.target.name: src for p, (_, _, src) in zip(placements, new, strict=True)}
    with tempfile.TemporaryDirectory(prefix="metaresp-add-") as tmp:
        copy = Path(tmp)
        for name in before.files:
            shutil.copyfile(name, copy / Path(name).name)
        for p in placements:
            (copy / p.target.name).write_text(p.text, encoding="utf-8", newline="")
        after = check_extractions(copy)
        prefix = copy.as_posix() + "/"

        inside = re.compile(re.escape(prefix) + r"([^:\s)/]+)")

        def shown(problem: Any) -> str:
            """The problem with the temporary folder's paths turned back into ours."""
            return inside.sub(
                lambda m: sources.get(m[1], (extractions / m[1]).as_posix()), str(problem))

        errors = [shown(p) for p in after.errors]
        warnings = [shown(p) for p in after.warnings
                    if Path(p.file).name in sources or any(s in str(p) for s in seen)]
    if errors:
        raise InputError(errors)
    return placements, warnings


def place(placements: Sequence[Placement]) -> None:
    """Write each placement atomically; on failure, put back what was written."""
    done: list[Placement] = []
    try:
        for p in placements:
            write_text_atomic(p.target, p.text)
            done.append(p)
    except BaseException:
        unplace(done)
        raise


def unplace(placements: Sequence[Placement]) -> None:
    """Undo :func:`place`: restore the previous bytes, or remove a new file."""
    for p in placements:
        if p.previous is None:
            p.target.unlink(missing_ok=True)
        else:
            write_bytes_atomic(p.target, p.previous)


# --------------------------------------------------------------------------- after a run


def finish_run(out: Path, published: Path | None = PUBLISHED_PATH) -> list[str]:
    """What ``metaresp run`` does after the results folder is in place: copy its
    ``summary.json`` (which already carries the record fingerprints) to ``published`` as
    the current published state (skipped when ``None``). Returns one line per thing done.
    """
    from metaresp.runner import SUMMARY_NAME

    if published is None:
        return []
    publish(read_state_file(out / SUMMARY_NAME), published)
    return [f"published state written to {published}"]
