"""Placeholder: this command is being built (see the issue tracker)."""

from __future__ import annotations

from metaresp.errors import InputError


def add() -> None:
    """Add a study to the corpus, re-run and show the diff."""
    raise InputError("metaresp add: not available yet")
