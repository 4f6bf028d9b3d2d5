"""Writing files so that no reader ever sees half of one, and reading text files with
one-line errors.

Every output of metaresp goes through :func:`atomic_path`: the content is written to a
temporary file in the target's folder (same file system) and moved over the target with
``os.replace`` only when complete; on any failure the temporary file is removed and the
target is left as it was. Several files that belong together (the studies of one import)
go through :func:`write_files_atomic`, a whole results folder through
:func:`atomic_folder`.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from metaresp.errors import InputError

__all__ = [
    "atomic_folder",
    "atomic_path",
    "atomic_write",
    "file_mode",
    "folder_mode",
    "read_text_file",
    "recover_folder",
    "restore_files",
    "write_bytes_atomic",
    "write_files_atomic",
    "write_text_atomic",
]


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from the user's umask (``0o644`` under the usual ``022``):
    temporary files are created ``0o600`` and given this mode before they are renamed."""
    return 0o666 & ~_umask()


def folder_mode() -> int:
    """The mode a new folder gets from the user's umask (``0o755`` under ``022``)."""
    return 0o777 & ~_umask()


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix, so writers that go by the suffix
    still work); moved onto ``path`` when the block finishes without an exception."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        if temp.exists():
            os.chmod(temp, file_mode())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` (``\\n`` line ends) to ``path`` atomically; returns the path."""
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8", newline="\n")
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as temp:
        temp.write_bytes(data)
    return Path(path)


def read_text_file(path: str | os.PathLike[str], what: str) -> str:
    """The UTF-8 text of ``path``; a missing, unreadable or non-text file is one
    :class:`InputError` line naming the file and ``what`` it should be ("plan file")."""
    target = Path(path)
    try:
        return target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{target}: {what} not found") from None
    except IsADirectoryError:
        raise InputError(f"{target}: is a folder, not a {what}") from None
    except UnicodeDecodeError:
        raise InputError(f"{target}: not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{target}: cannot read ({exc.strerror})") from None


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary path next to ``path`` (for writers that take a
    file name, such as ``DataFrame.to_csv`` or ``Workbook.save``), then move it into place."""
    with atomic_path(path) as temp:
        write(temp)
    return Path(path)


def write_files_atomic(items: Sequence[tuple[Path, str]]) -> list[bytes | None]:
    """Write several UTF-8 texts so that either all land or none does.

    Every text is first written to a temporary file next to its target; only when all of
    them are written are they renamed into place. Should a rename fail, the targets
    already renamed get their previous content back. Returns the previous bytes of each
    target (``None``: it did not exist), for :func:`restore_files`.
    """
    previous = [p.read_bytes() if p.exists() else None for p, _ in items]
    temps: list[tuple[Path, Path]] = []
    done: list[int] = []
    try:
        for target, text in items:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
            )
            temps.append((Path(name), target))
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
                out.write(text)
            os.chmod(name, file_mode())
        for i, (temp, target) in enumerate(temps):
            os.replace(temp, target)
            done.append(i)
            _step("between-renames")
    except BaseException:
        restore_files([items[i][0] for i in done], [previous[i] for i in done])
        raise
    finally:
        for temp, _ in temps:
            temp.unlink(missing_ok=True)
    return previous


def restore_files(paths: Sequence[Path], previous: Sequence[bytes | None]) -> None:
    """Put back what :func:`write_files_atomic` replaced: the previous bytes, or no file."""
    for path, data in zip(paths, previous, strict=True):
        if data is None:
            path.unlink(missing_ok=True)
        else:
            write_bytes_atomic(path, data)


_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?:tmp|old)-(?:(?P<pid>\d+)-)?[^/]*$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _dead_leftovers(target: Path, kind: str) -> list[Path]:
    """``.<name>.<kind>-<pid>-*`` folders beside ``target`` (or inside it, for a mount
    point) left by a run whose process is gone (or by a version without the pid)."""
    found: list[Path] = []
    for where in (target.parent, target):
        if not where.is_dir():
            continue
        for entry in where.glob(f".{glob.escape(target.name)}.{kind}-*"):
            m = _LEFTOVER.match(entry.name)
            if m is None or not entry.is_dir():
                continue
            pid = m["pid"]
            if pid is None or not _alive(int(pid)):
                found.append(entry)
    return sorted(found, key=lambda p: p.stat().st_mtime)


def recover_folder(out: str | os.PathLike[str]) -> list[str]:
    """Finish what a killed :func:`atomic_folder` left: when ``out`` is gone but its
    previous version was set aside (killed inside the swap), put that back; remove the
    temporary and set-aside folders of runs that are no longer running. Returns one line
    per thing done."""
    target = Path(out)
    done: list[str] = []
    olds = _dead_leftovers(target, "old")
    if not target.exists() and olds:
        os.rename(olds[-1], target)
        done.append(f"{target}: put back the results an interrupted run had set aside")
        olds = olds[:-1]
    for leftover in (*_dead_leftovers(target, "tmp"), *olds):
        shutil.rmtree(leftover, ignore_errors=True)
        done.append(f"{leftover}: removed what an interrupted run left")
    return done


@contextmanager
def atomic_folder(out: str | os.PathLike[str]) -> Iterator[Path]:
    """A fresh temporary folder beside ``out`` to fill; when the block succeeds it replaces
    ``out`` as a whole (the old folder is kept until the swap has happened), on failure it
    is removed and ``out`` is left as it was.

    What an interrupted earlier call left is dealt with first (:func:`recover_folder`).
    When ``out`` is a mount point (it cannot be renamed), the temporary folder is made
    inside it and the contents are replaced instead of the folder."""
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(target)
    inside = target.is_dir() and os.path.ismount(target)
    where = target if inside else target.parent
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=where))
    try:
        yield temp
        if inside:
            _replace_contents(temp, target)
        else:
            _replace_folder(temp, target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _replace_contents(new: Path, out: Path) -> None:
    """Replace what ``out`` holds by what ``new`` holds (``out`` stays: a mount point)."""
    for entry in list(out.iterdir()):
        if entry == new:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in list(new.iterdir()):
        shutil.move(str(entry), str(out / entry.name))
    new.rmdir()


def _replace_folder(new: Path, out: Path) -> None:
    """Put ``new`` where ``out`` is, keeping the old folder until the swap has happened."""
    os.chmod(new, folder_mode())
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
        os.rmdir(old)
        try:
            os.rename(out, old)
        except OSError as exc:
            if exc.errno in (errno.EBUSY, errno.EXDEV, errno.EPERM):  # a mount point
                _replace_contents(new, out)
                return
            raise
        _step("results-swap")
        try:
            os.rename(new, out)
        except BaseException:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(new, out)


def _step(name: str) -> None:
    """A named point of a state change, where the fault-injection tests stop the process
    (:mod:`metaresp._faults`)."""
    from metaresp import _faults

    _faults.at(name)
