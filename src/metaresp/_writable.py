"""A folder a command must write into, checked before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["require_writable"]


def require_writable(folder: Path, what: str, option: str) -> None:
    """Refuse, in one line naming the folder and what to do, a folder (or, when it does
    not exist yet, the folder it would be made in) that this user cannot write into:
    checked before anything is written, so that nothing is left half-done."""
    from metaresp.errors import InputError

    where = Path(os.path.abspath(folder))
    while not where.exists() and where.parent != where:
        where = where.parent
    if os.access(where, os.W_OK | os.X_OK):
        return
    try:
        read_only = bool(os.statvfs(where).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    reason = "it is on a read-only file system" if read_only else "this user may not write in it"
    raise InputError(
        f"{where}: cannot write {what} here ({reason}); make the folder writable for this "
        f"user, or choose another with {option}"
    )
