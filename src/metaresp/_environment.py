"""Errors of the machine rather than of the input (permissions, a full disk, a read-only
or busy folder) as one line naming the path and what to do."""

from __future__ import annotations

import errno

__all__ = ["environment_message"]

_ADVICE: dict[int, str] = {
    errno.EACCES: "permission denied; check the permissions of the file and its folder",
    errno.EPERM: "operation not permitted (an immutable file or folder?); check its "
    "attributes and permissions",
    errno.ENOSPC: "no space left on the device; free some space and run the command again",
    errno.EDQUOT: "disk quota exceeded; free some space and run the command again",
    errno.EROFS: "the file system is read-only; write somewhere else (--results, --extractions)",
    errno.EBUSY: "the path is busy (a mount point, or open in another program); "
    "close it or choose another path",
    errno.EXDEV: "cannot move across file systems (a mount point?); choose a folder on "
    "the same file system",
    errno.ENAMETOOLONG: "the file name is too long; choose a shorter one",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) and run again",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOENT: "not found",
}


def environment_message(exc: OSError) -> str:
    """``path: what happened; what to do`` for an operating-system error."""
    where = exc.filename if exc.filename is not None else "(file system)"
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    advice = _ADVICE.get(exc.errno or -1)
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None and advice is None:
        return what
    if advice is None:
        return f"{where}: {what}"
    return f"{where}: {advice}"
