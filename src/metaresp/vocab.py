"""Controlled vocabularies of the extraction format, and the agent synonym table.

Every vocabulary is a ``dict[str, str]`` mapping each allowed value to a one-line
definition. The same dictionaries feed the validator, the documentation
(``docs/extraction-format.md``), the JSON Schema descriptions and the spreadsheet
README sheet, so a definition is written once, here.

Agents are an open list (a group may name a class of regimens, e.g.
"investigational CAR-T"), but every known agent is spelt one way: :data:`AGENTS`
holds the canonical names and :data:`AGENT_SYNONYMS` the other spellings (brand
names, company codes, abbreviations) that :func:`normalise_agent` maps onto them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping

__all__ = [
    "AGENTS",
    "AGENT_SYNONYMS",
    "MODALITIES",
    "OUTCOMES",
    "POPULATIONS",
    "SETTINGS",
    "TARGETS",
    "UNITS",
    "VOCABULARIES",
    "VOCABULARY_HINTS",
    "agent_key",
    "is_known_agent",
    "normalise_agent",
    "suggest",
    "suggest_agent",
    "unknown_term_message",
]

MODALITIES: dict[str, str] = {
    "bispecific": "T-cell-engaging bispecific antibody (tumour antigen × CD3)",
    "CAR-T": "chimeric antigen receptor T-cell therapy, any target or construct",
    "ADC": "antibody-drug conjugate (e.g. belantamab mafodotin)",
    "small molecule": "oral or intravenous small-molecule drug given as the backbone "
    "(e.g. selinexor, venetoclax)",
    "chemotherapy": "cytotoxic chemotherapy regimen, with or without stem-cell support",
    "transplant": "autologous or allogeneic haematopoietic stem-cell transplantation",
    "combination": "regimen combining approved agents of different classes "
    "(IMiD, proteasome inhibitor, CD38 antibody, ...) or a mixed group of regimens",
    "checkpoint inhibitor": "immune checkpoint blockade (e.g. PD-1 antibody)",
    "radiotherapy": "external-beam radiotherapy or a radionuclide-conjugate therapy",
    "other": "any other modality (e.g. immunocytokine); say which in the group name",
}

TARGETS: dict[str, str] = {
    "BCMA": "B-cell maturation antigen (TNFRSF17)",
    "GPRC5D": "G protein-coupled receptor class C group 5 member D",
    "FcRH5": "Fc receptor-homolog 5 (FCRL5)",
    "CD38": "CD38 (daratumumab, isatuximab, modakafusp alfa)",
    "XPO1": "exportin 1, the nuclear export protein selinexor inhibits",
    "CD19": "CD19 (in dual-target BCMA/CD19 CAR-T)",
    "SLAMF7": "SLAMF7, also called CS1 or CD319 (elotuzumab, CS1-BCMA CAR-T)",
    "TACI": "transmembrane activator and CAML interactor (TNFRSF13B)",
    "BCL2": "BCL-2 (venetoclax)",
    "PD-1": "programmed cell death protein 1 (nivolumab, pembrolizumab)",
    "CD73": "ecto-5'-nucleotidase (ORIC-533)",
    "CRBN": "cereblon, the target of immunomodulatory drugs (IMiDs)",
    "proteasome": "the 20S proteasome (bortezomib, carfilzomib, ixazomib)",
    "MAPK": "the MAPK pathway (BRAF, MEK or ERK inhibitors)",
    "none": "no molecular target: cytotoxic chemotherapy, transplant, external-beam radiotherapy",
    "mixed": "a group pooling regimens with different targets, none of them dominant",
    "unspecified": "the source does not say which target(s) the treatment had",
}

POPULATIONS: dict[str, str] = {
    "post-bcma-cart": "every patient relapsed, progressed or did not respond after a "
    "BCMA-directed CAR-T (the population this corpus is about)",
    "bcma-cart-exposed": "a subgroup of a larger trial whose patients had received a "
    "BCMA-directed CAR-T before; relapse after it is not stated as the selection",
    "cart-exposed": "patients who had received a CAR-T of any target before (mostly, but "
    "not only, BCMA-directed)",
    "prior-bcma-exposed": "patients who had received any BCMA-directed therapy before "
    "(CAR-T, bispecific or ADC), not necessarily a CAR-T",
    "post-bcma-cart-or-bispecific": "patients relapsed after a BCMA-directed CAR-T or a "
    "bispecific antibody, reported together",
    "rrmm-unselected": "a whole relapsed/refractory myeloma population not selected for "
    "prior BCMA or CAR-T exposure (given for comparison)",
}

SETTINGS: dict[str, str] = {
    "first-salvage": "the first treatment after relapse from the reference therapy",
    "any-line": "any salvage line after the reference therapy (first or later), or the "
    "line is not stated",
}

UNITS: dict[str, str] = {
    "patients": "counts are patients: each patient counted once",
    "lines": "counts are treatment lines: a patient may contribute several lines",
}

OUTCOMES: dict[str, str] = {
    "ORR": "overall response: partial response or better (≥PR, IMWG criteria)",
    "VGPR+": "very good partial response or better (≥VGPR)",
    "CR+": "complete response or better (≥CR, including stringent CR)",
}

DESIGNS: dict[str, str] = {
    "randomised-trial": "a trial that allocated patients to treatments at random",
    "single-arm-trial": "a prospective interventional trial (phase 1, 1/2 or 2) with one "
    "treatment arm, or a subgroup of such a trial",
    "prospective-cohort": "an observational study that enrolled patients before their "
    "outcomes were known and followed them forward",
    "retrospective-cohort": "an observational study of consecutive or registry patients "
    "whose records were reviewed after treatment (including a retrospective analysis of "
    "trial patients)",
    "case-series": "a description of three or more patients without a protocol-defined "
    "selection or follow-up",
    "case-report": "one or two patients, usually published because of the response; "
    "not pooled in primary analyses",
    "conference-abstract": "results known only from a meeting abstract or poster, not a "
    "peer-reviewed full paper",
}

MIXED: dict[str, str] = {
    "several-classes": "the group mixes regimens of different salvage classes (e.g. "
    "'other combinations'); kept out of named classes, a grouping's 'other' bucket may "
    "take it",
    "all-classes": "the group reports every salvage regimen of the study together; it "
    "belongs to no class and is set aside from grouped analyses",
}

#: Every controlled vocabulary, keyed by the field name it governs.
VOCABULARIES: dict[str, dict[str, str]] = {
    "modality": MODALITIES,
    "target": TARGETS,
    "population": POPULATIONS,
    "setting": SETTINGS,
    "unit": UNITS,
    "outcome": OUTCOMES,
    "design": DESIGNS,
    "mixed": MIXED,
}

#: Other names of vocabulary values, used only to suggest the right value in an
#: error message (they are not accepted silently).
VOCABULARY_HINTS: dict[str, dict[str, str]] = {
    "target": {
        "CS1": "SLAMF7",
        "CD319": "SLAMF7",
        "TNFRSF17": "BCMA",
        "FCRL5": "FcRH5",
        "FCRH5": "FcRH5",
        "BCL-2": "BCL2",
        "PD1": "PD-1",
        "TNFRSF13B": "TACI",
    },
    "modality": {
        "CAR T": "CAR-T",
        "bispecific antibody": "bispecific",
        "BsAb": "bispecific",
        "antibody-drug conjugate": "ADC",
        "chemo": "chemotherapy",
        "ASCT": "transplant",
    },
    "outcome": {
        ">=PR": "ORR",
        "≥PR": "ORR",
        "PR+": "ORR",
        ">=VGPR": "VGPR+",
        "≥VGPR": "VGPR+",
        "VGPR": "VGPR+",
        ">=CR": "CR+",
        "≥CR": "CR+",
        "CR": "CR+",
    },
}

#: Canonical agent names and what each is.
AGENTS: dict[str, str] = {
    # bispecific antibodies
    "teclistamab": "BCMA×CD3 bispecific antibody",
    "elranatamab": "BCMA×CD3 bispecific antibody",
    "linvoseltamab": "BCMA×CD3 bispecific antibody",
    "alnuctamab": "BCMA×CD3 bispecific antibody",
    "etentamig": "BCMA×CD3 bispecific antibody (ABBV-383)",
    "talquetamab": "GPRC5D×CD3 bispecific antibody",
    "forimtamig": "GPRC5D×CD3 bispecific antibody",
    "cevostamab": "FcRH5×CD3 bispecific antibody",
    # CAR-T products
    "ide-cel": "idecabtagene vicleucel, BCMA CAR-T",
    "cilta-cel": "ciltacabtagene autoleucel, BCMA CAR-T",
    "lcar-b38m": "BCMA CAR-T of the LEGEND-2 trial (the construct later developed as cilta-cel)",
    "eque-cel": "equecabtagene autoleucel (CT103A), fully human BCMA CAR-T",
    "zevor-cel": "zevorcabtagene autoleucel (CT053), fully human BCMA CAR-T",
    "anito-cel": "anitocabtagene autoleucel, BCMA CAR-T",
    "hrc0202": "fully human BCMA CAR-T (HRC0202)",
    "hds269b": "BCMA CAR-T (HDS269B)",
    "arlo-cel": "arlocabtagene autoleucel (BMS-986393), GPRC5D CAR-T",
    "mcarh109": "GPRC5D CAR-T (MCARH109)",
    "oricar-017": "GPRC5D CAR-T (OriCAR-017)",
    # antibody-drug conjugates, antibodies, immunocytokines
    "belantamab mafodotin": "BCMA antibody-drug conjugate",
    "daratumumab": "CD38 monoclonal antibody",
    "isatuximab": "CD38 monoclonal antibody",
    "elotuzumab": "SLAMF7 monoclonal antibody",
    "modakafusp alfa": "CD38-targeted attenuated interferon-α immunocytokine",
    "nivolumab": "PD-1 checkpoint inhibitor",
    "pembrolizumab": "PD-1 checkpoint inhibitor",
    # small molecules and conventional drugs
    "selinexor": "XPO1 inhibitor",
    "venetoclax": "BCL-2 inhibitor",
    "oric-533": "CD73 inhibitor",
    "iopofosine i-131": "phospholipid radioconjugate",
    "pomalidomide": "immunomodulatory drug",
    "lenalidomide": "immunomodulatory drug",
    "thalidomide": "immunomodulatory drug",
    "bortezomib": "proteasome inhibitor",
    "carfilzomib": "proteasome inhibitor",
    "ixazomib": "proteasome inhibitor",
    "dexamethasone": "corticosteroid",
    "cyclophosphamide": "alkylating agent",
    "melphalan": "alkylating agent",
    "bendamustine": "alkylating agent",
    "trametinib": "MEK inhibitor",
    "dabrafenib": "BRAF inhibitor",
    "autologous transplant": "autologous haematopoietic stem-cell transplantation",
    "allogeneic transplant": "allogeneic haematopoietic stem-cell transplantation",
}

#: Other spellings of known agents (matched after :func:`agent_key`), canonical name
#: as value. Canonical names need not be listed: they match themselves.
AGENT_SYNONYMS: dict[str, str] = {
    "tec": "teclistamab",
    "teclistamab-cqyv": "teclistamab",
    "jnj-64007957": "teclistamab",
    "jnj-7957": "teclistamab",
    "tecvayli": "teclistamab",
    "elra": "elranatamab",
    "pf-06863135": "elranatamab",
    "elrexfio": "elranatamab",
    "linvo": "linvoseltamab",
    "regn5458": "linvoseltamab",
    "cc-93269": "alnuctamab",
    "abbv-383": "etentamig",
    "tnb-383b": "etentamig",
    "talq": "talquetamab",
    "tal": "talquetamab",
    "talquetamab-tgvs": "talquetamab",
    "talguetamab": "talquetamab",  # misspelling found in a text conversion
    "jnj-64407564": "talquetamab",
    "jnj-7564": "talquetamab",
    "talvey": "talquetamab",
    "rg6234": "forimtamig",
    "bfcr4350a": "cevostamab",
    "rg6160": "cevostamab",
    "idecabtagene vicleucel": "ide-cel",
    "bb2121": "ide-cel",
    "abecma": "ide-cel",
    "ciltacabtagene autoleucel": "cilta-cel",
    "jnj-68284528": "cilta-cel",
    "jnj-4528": "cilta-cel",
    "carvykti": "cilta-cel",
    "lcar-b38m cells": "lcar-b38m",
    "equecabtagene autoleucel": "eque-cel",
    "ct103a": "eque-cel",
    "fucaso": "eque-cel",
    "zevorcabtagene autoleucel": "zevor-cel",
    "ct053": "zevor-cel",
    "anitocabtagene autoleucel": "anito-cel",
    "cart-ddbcma": "anito-cel",
    "arlocabtagene autoleucel": "arlo-cel",
    "bms-986393": "arlo-cel",
    "belamaf": "belantamab mafodotin",
    "belantamab": "belantamab mafodotin",
    "gsk2857916": "belantamab mafodotin",
    "blenrep": "belantamab mafodotin",
    "dara": "daratumumab",
    "darzalex": "daratumumab",
    "isa": "isatuximab",
    "elo": "elotuzumab",
    "modakafusp": "modakafusp alfa",
    "tak-573": "modakafusp alfa",
    "nivo": "nivolumab",
    "opdivo": "nivolumab",
    "pembro": "pembrolizumab",
    "kpt-330": "selinexor",
    "xpovio": "selinexor",
    "ven": "venetoclax",
    "abt-199": "venetoclax",
    "venclexta": "venetoclax",
    "iopofosine": "iopofosine i-131",
    "iopofosine i 131": "iopofosine i-131",
    "clr 131": "iopofosine i-131",
    "clr-131": "iopofosine i-131",
    "pom": "pomalidomide",
    "len": "lenalidomide",
    "btz": "bortezomib",
    "cfz": "carfilzomib",
    "dex": "dexamethasone",
    "cy": "cyclophosphamide",
    "asct": "autologous transplant",
    "auto-hsct": "autologous transplant",
    "autologous stem cell transplant": "autologous transplant",
    "allo-hsct": "allogeneic transplant",
    "allogeneic stem cell transplant": "allogeneic transplant",
}

_DASHES = re.compile(r"[\u2010\u2011\u2012\u2013\u2014\u2212]")
_SPACES = re.compile(r"\s+")


def agent_key(name: str) -> str:
    """The lookup key of an agent name: case-folded, dashes unified, spaces collapsed."""
    return _SPACES.sub(" ", _DASHES.sub("-", name)).strip().casefold()


_AGENT_LOOKUP: dict[str, str] = {
    **{agent_key(name): name for name in AGENTS},
    **{agent_key(alias): name for alias, name in AGENT_SYNONYMS.items()},
}


def normalise_agent(name: str) -> str:
    """Return the canonical spelling of an agent.

    Known agents and their synonyms (any case, any dash) map to the canonical name in
    :data:`AGENTS` (``"Tec"``, ``"JNJ-64007957"`` → ``"teclistamab"``); any other name is
    returned with its whitespace collapsed and otherwise as written.
    """
    known = _AGENT_LOOKUP.get(agent_key(name))
    if known is not None:
        return known
    return _SPACES.sub(" ", name).strip()


def is_known_agent(name: str) -> bool:
    """True when ``name`` is a canonical agent name or one of its synonyms."""
    return agent_key(name) in _AGENT_LOOKUP


def suggest(
    value: str, choices: Iterable[str], hints: Mapping[str, str] | None = None
) -> str | None:
    """The allowed value ``value`` most probably meant, or ``None``.

    Tries, in order: an exact case-insensitive match, a known other name (``hints``),
    then the closest spelling by :func:`difflib.get_close_matches` (ratio ≥ 0.6).
    """
    options = list(choices)
    folded = {option.casefold(): option for option in options}
    key = value.strip().casefold()
    if key in folded:
        return folded[key]
    if hints:
        for alias, target in hints.items():
            if alias.casefold() == key:
                return target
    close = difflib.get_close_matches(key, list(folded), n=1, cutoff=0.6)
    return folded[close[0]] if close else None


def suggest_agent(name: str) -> str | None:
    """The known agent an unknown agent name is probably a misspelling of (ratio ≥ 0.85)."""
    close = difflib.get_close_matches(agent_key(name), list(_AGENT_LOOKUP), n=1, cutoff=0.85)
    return _AGENT_LOOKUP[close[0]] if close else None


def unknown_term_message(field: str, value: object) -> str:
    """The error text for a value outside the vocabulary of ``field``, with a suggestion."""
    allowed = VOCABULARIES[field]
    text = f"unknown {field} {value!r}"
    if isinstance(value, str):
        guess = suggest(value, allowed, VOCABULARY_HINTS.get(field))
        if guess is not None:
            return f"{text}; did you mean {guess!r}?"
    return f"{text}; allowed: {', '.join(repr(v) for v in allowed)}"
