"""Scale of the commands on a large made-up corpus: validate, export, import and a cold
``metaresp run``.

Run with ``python benchmarks/bench_corpus.py [N]`` (default 3,000 studies). Writes N
one-group extraction files (bispecific or CAR T, first salvage after BCMA CAR T, ORR) and
the small plan of the tests into a temporary folder, then times each command in a fresh
interpreter: wall clock, and CPU time (user + system, the command's worker processes
included; on a shared machine the CPU time is the steadier figure). Reports the peak
memory of the child processes, the notes of the run (figures bounded or left out), the
number and size of the figures, the size of the report and, where Playwright and
Chromium are installed, how long headless Chromium takes to load the report.
"""

from __future__ import annotations

import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(ROOT / "tests"))
from factories import SMALL_PLAN as PLAN  # noqa: E402  (the tests' small plan, one copy)

STUDY = """\
id: {sid}
citation: "Author{i} A, Other B. Made-up study {i}. Test J. {year};1:1-2."
year: {year}
design: retrospective cohort
population: post-bcma-cart
cohort: {sid}-cohort
source: {sid}.txt
groups:
  - id: {group}
    name: {name}
    agents: [{agent}]
    modality: {modality}
    target: [BCMA]
    setting: first-salvage
    unit: patients
    outcomes:
      - outcome: ORR
        responders: {responders}
        evaluable: {evaluable}
        percent: null
        derived: false
        quote: "{responders} of {evaluable} patients responded"
        location: Table 1
"""

KINDS = (
    ("tec", "Teclistamab", "teclistamab", "bispecific"),
    ("cart", "Ciltacabtagene autoleucel", "cilta-cel", "CAR-T"),
)


def write_corpus(folder: Path, n: int) -> None:
    rng = random.Random(20240601)
    folder.mkdir(parents=True)
    for i in range(n):
        year = 2015 + i % 10
        sid = f"made{i:05d}-{year}"
        group, name, agent, modality = KINDS[i % 2]
        evaluable = rng.randint(5, 200)
        responders = rng.randint(0, evaluable)
        (folder / f"{sid}.yaml").write_text(
            STUDY.format(
                sid=sid,
                i=i,
                year=year,
                group=group,
                name=name,
                agent=agent,
                modality=modality,
                responders=responders,
                evaluable=evaluable,
            ),
            encoding="utf-8",
        )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds of ``metaresp ARGS``, and its standard error."""
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "metaresp", *args], cwd=cwd, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:])
        raise SystemExit(f"metaresp {' '.join(args)} failed")
    return seconds, _children_cpu() - cpu, done.stderr


def load_seconds(report: Path) -> float | None:
    """Seconds headless Chromium takes to load ``report`` (the best of three), or
    ``None`` without Playwright or Chromium."""
    import shutil

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return None
    best = float("inf")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        for _ in range(3):
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(report.as_uri(), wait_until="load")
            page.evaluate("() => Promise.all(Array.from(document.images, i => i.decode()))")
            best = min(best, time.perf_counter() - started)
            page.close()
        browser.close()
    return best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    with tempfile.TemporaryDirectory(prefix="metaresp-scale-") as tmp:
        work = Path(tmp)
        write_corpus(work / "extractions", n)
        (work / "analysis-plan.yaml").write_text(PLAN, encoding="utf-8")
        steps = [
            ("validate", ["validate", "extractions"]),
            ("export", ["export", "book.xlsx", "--extractions", "extractions"]),
            ("import", ["import", "book.xlsx", "--to", "imported"]),
            ("run (cold)", ["run", "--quiet"]),
        ]
        notes: list[str] = []
        for label, args in steps:
            seconds, cpu, err = timed(args, work)
            print(f"{label:<12} {n} studies: {seconds:6.1f} s wall, {cpu:6.1f} s CPU")
            notes = [line for line in err.splitlines() if line.startswith("note:")]
        for line in notes:
            print(f"  {line}")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        report = work / "results" / "report.html"
        figures = sorted((work / "results" / "figures").rglob("*.png"))
        print(f"peak memory of a command: {peak:.0f} MiB")
        size = sum(f.stat().st_size for f in (work / "results" / "figures").rglob("*.*"))
        print(f"figures: {len(figures)} PNG (and as many SVG), {size / 2**20:.1f} MiB")
        print(f"report.html: {report.stat().st_size / 2**20:.1f} MiB")
        if figures:
            from PIL import Image

            Image.MAX_IMAGE_PIXELS = None
            tallest = max(figures, key=lambda p: Image.open(p).size[1])
            print(f"tallest figure {tallest.name}: {Image.open(tallest).size} pixels")
        loaded = load_seconds(report)
        if loaded is not None:
            print(f"report.html loaded in headless Chromium in {loaded:.2f} s (best of 3)")


if __name__ == "__main__":
    main()
