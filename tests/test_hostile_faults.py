"""Faults: a process killed (or failing) at any named step of ``add``, ``import`` and
``run`` leaves the old or the new state, and the next command finishes or undoes it; two
``add`` s of one new study serialise; workers end with their parent; Ctrl-C is one line.

Each command runs in a subprocess (``metaresp._faults`` ends it at the step named by
``METARESP_FAULT`` as SIGKILL would: no clean-up), with quick figures drawn in-process
unless the test is about the worker processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factories import SMALL_CORPUS, SMALL_PLAN, Count, Repo, study_text, write_corpus
from metaresp._faults import FAULT_VARIABLE
from metaresp.files import recover_folder

SRC = Path(__file__).resolve().parents[1] / "src"

DRIVER = """
import functools, sys
from metaresp import forest, runner
workers = int(sys.argv[1])
runner.FIGURE_WORKERS = workers
if workers == 1:
    forest.save_forest = functools.partial(forest.save_forest, dpi=50)
    forest.save_cumulative = functools.partial(forest.save_cumulative, dpi=50)
from metaresp.cli import main
sys.exit(main(sys.argv[2:]))
"""


def command(*args: str | Path, workers: int = 1) -> list[str]:
    """``metaresp ARGS`` in a fresh interpreter (``workers`` figure processes)."""
    return [sys.executable, "-c", DRIVER, str(workers), *map(str, args)]


def environment(fault: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop(FAULT_VARIABLE, None)
    if fault is not None:
        env[FAULT_VARIABLE] = fault
    return env


def metaresp(*args: str | Path, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), capture_output=True, text=True, timeout=60, env=environment(fault)
    )


EMPTY_PLAN = SMALL_PLAN.replace("setting: first-salvage", "setting: any-line")
"""The small plan selecting no record: a run writes tables, state and report but draws no
figure (a third of the time), and the state still fingerprints every record."""


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo", write_corpus(tmp_path / "corpus", SMALL_CORPUS), EMPTY_PLAN)


NEW = Count("newb-2024", 2024, "bispecific", 7, 12)


def new_study(repo: Repo, responders: int = 7, name: str = "new.yaml") -> Path:
    path = repo.root / name
    path.write_text(study_text(NEW.sid, responders, 12, year=2024), encoding="utf-8")
    return path


def add_args(repo: Repo, study: Path) -> list[str | Path]:
    return ["add", study, *repo.options(), "--results", repo.results]


def state_records(repo: Repo) -> set[str]:
    return set(json.loads(repo.published.read_text(encoding="utf-8"))["corpus_records"])


def leftovers(repo: Repo) -> list[str]:
    return sorted(p.name for p in repo.root.iterdir() if p.name.startswith(".results."))


@pytest.mark.parametrize(
    ("step", "finished"),
    [
        ("add-placed", False),
        ("results-swap", False),
        ("add-published", True),
    ],
)
def test_killed_add_leaves_old_or_new_and_next_command_settles_it(
    repo: Repo, step: str, finished: bool
) -> None:
    repo.publish_current()
    if step == "results-swap":  # there are results to swap
        first = metaresp("run", *repo.options(), "--results", repo.results, "--quiet")
        assert first.returncode == 0, first.stderr
    old_state = repo.published.read_bytes()
    study = new_study(repo)
    killed = metaresp(*add_args(repo, study), fault=step)
    assert killed.returncode == 137, killed.stderr
    assert (repo.extractions / ".metaresp-journal.json").exists()

    # the next command settles the journal first, then does its own work
    again = metaresp(*add_args(repo, study))
    assert "note:" in again.stderr
    target = repo.extractions / f"{NEW.sid}.yaml"
    if finished:
        assert again.returncode == 1
        assert "already in the corpus" in again.stderr
        assert "had finished its change" in again.stderr
    else:
        assert again.returncode == 0, again.stderr
        assert "undid an interrupted 'metaresp add'" in again.stderr
        assert f"added {target}" in again.stdout
        assert repo.published.read_bytes() != old_state
    assert NEW.record in state_records(repo)
    assert not (repo.extractions / ".metaresp-journal.json").exists()
    assert (repo.results / "summary.json").exists()
    assert leftovers(repo) == []


def test_failed_publish_puts_the_corpus_back(repo: Repo) -> None:
    repo.publish_current()
    before = repo.snapshot()
    study = new_study(repo)
    before[str(study.relative_to(repo.root))] = study.read_bytes()
    failed = metaresp(*add_args(repo, study), fault="add-ran:raise")
    assert failed.returncode == 1
    (line,) = failed.stderr.splitlines()
    assert line.startswith("error: <fault add-ran>: no space left on the device")
    after = {k: v for k, v in repo.snapshot().items() if not k.startswith("results")}
    assert after == {k: v for k, v in before.items() if not k.startswith("results")}


def test_killed_import_between_renames_is_undone(repo: Repo, tmp_path: Path) -> None:
    from metaresp.corpus import load_extractions
    from metaresp.workbook import write_workbook

    source = tmp_path / "two"
    source.mkdir()
    for sid in ("twoa-2024", "twob-2024"):
        (source / f"{sid}.yaml").write_text(study_text(sid, 3, 9, year=2024), encoding="utf-8")
    book = tmp_path / "two.xlsx"
    write_workbook(load_extractions(source), book)
    before = sorted(p.name for p in repo.extractions.iterdir())
    killed = metaresp("import", book, "--to", repo.extractions, fault="between-renames")
    assert killed.returncode == 137
    assert len(list(repo.extractions.glob("two*.yaml"))) == 1  # half done...
    again = metaresp("import", book, "--to", repo.extractions)
    assert again.returncode == 0, again.stderr
    assert "undid an interrupted 'metaresp import'" in again.stderr  # ...then undone, redone
    after = sorted(p.name for p in repo.extractions.iterdir())
    assert after == sorted([*before, "twoa-2024.yaml", "twob-2024.yaml"])


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    return int(done.stdout)


def test_leftovers_of_a_killed_swap_are_recovered(tmp_path: Path) -> None:
    pid = _dead_pid()
    old = tmp_path / f".results.old-{pid}-abc"
    old.mkdir()
    (old / "summary.json").write_text("{}", encoding="utf-8")
    (tmp_path / f".results.tmp-{pid}-def").mkdir()
    (tmp_path / ".results.tmp-legacy1").mkdir()
    mine = tmp_path / f".results.tmp-{os.getpid()}-live"
    mine.mkdir()
    done = recover_folder(tmp_path / "results")
    assert len(done) == 3
    assert (tmp_path / "results" / "summary.json").exists()  # the set-aside results are back
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["results", mine.name])


def test_two_adds_of_one_study_serialise(repo: Repo) -> None:
    repo.publish_current()
    studies = [new_study(repo, 7, "a.yaml"), new_study(repo, 9, "b.yaml")]
    procs = [
        subprocess.Popen(
            command(*add_args(repo, s)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
        for s in studies
    ]
    outcomes = [(*p.communicate(timeout=60), p.returncode) for p in procs]
    codes = sorted(code for _, _, code in outcomes)
    assert codes == [0, 1], outcomes
    winner = next(i for i, (_, _, code) in enumerate(outcomes) if code == 0)
    loser = outcomes[1 - winner]
    assert f"study {NEW.sid!r} is already in the corpus" in loser[1]
    stored = (repo.extractions / f"{NEW.sid}.yaml").read_bytes()
    assert stored == studies[winner].read_bytes()
    responders = json.loads(repo.published.read_text(encoding="utf-8"))["corpus_records"][
        NEW.record
    ]["responders"]
    assert responders == (7, 9)[winner]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the workers")
def test_workers_end_with_their_parent_and_ctrl_c_is_one_line(small_repo: Repo) -> None:
    args = ["run", *small_repo.options(), "--results", small_repo.results, "--quiet"]
    # Ctrl-C reaches the whole process group, as from a terminal
    proc = subprocess.Popen(
        command(*args, workers=2),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not list(small_repo.root.glob(".results.tmp-*/figures")):  # drawing has begun
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert len(_children(proc.pid)) >= 2
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert err.strip().splitlines() == ["error: interrupted; nothing was changed"]
    assert not any(p.name.startswith(".results.") for p in small_repo.root.iterdir())

    # killed with SIGKILL, the parent leaves no worker behind
    proc = subprocess.Popen(
        command(*args, workers=2),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment(),
    )
    deadline = time.monotonic() + 30
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) >= 2
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers)


def results_snapshot(repo: Repo) -> dict[str, bytes]:
    return {k: v for k, v in repo.snapshot().items() if k.startswith("results/")}


def import_other_study(repo: Repo, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``metaresp import`` of one other study: a command that settles the journal and
    runs nothing."""
    from metaresp.corpus import load_extractions
    from metaresp.workbook import write_workbook

    source = tmp_path / "other"
    source.mkdir()
    (source / "othr-2024.yaml").write_text(study_text("othr-2024", 3, 9, year=2024), "utf-8")
    book = tmp_path / "other.xlsx"
    write_workbook(load_extractions(source), book)
    return metaresp("import", book, "--to", repo.extractions)


@pytest.mark.parametrize(
    ("fault", "had_results"),
    [
        ("add-ran", True),  # killed with the add's run in results/
        ("results-swap", True),  # killed inside the swap: results/ set aside, none in place
        ("add-results-kept", True),  # killed before the corpus changed
        ("add-ran", False),  # no results/ before the add: the add's run is removed
        ("add-ran:raise", True),  # a failure inside the command (no kill)
    ],
)
def test_undone_add_puts_the_results_back(
    repo: Repo, tmp_path: Path, fault: str, had_results: bool
) -> None:
    repo.publish_current()
    if had_results:
        first = metaresp("run", *repo.options(), "--results", repo.results, "--quiet")
        assert first.returncode == 0, first.stderr
    before = results_snapshot(repo)
    assert bool(before) == had_results
    failed = metaresp(*add_args(repo, new_study(repo)), fault=fault)
    if fault.endswith(":raise"):
        assert failed.returncode == 1, failed.stderr
    else:
        assert failed.returncode == 137, failed.stderr
        settled = import_other_study(repo, tmp_path)
        assert settled.returncode == 0, settled.stderr
        assert "undid an interrupted 'metaresp add'" in settled.stderr
    # the results are those of the corpus put back, byte for byte (or none, as before)
    assert results_snapshot(repo) == before
    assert not (repo.extractions / f"{NEW.sid}.yaml").exists()
    assert not (repo.extractions / ".metaresp-journal.json").exists()
    assert leftovers(repo) == []


def test_completed_add_drops_the_kept_results(repo: Repo) -> None:
    repo.publish_current()
    first = metaresp("run", *repo.options(), "--results", repo.results, "--quiet")
    assert first.returncode == 0, first.stderr
    before = results_snapshot(repo)
    killed = metaresp(*add_args(repo, new_study(repo)), fault="add-before-journal-removed")
    assert killed.returncode == 137
    assert any(".undo-" in name for name in leftovers(repo))  # the copy is still there
    again = metaresp("run", *repo.options(), "--results", repo.results, "--quiet")
    assert again.returncode == 0, again.stderr
    assert "had finished its change" in again.stderr
    assert results_snapshot(repo) != before
    summary = json.loads((repo.results / "summary.json").read_text(encoding="utf-8"))
    assert NEW.record in summary["corpus_records"]
    assert leftovers(repo) == []


def test_putting_the_results_back_can_be_repeated_after_a_kill(tmp_path: Path) -> None:
    from metaresp import _keep

    results = tmp_path / "results"
    results.mkdir()
    (results / "summary.json").write_text("old", encoding="utf-8")
    kept = _keep.plan(results)
    _keep.make(kept)
    (results / "summary.json").unlink()  # a run writes through new files, never in place
    (results / "summary.json").write_text("new", encoding="utf-8")
    # killed inside put_back, after the command's folder was moved away
    os.rename(results, tmp_path / f".results.tmp-{_dead_pid()}-undone-x")
    assert _keep.put_back(kept)
    assert (results / "summary.json").read_text(encoding="utf-8") == "old"
    recover_folder(results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_the_kept_folder_knows_a_results_folder_as_the_runner_does() -> None:
    from metaresp import _keep
    from metaresp.runner import MARKER_NAMES

    assert _keep.RESULT_MARKERS == MARKER_NAMES
