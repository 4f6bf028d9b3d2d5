"""Office Open XML cell-text escaping (ECMA-376 Part 1, §22.9.2.19 ST_Xstring)."""

from __future__ import annotations

import re

__all__ = ["escape_text", "unescape_text"]

# XML 1.0 cannot hold these; CR is listed because XML parsers turn it into LF.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ufffe\uffff]")
_ESCAPE_LIKE = re.compile("_(x[0-9A-Fa-f]{4}_)")
_ESCAPED = re.compile("_x([0-9A-Fa-f]{4})_")


def escape_text(text: str) -> str:
    """Office Open XML cell-text escape (ST_Xstring): unsafe characters as ``_xHHHH_``,
    a literal ``_xHHHH_`` as ``_x005F_xHHHH_``. :func:`unescape_text` inverts it."""
    text = _ESCAPE_LIKE.sub(r"_x005F_\1", text)
    return _UNSAFE.sub(lambda m: f"_x{ord(m.group(0)):04X}_", text)


def unescape_text(text: str) -> str:
    """Inverse of :func:`escape_text` (and of Excel's own escaping)."""
    if "_x" not in text:
        return text
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)
