"""Placeholder: this command is being built (see the issue tracker)."""

from __future__ import annotations

from metaresp.errors import InputError


def pool() -> None:
    """Pool a table of events and totals (CSV or XLSX), like R's metaprop."""
    raise InputError("metaresp pool: not available yet")
