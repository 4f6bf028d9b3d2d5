"""The getting-started notebook runs from top to bottom with the current code and corpus."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "getting-started.ipynb"

pytestmark = pytest.mark.slow  # starts a kernel


def test_getting_started_notebook_executes() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    errors = [
        o
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert errors == []
    text = "".join(
        o.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert "Pooled proportion: Random effects, Bayesian binomial-normal model" in text
    assert "BCMA: k = " in text


def test_notebook_uses_only_the_public_api() -> None:
    """The notebook reaches metaresp only through ``import metaresp`` and its exports."""
    import json
    import re

    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert not re.search(r"from metaresp[.\w]* import|import metaresp\.", code)
    import metaresp

    used = set(re.findall(r"metaresp\.(\w+)", code))
    assert used <= set(metaresp.__all__), used - set(metaresp.__all__)
