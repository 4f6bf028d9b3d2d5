"""Placeholder: this command is being built (see the issue tracker)."""

from __future__ import annotations

from metaresp.errors import InputError


def simulate() -> None:
    """Coverage simulation of the interval methods."""
    raise InputError("metaresp simulate: not available yet")
