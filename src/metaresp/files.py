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

import os
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
    "read_text_file",
    "restore_files",
    "write_bytes_atomic",
    "write_files_atomic",
    "write_text_atomic",
]


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
        for i, (temp, target) in enumerate(temps):
            os.replace(temp, target)
            done.append(i)
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


@contextmanager
def atomic_folder(out: str | os.PathLike[str]) -> Iterator[Path]:
    """A fresh temporary folder beside ``out`` to fill; when the block succeeds it replaces
    ``out`` as a whole (the old folder is kept until the swap has happened), on failure it
    is removed and ``out`` is left as it was."""
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield temp
        _replace_folder(temp, target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _replace_folder(new: Path, out: Path) -> None:
    """Put ``new`` where ``out`` is, keeping the old folder until the swap has happened."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
        try:
            os.rename(new, out)
        except OSError:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(new, out)
    os.chmod(out, 0o755)
