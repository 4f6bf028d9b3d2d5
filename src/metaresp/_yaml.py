"""Extraction files as YAML: reading with line marks, writing in the format's style.

Reading composes the text once: the node tree maps every path
(``groups[2].outcomes[0].responders``) to its line, and the same tree is constructed into
the Python data that pydantic validates. Writing (:func:`dump_study`) gives block style,
short lists inline, multi-line text as ``|`` blocks and one blank line between groups.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from metaresp.fields import group_fields, outcome_fields, study_fields
from metaresp.files import write_text_atomic
from metaresp.limits import (
    MAX_MESSAGE_CHARS,
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    shorten,
)
from metaresp.schema import Study, format_path

__all__ = [
    "FLOW_LISTS",
    "LineMap",
    "PathPart",
    "Problem",
    "dump_study",
    "line_for",
    "load_mapping_text",
    "plain_study",
    "read_yaml",
    "write_study",
]

PathPart = str | int
LineMap = dict[tuple[PathPart, ...], int]


@dataclass(frozen=True)
class Problem:
    """One located problem: ``file:line: path: message``."""

    file: str
    line: int | None
    path: str
    message: str
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {shorten(self.message, MAX_MESSAGE_CHARS * 3)}"


def line_for(lines: Mapping[tuple[PathPart, ...], int], path: Sequence[PathPart]) -> int | None:
    """Line of ``path``, or of its nearest enclosing node that has one."""
    parts = tuple(path)
    while parts:
        if parts in lines:
            return lines[parts]
        parts = parts[:-1]
    return lines.get(())


def _walk(
    node: yaml.Node, path: tuple[PathPart, ...], lines: LineMap, dupes: list[Problem], file: str
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key: PathPart = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if key in seen:
                dupes.append(
                    Problem(
                        file,
                        line,
                        format_path((*path, key)),
                        f"key {key!r} appears twice in one mapping (first at line {seen[key]})",
                    )
                )
                continue
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, dupes, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, dupes, file)


_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML was built with it (about ten times faster; same nodes and
line marks), else the pure-Python one."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _shape_problems(root: yaml.Node, file: str) -> list[Problem]:
    """Recursive aliases, nesting depth and the size the tree would have with every
    alias expanded, computed on the composed tree without expanding anything (an alias
    is the same node object met again): a few hundred bytes of aliases that would
    expand to billions of values are refused here, in time linear in the text."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, finished = stack.pop()
        key = id(node)
        line = node.start_mark.line + 1
        if finished:
            open_.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            if size[key] > MAX_YAML_NODES:
                return [
                    Problem(
                        file,
                        line,
                        "(file)",
                        f"the value starting here expands to more than {MAX_YAML_NODES:,} "
                        "YAML values (through aliases, *name); write fewer",
                    )
                ]
            continue
        if key in size:
            continue
        if depth > MAX_YAML_DEPTH:
            return [Problem(file, line, "(file)", f"nested more than {MAX_YAML_DEPTH} levels deep")]
        open_.add(key)
        stack.append((node, depth, True))
        for child in _children(node):
            if id(child) in open_:
                return [
                    Problem(
                        file,
                        child.start_mark.line + 1,
                        "(file)",
                        "a YAML alias (*name) refers to the value that holds it (a "
                        "recursive anchor); write the value out",
                    )
                ]
            if id(child) not in size:
                stack.append((child, depth + 1, False))
    return []


def _bad_scalar(root: yaml.Node, file: str, fallback: BaseException) -> Problem:
    """The first scalar that cannot be constructed (an impossible date, a number too
    long to read), located at its line."""
    probe = _SAFE_LOADER("")
    try:
        stack: list[tuple[yaml.Node, tuple[PathPart, ...]]] = [(root, ())]
        while stack:
            node, path = stack.pop()
            if isinstance(node, yaml.ScalarNode):
                try:
                    probe.construct_object(node, deep=True)
                except (ValueError, OverflowError, TypeError, yaml.YAMLError) as exc:
                    value = shorten(str(node.value), 60)
                    return Problem(
                        file,
                        node.start_mark.line + 1,
                        format_path(path),
                        f"cannot read the value {value!r}: {shorten(str(exc), 120)}",
                    )
            elif isinstance(node, yaml.MappingNode):
                for k, v in reversed(node.value):
                    name: PathPart = k.value if isinstance(k, yaml.ScalarNode) else "?"
                    stack.extend(((v, (*path, name)), (k, path)))
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(
                    (item, (*path, i)) for i, item in reversed(list(enumerate(node.value)))
                )
    finally:
        probe.dispose()
    return Problem(file, None, "(file)", f"cannot read the file: {shorten(str(fallback), 120)}")


def read_yaml(text: str, file: str) -> tuple[Any, yaml.Node | None, LineMap, list[Problem]]:
    """Parse ``text`` once; return the data, its node tree, the path → line map and
    structural problems (syntax errors, duplicate keys), each located at its line.

    The limits of :mod:`metaresp.limits` hold before anything is built: at most
    :data:`~metaresp.limits.MAX_YAML_BYTES` of text, no aliases (so nothing is ever
    expanded), a bounded depth and node count; a value that cannot be constructed
    (``2025-02-30``, a 5,000-digit number) is a located problem."""
    if len(text) > MAX_YAML_BYTES:
        size = len(text.encode("utf-8", "replace"))
        if size > MAX_YAML_BYTES:
            return (
                None,
                None,
                {},
                [
                    Problem(
                        file,
                        None,
                        "(file)",
                        f"{size / 2**20:.1f} MiB of text is more than the "
                        f"{MAX_YAML_BYTES // 2**20} MiB a YAML file may have",
                    )
                ],
            )
    loader = _SAFE_LOADER(text)
    node: yaml.Node | None = None
    lines: LineMap = {(): 1}
    problems: list[Problem] = []
    try:
        node = loader.get_single_node()
        if node is not None:
            shape = _shape_problems(node, file)
            if shape:
                return None, None, {}, shape
            # lines and duplicate keys before constructing: construction rewrites merge
            # keys (<<) into the mapping they merge into
            lines[()] = node.start_mark.line + 1
            _walk(node, (), lines, problems, file)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return (
            None,
            None,
            {},
            [Problem(file, line, "(file)", f"YAML syntax error: {shorten(what, 200)}")],
        )
    except yaml.YAMLError as exc:
        return None, None, {}, [Problem(file, None, "(file)", f"YAML error: {shorten(str(exc))}")]
    except (ValueError, OverflowError, TypeError, RecursionError) as exc:
        if node is None:
            return None, None, {}, [Problem(file, None, "(file)", f"cannot read: {exc}")]
        return None, None, {}, [_bad_scalar(node, file, exc)]
    finally:
        loader.dispose()
    return data, node, lines, problems


def load_mapping_text(text: str, source: str) -> Any:
    """The data of a YAML file other than an extraction file (the analysis plan), read
    under the same limits and rules as :func:`read_yaml` (no aliases, no duplicate keys,
    located problems); any problem raises :class:`~metaresp.errors.InputError`, one line
    each (``file:line: path: message``)."""
    from metaresp.errors import InputError

    data, _, _, problems = read_yaml(text, source)
    if problems:
        raise InputError([str(p) for p in problems])
    return data


class _Dumper(yaml.SafeDumper):
    """Block style, sequences indented under their key, multi-line text as ``|`` blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_ODD_BREAKS = frozenset("\r\x85\u2028\u2029\ufeff")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style: str | None = None
    if _ODD_BREAKS.intersection(value):
        style = '"'  # only double quotes can escape these characters
    elif "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)

_ALWAYS = {"responders", "evaluable", "percent", "derived", "groups"}
"""Fields written even when empty (a reader sees at once that no count is given)."""
_FLOW_LISTS = frozenset(
    f.name for f in (*study_fields(), *group_fields(), *outcome_fields()) if f.kind == "list"
)
"""List fields of plain values, written inline (``[teclistamab, daratumumab]``)."""


def _plain(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            value = _plain(value)
        elif isinstance(value, tuple):
            value = [_plain(v) if isinstance(v, BaseModel) else v for v in value]
        if name not in _ALWAYS and (value is None or value == []):
            continue
        if name in _FLOW_LISTS:
            value = _Flow(value)
        out[name] = value
    return out


class _Flow(list[Any]):
    """A short list written inline: ``[teclistamab, daratumumab]``."""


_Dumper.add_representer(
    _Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", list(v), flow_style=True)
)


def _with_blank_lines(text: str) -> str:
    """Separate groups by one blank line, if that leaves the content unchanged."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(node, yaml.MappingNode):
        return text
    groups = next((v for k, v in node.value if k.value == "groups"), None)
    if not isinstance(groups, yaml.SequenceNode):
        return text
    starts = {item.start_mark.line for item in groups.value[1:]}
    lines = text.split("\n")
    spaced = "\n".join(("\n" + line) if i in starts else line for i, line in enumerate(lines))
    same = yaml.load(spaced, Loader=yaml.SafeLoader) == yaml.load(text, Loader=yaml.SafeLoader)
    return spaced if same else text


_NO_WRAP = 1_000_000  # one line per text field: easy to grep and to diff


def dump_study(study: Study) -> str:
    """The study as extraction-file YAML: field order of the format, empty optional fields
    left out, text (quotes included) preserved exactly, unicode written as is.

    ``parse_study(dump_study(s))`` gives a study equal to ``s``. Comments of the original
    file are not kept.
    """
    text = yaml.dump(
        _plain(study),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=_NO_WRAP,
        default_flow_style=False,
    )
    return _with_blank_lines(text)


FLOW_LISTS = _FLOW_LISTS


def plain_study(study: Study) -> dict[str, Any]:
    """The study's fields as :func:`dump_study` writes them (the format's order, empty
    optional fields left out), as plain values."""
    return _plain(study)


def write_study(study: Study, path: str | os.PathLike[str]) -> Path:
    """Write ``dump_study(study)`` to ``path`` atomically (temporary file, then rename)."""
    return write_text_atomic(path, dump_study(study))
