"""Editing an extraction file in place: only the values that changed, nothing else.

``metaresp import`` and ``metaresp add`` (a workbook, or ``--update``) bring a validated
study for a file that already exists. Rewriting the file from the model would lose its
comments (where the numbers come from), its layout and its empty fields.
:func:`edit_study` instead changes only what differs:

1. the file is read with a round-trip YAML parser (``ruamel.yaml``, which keeps comments,
   key order, quoting and block styles) and the new study's values are merged into that
   tree: a value equal to the old one is left alone, a changed one replaced, a field the
   study no longer has removed (an empty field of the file is kept: it means the same),
   a new field put where the format's field order places it; groups are matched by
   ``id``, outcomes by ``outcome``;
2. the merged tree and the unchanged tree are both written by the same parser, and only
   the lines where those two differ are applied to the original text (a three-way merge
   with the unchanged rendering as the base), so that the parser's own way of writing
   untouched values (escapes, folding) never reaches the file;
3. the result is read back and must give the new study; otherwise the study is written
   in the standard layout (:func:`metaresp._yaml.dump_study`).
"""

from __future__ import annotations

import datetime
import difflib
import io
from collections.abc import Sequence
from typing import Any

from metaresp._yaml import FLOW_LISTS, dump_study, plain_study
from metaresp.schema import Study

__all__ = ["edit_study", "merge3"]

_MATCH_BY = {"groups": "id", "outcomes": "outcome"}
"""Lists of mappings matched by a key rather than by position."""


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 1_000_000
    y.indent(mapping=2, sequence=4, offset=2)
    y.allow_unicode = True
    return y


def _same(old: Any, new: Any) -> bool:
    """Equal as the schema reads them (a date written bare reads as the same text)."""
    if isinstance(old, datetime.date) and isinstance(new, str):
        return old.isoformat() == new
    if isinstance(old, dict) and isinstance(new, dict):
        keys = {k for k, v in old.items() if v not in (None, [])} | set(new)
        return all(_same(old.get(k), new.get(k)) for k in keys)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new, strict=True))
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new) and old == new
    return bool(old == new)


def _fresh(value: Any, key: str | None = None) -> Any:
    """A new value as the standard layout writes it (``|`` blocks, short lists inline)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import LiteralScalarString

    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _fresh(v, k)
        return out
    if isinstance(value, list):
        seq = CommentedSeq(_fresh(v) for v in value)
        if key in FLOW_LISTS:
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


def _merge(old: Any, new: dict[str, Any], was: dict[str, Any]) -> None:
    """Merge ``new`` (a study's fields in the format's order) into the mapping ``old``;
    ``was`` is what ``old`` means as the schema reads it (spellings normalised), so that a
    value written another way but meaning the same is left as written."""
    for key in [k for k in old if k not in new]:
        if old[key] not in (None, []):
            del old[key]
    for index, (key, value) in enumerate(new.items()):
        if key not in old:
            before = [k for k in list(new)[:index] if k in old]
            position = list(old).index(before[-1]) + 1 if before else 0
            old.insert(position, key, _fresh(value, key))
        elif _same(was.get(key, old[key]), value):
            continue
        elif isinstance(old[key], dict) and isinstance(value, dict):
            _merge(old[key], value, _as_dict(was.get(key)))
        elif isinstance(old[key], list) and isinstance(value, list) and key in _MATCH_BY:
            _merge_list(old[key], value, _MATCH_BY[key], was.get(key))
        else:
            old[key] = _fresh(value, key)


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _merge_list(old: Any, new: list[dict[str, Any]], by: str, was: Any) -> None:
    """Items matched by ``by``; the new order; unmatched items removed or added."""
    known = {item.get(by): item for item in old if isinstance(item, dict)}
    meant = {
        item.get(by): item
        for item in (was if isinstance(was, list) else [])
        if isinstance(item, dict)
    }
    merged = []
    for value in new:
        item = known.get(value.get(by))
        if item is None:
            merged.append(_fresh(value))
        else:
            _merge(item, value, meant.get(value.get(by), {}))
            merged.append(item)
    if [id(x) for x in merged] != [id(x) for x in old]:
        old[:] = merged


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def merge3(base: str, ours: str, theirs: str) -> str:
    """Three-way line merge: where only ``ours`` differs from ``base`` keep ours, where
    ``theirs`` differs take theirs (also where both differ)."""
    b, a, t = _lines(base), _lines(ours), _lines(theirs)

    def mapping(other: Sequence[str]) -> dict[int, int]:
        found: dict[int, int] = {}
        matcher = difflib.SequenceMatcher(None, b, other, autojunk=False)
        for block in matcher.get_matching_blocks():
            for n in range(block.size):
                found[block.a + n] = block.b + n
        return found

    to_a, to_t = mapping(a), mapping(t)
    out: list[str] = []
    ib = ia = it = 0
    for sync in [*(i for i in range(len(b)) if i in to_a and i in to_t), len(b)]:
        ja = to_a.get(sync, len(a))
        jt = to_t.get(sync, len(t))
        chunk_b, chunk_a, chunk_t = b[ib:sync], a[ia:ja], t[it:jt]
        if chunk_t == chunk_b:
            out.extend(chunk_a)
        elif len(chunk_a) == len(chunk_b) == len(chunk_t):
            # line for line: ours where theirs kept the base line, else theirs
            out.extend(
                x if z == y else z for x, y, z in zip(chunk_a, chunk_b, chunk_t, strict=True)
            )
        else:
            out.extend(chunk_t)
        if sync < len(b):
            out.append(a[ja])
        ib, ia, it = sync + 1, ja + 1, jt + 1
    return "".join(out)


def edit_study(text: str, study: Study) -> str:
    """``text`` (an extraction file) changed so that it holds ``study``, as little as can
    be (see the module docstring). Returns ``text`` itself when nothing changed."""
    from metaresp.corpus import parse_study

    def holds(candidate: str) -> bool:
        parsed, _, problems = parse_study(candidate, "(edited)")
        return parsed == study and not any(p.level == "error" for p in problems)

    if holds(text):
        return text
    before, _, _ = parse_study(text, "(before)")
    was = plain_study(before) if before is not None else {}
    try:
        y = _yaml()
        tree = y.load(text)
        base = io.StringIO()
        y.dump(tree, base)
        _merge(tree, plain_study(study), was)
        theirs = io.StringIO()
        y.dump(tree, theirs)
    except Exception:  # anything the round trip cannot do: the standard layout
        return dump_study(study)
    for candidate in (merge3(base.getvalue(), text, theirs.getvalue()), theirs.getvalue()):
        if holds(candidate):
            return candidate
    return dump_study(study)
