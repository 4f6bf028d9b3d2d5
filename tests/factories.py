"""Shared test helpers: paths of the shipped inputs, extraction files and small corpora
written from counts, a working copy of a project, and git with a fixed identity.

The fixtures that use them live in ``conftest.py``; tests import the plain helpers from
here (``from factories import ...``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from metaresp import living

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_PLAN = ROOT / "analysis-plan.yaml"
SHIPPED_EXTRACTIONS = ROOT / "extractions"

#: One analysis (first salvage after BCMA CAR T, ORR, by modality), threshold ORR 50%.
SMALL_PLAN = """\
version: 1
title: Test plan
# the GLMM, not the project's Bayesian default: the add and diff tests compare its numbers
# with direct pool() calls, and a GLMM fit takes a tenth of the time
model: {estimator: GLMM, ci: t}
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
SMALL_ANALYSIS = "post-cart-orr"

#: The model of summary.json and ``pool --json`` under the project's defaults: the
#: Bayesian model, its priors written out.
DEFAULT_MODEL_JSON = {
    "transform": "logit",
    "estimator": "BAYES",
    "ci": "t",
    "level": 0.95,
    "tau_prior": "half-normal(2)",
    "mu_prior": "normal(0, 2)",
}

_STUDY = """\
# a report that is not in the corpus (made up for the test)
id: {sid}
citation: "Doe J, Roe R. {name} after CAR T. Test J. {year};1:1-2."
year: {year}
{published}design: retrospective cohort
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

_KINDS = {
    "bispecific": ("tec", "Teclistamab", "teclistamab"),
    "CAR-T": ("cart", "Ciltacabtagene autoleucel", "cilta-cel"),
}


def study_text(
    sid: str,
    responders: int,
    evaluable: int,
    *,
    year: int,
    modality: str = "bispecific",
    published: str | None = None,
) -> str:
    """An extraction file of one made-up study: one group (teclistamab for ``bispecific``,
    cilta-cel for ``CAR-T``), first salvage after BCMA CAR T, ORR ``responders/evaluable``.
    Its record is ``{sid}/tec/ORR`` (bispecific) or ``{sid}/cart/ORR`` (CAR T)."""
    group, name, agent = _KINDS[modality]
    return _STUDY.format(
        sid=sid,
        year=year,
        published="" if published is None else f"published: {published}\n",
        group=group,
        name=name,
        agent=agent,
        modality=modality,
        responders=responders,
        evaluable=evaluable,
    )


class Count(NamedTuple):
    """A study of a small corpus: its id, year, modality and ORR counts."""

    sid: str
    year: int
    modality: str
    responders: int
    evaluable: int

    @property
    def record(self) -> str:
        return f"{self.sid}/{_KINDS[self.modality][0]}/ORR"

    def text(self) -> str:
        return study_text(
            self.sid, self.responders, self.evaluable, year=self.year, modality=self.modality
        )


#: The small corpus of the add/diff tests: three bispecific and two CAR T studies.
SMALL_CORPUS = (
    Count("bisa-2021", 2021, "bispecific", 6, 10),
    Count("bisb-2022", 2022, "bispecific", 8, 14),
    Count("bisc-2023", 2023, "bispecific", 5, 11),
    Count("carta-2022", 2022, "CAR-T", 3, 9),
    Count("cartb-2023", 2023, "CAR-T", 4, 7),
)


def write_corpus(folder: Path, studies: Mapping[str, str] | tuple[Count, ...]) -> Path:
    """Write extraction files into ``folder`` (created): ``{file name: text}`` or counts."""
    folder.mkdir(parents=True, exist_ok=True)
    items = (
        studies.items()
        if isinstance(studies, Mapping)
        else [(f"{c.sid}.yaml", c.text()) for c in studies]
    )
    for name, text in items:
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@dataclass(frozen=True)
class ShippedRun:
    """``metaresp run`` of the shipped plan on the shipped corpus: ``out`` is its results
    folder, ``work`` the working directory it ran in (``work/published/summary.json``)."""

    out: Path
    work: Path
    plan: Path = SHIPPED_PLAN
    extractions: Path = SHIPPED_EXTRACTIONS


class CliResult(NamedTuple):
    """Exit code, standard output and standard error of one ``metaresp`` call."""

    code: int
    out: str
    err: str


class Repo:
    """A working copy: extractions/, analysis-plan.yaml, results/, published/summary.json."""

    def __init__(self, root: Path, extractions: Path, plan: str | Path = SMALL_PLAN) -> None:
        self.root = root
        self.extractions = root / "extractions"
        shutil.copytree(extractions, self.extractions)
        self.plan = root / "analysis-plan.yaml"
        text = plan.read_text(encoding="utf-8") if isinstance(plan, Path) else plan
        self.plan.write_text(text, encoding="utf-8")
        self.results = root / "results"
        self.published = root / "published" / "summary.json"

    def options(self) -> list[str]:
        return [
            "--plan",
            str(self.plan),
            "--extractions",
            str(self.extractions),
            "--published",
            str(self.published),
        ]

    def publish_current(self) -> dict[str, Any]:
        state = living.current_state(self.plan, self.extractions)
        living.publish(state, self.published)
        return state

    def snapshot(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file()
        }


def git(repo: Path, *args: str) -> None:
    """Run git in ``repo`` with a fixed identity and no signing; fail on error."""
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def run_reproduce_script(script: Path, target: Path) -> None:
    """Run ``reproduce.R`` in R, writing its tables beside ``target`` (the estimates
    there); skip the test, saying why, where R or metafor is missing."""
    import pytest

    if shutil.which("Rscript") is None:
        pytest.skip("Rscript not found: reproduce.R not run against metafor")
    probe = subprocess.run(
        ["Rscript", "-e", "library(metafor)"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip("R package metafor not installed")
    ran = subprocess.run(
        ["Rscript", str(script), str(target)],
        capture_output=True,
        text=True,
        check=False,
        cwd=target.parent,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
