"""Placeholder: this command is being built (see the issue tracker)."""

from __future__ import annotations

from metaresp.errors import InputError


def template() -> None:
    """Write an extraction workbook template."""
    raise InputError("metaresp template: not available yet")


def import_() -> None:
    """Import an extraction workbook."""
    raise InputError("metaresp import: not available yet")


def export() -> None:
    """Export the corpus to a workbook."""
    raise InputError("metaresp export: not available yet")
