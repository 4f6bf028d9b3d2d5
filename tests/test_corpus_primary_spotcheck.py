"""Spot-check of the counts extracted from the primary reports.

Documents: Van Oekelen et al., Blood 2023 (Table 2 and the Results), Merz et al., Blood
Cancer J 2024 (Results and Table 1) and the Reyes et al., Blood Adv 2024 abstract. Each
expected row was read from the document itself; the comment on each row says where. Merz
prints only whole percentages of the Table 1 group sizes, so its counts are back-calculated
(the arithmetic is in the comment). Nothing here is copied from the extraction files.

Besides the table, every non-derived record of these studies must quote text that contains
its own responders and evaluable numbers, and every printed percentage must stand in its
quote.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import metaresp

EXTRACTIONS = Path(__file__).resolve().parents[1] / "extractions"
PRIMARY_STUDIES = ("vanoekelen-2023", "merz-2024", "reyes-2024")

# (study, group id, setting, unit, outcome, responders, evaluable, derived)
SPOT_CHECKS: list[tuple[str, str, str, str, str, int, int, bool]] = [
    # Van Oekelen 2023, Table 2, first line of salvage treatment (one line per patient)
    # row "Auto-SCT": "1/3 33.3%"
    ("vanoekelen-2023", "first-auto-sct", "first-salvage", "patients", "ORR", 1, 3, False),
    # row "Bispecific trial": "7/10 70.0% 5/10 50.0%"
    ("vanoekelen-2023", "first-bispecific", "first-salvage", "patients", "ORR", 7, 10, False),
    ("vanoekelen-2023", "first-bispecific", "first-salvage", "patients", "VGPR+", 5, 10, False),
    # row "BCMA-directed bispecific trial": "1 out of 2 50.0% 0 out of 2 0.0%"
    ("vanoekelen-2023", "first-bispecific-bcma", "first-salvage", "patients", "ORR", 1, 2, False),
    ("vanoekelen-2023", "first-bispecific-bcma", "first-salvage", "patients", "VGPR+", 0, 2, False),
    # row "Non-BCMA-directed bispecific trial": "6 out of 8 75.0%"
    (
        "vanoekelen-2023",
        "first-bispecific-non-bcma",
        "first-salvage",
        "patients",
        "ORR",
        6,
        8,
        False,
    ),
    # row "CAR T trial": "2 out of 2 100.0%"
    ("vanoekelen-2023", "first-cart", "first-salvage", "patients", "ORR", 2, 2, False),
    # row "Chemotherapy with or without stem cell support": "11 out of 19 57.9%"
    ("vanoekelen-2023", "first-chemotherapy", "first-salvage", "patients", "ORR", 11, 19, False),
    # row "Doublet/triplet/quadruplet combination of approved agents": "2 out of 22 9.1%"
    (
        "vanoekelen-2023",
        "first-approved-combination",
        "first-salvage",
        "patients",
        "VGPR+",
        2,
        22,
        False,
    ),
    # row "Selinexor-based therapy": "2 out of 5 40.0%"
    ("vanoekelen-2023", "first-selinexor", "first-salvage", "patients", "ORR", 2, 5, False),
    # row "Venetoclax-based therapy": "2 out of 3 66.7%"
    ("vanoekelen-2023", "first-venetoclax", "first-salvage", "patients", "ORR", 2, 3, False),
    # row "Other combinations (...)": "1 out of 11 9.1%"
    ("vanoekelen-2023", "first-other", "first-salvage", "patients", "ORR", 1, 11, False),
    # row "All treatment groups": "33 out of 76 43.4% 16 out of 76 21.1%"
    ("vanoekelen-2023", "first-all", "first-salvage", "patients", "ORR", 33, 76, False),
    ("vanoekelen-2023", "first-all", "first-salvage", "patients", "VGPR+", 16, 76, False),
    # Results, "Treatment landscape": evaluated in 76 patients, "7 patients (9.2%) achieving a
    # (stringent) complete response"
    ("vanoekelen-2023", "first-all", "first-salvage", "patients", "CR+", 7, 76, False),
    # Results, "Salvage with T-cell-engaging therapies": first salvage "ORR of 75.0% (9/12
    # evaluable instances)"
    ("vanoekelen-2023", "first-tce", "first-salvage", "patients", "ORR", 9, 12, False),
    # Van Oekelen 2023, Table 2, all lines of salvage treatment (237 treatment lines)
    # row "Allo-SCT": "4/4 100.0% 2/4 50.0%"
    ("vanoekelen-2023", "all-allo-sct", "any-line", "lines", "ORR", 4, 4, False),
    ("vanoekelen-2023", "all-allo-sct", "any-line", "lines", "VGPR+", 2, 4, False),
    # row "Auto-SCT": "10/14 71.4% 7/14< 50.0%"
    ("vanoekelen-2023", "all-auto-sct", "any-line", "lines", "ORR", 10, 14, False),
    ("vanoekelen-2023", "all-auto-sct", "any-line", "lines", "VGPR+", 7, 14, False),
    # row "BCMA ADC": "2/8 25.0%"
    ("vanoekelen-2023", "all-bcma-adc", "any-line", "lines", "ORR", 2, 8, False),
    # row "Bispecific trial": "17/29 58.6% 12/29 41.4%"
    ("vanoekelen-2023", "all-bispecific", "any-line", "lines", "ORR", 17, 29, False),
    ("vanoekelen-2023", "all-bispecific", "any-line", "lines", "VGPR+", 12, 29, False),
    # row "BCMA-directed bispecific trial": "4 out of 9 44.4%"
    ("vanoekelen-2023", "all-bispecific-bcma", "any-line", "lines", "ORR", 4, 9, False),
    # row "Non-BCMA-directed bispecific trial": "13 out of 20 65.0% 9 out of 20 45.0%"
    ("vanoekelen-2023", "all-bispecific-non-bcma", "any-line", "lines", "ORR", 13, 20, False),
    ("vanoekelen-2023", "all-bispecific-non-bcma", "any-line", "lines", "VGPR+", 9, 20, False),
    # row "CAR T trial": "5 out of 6 83.3%"
    ("vanoekelen-2023", "all-cart", "any-line", "lines", "ORR", 5, 6, False),
    # row "Chemotherapy with or without stem cell support": "29 out of 51 56.9%"
    ("vanoekelen-2023", "all-chemotherapy", "any-line", "lines", "ORR", 29, 51, False),
    # row "Doublet/triplet/quadruplet ...": "15 out of 53 28.3% 4 out of 53 7.5%"
    ("vanoekelen-2023", "all-approved-combination", "any-line", "lines", "ORR", 15, 53, False),
    ("vanoekelen-2023", "all-approved-combination", "any-line", "lines", "VGPR+", 4, 53, False),
    # row "Selinexor-based therapy": "3 out of 14 21.4%"
    ("vanoekelen-2023", "all-selinexor", "any-line", "lines", "ORR", 3, 14, False),
    # row "Venetoclax-based therapy": "5 out of 14 35.7% 2 out of 14 14.3%"
    ("vanoekelen-2023", "all-venetoclax", "any-line", "lines", "ORR", 5, 14, False),
    ("vanoekelen-2023", "all-venetoclax", "any-line", "lines", "VGPR+", 2, 14, False),
    # Results, "Other salvage approaches": t(11;14) "50% (3 out of 6 instances)"
    ("vanoekelen-2023", "all-venetoclax-t1114", "any-line", "lines", "ORR", 3, 6, False),
    # row "Other combinations (...)": "12 out of 31 38.7% 1 out of 31 3.2%"
    ("vanoekelen-2023", "all-other", "any-line", "lines", "ORR", 12, 31, False),
    ("vanoekelen-2023", "all-other", "any-line", "lines", "VGPR+", 1, 31, False),
    # row "All treatment groups": "101 out of 224 45.1% 48 out of 224 21.4%"
    ("vanoekelen-2023", "all-all", "any-line", "lines", "ORR", 101, 224, False),
    ("vanoekelen-2023", "all-all", "any-line", "lines", "VGPR+", 48, 224, False),
    # Results, "Salvage with T-cell-engaging therapies": "91.4% (32/35 evaluable instances)"
    ("vanoekelen-2023", "all-tce", "any-line", "lines", "ORR", 32, 35, False),
    # Merz 2024, Results "Salvage therapy with bispecific antibodies ..." with the group sizes
    # of Table 1 (talquetamab 28, teclistamab 37, IMiD/PI/CD38 43, other 31)
    # ORR 79% of 28 = 22.1 -> 22 (22/28 = 78.6%)
    ("merz-2024", "talquetamab", "first-salvage", "patients", "ORR", 22, 28, True),
    # CR 39% of 28 = 10.9 -> 11; VGPR 21% of 28 = 5.9 -> 6; >=VGPR = 11 + 6 = 17
    ("merz-2024", "talquetamab", "first-salvage", "patients", "CR+", 11, 28, True),
    ("merz-2024", "talquetamab", "first-salvage", "patients", "VGPR+", 17, 28, True),
    # ORR 64% of 37 = 23.7 -> 24 (24/37 = 64.9%: no count of 37 rounds to 64%, 24 is nearest)
    ("merz-2024", "teclistamab", "first-salvage", "patients", "ORR", 24, 37, True),
    # CR 32% of 37 = 11.8 -> 12; VGPR 19% of 37 = 7.0 -> 7; >=VGPR = 12 + 7 = 19
    ("merz-2024", "teclistamab", "first-salvage", "patients", "CR+", 12, 37, True),
    ("merz-2024", "teclistamab", "first-salvage", "patients", "VGPR+", 19, 37, True),
    # ORR 30% of 43 = 12.9 -> 13; CR 0%
    ("merz-2024", "imid-pi-cd38", "first-salvage", "patients", "ORR", 13, 43, True),
    ("merz-2024", "imid-pi-cd38", "first-salvage", "patients", "CR+", 0, 43, True),
    # ORR 26% of 31 = 8.06 -> 8; CR 3% of 31 = 0.93 -> 1
    ("merz-2024", "other", "first-salvage", "patients", "ORR", 8, 31, True),
    ("merz-2024", "other", "first-salvage", "patients", "CR+", 1, 31, True),
]

# Reyes 2024 abstract: rates without any denominator. (group id, setting, unit, percent)
PERCENT_ONLY: list[tuple[str, str, str, float]] = [
    # "The overall response rate for firstline salvage therapy was 41% (95% CI, 28-55)."
    ("first-salvage", "first-salvage", "patients", 41.0),
    # "Among all LOTs, ... another BCMA-directed CAR-T (89%), BCMA-directed BsAbs (60%),
    # CD38-directed combinations (80% when combined with BsAb; 50% when combined with
    # immunomodulatory drugs and/or proteasome inhibitors), and alkylator-combinations (50%
    # overall; 69% with high-dose alkylators)."
    ("bcma-cart", "any-line", "lines", 89.0),
    ("bcma-bsab", "any-line", "lines", 60.0),
    ("cd38-with-bsab", "any-line", "lines", 80.0),
    ("cd38-with-imid-pi", "any-line", "lines", 50.0),
    ("alkylator", "any-line", "lines", 50.0),
    ("alkylator-high-dose", "any-line", "lines", 69.0),
]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return metaresp.load_extractions(EXTRACTIONS).to_frame()


def _row(frame: pd.DataFrame, study: str, group_id: str, outcome: str) -> pd.Series:
    hits = frame[
        (frame["study"] == study) & (frame["group_id"] == group_id) & (frame["outcome"] == outcome)
    ]
    assert len(hits) == 1, f"{study}/{group_id}/{outcome}: {len(hits)} records, expected 1"
    return hits.iloc[0]


@pytest.mark.parametrize(
    ("study", "group_id", "setting", "unit", "outcome", "responders", "evaluable", "derived"),
    SPOT_CHECKS,
)
def test_count_matches_document(
    frame: pd.DataFrame,
    study: str,
    group_id: str,
    setting: str,
    unit: str,
    outcome: str,
    responders: int,
    evaluable: int,
    derived: bool,
) -> None:
    row = _row(frame, study, group_id, outcome)
    assert row["setting"] == setting
    assert row["unit"] == unit
    assert row["responders"] == responders
    assert row["evaluable"] == evaluable
    assert bool(row["derived"]) is derived
    if derived:
        assert isinstance(row["derivation"], str)
        assert row["derivation"].strip()


@pytest.mark.parametrize(("group_id", "setting", "unit", "percent"), PERCENT_ONLY)
def test_reyes_rates_stay_percent_only(
    frame: pd.DataFrame, group_id: str, setting: str, unit: str, percent: float
) -> None:
    row = _row(frame, "reyes-2024", group_id, "ORR")
    assert row["setting"] == setting
    assert row["unit"] == unit
    assert pd.isna(row["responders"])
    assert pd.isna(row["evaluable"])
    assert row["percent"] == pytest.approx(percent)
    assert not bool(row["derived"])


def _has_number(text: str, number: int) -> bool:
    """True when ``number`` stands in ``text`` as a whole number (not inside 17, 7.5 or 0.7)."""
    return re.search(rf"(?<![\d.]){number}(?!\d|\.\d)", text) is not None


def _primary_records(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["study"].isin(PRIMARY_STUDIES)]


def test_non_derived_quotes_contain_their_counts(frame: pd.DataFrame) -> None:
    records = _primary_records(frame)
    counted = records[~records["derived"].astype(bool) & records["responders"].notna()]
    assert len(counted) >= 50  # Van Oekelen alone has 54 counted records
    missing = [
        f"{rec['record']}: {int(rec[name])} not in quote"
        for _, rec in counted.iterrows()
        for name in ("responders", "evaluable")
        if not _has_number(rec["quote"], int(rec[name]))
    ]
    assert missing == []


def test_printed_percents_stand_in_their_quotes(frame: pd.DataFrame) -> None:
    records = _primary_records(frame)
    printed = records[records["percent_text"].notna()]
    missing = [
        f"{rec['record']}: {rec['percent_text']}% not in quote"
        for _, rec in printed.iterrows()
        if f"{rec['percent_text']}%" not in rec["quote"]
    ]
    assert missing == []


def test_news_summary_shares_the_paper_cohort_and_adds_no_counts(frame: pd.DataFrame) -> None:
    corpus = metaresp.load_extractions(EXTRACTIONS)
    cohorts = {study.id: study.cohort for study in corpus.studies}
    assert cohorts["vanoekelen-2023-news"] == cohorts["vanoekelen-2023"] == "vanoekelen-tci-mskcc"
    assert (frame["study"] == "vanoekelen-2023-news").sum() == 0
