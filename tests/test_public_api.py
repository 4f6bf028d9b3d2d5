"""The public API a notebook lives on: every exported name resolves, and importing the
package stays light (no pandas or matplotlib until a table or a figure is asked for)."""

from __future__ import annotations

import subprocess
import sys

import metaresp


def test_every_exported_name_resolves() -> None:
    missing = [name for name in metaresp.__all__ if getattr(metaresp, name, None) is None]
    assert missing == []


def test_import_loads_no_pandas_or_matplotlib() -> None:
    code = (
        "import sys, metaresp; "
        "print(sorted(m for m in ('pandas', 'matplotlib', 'openpyxl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_module_declares_its_public_names() -> None:
    import ast
    from pathlib import Path

    root = Path(metaresp.__file__).parent
    lacking = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {
            t.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Name)
        }
        if "__all__" not in names:
            lacking.append(str(path.relative_to(root)))
    assert lacking == []
