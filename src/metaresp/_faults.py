"""Named points inside the commands that change state, where a test can make the process
die or fail, to check that every interruption leaves the old or the new state.

Set ``METARESP_FAULT`` to ``NAME`` (the process ends at once at that point, as a SIGKILL
would end it: no clean-up, no ``finally``) or ``NAME:raise`` (an ``OSError`` "no space
left on device" is raised there). Unset, :func:`at` costs one dictionary look-up.
"""

from __future__ import annotations

import errno
import os

__all__ = ["FAULT_VARIABLE", "at"]

FAULT_VARIABLE = "METARESP_FAULT"


def at(name: str) -> None:
    """Die or fail here when ``METARESP_FAULT`` names this point."""
    wanted = os.environ.get(FAULT_VARIABLE)
    if not wanted:
        return
    point, _, action = wanted.partition(":")
    if point != name:
        return
    if action == "raise":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"<fault {name}>")
    os._exit(137)
