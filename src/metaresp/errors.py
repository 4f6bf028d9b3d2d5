"""Exception and warning types, named by meaning.

Every error a user can cause is an :class:`InputError` (a ``ValueError``) whose
``problems`` are one line each: *where* (file, row or cell, field) and *what* is
wrong. The command line prints those lines and exits 1, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class MetarespError(Exception):
    """Base class of every metaresp exception."""


class InputError(MetarespError, ValueError):
    """Bad input: each entry of ``problems`` is one line naming where and what."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        lines = [problems] if isinstance(problems, str) else list(problems)
        if not lines:
            lines = ["invalid input"]
        self.problems: tuple[str, ...] = tuple(lines)
        super().__init__("\n".join(self.problems))


class ConvergenceError(MetarespError, ValueError):
    """An iterative fit did not converge; the message says what to try instead."""


class StatisticalWarning(RuntimeWarning):
    """A fallback, correction or convergence problem the user should know about."""


__all__ = ["ConvergenceError", "InputError", "MetarespError", "StatisticalWarning"]
