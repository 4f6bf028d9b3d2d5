"""Placeholder: this command is being built (see the issue tracker)."""

from __future__ import annotations

from metaresp.errors import InputError


def diff() -> None:
    """Show which pooled estimates changed."""
    raise InputError("metaresp diff: not available yet")
