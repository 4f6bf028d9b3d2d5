"""The extraction corpus: read, validate and tabulate the YAML files of ``extractions/``.

``load_extractions(path)`` reads every ``*.yaml``/``*.yml`` file (sorted by name),
validates each against :mod:`metaresp.schema`, applies the rules that span files, and
returns a :class:`Corpus`; any error in any file raises one :class:`InputError` listing
every problem as ``file:line: path: message``. ``Corpus.to_frame()`` is the long table of
documented columns (one row per outcome record; see its docstring).

Line numbers come from the YAML node marks: each file is composed once, the node tree is
walked to map every path (``groups[2].outcomes[0].responders``) to its line, and the same
tree is constructed into the Python data that pydantic validates.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError

from metaresp import vocab
from metaresp._messages import (
    bounded_repr,
    generic_message,
    meaningful_errors,
    pattern_message,
)
from metaresp._yaml import LineMap, PathPart, Problem, dump_study, line_for, read_yaml, write_study
from metaresp.errors import InputError
from metaresp.fields import FrameColumn, attribute, frame_columns, study_fields
from metaresp.schema import (
    Finding,
    Group,
    Outcome,
    Study,
    ViaReview,
    check_study,
    format_path,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "FRAME_COLUMNS",
    "Corpus",
    "Problem",
    "Report",
    "check_extractions",
    "dump_study",
    "load_extractions",
    "parse_study",
    "record_ids",
    "write_study",
]

_FRAME: tuple[FrameColumn, ...] = frame_columns()

#: Columns of :meth:`Corpus.to_frame`, in order (derived from the schema models).
FRAME_COLUMNS: tuple[str, ...] = tuple(c.name for c in _FRAME)


def _raw_percents(node: yaml.Node, data: Any) -> None:
    """Keep percentages as printed: an unquoted ``percent: 71.40`` becomes ``"71.40"``."""
    if not (isinstance(node, yaml.MappingNode) and isinstance(data, dict)):
        return
    groups = next((v for k, v in node.value if k.value == "groups"), None)
    if not isinstance(groups, yaml.SequenceNode) or not isinstance(data.get("groups"), list):
        return
    for gnode, gdata in zip(groups.value, data["groups"], strict=False):
        if not (isinstance(gnode, yaml.MappingNode) and isinstance(gdata, dict)):
            continue
        outcomes = next((v for k, v in gnode.value if k.value == "outcomes"), None)
        if not isinstance(outcomes, yaml.SequenceNode) or not isinstance(
            gdata.get("outcomes"), list
        ):
            continue
        for onode, odata in zip(outcomes.value, gdata["outcomes"], strict=False):
            if not (isinstance(onode, yaml.MappingNode) and isinstance(odata, dict)):
                continue
            pnode = next((v for k, v in onode.value if k.value == "percent"), None)
            if (
                isinstance(pnode, yaml.ScalarNode)
                and pnode.tag in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:int")
                and isinstance(odata.get("percent"), int | float)
            ):
                odata["percent"] = pnode.value


def _read_yaml(text: str, file: str) -> tuple[Any, LineMap, list[Problem]]:
    """Parse ``text`` once (:func:`metaresp._yaml.read_yaml`), keeping percentages as
    printed; return the data, the path → line map and structural problems."""
    data, node, lines, problems = read_yaml(text, file)
    if node is not None:
        _raw_percents(node, data)
    return data, lines, problems


# --------------------------------------------------------------------------- pydantic errors


def _model_at(path: Sequence[PathPart]) -> type[BaseModel] | None:
    """The model class whose fields live at ``path`` (for "unknown field" suggestions)."""
    model: type[BaseModel] = Study
    nested: dict[str, type[BaseModel]] = {
        "groups": Group,
        "outcomes": Outcome,
        "via_review": ViaReview,
    }
    for part in path:
        if isinstance(part, int):
            continue
        if part not in nested:
            return None
        model = nested[part]
    return model


def _error_message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    loc = tuple(err["loc"])
    name = loc[-1] if loc else "file"
    if kind == "missing":
        return f"missing required field {name!r}"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        if model is not None:
            allowed = list(model.model_fields)
            guess = vocab.suggest(str(name), allowed)
            hint = f"did you mean {guess!r}? " if guess else ""
            return f"unknown field {name!r}; {hint}allowed: {', '.join(allowed)}"
        return f"unknown field {name!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of fields, got {bounded_repr(err['input'])}"
    if kind == "string_pattern_mismatch":
        return pattern_message(err, '"71.4"')
    return generic_message(err)


def _schema_problems(exc: ValidationError, file: str, lines: LineMap) -> list[Problem]:
    return [
        Problem(
            file,
            line_for(lines, tuple(err["loc"])),
            format_path(tuple(err["loc"])),
            _error_message(err),
        )
        for err in meaningful_errors(exc)
    ]


def _locate(
    findings: Iterable[Finding], file: str, lines: Mapping[tuple[PathPart, ...], int]
) -> list[Problem]:
    return [
        Problem(
            file,
            line_for(lines, f.path) if lines else None,
            format_path(f.path),
            f.message,
            f.level,
        )
        for f in findings
    ]


def parse_study(text: str, file: str = "<text>") -> tuple[Study | None, LineMap, list[Problem]]:
    """Parse and validate one extraction file's text (file-level rules only).

    Returns the study (``None`` when the file has errors that stop validation), the
    path → line map, and every problem found (errors and warnings).
    """
    data, lines, problems = _read_yaml(text, file)
    if problems and data is None:
        return None, lines, problems
    if not isinstance(data, dict):
        problems.append(
            Problem(file, 1, "(file)", "expected a mapping of study fields at the top of the file")
        )
        return None, lines, problems
    try:
        study = Study.model_validate(data)
    except ValidationError as exc:
        return None, lines, problems + _schema_problems(exc, file, lines)
    problems.extend(_locate(check_study(study), file, lines))
    return study, lines, problems


# --------------------------------------------------------------------------- cross-file rules


def _effective(study: Study, group: Group) -> tuple[str, str]:
    return group.population or study.population, group.cohort or study.cohort


def _cross_checks(
    studies: Sequence[Study],
    files: Sequence[str],
    lines: Sequence[Mapping[tuple[PathPart, ...], int]],
) -> list[Problem]:
    problems: list[Problem] = []
    first_id: dict[str, str] = {}
    for study, file, where in zip(studies, files, lines, strict=True):
        if study.id in first_id:
            problems.append(
                Problem(
                    file,
                    line_for(where, ("id",)) if where else None,
                    "id",
                    f"duplicate study id {study.id!r} (also in {first_id[study.id]})",
                )
            )
        else:
            first_id[study.id] = file
    seen: dict[tuple[Any, ...], tuple[str, Problem]] = {}
    for study, file, where in zip(studies, files, lines, strict=True):
        for gi, group in enumerate(study.groups):
            population, cohort = _effective(study, group)
            for oi, rec in enumerate(group.outcomes):
                path = ("groups", gi, "outcomes", oi)
                key = (
                    cohort,
                    population,
                    group.setting,
                    group.unit,
                    rec.outcome,
                    group.agents,
                    group.modality,
                    group.target,
                )
                here = Problem(
                    file, line_for(where, path) if where else None, format_path(path), ""
                )
                if key in seen and seen[key][0] != study.id:
                    other_study, other = seen[key]
                    agents, targets = "+".join(group.agents), "+".join(group.target)
                    other_at = other.file if other.line is None else f"{other.file}:{other.line}"
                    problems.append(
                        Problem(
                            file,
                            here.line,
                            here.path,
                            f"cohort {cohort!r} has another {rec.outcome} record for "
                            f"{population}, {group.setting}, {group.unit}, {agents} "
                            f"({group.modality}, {targets}) in study {other_study!r} "
                            f"({other_at}); an analysis keeps only one of them",
                            "warning",
                        )
                    )
                else:
                    seen.setdefault(key, (study.id, here))
    return problems


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Corpus:
    """A validated set of studies, each with the file it came from.

    ``studies[i]`` was read from ``files[i]``; ``warnings`` holds one line per warning
    (``file:line: path: message``), ``problems`` the same as :class:`Problem` objects.
    """

    studies: tuple[Study, ...]
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    root: Path | None = None
    _lines: tuple[Mapping[tuple[PathPart, ...], int], ...] = field(
        default=(), repr=False, compare=False
    )

    @classmethod
    def from_studies(cls, studies: Iterable[Study], files: Iterable[str] | None = None) -> Corpus:
        """Build a corpus from models (e.g. a workbook), applying every rule.

        ``files`` names where each study came from (default ``<id>.yaml``). Raises
        :class:`InputError` listing every error; warnings are kept in ``warnings``.
        """
        items = tuple(studies)
        names = tuple(files) if files is not None else tuple(f"{s.id}.yaml" for s in items)
        if len(names) != len(items):
            raise ValueError(f"files: expected {len(items)} names, got {len(names)}")
        problems: list[Problem] = []
        for study, name in zip(items, names, strict=True):
            problems.extend(_locate(check_study(study), name, {}))
        problems.extend(_cross_checks(items, names, [{}] * len(items)))
        return _finish(items, names, [{}] * len(items), problems, None)

    def __len__(self) -> int:
        return len(self.studies)

    def __iter__(self) -> Iterator[Study]:
        return iter(self.studies)

    @property
    def n_records(self) -> int:
        """Number of outcome records (rows of :meth:`to_frame`)."""
        return sum(len(g.outcomes) for s in self.studies for g in s.groups)

    def study(self, study_id: str) -> Study:
        """The study with id ``study_id`` (``KeyError`` if none)."""
        for study in self.studies:
            if study.id == study_id:
                return study
        raise KeyError(study_id)

    def file_of(self, study_id: str) -> str:
        """The file the study ``study_id`` was read from."""
        for study, name in zip(self.studies, self.files, strict=False):
            if study.id == study_id:
                return name
        raise KeyError(study_id)

    def validate(self) -> tuple[Problem, ...]:
        """Re-apply every rule; returns all problems (errors and warnings), raises nothing."""
        lines = self._lines or tuple({} for _ in self.studies)
        problems: list[Problem] = []
        for study, name, where in zip(self.studies, self.files, lines, strict=True):
            problems.extend(_locate(check_study(study), name, where))
        problems.extend(_cross_checks(self.studies, self.files, lines))
        return tuple(problems)

    def to_frame(self) -> pd.DataFrame:
        """One row per outcome record, long format, columns :data:`FRAME_COLUMNS`.

        ``agent`` and ``target`` join several values with ``"+"``; ``agents`` lists them
        with ``", "``; ``components`` joins component group ids with ``"+"`` (None if
        none). ``responders``/``evaluable`` are nullable ``Int64`` (``<NA>`` for
        percent-only records), ``percent`` is a float parsed from ``percent_text`` (as
        printed). ``population`` and ``cohort`` are the group's own values where it
        overrides the study's. ``record`` is ``study/group_id/outcome``, unique. The
        columns come from the schema models (:func:`metaresp.fields.frame_columns`): a
        field added there is a column here.
        """
        import pandas as pd

        rows: list[dict[str, Any]] = []
        lines = self._lines or tuple({} for _ in self.studies)
        for study, name, where in zip(self.studies, self.files, lines, strict=True):
            ids = record_ids(study)
            for gi, group in enumerate(study.groups):
                for oi, rec in enumerate(group.outcomes):
                    record = ids[(gi, oi)]
                    row = {
                        c.name: _frame_value(c, study, group, rec)
                        for c in _FRAME
                        if c.field is not None
                    }
                    row.update(
                        record=record, file=name, line=where.get(("groups", gi, "outcomes", oi))
                    )
                    rows.append(row)
        frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
        for column in _FRAME:
            kind = column.field.kind if column.field is not None else None
            if column.number:
                frame[column.name] = frame[column.name].astype("float64")
            elif kind == "count" or column.name == "line":
                frame[column.name] = frame[column.name].astype("Int64")
            elif kind == "bool":
                frame[column.name] = frame[column.name].astype(bool)
        return frame


def record_ids(study: Study) -> dict[tuple[int, int], str]:
    """The record id of every outcome record, keyed by (group index, outcome index):
    ``study/group_id/outcome``, with ``#2``, ``#3`` ... for repeats within a group."""
    out: dict[tuple[int, int], str] = {}
    for gi, group in enumerate(study.groups):
        counts: dict[str, int] = {}
        for oi, rec in enumerate(group.outcomes):
            record = f"{study.id}/{group.id}/{rec.outcome}"
            counts[record] = counts.get(record, 0) + 1
            if counts[record] > 1:
                record += f"#{counts[record]}"
            out[(gi, oi)] = record
    return out


def _frame_value(column: FrameColumn, study: Study, group: Group, rec: Outcome) -> Any:
    """The cell of ``column`` for one record: a list joined with the column's separator
    (``None`` if empty), a group's override of a study field or the study's value."""
    field = column.field
    assert field is not None
    owner = {"study": study, "group": group, "outcome": rec}[field.level]
    value = attribute(owner, field)
    if value is None and field.level == "group" and field.name in _STUDY_FIELD_NAMES:
        value = getattr(study, field.name)
    if isinstance(value, tuple):
        return column.join.join(str(v) for v in value) or None
    if column.number and value is not None:
        return float(value)
    return value


_STUDY_FIELD_NAMES = frozenset(f.name for f in study_fields())


def _finish(
    studies: Sequence[Study],
    files: Sequence[str],
    lines: Sequence[Mapping[tuple[PathPart, ...], int]],
    problems: Sequence[Problem],
    root: Path | None,
) -> Corpus:
    errors = [p for p in problems if p.level == "error"]
    if errors:
        raise InputError([str(p) for p in errors])
    warnings = tuple(p for p in problems if p.level == "warning")
    return Corpus(
        studies=tuple(studies),
        files=tuple(files),
        warnings=tuple(str(p) for p in warnings),
        problems=warnings,
        root=root,
        _lines=tuple(lines),
    )


@dataclass(frozen=True)
class Report:
    """Everything ``validate`` found: counts, problems, and the studies that parsed."""

    files: tuple[str, ...]
    n_records: int
    problems: tuple[Problem, ...]
    studies: tuple[Study, ...]
    study_files: tuple[str, ...]
    lines: tuple[Mapping[tuple[PathPart, ...], int], ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.level == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.level == "warning")

    def summary(self) -> str:
        """``"N studies, M records: E errors, W warnings"``."""
        n, m = len(self.files), self.n_records
        e, w = len(self.errors), len(self.warnings)
        return (
            f"{n} stud{'y' if n == 1 else 'ies'}, {m} record{'' if m == 1 else 's'}: "
            f"{e} error{'' if e == 1 else 's'}, {w} warning{'' if w == 1 else 's'}"
        )


def _count_records(data: Any) -> int:
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        return 0
    return sum(
        len(g["outcomes"])
        for g in data["groups"]
        if isinstance(g, dict) and isinstance(g.get("outcomes"), list)
    )


def _extraction_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"{path}: no such file or folder")
    return sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix in (".yaml", ".yml") and not p.name.startswith(".")
    )


def check_extractions(path: str | os.PathLike[str] = "extractions") -> Report:
    """Validate every extraction file under ``path`` (a folder or one file); never raises
    for bad content (only for a missing path). ``metaresp validate`` prints this."""
    root = Path(path)
    problems: list[Problem] = []
    studies: list[Study] = []
    names: list[str] = []
    maps: list[LineMap] = []
    files = _extraction_files(root)
    n_records = 0
    for file in files:
        name = file.as_posix()
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(name, None, "(file)", f"cannot read the file: {exc}"))
            continue
        study, lines, found = parse_study(text, name)
        problems.extend(found)
        if study is None:
            data, _, _ = _read_yaml(text, name)
            n_records += _count_records(data)
            continue
        n_records += sum(len(g.outcomes) for g in study.groups)
        studies.append(study)
        names.append(name)
        maps.append(lines)
    problems.extend(_cross_checks(studies, names, maps))
    return Report(
        files=tuple(f.as_posix() for f in files),
        n_records=n_records,
        problems=tuple(problems),
        studies=tuple(studies),
        study_files=tuple(names),
        lines=tuple(maps),
    )


def load_extractions(path: str | os.PathLike[str] = "extractions") -> Corpus:
    """Read, validate and return the corpus under ``path`` (a folder or a single file).

    Every ``*.yaml``/``*.yml`` file of the folder is read, in sorted order. Raises
    :class:`~metaresp.errors.InputError` listing every error of every file
    (``file:line: path: message``); warnings are kept in ``Corpus.warnings``.
    """
    report = check_extractions(path)
    root = Path(path)
    return _finish(
        report.studies,
        report.study_files,
        report.lines,
        report.problems,
        root if root.is_dir() else root.parent,
    )
