"""Living updates: what changed between two states of the pooled estimates, and why.

Where each part lives:

- :mod:`._state`: the state itself (what ``metaresp run`` records and publishes, the
  record fingerprints, the corpus version, reading a state from a file or a git revision);
- :mod:`._diff`: the diff model (:func:`compare` two states into a :class:`StateDiff`);
- :mod:`._render`: the diff as text (:func:`format_diff`), as a changelog list
  (:func:`changelog`) and as JSON (:func:`diff_dict`);
- :mod:`._add`: adding a study to the corpus (``metaresp add``), through
  :mod:`metaresp.intake`.
"""

from __future__ import annotations

from metaresp.living._add import (
    Placement,
    place,
    plan_addition,
    read_new_studies,
    unplace,
    unpublished_edits,
)
from metaresp.living._diff import (
    TOLERANCE,
    Crossing,
    Estimate,
    EstimateChange,
    FieldChange,
    Position,
    RecordChange,
    StateDiff,
    compare,
    estimates_of,
)
from metaresp.living._render import changelog, diff_dict, format_diff
from metaresp.living._state import (
    FINGERPRINT_KEY,
    FINGERPRINT_VERSION,
    PUBLISHED_PATH,
    RECORD_FIELDS,
    RECORDS_KEY,
    SUMMARY_NAME,
    TEXT_FIELDS,
    TEXTS_KEY,
    build_state,
    check_state,
    corpus_version,
    current_state,
    finish_run,
    load_previous,
    parse_state,
    publish,
    read_state_at_ref,
    read_state_file,
    record_table,
    state_meta,
    state_text,
)

__all__ = [
    "FINGERPRINT_KEY",
    "FINGERPRINT_VERSION",
    "PUBLISHED_PATH",
    "RECORDS_KEY",
    "RECORD_FIELDS",
    "SUMMARY_NAME",
    "TEXTS_KEY",
    "TEXT_FIELDS",
    "TOLERANCE",
    "Crossing",
    "Estimate",
    "EstimateChange",
    "FieldChange",
    "Placement",
    "Position",
    "RecordChange",
    "StateDiff",
    "build_state",
    "changelog",
    "check_state",
    "compare",
    "corpus_version",
    "current_state",
    "diff_dict",
    "estimates_of",
    "finish_run",
    "format_diff",
    "load_previous",
    "parse_state",
    "place",
    "plan_addition",
    "publish",
    "read_new_studies",
    "read_state_at_ref",
    "read_state_file",
    "record_table",
    "state_meta",
    "state_text",
    "unplace",
    "unpublished_edits",
]
