"""Spot-check of the counts extracted from the narrative review of salvage after BCMA CAR-T.

The expected rows below were read from the review's text
(``review-salvage-strategies-after-bcma-cart.txt``), section by section; the comment on each
row names the section. Derived counts are back-calculated from the percentage and group size
the same sentence (or the one before it) prints; the arithmetic is in the comment. Nothing
here is copied from the extraction files.

Besides the table, every record that reaches us through the review and is not derived must
quote a sentence that contains its own numbers (as digits or as an English word).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import metaresp

EXTRACTIONS = Path(__file__).resolve().parents[1] / "extractions"
REVIEW = "review-salvage-strategies-after-bcma-cart.txt"

# (study, setting, unit, outcome, responders, evaluable, derived)
SPOT_CHECKS: list[tuple[str, str, str, str, int, int, bool]] = [
    # §3.1 ¶2: "28 patients received ide-cel reinfusion and 6 patients (21%) had a second response"
    ("munshi-2021", "any-line", "patients", "ORR", 6, 28, False),
    # §3.1 ¶3: five prior BCMA CAR-T patients, ">=complete response [CR]: 60%" -> 60% of 5 = 3
    ("idecel-commercial-ref63", "any-line", "patients", "CR+", 3, 5, True),
    # §3.1 ¶3: CT103A, 18 subjects, "72.2% of patients achieved CR or stringent CR" -> 13/18
    ("ct103a-ref36", "any-line", "patients", "CR+", 13, 18, True),
    # §3.1 ¶3: "For the 4 murine BCMA CAR-exposed patients, 3 achieved sCR, and 1 ... VGPR"
    ("ct103a-ref36", "any-line", "patients", "ORR", 4, 4, False),
    ("ct103a-ref36", "any-line", "patients", "CR+", 3, 4, False),
    # §3.1 ¶3: HRC0202, "The ORR was 71.4% (5/7), and 3 patients achieved sCR/CR"
    ("hrc0202-ref76", "any-line", "patients", "ORR", 5, 7, False),
    ("hrc0202-ref76", "any-line", "patients", "CR+", 3, 7, False),
    # §3.2 ¶2: "Responses were observed in 7 of 10 patients who had received previous BCMA
    # therapies"
    ("mcarh109-ref81", "any-line", "patients", "ORR", 7, 10, False),
    # §3.2 ¶2: OriCAR-017, "60% (6/10) of them achieving sCR"
    ("oricar-017-ref64", "any-line", "patients", "CR+", 6, 10, False),
    # §3.2 ¶2: BMS-986393, "75% (21/28) of ORR ... prior BCMA therapies"
    ("bms-986393-ref82", "any-line", "patients", "ORR", 21, 28, False),
    # §3.3 ¶2: of the two patients after BCMA CAR-T, one VGPR, the other did not respond
    ("li-2024", "any-line", "patients", "ORR", 1, 2, False),
    # §3.3 ¶3: five with prior CAR-T: two sCR, one PR, two SD -> ORR 3 of 5
    ("shi-2024", "any-line", "patients", "ORR", 3, 5, False),
    # §3.4 ¶2: MajesTEC-1 cohort C, 11 with prior BCMA CAR-T, ORR 45% -> 5/11 (no x/25 gives 45%)
    ("majestec-1-cohort-c-ref93", "any-line", "patients", "ORR", 5, 11, True),
    # §3.4 ¶2: 21 patients after BCMA CAR-T, ORR 33.3% -> 7/21
    ("teclistamab-rwe-ref69", "any-line", "patients", "ORR", 7, 21, True),
    # §3.4 ¶2: 56 with prior BCMA-directed therapy, ORR 59% -> 33/56; overall 106, 66% -> 70/106
    ("teclistamab-rwe-ref94", "any-line", "patients", "ORR", 33, 56, True),
    ("teclistamab-rwe-ref94", "any-line", "patients", "ORR", 70, 106, True),
    # §3.4 ¶4: cevostamab, 9 evaluable after BCMA, ORR 44.4% -> 4/9
    ("cevostamab-ref71", "any-line", "patients", "ORR", 4, 9, True),
    # §3.4 ¶5: TRIMM-2, anti-BCMA 54% of 65 -> 35; ORR 74% of 35 -> 26
    ("trimm-2-ref99", "any-line", "patients", "ORR", 26, 35, True),
    # §3.5 ¶1: modakafusp, 30 patients, ORR 43% -> 13/30
    ("modakafusp-alfa-ref72", "any-line", "patients", "ORR", 13, 30, True),
    # §3.5 ¶2: nivolumab, "their ORR was 18% (2/11)"
    ("banerjee-2022", "any-line", "patients", "ORR", 2, 11, False),
    # §3.5 ¶3: seven patients, immediately after CAR-T progression: 1 sCR, 3 VGPR, 2 PR, 1 MR
    ("chari-2020", "first-salvage", "patients", "ORR", 6, 7, False),
    ("chari-2020", "first-salvage", "patients", "VGPR+", 4, 7, False),
    ("chari-2020", "first-salvage", "patients", "CR+", 1, 7, False),
    # §3.5 ¶4: iopofosine, six patients >60 mCi, ORR 50% -> 3/6
    ("iopofosine-ref104", "any-line", "patients", "ORR", 3, 6, True),
    # §4 ¶1: Chen, 20 patients minus three not evaluable = 17; ORR to first sAMT 35% -> 6/17
    ("chen-2021", "first-salvage", "patients", "ORR", 6, 17, True),
    # §4 ¶4: LEGEND-2, 32 patients received salvage, "The ORR for this cohort was 50.0%" -> 16/32
    ("legend-2-salvage-ref110", "any-line", "patients", "ORR", 16, 32, True),
]

# Percent-only results: the review gives no denominator, so the counts must stay empty.
# (study, group name, outcome, percent as printed)
PERCENT_ONLY: list[tuple[str, str, str, str]] = [
    # §4 ¶3: Reyes early analysis, alkylators 46.3%
    ("reyes-2022", "alkylators", "ORR", "46.3"),
    # §4 ¶3: Reyes update, "the ORR was 44% in combination with IMiD and/or PI"
    ("reyes-2024-review", "cd38-with-imid-pi", "ORR", "44"),
    # §4 ¶4: LEGEND-2, PI-based combination ORR (80%), group size lost in the text copy
    ("legend-2-salvage-ref110", "pi-combination", "ORR", "80"),
    # §4 ¶3: sequencing study, 38% >=CR in the CAR-T then BiAbs group
    ("sequencing-study-ref109", "cart-then-bispecific", "CR+", "38"),
]

# Non-derived counts that are a sum of the best-response categories the quote lists:
# (study, group id, outcome) -> the addends, each of which the quote must contain.
SUMMED: dict[tuple[str, str, str], tuple[int, ...]] = {
    ("ct103a-ref36", "prior-murine-bcma-cart", "ORR"): (3, 1),  # 3 sCR + 1 VGPR
    ("ct103a-ref36", "prior-murine-bcma-cart", "VGPR+"): (3, 1),
    ("shi-2024", "prior-cart", "ORR"): (2, 1),  # two sCR + one PR
    ("chari-2020", "selinexor-combination", "ORR"): (1, 3, 2),  # sCR + VGPR + PR
    ("chari-2020", "selinexor-combination", "VGPR+"): (1, 3),  # sCR + VGPR
}

NUMBER_WORDS: dict[int, str] = {
    1: "one",
    2: "two",
    3: "three",
    4: "four",
    5: "five",
    6: "six",
    7: "seven",
    8: "eight",
    9: "nine",
    10: "ten",
    11: "eleven",
    12: "twelve",
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return metaresp.load_extractions(EXTRACTIONS).to_frame()


def _mentions(quote: str, number: int) -> bool:
    """True when ``quote`` contains ``number`` as a whole number (not inside 6.8) or a word."""
    if re.search(rf"(?<![\d.]){number}(?!\d|\.\d)", quote):
        return True
    word = NUMBER_WORDS.get(number)
    return word is not None and re.search(rf"\b{word}\b", quote, re.IGNORECASE) is not None


@pytest.mark.parametrize(
    ("study", "setting", "unit", "outcome", "responders", "evaluable", "derived"), SPOT_CHECKS
)
def test_review_count_is_in_corpus(
    frame: pd.DataFrame,
    study: str,
    setting: str,
    unit: str,
    outcome: str,
    responders: int,
    evaluable: int,
    derived: bool,
) -> None:
    rows = frame[
        (frame["study"] == study)
        & (frame["setting"] == setting)
        & (frame["unit"] == unit)
        & (frame["outcome"] == outcome)
    ]
    found = {
        (int(r), int(n), bool(d))
        for r, n, d in zip(rows["responders"], rows["evaluable"], rows["derived"], strict=True)
        if not pd.isna(r) and not pd.isna(n)
    }
    assert (responders, evaluable, derived) in found, (
        f"{study} {setting}/{unit} {outcome}: expected {responders}/{evaluable} "
        f"(derived={derived}), corpus has {sorted(found)}"
    )


@pytest.mark.parametrize(("study", "group_id", "outcome", "percent"), PERCENT_ONLY)
def test_review_percent_without_denominator_stays_percent_only(
    frame: pd.DataFrame, study: str, group_id: str, outcome: str, percent: str
) -> None:
    rows = frame[
        (frame["study"] == study) & (frame["group_id"] == group_id) & (frame["outcome"] == outcome)
    ]
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["percent_text"] == percent
    assert pd.isna(row["responders"])
    assert pd.isna(row["evaluable"])


def test_review_records_name_their_reference(frame: pd.DataFrame) -> None:
    review = frame[frame["source"] == REVIEW]
    assert len(review) >= len(SPOT_CHECKS)
    assert review["via_review_reference"].notna().all()
    assert review["year"].notna().all()


def test_review_quotes_contain_their_numbers(frame: pd.DataFrame) -> None:
    review = frame[(frame["source"] == REVIEW) & ~frame["derived"]]
    problems: list[str] = []
    for _, row in review.iterrows():
        if pd.isna(row["responders"]):
            continue
        where = f"{row['study']} {row['group_id']} {row['outcome']}"
        quote = str(row["quote"])
        responders, evaluable = int(row["responders"]), int(row["evaluable"])
        if not _mentions(quote, evaluable):
            problems.append(f"{where}: quote lacks the denominator {evaluable}")
        key = (str(row["study"]), str(row["group_id"]), str(row["outcome"]))
        if key in SUMMED:
            addends = SUMMED[key]
            if sum(addends) != responders or not all(_mentions(quote, a) for a in addends):
                problems.append(f"{where}: {responders} is not the sum {addends} of the quote")
        elif responders == 0 and row["outcome"] == "CR+":
            # a zero CR count stands only where the quote lists every best response, none a CR
            if re.search(r"\b(s?CR|complete)\b", quote):
                problems.append(f"{where}: zero CR but the quote mentions a CR")
        elif not _mentions(quote, responders):
            problems.append(f"{where}: quote lacks the count {responders}")
    assert not problems, "\n".join(problems)


def test_review_percent_with_a_bounded_denominator_is_derived(frame: pd.DataFrame) -> None:
    """§3.4 ¶3: "50 of 70 patients with CAR-T exposure ... were treated with talquetamab.
    Among them whose efficacy could be assessed, their ORR was 72.9%". The evaluable are at
    most 50; of every denominator up to 50 only 48 has a count giving 72.9% (35/48)."""
    from metaresp.schema import matching_counts

    fits = [(n, k) for n in range(1, 51) for k in matching_counts(n, "72.9")]
    assert fits == [(48, 35)]
    rows = frame[(frame["study"] == "talquetamab-cart-exposed-ref96") & (frame["outcome"] == "ORR")]
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["responders"], row["evaluable"], row["percent_text"]) == (35, 48, "72.9")
    assert bool(row["derived"]) is True
    assert "50" in row["derivation"]
