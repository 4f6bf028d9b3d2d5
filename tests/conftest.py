"""Shared fixtures: one run of the shipped plan per session, small working copies, quick
figures and a command-line runner (plain helpers are in ``factories.py``)."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from factories import (
    SHIPPED_EXTRACTIONS,
    SHIPPED_PLAN,
    SMALL_CORPUS,
    SMALL_PLAN,
    CliResult,
    Repo,
    ShippedRun,
    write_corpus,
)
from metaresp.cli import main

#: PNG resolution of the figures drawn under ``quick_figures`` (the lowest ``forest`` takes).
QUICK_DPI = 50


@pytest.fixture(scope="session")
def shipped_run(tmp_path_factory: pytest.TempPathFactory) -> ShippedRun:
    """One full run, as a user runs it (figures at 300 dpi in worker processes), into a
    temporary folder, with the working directory there too so nothing lands in the
    repository. Read-only for the tests that share it: copy what you change. Tests using
    it carry ``@pytest.mark.xdist_group("shipped")`` so that under ``-n`` one worker runs
    them all and the run happens once."""
    work = tmp_path_factory.mktemp("shipped-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        code = main(
            [
                "run",
                "--plan",
                str(SHIPPED_PLAN),
                "--extractions",
                str(SHIPPED_EXTRACTIONS),
                "--results",
                str(work / "results"),
                "--quiet",
            ]
        )
    assert code == 0
    return ShippedRun(work / "results", work)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """``cli("add", path, ...)``: run ``metaresp`` in this process; code, stdout, stderr."""

    def run(*args: str | Path) -> CliResult:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture
def quick_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs in this test draw their figures in this process at ``QUICK_DPI``: for tests of
    the workflow around the figures (the files are still written, PNG and SVG). The run as
    users get it (worker processes, 300 dpi) is ``shipped_run``."""
    from metaresp import forest, runner

    monkeypatch.setattr(runner, "FIGURE_WORKERS", 1)
    monkeypatch.setattr(runner, "FIGURE_DPI", QUICK_DPI)
    monkeypatch.setattr(forest, "save_forest", functools.partial(forest.save_forest, dpi=QUICK_DPI))
    monkeypatch.setattr(
        forest, "save_cumulative", functools.partial(forest.save_cumulative, dpi=QUICK_DPI)
    )


@pytest.fixture
def small_repo(tmp_path: Path) -> Repo:
    """A working copy with the small corpus (``factories.SMALL_CORPUS``) and the small plan."""
    corpus = write_corpus(tmp_path / "corpus", SMALL_CORPUS)
    return Repo(tmp_path / "repo", corpus, SMALL_PLAN)


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Repo]:
    """``make_repo(extractions, plan=SMALL_PLAN)``: a working copy of any corpus folder."""

    def make(extractions: Path, plan: str | Path = SMALL_PLAN, name: str = "repo") -> Repo:
        return Repo(tmp_path / name, extractions, plan)

    return make


#: Debian's Chromium, for the tests that render the SVG figures and the report.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright; the test is skipped, saying why, where
    either is missing."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): browser tests skipped")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield instance
        finally:
            instance.close()
