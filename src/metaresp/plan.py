"""The analysis plan: which records to pool, how to group them, and with which model.

The plan is a YAML file (``analysis-plan.yaml`` at the repository root) validated by the
pydantic models below. Its parts:

``model``
    The default model of every analysis, overridable per analysis. Defaults follow the
    project's methods: the Bayesian binomial-normal model on the logit scale with a
    half-normal(2) prior on tau and normal(0, 2) on mu (:mod:`metaresp.bayes`; chosen by
    the few-studies simulation, docs/simulation/few-studies); the GLMM takes a t interval
    (k-1 df), and an inverse-variance estimator (``REML`` unless stated) the
    Hartung-Knapp-Sidik-Jonkman interval (IntHout et al. 2014, BMC Med Res Methodol 14:25).
``groupings``
    Named classifications of records into subgroups. Each class is a rule (or a list of
    alternative rules) on the record's ``agent``, ``modality``, ``target``, ``group``
    (name), ``group_id``, ``study``, ``cohort`` or ``population``; a record belongs to the
    *first* class whose rule it matches, so within one analysis every record sits in
    exactly one subgroup. A record
    that matches no class goes to the ``other`` bucket when one is named, and is set aside
    (with that reason) otherwise. ``exclude`` sets records aside before classifying, each
    rule list under the reason the outputs show (e.g. a group that reports every salvage
    class together belongs to no class).
``analyses``
    Each with a name, a title, a selection (population, setting, outcome, unit; lists
    allowed), a grouping, optional model settings, an ``overall`` flag and thresholds. A list
    of outcomes expands into one analysis per outcome (pooling ORR with CR would make no
    sense); lists of populations, settings or units are pooled together. Patients and
    treatment lines are never pooled together unless the analysis says ``mix_units: true``.
``exclude_designs``
    Study designs (vocabulary ``design``) that analyses do not pool; by default case
    reports. An analysis or a variant may give its own list (``[]``: every design).
``sensitivity`` (inside an analysis)
    Variants of that primary analysis, each with a name, a description and what differs
    (``exclude_designs``, ``alternative_counts``, ``model``, ``grouping``). They expand
    right after their primary, per outcome, with ``role`` "sensitivity" and
    ``sensitivity_of`` naming the primary.

``figures``
    ``primary`` (default) or ``all``: which analyses a run draws forest and cumulative
    plots for. The sensitivity analyses keep their tables and report sections either way;
    ``metaresp run --figures all`` draws them once without changing the plan.

``regressions``
    Meta-regressions of a primary analysis's pooled records on record fields (``year``,
    ``setting``, ``population``, ``design``, ``unit``, ``subgroup``, ``agent``,
    ``modality``, ``target``), each a name, the analysis, the moderators and optionally a
    model (default REML with the Hartung-Knapp interval); see :mod:`metaresp.regressions`.

:func:`load_plan` reads and validates a file; every problem becomes one line naming the
file, the line and the field (:class:`metaresp.errors.InputError`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from metaresp._plan_spec import (
    DEFAULT_ESTIMATOR_IV,
    DEFAULT_EXCLUDE_DESIGNS,
    OUTCOME_SLUG,
    OUTCOME_TITLE,
    OUTCOMES,
    RULE_FIELDS,
    Analysis,
    AnalysisSpec,
    CertaintyOverride,
    CertaintySettings,
    Condition,
    Grouping,
    Model,
    ModelSettings,
    OtherFamily,
    Plan,
    Rule,
    Selection,
    Variant,
    resolve_model,
)
from metaresp.errors import InputError


def _line_index(text: str) -> dict[tuple[str | int, ...], int]:
    """Map each path inside a YAML document to its 1-based line, for error messages."""
    index: dict[tuple[str | int, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return index

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        index[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
                index[(*path, name)] = key.start_mark.line + 1
                walk(value, (*path, name))
                index[(*path, name)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return index


def _format_loc(loc: Sequence[str | int], data: Any) -> str:
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if (
                isinstance(node, list)
                and item < len(node)
                and isinstance(node[item], dict)
                and isinstance(node[item].get("name"), str)
            ):
                label = f"[{item}] ({node[item]['name']})"
            parts.append(label)
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(f".{item}" if parts else str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def _clean_loc(loc: Iterable[str | int]) -> tuple[str | int, ...]:
    """Drop pydantic's internal steps (validator names, union branches) from a location."""
    out: list[str | int] = []
    for item in loc:
        if isinstance(item, str) and (
            item.startswith(("function-", "list[", "dict[", "str"))
            or item in {"int", "float", "literal"}
        ):
            continue
        out.append(item)
    return tuple(out)


_ERROR_TEXT = {
    "extra_forbidden": "unknown field",
    "missing": "missing (required)",
}


def _problems(
    exc: ValidationError, source: str, data: Any, lines: dict[tuple[str | int, ...], int]
) -> list[str]:
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        loc = _clean_loc(err["loc"])
        line = None
        for cut in range(len(loc), -1, -1):
            line = lines.get(loc[:cut])
            if line is not None:
                break
        where = f"{source}:{line}" if line else source
        message = _ERROR_TEXT.get(err["type"], err["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if err["type"] == "extra_forbidden" and loc:
            message = "unknown field" + _allowed_hint(loc, data)
        problems.append(f"{where}: {_format_loc(loc, data)}: {message}")
    return list(dict.fromkeys(problems))


def _allowed_hint(loc: tuple[str | int, ...], data: Any) -> str:
    """Name the allowed fields for an unknown key, guessing the model from the path."""
    parent = [p for p in loc[:-1] if isinstance(p, str)]
    models: list[type[BaseModel]] = [Plan]
    if parent[-1:] == ["model"]:
        models = [ModelSettings]
    elif parent == ["certainty"]:
        models = [CertaintySettings]
    elif parent[:2] == ["certainty", "overrides"] and len(parent) == 4:
        models = [CertaintyOverride]
    elif parent[-1:] == ["selection"]:
        models = [Selection]
    elif parent and parent[0] == "analyses" and len(parent) == 1:
        models = [AnalysisSpec]
    elif parent[:2] == ["analyses", "sensitivity"] and len(parent) == 2:
        models = [Variant]
    elif parent and parent[0] == "groupings":
        depth = len(parent)
        models = [Grouping] if depth <= 2 else [Rule] if depth == 4 else [Condition]
    names = sorted(models[0].model_fields)
    return f" (allowed: {', '.join(names)})"


def parse_plan(text: str, source: str = "plan") -> Plan:
    """Validate plan text; ``source`` names the file in error messages.

    The text is read under the limits of extraction files (:mod:`metaresp.limits`: size,
    depth, aliases expanding to at most so many values) and a key given twice in one
    mapping is an error, not the last value silently winning."""
    from metaresp._yaml import load_mapping_text
    from metaresp.limits import MAX_YAML_BYTES

    if len(text) <= MAX_YAML_BYTES:
        try:
            yaml.compose(text, Loader=yaml.SafeLoader)  # syntax only: nothing is expanded
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark is not None else source
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise InputError(f"{where}: not valid YAML: {problem}") from None
    data = load_mapping_text(text, source)
    if not isinstance(data, dict):
        raise InputError(
            f"{source}: the plan must be a mapping with 'analyses' (and "
            "optionally 'model', 'groupings', 'thresholds')"
        )
    lines = _line_index(text)
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise InputError(_problems(exc, source, data, lines)) from None
    problems: list[str] = []
    # a mistake in the plan's own model is reported once, at its line, not again for every
    # analysis that inherits it
    inherited = None
    try:
        resolve_model(plan.model)
    except ValueError as exc:
        inherited = str(exc)
        problems.append(f"{source}:{lines.get(('model',), '?')}: model: {exc}")
    seen: set[str] = set()
    for i, spec in enumerate(plan.analyses):
        where = f"{source}:{lines.get(('analyses', i), '?')}"
        label = f"analyses[{i}] ({spec.name})"
        if spec.grouping is not None and spec.grouping not in plan.groupings:
            known = ", ".join(plan.groupings) or "none defined"
            problems.append(
                f"{where}: {label}.grouping: unknown grouping {spec.grouping!r} (defined: {known})"
            )
        try:
            resolve_model(plan.model, spec.model)
        except ValueError as exc:
            if str(exc) != inherited:
                problems.append(f"{where}: {label}.model: {exc}")
        names = (
            [spec.name]
            if len(spec.selection.outcome) == 1
            else [f"{spec.name}-{OUTCOME_SLUG[o]}" for o in spec.selection.outcome]
        )
        for vi, variant in enumerate(spec.sensitivity):
            vlabel = f"{label}.sensitivity[{vi}] ({variant.name})"
            vwhere = f"{source}:{lines.get(('analyses', i, 'sensitivity', vi), '?')}"
            if variant.grouping is not None and variant.grouping not in plan.groupings:
                known = ", ".join(plan.groupings) or "none defined"
                problems.append(
                    f"{vwhere}: {vlabel}.grouping: unknown grouping "
                    f"{variant.grouping!r} (defined: {known})"
                )
            try:
                resolve_model(plan.model, spec.model, variant.model)
            except ValueError as exc:
                if str(exc) != inherited:
                    problems.append(f"{vwhere}: {vlabel}.model: {exc}")
            names.extend(
                [variant.name]
                if len(spec.selection.outcome) == 1
                else [f"{variant.name}-{OUTCOME_SLUG[o]}" for o in spec.selection.outcome]
            )
        for name in names:
            if name in seen:
                problems.append(f"{where}: {label}.name: analysis name {name!r} is used twice")
            seen.add(name)
    problems.extend(_vocabulary_problems(plan, source, lines))
    problems.extend(_certainty_problems(plan, source, lines))
    problems.extend(_file_name_problems(plan, source, lines))
    if problems:
        raise InputError(problems)
    return plan


def _file_name_problems(
    plan: Plan, source: str, lines: dict[tuple[str | int, ...], int]
) -> list[str]:
    """Two classes of one grouping whose names give the same file name (their cumulative
    figures would overwrite each other) are an error naming both."""
    from metaresp._names import slug

    problems: list[str] = []
    for gname, grouping in plan.groupings.items():
        names = [*grouping.classes, *([grouping.other] if grouping.other else [])]
        seen: dict[str, str] = {}
        for name in names:
            key = slug(name)
            if key in seen and seen[key] != name:
                line = lines.get(("groupings", gname, "classes", name)) or lines.get(
                    ("groupings", gname)
                )
                where = f"{source}:{line}" if line else source
                problems.append(
                    f"{where}: groupings.{gname}: classes {seen[key]!r} and {name!r} give the "
                    f"same file name {key!r} (their figures would overwrite each other); "
                    "rename one of them"
                )
            seen.setdefault(key, name)
    return problems


def _vocabulary_problems(
    plan: Plan, source: str, lines: dict[tuple[str | int, ...], int]
) -> list[str]:
    """Populations, modalities and targets named in the plan must be corpus vocabulary
    (a typo would silently select nothing)."""
    from metaresp import vocab

    problems: list[str] = []

    def check(field: str, value: str, path: tuple[str | int, ...]) -> None:
        allowed = {v.lower() for v in vocab.VOCABULARIES[field]}
        if value.lower() not in allowed:
            line = next(
                (lines[path[:cut]] for cut in range(len(path), -1, -1) if path[:cut] in lines), None
            )
            where = f"{source}:{line}" if line else source
            problems.append(
                f"{where}: {_format_loc(path, None)}: {vocab.unknown_term_message(field, value)}"
            )

    for value in plan.exclude_designs:
        check("design", value, ("exclude_designs",))
    if plan.certainty.population is not None:
        check("population", plan.certainty.population, ("certainty", "population"))
    for i, spec in enumerate(plan.analyses):
        for value in spec.exclude_designs or ():
            check("design", value, ("analyses", i, "exclude_designs"))
        for vi, variant in enumerate(spec.sensitivity):
            for value in variant.exclude_designs or ():
                check("design", value, ("analyses", i, "sensitivity", vi, "exclude_designs"))
        for value in spec.selection.population:
            check("population", value, ("analyses", i, "selection", "population"))
        for value in spec.selection.modality or ():
            check("modality", value, ("analyses", i, "selection", "modality"))
    for gname, grouping in plan.groupings.items():
        for cname, rules in grouping.classes.items():
            for rule in rules:
                for field in ("modality", "target", "population"):
                    cond = getattr(rule, field)
                    if cond is None:
                        continue
                    for part in ("any", "all", "none", "only"):
                        for value in getattr(cond, part) or ():
                            check(field, value, ("groupings", gname, "classes", cname, field))
    return problems


def _certainty_problems(
    plan: Plan, source: str, lines: dict[tuple[str | int, ...], int]
) -> list[str]:
    """A panel's override must name an analysis of the plan and one of its subgroups."""
    problems: list[str] = []
    if not plan.certainty.overrides:
        return problems
    try:
        analyses = {a.name: a for a in plan.expanded()}
    except (KeyError, ValueError):  # an unknown grouping or model: reported above
        return problems
    for name, subgroups in plan.certainty.overrides.items():
        path: tuple[str | int, ...] = ("certainty", "overrides", name)
        where = f"{source}:{lines.get(path, '?')}"
        analysis = analyses.get(name)
        if analysis is None:
            problems.append(
                f"{where}: certainty.overrides.{name}: unknown analysis (the names are "
                f"those of results/figures, e.g. {next(iter(analyses))})"
            )
            continue
        known = [*(analysis.grouping.order() if analysis.grouping else ["All studies"])]
        known.append("Overall")
        for sub in subgroups:
            if sub not in known:
                line = lines.get((*path, sub), "?")
                problems.append(
                    f"{source}:{line}: certainty.overrides.{name}.{sub}: unknown subgroup "
                    f"(the subgroups of {name}: {', '.join(known)})"
                )
    return problems


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; bad input raises :class:`InputError`, one line each."""
    from metaresp.files import read_text_file

    return parse_plan(read_text_file(path, "plan file"), str(path))


__all__ = [
    "DEFAULT_ESTIMATOR_IV",
    "DEFAULT_EXCLUDE_DESIGNS",
    "OUTCOMES",
    "OUTCOME_SLUG",
    "OUTCOME_TITLE",
    "RULE_FIELDS",
    "Analysis",
    "AnalysisSpec",
    "Condition",
    "Grouping",
    "Model",
    "ModelSettings",
    "OtherFamily",
    "Plan",
    "Rule",
    "Selection",
    "Variant",
    "load_plan",
    "parse_plan",
    "resolve_model",
]
