"""Placeholder: this command is being built (see the issue tracker)."""

from __future__ import annotations

from metaresp.errors import InputError


def run() -> None:
    """Run the analysis plan on the extractions and write results/."""
    raise InputError("metaresp run: not available yet")
