"""File-name parts made from names (classes, subgroups): one rule for the files metaresp
writes and for the plan check that two names never give the same file."""

from __future__ import annotations

import re

__all__ = ["slug"]


def slug(text: str) -> str:
    """A file-name part: lower case, runs of other characters as one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "all"
