"""The project lock: commands that change the corpus, the results or the published state
(``metaresp add``, ``import``, ``run``) run one at a time.

The lock is an operating-system file lock (through :mod:`filelock`: released when the
process ends, however it ends) on a file in the system's temporary folder named after the
extractions folder's real path, so the project itself gets no extra file and a read-only
corpus can be locked too. A second command waits for the first, then sees what the first
wrote; so two ``add`` s of the same new study serialise and the second is refused as a
duplicate. Where no lock file can be made (another user's, a read-only temporary folder)
the command runs without the lock.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from metaresp.errors import InputError

__all__ = ["LOCK_NAME", "WAIT_SECONDS", "lock_path", "project_lock"]

LOCK_NAME = "metaresp.lock"
WAIT_SECONDS = 600.0
"""How long a command waits for another one to finish before giving up."""

_UNLOCKABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def lock_path(folder: Path) -> Path:
    """The lock file of the project whose extractions folder is ``folder``."""
    import hashlib
    import tempfile

    key = hashlib.sha256(str(folder.resolve()).encode("utf-8")).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"{LOCK_NAME}-{key}"


@contextmanager
def project_lock(folder: Path, wait: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the project lock of ``folder`` (the extractions folder) inside the block."""
    from filelock import FileLock, Timeout

    if not folder.is_dir():
        yield
        return
    path = lock_path(folder)
    lock = FileLock(str(path), mode=0o666)
    try:
        try:
            lock.acquire(timeout=0.05)
        except Timeout:
            sys.stderr.write(f"waiting for another metaresp command on {folder} to finish\n")
            lock.acquire(timeout=wait)
    except Timeout:
        raise InputError(
            f"{folder}: another metaresp command has held its lock ({path}) for "
            f"{wait:.0f} s; wait for it to finish, or end it"
        ) from None
    except OSError as exc:
        if exc.errno not in _UNLOCKABLE:
            raise
        yield
        return
    try:
        yield
    finally:
        lock.release()
