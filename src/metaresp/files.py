"""Writing files so that no reader ever sees half of one, and reading text files with
one-line errors.

Every output of metaresp goes through :func:`atomic_path`: the content is written to a
temporary file in the target's folder (same file system) and moved over the target with
``os.replace`` only when complete; on any failure the temporary file is removed and the
target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from metaresp.errors import InputError


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix, so writers that go by the suffix
    still work); moved onto ``path`` when the block finishes without an exception."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}",
                                    dir=target.parent)
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
