"""The diff as a person reads it (text), as a guideline author pastes it (a changelog
list) and as a program reads it (JSON-ready values)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from metaresp import formatting as fmt
from metaresp.living._diff import Estimate, EstimateChange, FieldChange, RecordChange, StateDiff

__all__ = ["changelog", "diff_dict", "field_text", "format_diff", "shorten_change", "widening"]


def _ci(est: Estimate | None) -> str:
    """``55.0% (45.0 to 65.0)``: the one interval style (:mod:`metaresp.formatting`)."""
    if est is None or est.estimate is None:
        return fmt.MISSING
    return fmt.estimate_interval(est.estimate, est.ci_low, est.ci_high)


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
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]


def _label(key: tuple[str, str]) -> str:
    return f"{key[0]} · {key[1]}"


SHOWN = 72
"""Characters of a long text shown around an edit."""


def shorten_change(old: str, new: str, width: int = SHOWN) -> tuple[str, str]:
    """``old`` and ``new`` cut to about ``width`` characters around where they differ
    (the common start and end elided with ``…``), so that the edit can be seen."""
    if len(old) <= width and len(new) <= width:
        return old, new
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0
    while (
        end < min(len(old), len(new)) - start and old[len(old) - 1 - end] == new[len(new) - 1 - end]
    ):
        end += 1
    changed = max(len(old), len(new)) - start - end
    context = max(8, (width - changed) // 2)

    def cut(text: str) -> str:
        lo = max(0, start - context)
        hi = min(len(text), len(text) - end + context)
        body = text[lo:hi]
        if len(body) > width + 2 * context:  # a long rewrite: its beginning is enough
            body = body[: width + context]
            hi = lo + len(body)
        return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")

    return cut(old), cut(new)


def _value(value: object) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def field_text(f: FieldChange) -> str:
    """``field old → new``, long texts shortened around the edit."""
    if f.field == "text":
        return "text (quote, location, citation or another text field) edited"
    if isinstance(f.old, str) and isinstance(f.new, str):
        old, new = shorten_change(f.old, f.new)
        return f'{f.field} "{old}" → "{new}"'
    old_v, new_v = _value(f.old), _value(f.new)
    if len(old_v) > SHOWN:
        old_v = old_v[:SHOWN] + "…"
    if len(new_v) > SHOWN:
        new_v = new_v[:SHOWN] + "…"
    return f"{f.field} {old_v} → {new_v}"


_field_text = field_text


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
        lines.append(f"  {sign[rc.kind]} {rc.record}  {'' if rc.fields else rc.counts}".rstrip())
        lines.extend(f"      {_field_text(f)}" for f in rc.fields)
        if rc.moved:
            lines.append("      moved: " + ", ".join(_label(k) for k in rc.moved))
        elif rc.why_not:
            lines.append(f"      moved nothing: {rc.why_not}")
    lines.append("")
    moved = [e for e in diff.estimates if e.status != "unchanged"]
    lines.append(
        f"Estimates: {len(diff.changed)} changed, {len(diff.new)} new, "
        f"{len(diff.vanished)} vanished, {len(diff.unchanged)} unchanged"
    )
    if moved:
        rows = [("", "analysis", "subgroup", "k", "before (95% CI)", "after (95% CI)", "Δ")]
        mark = {"changed": "~", "new": "+", "vanished": "-"}
        for ch in moved:
            rows.append(
                (
                    mark[ch.status],
                    ch.key[0],
                    ch.key[1],
                    _k(ch),
                    _ci(ch.old),
                    _ci(ch.new),
                    _delta(ch),
                )
            )
        lines.extend(_table(rows))
        for ch in moved:
            why = _why_moved(ch)
            if why:
                lines.append(f"  {_label(ch.key)}: {why}")
            wider = widening(ch.old, ch.new) if ch.old and ch.new else None
            if wider:
                lines.append(f"  {_label(ch.key)}: {wider}")
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


def _moved_by(ch: EstimateChange, verbs: tuple[str, str, str]) -> str:
    """The records that moved an estimate, each kind after its verb (in, out, edited)."""
    parts: list[str] = []
    if ch.entered and ch.status != "new":
        parts.append(verbs[0] + ", ".join(ch.entered))
    if ch.left and ch.status != "vanished":
        parts.append(verbs[1] + ", ".join(ch.left))
    if ch.edited:
        parts.append(verbs[2] + ", ".join(ch.edited))
    if ch.reason:
        parts.append(ch.reason)
    return "; ".join(parts)


def _why_moved(ch: EstimateChange) -> str:
    return _moved_by(ch, ("in: ", "out: ", "edited: "))


def widening(old: Estimate, new: Estimate) -> str | None:
    """Why an interval widened when the evidence grew, in one sentence (None otherwise)."""
    if (
        old.ci_low is None
        or old.ci_high is None
        or new.ci_low is None
        or new.ci_high is None
        or new.k <= old.k
        or new.ci_high - new.ci_low <= old.ci_high - old.ci_low + 1e-9
    ):
        return None
    if not old.pooled and new.pooled:
        return (
            "The interval is wider although a study was added: one study is shown with its "
            "exact binomial interval, which only reflects its own patients, while a pooled "
            "estimate also allows for the true response rate to differ from study to study; "
            f"with {new.k} studies that between-study variation can hardly be estimated, so "
            "the allowance is large."
        )
    return (
        "The interval is wider although a study was added: the studies' rates now differ more "
        "than chance alone explains, so the model allows for more between-study variation."
    )


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


def _interval(est: Estimate) -> str:
    if est.estimate is None:
        return "no estimate"
    level = f"{100 * est.level:g}%"
    single = "" if est.pooled else ", a single study, not pooled"
    return (
        f"{fmt.percent(est.estimate)} ({level} CI {fmt.interval(est.ci_low, est.ci_high)}; "
        f"k {est.k}, {est.patients} patients{single})"
    )


def _because(ch: EstimateChange) -> str:
    """The changelog's words for :func:`_moved_by`."""
    return _moved_by(ch, ("added ", "removed ", "corrected "))


def changelog(diff: StateDiff) -> str:
    """A list a guideline panel can paste: first what was added, removed or corrected,
    then one line per estimate that moved (the class and outcome, old → new with
    intervals and k, the threshold crossings, and the records that moved it), new and
    vanished estimates, and how many are unchanged."""
    lines: list[str] = []
    added, removed, edited = (diff.records_of(k) for k in ("added", "removed", "edited"))
    parts: list[str] = []
    if added:
        parts.append(f"added {_studies(added)}")
    if removed:
        parts.append(f"removed {_studies(removed)}")
    if edited:
        parts.append(f"corrected {_studies(edited)}")
    if parts:
        lines.append("This update " + _join(parts) + ".")
    crossed: dict[tuple[str, str], list[str]] = {}
    for c in diff.crossings:
        crossed.setdefault(c.key, []).append(c.message)
    for ch in diff.changed:
        assert ch.old is not None
        assert ch.new is not None
        line = f"- {ch.new.name()}: {_interval(ch.old)} → {_interval(ch.new)}"
        for message in crossed.get(ch.key, []):
            line += f"; {message}"
        because = _because(ch)
        if because:
            line += f"; because: {because}"
        why = widening(ch.old, ch.new)
        if why:
            line += f". {why}"
        lines.append(line)
    for ch in diff.new:
        assert ch.new is not None
        lines.append(f"- New estimate, {ch.new.name()}: {_interval(ch.new)}")
    for ch in diff.vanished:
        assert ch.old is not None
        lines.append(f"- No longer estimated: {ch.old.name()} (was {_interval(ch.old)})")
    if not diff.changed and not diff.new and not diff.vanished:
        lines.append("No pooled estimate changed.")
    elif diff.unchanged:
        n = len(diff.unchanged)
        lines.append(f"The other {n} estimate{'s are' if n != 1 else ' is'} unchanged.")
    return "\n".join(lines)


def _estimate_json(est: Estimate | None) -> dict[str, Any] | None:
    if est is None:
        return None
    return {
        "k": est.k,
        "patients": est.patients,
        "pooled": est.pooled,
        "estimate": est.estimate,
        "ci_low": est.ci_low,
        "ci_high": est.ci_high,
        "level": est.level,
        "records": list(est.records),
    }


def diff_dict(diff: StateDiff) -> dict[str, Any]:
    """The diff as JSON-ready values (proportions on the 0-1 scale)."""

    def key(k: tuple[str, str]) -> dict[str, str]:
        return {"analysis": k[0], "subgroup": k[1]}

    return {
        "against": diff.against,
        "corpus_version": {"old": diff.old_version, "new": diff.new_version},
        "notes": list(diff.notes),
        "records": [
            {
                "record": rc.record,
                "study": rc.study,
                "change": rc.kind,
                "counts": rc.counts,
                "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in rc.fields],
                "moved": [key(k) for k in rc.moved],
                "moved_nothing_because": rc.why_not or None,
            }
            for rc in diff.records
        ],
        "estimates": [
            {
                **key(ch.key),
                "title": ch.current.title,
                "status": ch.status,
                "old": _estimate_json(ch.old),
                "new": _estimate_json(ch.new),
                "records_in": list(ch.entered),
                "records_out": list(ch.left),
                "records_edited": list(ch.edited),
                "reason": ch.reason or None,
            }
            for ch in diff.estimates
            if ch.status != "unchanged"
        ],
        "unchanged": [key(ch.key) for ch in diff.unchanged],
        "crossings": [
            {
                **key(c.key),
                "threshold_percent": c.threshold,
                "kind": c.kind,
                "old": c.old,
                "new": c.new,
                "message": c.message,
            }
            for c in diff.crossings
        ],
        "changelog": changelog(diff).splitlines(),
    }
