"""Placeholder: this command is being built (see the issue tracker)."""

from __future__ import annotations

from metaresp.errors import InputError


def validate() -> None:
    """Validate the extraction files."""
    raise InputError("metaresp validate: not available yet")


def schema() -> None:
    """Print the JSON Schema of the extraction file format."""
    raise InputError("metaresp schema: not available yet")
