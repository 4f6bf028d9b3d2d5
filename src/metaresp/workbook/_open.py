"""Opening a workbook file: size, format and zip-bomb guards before openpyxl parses it."""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from metaresp.errors import InputError
from metaresp.limits import MAX_CELLS, MAX_WORKBOOK_PART_BYTES, MAX_WORKBOOK_UNZIPPED_BYTES
from metaresp.workbook._layout import MAX_FILE_BYTES, MAX_ROWS, OUTCOMES, STUDIES

if TYPE_CHECKING:  # pragma: no cover
    from openpyxl.workbook.workbook import Workbook

__all__ = ["open_book", "scan_zip"]

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ROW_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?row[\s/>]")
_CELL_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c[\s/>]")


def _too_large(name: str, what: str) -> InputError:
    return InputError(f"{name}: {what}; too large to import (limits: docs/limits.md)")


def scan_zip(archive: zipfile.ZipFile, name: str, *, max_rows: int | None = MAX_ROWS) -> None:
    """Refuse zip bombs and oversized sheets before openpyxl parses anything.

    Every member of the archive counts (sheets, styles, shared strings, drawings...):
    first by the sizes the archive declares, then by the bytes it actually unpacks to,
    streamed a MiB at a time and stopped at the limit (a declared size can lie). The
    worksheets' ``<row>`` and ``<c>`` (cell) elements are counted on the way."""
    mib = 2**20
    infos = archive.infolist()
    declared = sum(info.file_size for info in infos)
    if declared > MAX_WORKBOOK_UNZIPPED_BYTES:
        raise _too_large(
            name,
            f"its parts unpack to {declared / mib:.0f} MiB, more than "
            f"{MAX_WORKBOOK_UNZIPPED_BYTES // mib} MiB",
        )
    total = 0
    cells = 0
    for info in infos:
        if info.file_size > MAX_WORKBOOK_PART_BYTES:
            raise _too_large(
                name,
                f"the part {info.filename} unpacks to {info.file_size / mib:.0f} MiB, more "
                f"than {MAX_WORKBOOK_PART_BYTES // mib} MiB",
            )
        lower = info.filename.lower()
        is_sheet = lower.startswith("xl/worksheets/") and lower.endswith(".xml")
        part = 0
        rows = 0
        tail = b""
        with archive.open(info) as stream:
            while chunk := stream.read(mib):
                part += len(chunk)
                total += len(chunk)
                if part > MAX_WORKBOOK_PART_BYTES or part > max(info.file_size, 0) + mib:
                    raise _too_large(
                        name,
                        f"the part {info.filename} unpacks to more than "
                        f"{min(MAX_WORKBOOK_PART_BYTES, info.file_size) / mib:.0f} MiB",
                    )
                if total > MAX_WORKBOOK_UNZIPPED_BYTES:
                    raise _too_large(
                        name,
                        f"its parts unpack to more than {MAX_WORKBOOK_UNZIPPED_BYTES // mib} MiB",
                    )
                if is_sheet:
                    buf = tail + chunk
                    rows += sum(1 for m in _ROW_TAG.finditer(buf) if m.end() > len(tail))
                    cells += sum(1 for m in _CELL_TAG.finditer(buf) if m.end() > len(tail))
                    tail = buf[-32:]
                    if cells > MAX_CELLS:
                        raise _too_large(name, f"its sheets hold more than {MAX_CELLS:,} cells")
        if max_rows is not None and rows > max_rows + 1:
            raise InputError(
                f"{name}: a sheet has {rows} rows; at most {max_rows} data rows are imported "
                "(delete unused rows or split the workbook)"
            )


def open_book(path: str | os.PathLike[str]) -> tuple[bytes, Workbook]:
    from openpyxl import load_workbook

    p = Path(path)
    name = str(p)
    if not p.exists():
        raise InputError(f"{name}: no such file")
    if not p.is_file():
        raise InputError(f"{name}: not a file")
    size = p.stat().st_size
    if size == 0:
        raise InputError(f"{name}: the file is empty, not a workbook")
    if size > MAX_FILE_BYTES:
        raise InputError(
            f"{name}: {size / 2**20:.0f} MB is larger than the {MAX_FILE_BYTES // 2**20} MB "
            "a workbook may have; too large to import"
        )
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{name}: cannot read the file ({exc.strerror or exc})") from None
    if data.startswith(_OLE_MAGIC):
        if "EncryptedPackage".encode("utf-16-le") in data:
            raise InputError(
                f"{name}: the workbook is password-protected (encrypted); save a copy "
                "without a password and import that"
            )
        raise InputError(
            f"{name}: an old-format Excel 97-2003 (.xls) or other OLE file; open it in Excel "
            "and save it as .xlsx"
        )
    if not data.startswith(b"PK"):
        head = data[:2048]
        kind = "a text file (CSV?)" if _looks_like_text(head) else "not a workbook"
        raise InputError(
            f"{name}: {kind}; import needs an .xlsx workbook with sheets {STUDIES!r} and "
            f"{OUTCOMES!r} (run 'metaresp template' for one)"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = {n.lower() for n in archive.namelist()}
        if "xl/workbook.xml" not in names:
            raise InputError(
                f"{name}: a zip archive but not an Excel workbook (no xl/workbook.xml; an "
                "OpenDocument .ods or a Word file?); save it as .xlsx"
            )
        scan_zip(archive, name)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{name}: corrupt workbook (damaged zip: {exc})") from None
    try:
        with warnings.catch_warnings():  # e.g. "extension is not supported": not the user's fault
            warnings.simplefilter("ignore")
            wb = load_workbook(io.BytesIO(data), data_only=False, keep_links=False)
    except Exception as exc:  # openpyxl raises many kinds on damaged XML
        raise InputError(
            f"{name}: corrupt workbook, cannot be read ({type(exc).__name__}: {exc})"
        ) from None
    return data, wb


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
