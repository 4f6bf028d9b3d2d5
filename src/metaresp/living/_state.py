"""The published state: what ``metaresp run`` records, where it is kept, how to read it.

A *state* is the JSON record that ``metaresp run`` writes as ``results/summary.json``
(:func:`metaresp.analysis.summary`: every analysis, every estimate with the record ids it
used, what was set aside) plus, under ``corpus_records``, one fingerprint per extraction
record (:func:`record_table`), so that a later state can tell which records were added,
removed or edited. The state of the last run is kept in the repository, at
:data:`PUBLISHED_PATH` (``published/summary.json``), as the current published state; its
git history is the history of the published estimates.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaresp.errors import InputError
from metaresp.fields import COMPARED_FIELDS, digest_fields
from metaresp.files import read_text_file, write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from metaresp.analysis import AnalysisResult
    from metaresp.corpus import Corpus

__all__ = [
    "FINGERPRINT_KEY",
    "FINGERPRINT_VERSION",
    "PUBLISHED_PATH",
    "RECORDS_KEY",
    "RECORD_FIELDS",
    "SUMMARY_NAME",
    "TEXTS_KEY",
    "TEXT_FIELDS",
    "build_state",
    "check_state",
    "corpus_version",
    "current_state",
    "finish_run",
    "load_previous",
    "parse_state",
    "publish",
    "read_state_at_ref",
    "read_state_file",
    "record_table",
    "state_meta",
    "state_text",
]

PUBLISHED_PATH = Path("published") / "summary.json"
"""The published state, tracked in git (``results/`` is not)."""

RECORDS_KEY = "corpus_records"
"""Key of the record fingerprints in a state."""

FINGERPRINT_KEY = "corpus_records_version"
"""Key of the fingerprint scheme in a state (absent in states written before it)."""

FINGERPRINT_VERSION = 2
"""The fingerprint scheme: version 2 digests the fields with a value, by name, so that a
new optional field left empty changes no digest. Digests of different schemes are not
compared (a text edit cannot be seen across them; counts and fields still are)."""

TEXTS_KEY = "texts"
"""Key of a record fingerprint's text fields with their values (so that the diff can show
an edit as old → new; states written before it have the digest only)."""

SUMMARY_NAME = "summary.json"
"""The state's file name in a results folder."""

RECORD_FIELDS: tuple[str, ...] = COMPARED_FIELDS
"""Fields of a record compared one by one (those that can move an estimate)."""

TEXT_FIELDS: tuple[str, ...] = digest_fields()
"""Every other field of a record (derived from the schema), folded into its ``digest``:
an edit there moves no estimate, and shows as a text edit."""


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

    Each fingerprint holds the fields of :data:`RECORD_FIELDS` as they are, the other
    fields (:data:`TEXT_FIELDS`) that have a value under :data:`TEXTS_KEY`, and a short
    SHA-256 ``digest`` of those, by name (a new optional field left empty changes no
    digest); the file name and line are left out, so moving a record within its file is
    not an edit.
    """
    out: dict[str, dict[str, Any]] = {}
    columns = list(frame.columns)
    for row in frame.itertuples(index=False, name=None):
        cells = dict(zip(columns, row, strict=True))
        entry = {name: _plain(cells.get(name)) for name in RECORD_FIELDS}
        values = {name: _plain(cells.get(name)) for name in TEXT_FIELDS}
        text = json.dumps(
            {k: v for k, v in values.items() if v is not None}, ensure_ascii=False, sort_keys=True
        )
        entry["digest"] = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        entry[TEXTS_KEY] = {k: v for k, v in sorted(values.items()) if v is not None}
        out[str(cells["record"])] = entry
    return dict(sorted(out.items()))


def build_state(
    results: Sequence[AnalysisResult], frame: pd.DataFrame, **meta: Any
) -> dict[str, Any]:
    """The state of a run: :func:`metaresp.analysis.summary` plus the record fingerprints."""
    from metaresp.analysis import summary

    state = summary(results, **meta)
    state[RECORDS_KEY] = record_table(frame)
    state[FINGERPRINT_KEY] = FINGERPRINT_VERSION
    return state


def state_meta(
    plan_path: Path, title: str, extractions: Path, corpus: Corpus, n_records: int
) -> dict[str, Any]:
    """The descriptive fields of a state, as ``metaresp run`` writes them."""

    def shown(path: Path) -> str:
        return str(path) if not path.is_absolute() else path.name

    return {
        "title": title,
        "plan": shown(plan_path),
        "extractions": shown(extractions),
        "corpus_version": corpus_version(corpus),
        "studies": len(corpus.studies),
        "records": n_records,
    }


CORPUS_VERSION_LENGTH = 12
"""Hex digits of the corpus version shown (48 bits: no collision in any real corpus)."""


def corpus_version(corpus: Corpus) -> str:
    """A short content hash of the validated corpus: the SHA-256 of the canonical JSON of
    every study (its metadata, groups and records as the schema holds them, keys sorted),
    the studies in id order.

    It depends on content only: not on the file names, the files' layout, comments, key
    order or order of the files, so an export and re-import of the same content, or a
    reformatted file, keeps the version; any change of a value changes it.
    """
    studies = sorted(
        (s.model_dump(mode="json") for s in corpus.studies), key=lambda d: str(d.get("id"))
    )
    text = json.dumps(studies, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:CORPUS_VERSION_LENGTH]


def current_state(plan_path: Path, extractions: Path) -> dict[str, Any]:
    """The state the plan gives on the extractions now, computed in memory (no file
    written)."""
    from metaresp.analysis import run_analysis
    from metaresp.corpus import load_extractions
    from metaresp.plan import load_plan
    from metaresp.records import records_from_corpus

    plan = load_plan(plan_path)
    if not extractions.is_dir():
        raise InputError(f"{extractions}: extractions folder not found")
    corpus = load_extractions(extractions)
    frame = corpus.to_frame()
    records = records_from_corpus(corpus)
    results = [run_analysis(a, records) for a in plan.expanded()]
    return build_state(
        results,
        frame,
        **state_meta(plan_path, plan.title, extractions, corpus, len(frame)),
    )


STATE_REL_TOL = 1e-12
"""Relative difference below which two published numbers are the same number (see
:func:`same_state`); reported values carry at most 4 significant digits."""


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
        if (
            not isinstance(analysis, dict)
            or not isinstance(analysis.get("analysis"), str)
            or not isinstance(analysis.get("estimates"), list)
        ):
            raise InputError(
                f"{source}: analyses[{i}]: not a metaresp analysis summary "
                "(needs 'analysis' and 'estimates')"
            )
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
    return subprocess.run(
        [git, *args], cwd=cwd, capture_output=True, text=True, encoding="utf-8", check=False
    )


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
        raise InputError(
            f"{where}: no such file, and git is not installed to read it as a revision"
        ) from None
    if top.returncode != 0:
        raise InputError(f"{where}: no such file, and {folder} is not in a git repository")
    root = Path(top.stdout.strip()).resolve()
    try:
        relative = target.relative_to(root).as_posix()
    except ValueError:
        raise InputError(
            f"{where}: the published state {path} is outside the git repository {root}"
        ) from None
    shown = _git(["show", f"{ref}:{relative}"], root)
    if shown.returncode != 0:
        first = (shown.stderr.strip().splitlines() or ["git show failed"])[0]
        raise InputError(
            f"{where}: not a file, nor a git revision holding {relative} "
            f"({first.removeprefix('fatal: ')})"
        )
    return parse_state(shown.stdout, f"{ref}:{relative}")


def load_previous(
    against: str | None, published: Path = PUBLISHED_PATH
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


def finish_run(out: Path, published: Path | None = PUBLISHED_PATH) -> list[str]:
    """What ``metaresp run`` does after the results folder is in place: copy its
    ``summary.json`` (which already carries the record fingerprints) to ``published`` as
    the current published state (skipped when ``None``). Returns one line per thing done.
    """
    if published is None:
        return []
    state = read_state_file(out / SUMMARY_NAME)
    if published.exists():
        try:
            previous = json.loads(published.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            previous = None
        if same_state(previous, state):
            return [f"published state unchanged ({published})"]
    publish(state, published)
    return [f"published state written to {published}"]


def same_state(a: Any, b: Any, rel: float = STATE_REL_TOL) -> bool:
    """Whether two states are the same record: equal structure, texts and integers, and
    floats equal to ``rel`` relative (or both NaN). The last bits of a float can differ
    between machines (summation order in vectorised code), and a run that reproduces the
    published numbers must not rewrite the published file over them."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or abs(a - b) <= rel * max(abs(a), abs(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_state(x, y, rel) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b
