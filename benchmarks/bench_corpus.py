"""Scale of the commands on a large made-up corpus: validate, export, import and a cold
``metaresp run``.

Run with ``python benchmarks/bench_corpus.py [N]`` (default 3,000 studies). Writes N
one-group extraction files (bispecific or CAR T, first salvage after BCMA CAR T, ORR) and
the small plan of the tests into a temporary folder, then times each command in a fresh
interpreter (wall clock) and reports the peak memory of the child processes, the size of
the report and of the largest figure.
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

PLAN = """\
version: 1
title: Scale plan
thresholds:
  ORR: 50
groupings:
  modality:
    title: Treatment modality
    classes:
      Bispecific antibody:
        modality: {any: [bispecific]}
      CAR T:
        modality: {any: [CAR-T]}
    other: Other
analyses:
  - name: post-cart-orr
    title: "First salvage after BCMA CAR T: {outcome}"
    selection:
      population: post-bcma-cart
      setting: first-salvage
      outcome: ORR
    grouping: modality
"""

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


def timed(args: list[str], cwd: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "metaresp", *args], cwd=cwd, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:])
        raise SystemExit(f"metaresp {' '.join(args)} failed")
    return seconds, done.returncode


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
        for label, args in steps:
            seconds, _ = timed(args, work)
            print(f"{label:<12} {n} studies: {seconds:6.1f} s")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        report = work / "results" / "report.html"
        figures = sorted((work / "results" / "figures").rglob("*.png"))
        print(f"peak memory of a command: {peak:.0f} MiB")
        print(f"report.html: {report.stat().st_size / 2**20:.1f} MiB")
        if figures:
            from PIL import Image

            Image.MAX_IMAGE_PIXELS = None
            tallest = max(figures, key=lambda p: Image.open(p).size[1])
            print(f"tallest figure {tallest.name}: {Image.open(tallest).size} pixels")


if __name__ == "__main__":
    main()
