"""Loading a corpus, its long table, and writing studies back to YAML."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import metaresp
from metaresp.corpus import (
    FRAME_COLUMNS,
    Corpus,
    check_extractions,
    dump_study,
    load_extractions,
    parse_study,
    write_study,
)
from metaresp.errors import InputError
from metaresp.schema import Study

DATA = Path(__file__).parent / "data" / "corpus"

CONTRACT_COLUMNS = [
    "study",
    "cohort",
    "population",
    "setting",
    "group",
    "agent",
    "modality",
    "target",
    "unit",
    "outcome",
    "responders",
    "evaluable",
    "derived",
    "quote",
    "location",
]


def line_of(path: Path, needle: str, after: str = "") -> int:
    """1-based number of the first line containing ``needle`` after the line holding ``after``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i in range(start, len(lines)) if needle in lines[i]) + 1


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return metaresp.load_extractions(DATA)


def test_loads_sorted_files(corpus: Corpus) -> None:
    assert [s.id for s in corpus.studies] == ["alpha-2023", "beta-2024"]
    assert corpus.files == (
        (DATA / "alpha-2023.yaml").as_posix(),
        (DATA / "beta-2024.yaml").as_posix(),
    )
    assert len(corpus) == 2
    assert corpus.n_records == 6
    assert isinstance(corpus.studies, tuple)
    assert corpus.study("beta-2024").via_review is not None
    assert corpus.file_of("alpha-2023").endswith("alpha-2023.yaml")
    # 64% of 37 fits no whole count: a warning, not an error (the record has a note).
    assert len(corpus.warnings) == 1
    assert "64%" in corpus.warnings[0]
    assert corpus.validate() == corpus.problems


def test_frame_has_the_contract_columns(corpus: Corpus) -> None:
    frame = corpus.to_frame()
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert set(CONTRACT_COLUMNS) <= set(frame.columns)
    assert len(frame) == 6
    assert frame["record"].is_unique
    assert str(frame["responders"].dtype) == "Int64"
    assert str(frame["evaluable"].dtype) == "Int64"
    assert frame["percent"].dtype == "float64"
    assert frame["derived"].dtype == bool


def test_frame_values(corpus: Corpus) -> None:
    frame = corpus.to_frame().set_index("record")
    tec = frame.loc["alpha-2023/tec/ORR"]
    assert (tec["agent"], tec["responders"], tec["evaluable"]) == ("teclistamab", 5, 7)
    assert (tec["percent_text"], tec["percent"]) == ("71.4", 71.4)
    assert tec["population"] == "post-bcma-cart"
    assert tec["cohort"] == "alpha-cohort"
    assert tec["quote"] == "Teclistamab … 5 out of 7 (71.4%) — ≥PR"
    alpha = DATA / "alpha-2023.yaml"
    assert tec["line"] == line_of(alpha, "- outcome: ORR")
    assert tec["file"] == alpha.as_posix()

    vgpr = frame.loc["alpha-2023/tec/VGPR+"]
    assert pd.isna(vgpr["responders"])
    assert pd.isna(vgpr["evaluable"])
    assert vgpr["percent"] == 40.0
    assert vgpr["quote"] == "First line of a two-line quote: ≥VGPR in 40%\nsecond line, µ × ½.\n"

    combo = frame.loc["alpha-2023/talq-dara/ORR"]
    assert combo["agent"] == "talquetamab+daratumumab"
    assert combo["agents"] == "talquetamab, daratumumab"
    assert combo["target"] == "GPRC5D+CD38"
    assert combo["population"] == "prior-bcma-exposed"  # the group's override
    assert bool(combo["derived"])
    assert combo["note"].startswith("No whole count")
    assert combo["line"] == line_of(alpha, "- outcome: ORR", after="id: talq-dara")

    beta = frame.loc["beta-2024/all/ORR"]
    assert beta["agent"] == "teclistamab"  # written as JNJ-64007957
    assert beta["unit"] == "lines"
    assert (beta["via_review_reference"], beta["via_review_year"]) == (81, 2022)
    assert pd.isna(frame.loc["beta-2024/part-a/ORR", "percent"])


def test_empty_folder_gives_an_empty_corpus(tmp_path: Path) -> None:
    corpus = load_extractions(tmp_path)
    assert corpus.studies == ()
    frame = corpus.to_frame()
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert frame.empty


def test_single_file_and_missing_path(tmp_path: Path) -> None:
    assert [s.id for s in load_extractions(DATA / "beta-2024.yaml")] == ["beta-2024"]
    with pytest.raises(InputError, match="no such file or folder"):
        load_extractions(tmp_path / "missing")


def test_unquoted_percent_keeps_its_printed_digits(tmp_path: Path) -> None:
    text = (DATA / "beta-2024.yaml").read_text(encoding="utf-8")
    (tmp_path / "b.yaml").write_text(text.replace('percent: "70"', "percent: 70.0"), "utf-8")
    study = load_extractions(tmp_path).studies[0]
    assert study.groups[0].outcomes[0].percent == "70.0"


# ---------------------------------------------------------------- writing back


def test_round_trip_gives_equal_models(corpus: Corpus, tmp_path: Path) -> None:
    for study in corpus.studies:
        text = dump_study(study)
        again, _, problems = parse_study(text)
        assert [p for p in problems if p.level == "error"] == []
        assert again == study
        write_study(study, tmp_path / f"{study.id}.yaml")
    assert load_extractions(tmp_path).studies == corpus.studies
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


TRICKY_TEXT = [
    "two  spaces, trailing space ",
    " leading space",
    "line one\nline two",
    "ends with a break\n",
    "blank lines\n\n\nbetween\n\n",
    "\n starts with a break",
    "tab\tinside and CRLF\r\nline",
    "≥VGPR in 71.4% — µ × ½ 日本語 😀",
    "non-breaking\u00a0space and line\u2028separator and NEL\x85",
    "'single' and \"double\" quotes: # not a comment",
    "- looks like a list",
    "null",
    "2023-02",
    "yes",
]


@pytest.mark.parametrize("text", TRICKY_TEXT)
def test_round_trip_preserves_text_exactly(corpus: Corpus, text: str) -> None:
    study = corpus.study("alpha-2023")
    group = study.groups[0]
    record = group.outcomes[0].model_copy(update={"quote": text, "note": text, "location": text})
    changed = study.model_copy(
        update={
            "citation": text,
            "notes": text,
            "groups": (
                group.model_copy(update={"outcomes": (record, *group.outcomes[1:])}),
                *study.groups[1:],
            ),
        }
    )
    again, _, _ = parse_study(dump_study(changed))
    assert again == changed
    assert again is not None
    assert again.groups[0].outcomes[0].quote == text


def test_dump_is_readable_and_stable(corpus: Corpus) -> None:
    study = corpus.study("alpha-2023")
    text = dump_study(study)
    assert text == dump_study(Study.model_validate(study.model_dump()))
    keys = [line.split(":")[0] for line in text.splitlines() if line and line[0].isalpha()]
    assert keys == [
        "id",
        "citation",
        "doi",
        "year",
        "published",
        "design",
        "centres",
        "population",
        "cohort",
        "source",
        "groups",
    ]
    assert "agents: [talquetamab, daratumumab]" in text
    assert "≥PR" in text  # unicode written as is, not escaped
    assert "\n\n  - id: talq-dara\n" in text  # groups separated by a blank line


def test_corpus_from_studies_applies_the_rules(corpus: Corpus) -> None:
    rebuilt = Corpus.from_studies(corpus.studies)
    assert rebuilt.studies == corpus.studies
    assert rebuilt.files == ("alpha-2023.yaml", "beta-2024.yaml")
    assert len(rebuilt.warnings) == 1
    with pytest.raises(InputError, match="duplicate study id 'alpha-2023'"):
        Corpus.from_studies([corpus.studies[0], corpus.studies[0]])


def test_check_extractions_counts_records_of_invalid_files(tmp_path: Path) -> None:
    text = (DATA / "beta-2024.yaml").read_text(encoding="utf-8")
    (tmp_path / "b.yaml").write_text(
        text.replace("modality: bispecific", "modality: bsab", 1), "utf-8"
    )
    report = check_extractions(tmp_path)
    assert report.summary() == "1 study, 3 records: 1 error, 0 warnings"
    assert "did you mean 'bispecific'?" in report.errors[0].message


def test_frame_components_column(corpus: Corpus) -> None:
    frame = corpus.to_frame().set_index("record")
    assert frame.loc["beta-2024/all/ORR", "components"] == "part-a+part-b"
    assert pd.isna(frame.loc["beta-2024/part-a/ORR", "components"])
