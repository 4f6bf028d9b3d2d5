"""Read-only folders, as a user who may not write them: ``add`` and ``import`` into a
read-only extractions folder, ``run`` into a read-only parent of the results folder.
Each prints one line naming the folder and what to do, exits 1, shows no traceback and
leaves every file as it was.

Root writes into read-only folders, so as root the commands run as the unprivileged
user 65534 through ``setpriv`` (util-linux); as another user they run directly. Where
neither is possible, or that user cannot run this interpreter, the tests are skipped and
say why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from factories import SMALL_CORPUS, SMALL_PLAN, Repo, study_text, write_corpus

SRC = Path(__file__).resolve().parents[1] / "src"
NOBODY = 65534

DRIVER = """
import functools, sys
from metaresp import forest, runner
runner.FIGURE_WORKERS = 1
forest.save_forest = functools.partial(forest.save_forest, dpi=50)
forest.save_cumulative = functools.partial(forest.save_cumulative, dpi=50)
from metaresp.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _prefix() -> tuple[list[str] | None, str]:
    """How to run a command as a user who may not write the read-only folders."""
    if os.geteuid() != 0:
        return [], ""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None, "running as root without setpriv: root writes into read-only folders"
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import metaresp.cli"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=60,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"user {NOBODY} cannot run this interpreter on these sources: {last}"
    return prefix, ""


PREFIX, WHY_NOT = _prefix()
pytestmark = pytest.mark.skipif(PREFIX is None, reason=WHY_NOT)


@pytest.fixture
def repo() -> Iterator[Repo]:
    """A working copy in the system's temporary folder (the test's own folder is
    private to root), owned by the user the commands run as."""
    root = Path(tempfile.mkdtemp(prefix="metaresp-readonly-"))
    try:
        os.chmod(root, 0o755)
        made = Repo(root / "repo", write_corpus(root / "corpus", SMALL_CORPUS), SMALL_PLAN)
        made.publish_current()
        (root / "config").mkdir()
        (root / "new.yaml").write_text(study_text("newb-2024", 7, 12, year=2024), "utf-8")
        if os.geteuid() == 0:
            for path in (root, *root.rglob("*")):
                os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
        yield made
    finally:
        for path in (root, *root.rglob("*")):
            if path.is_dir():
                os.chmod(path, 0o755)
        shutil.rmtree(root, ignore_errors=True)


def metaresp(repo: Repo, *args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PREFIX is not None
    config = repo.root.parent / "config"
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "HOME": str(config),
        "MPLCONFIGDIR": str(config),
    }
    return subprocess.run(
        [*PREFIX, sys.executable, "-c", DRIVER, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=config,
        timeout=120,
    )


def everything(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def one_error_line(done: subprocess.CompletedProcess[str], folder: Path, option: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {folder}: cannot write ")
    assert "make the folder writable for this user" in line
    assert option in line


def test_add_into_a_read_only_extractions_folder(repo: Repo) -> None:
    before = everything(repo.root.parent)
    os.chmod(repo.extractions, 0o555)
    new = repo.root.parent / "new.yaml"
    done = metaresp(repo, "add", new, *repo.options(), "--results", repo.results)
    one_error_line(done, repo.extractions, "--extractions")
    assert everything(repo.root.parent) == before


def test_import_into_a_read_only_extractions_folder(repo: Repo) -> None:
    from metaresp.corpus import load_extractions
    from metaresp.workbook import write_workbook

    source = repo.root.parent / "source"
    source.mkdir()
    shutil.copy(repo.root.parent / "new.yaml", source / "newb-2024.yaml")
    book = repo.root.parent / "config" / "book.xlsx"
    write_workbook(load_extractions(source), book)
    os.chmod(book, 0o644)
    before = everything(repo.root.parent)
    os.chmod(repo.extractions, 0o555)
    done = metaresp(repo, "import", book, "--extractions", repo.extractions)
    one_error_line(done, repo.extractions, "--extractions")
    assert everything(repo.root.parent) == before


def test_run_into_a_read_only_parent_of_the_results(repo: Repo) -> None:
    first = metaresp(repo, "run", *repo.options(), "--results", repo.results, "--quiet")
    assert first.returncode == 0, first.stderr
    before = everything(repo.root.parent)
    os.chmod(repo.root, 0o555)
    args = ["run", *repo.options(), "--results", repo.results, "--quiet", "--no-publish"]
    done = metaresp(repo, *args)
    one_error_line(done, repo.root, "--results")
    assert everything(repo.root.parent) == before
    assert sorted(p.name for p in repo.root.iterdir()) == sorted(
        ["analysis-plan.yaml", "extractions", "published", "results"]
    )
