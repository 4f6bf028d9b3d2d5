"""Each validation rule has a failing example whose message names file, path and line.

The offending line of every example carries a ``#!`` comment; the expected line number is
read from the input text, never from our own output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from metaresp.cli import main
from metaresp.corpus import Problem, Report, check_extractions, load_extractions
from metaresp.errors import InputError

BASE = """\
id: {id}
citation: "Test study."
year: 2023
design: retrospective cohort
population: post-bcma-cart
cohort: {cohort}
source: test.txt
groups:
  - id: tec
    name: Teclistamab
    agents: [teclistamab]
    modality: bispecific
    target: [BCMA]
    setting: first-salvage
    unit: patients
    outcomes:
      - outcome: ORR
        responders: 5
        evaluable: 7
        percent: "71.4"
        derived: false
        quote: "5 out of 7 (71.4%)"
        location: Table 2
"""


def base(study_id: str = "alpha-2023", cohort: str = "alpha") -> str:
    return BASE.format(id=study_id, cohort=cohort)


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def marked_line(text: str) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if "#!" in line]
    assert len(lines) == 1
    return lines[0]


def run(folder: Path, **files: str) -> Report:
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return check_extractions(folder)


def only(report: Report, level: str, path: str) -> Problem:
    found = [p for p in report.problems if p.level == level and p.path == path]
    assert len(found) == 1, [str(p) for p in report.problems]
    return found[0]


def expect(
    tmp_path: Path, text: str, level: str, path: str, fragment: str, name: str = "a.yaml"
) -> Problem:
    """Write ``text`` as the only file; the one problem at ``path`` sits on the marked line."""
    report = run(tmp_path, **{name: text})
    problem = only(report, level, path)
    assert problem.file == (tmp_path / name).as_posix()
    assert problem.line == marked_line(text)
    assert fragment in problem.message
    assert str(problem).startswith(f"{problem.file}:{problem.line}: {path}: ")
    return problem


def test_base_file_is_clean(tmp_path: Path) -> None:
    report = run(tmp_path, **{"a.yaml": base()})
    assert report.problems == ()
    assert report.summary() == "1 study, 1 record: 0 errors, 0 warnings"


# ---------------------------------------------------------------- errors


def test_yaml_syntax_error(tmp_path: Path) -> None:
    text = edit(base(), "        location: Table 2\n", "        location: [Table 2  #!\n")
    report = run(tmp_path, **{"a.yaml": text})
    problem = only(report, "error", "(file)")
    assert "YAML syntax error" in problem.message
    # PyYAML notices the unclosed bracket at the end of the document, after the marked line.
    assert problem.line is not None
    assert problem.line >= marked_line(text)


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = edit(base(), "year: 2023\n", "year: 2023\nyear: 2024  #!\n")
    expect(tmp_path, text, "error", "year", "appears twice")


def test_wrong_type(tmp_path: Path) -> None:
    text = edit(base(), "        evaluable: 7\n", "        evaluable: seven  #!\n")
    expect(tmp_path, text, "error", "groups[0].outcomes[0].evaluable", "valid integer")


def test_unknown_key_with_suggestion(tmp_path: Path) -> None:
    text = edit(base(), "        evaluable: 7\n", "        evaluable: 7\n        evaluble: 7  #!\n")
    problem = expect(tmp_path, text, "error", "groups[0].outcomes[0].evaluble", "unknown field")
    assert "did you mean 'evaluable'?" in problem.message


def test_missing_required_field_points_at_its_mapping(tmp_path: Path) -> None:
    text = edit(base(), "        location: Table 2\n", "")
    text = edit(text, "      - outcome: ORR\n", "      - outcome: ORR  #!\n")
    expect(tmp_path, text, "error", "groups[0].outcomes[0].location", "missing required field")


def test_responders_above_evaluable(tmp_path: Path) -> None:
    text = edit(base(), "        responders: 5\n", "        responders: 12  #!\n")
    expect(
        tmp_path, text, "error", "groups[0].outcomes[0].responders", "responders 12 > evaluable 7"
    )


def test_negative_count(tmp_path: Path) -> None:
    text = edit(base(), "        responders: 5\n", "        responders: -1  #!\n")
    expect(
        tmp_path, text, "error", "groups[0].outcomes[0].responders", "greater than or equal to 0"
    )


def test_unknown_vocabulary_with_suggestion(tmp_path: Path) -> None:
    text = edit(base(), "    target: [BCMA]\n", "    target: [GPRCD5]  #!\n")
    expect(tmp_path, text, "error", "groups[0].target[0]", "did you mean 'GPRC5D'?")


def test_derived_without_derivation(tmp_path: Path) -> None:
    text = edit(base(), "        derived: false\n", "        derived: true\n")
    text = edit(text, "      - outcome: ORR\n", "      - outcome: ORR  #!\n")
    expect(tmp_path, text, "error", "groups[0].outcomes[0].derivation", "needs a derivation")


def test_derived_count_that_does_not_reproduce_its_percentage(tmp_path: Path) -> None:
    text = edit(
        base(),
        "        derived: false\n",
        '        derived: true\n        derivation: "71.4% of 7"\n',
    )
    text = edit(text, "        responders: 5\n", "        responders: 4  #!\n")
    problem = expect(
        tmp_path,
        text,
        "error",
        "groups[0].outcomes[0].responders",
        "does not reproduce the printed 71.4%",
    )
    assert "a count of 5 would" in problem.message


def test_chosen_count_without_note(tmp_path: Path) -> None:
    # 64% of 37: no whole count fits (23/37 = 62.2%, 24/37 = 64.9%).
    text = edit(
        base(),
        '        responders: 5\n        evaluable: 7\n        percent: "71.4"\n',
        '        responders: 24\n        evaluable: 37\n        percent: "64"\n',
    )
    text = edit(text, "      - outcome: ORR\n", "      - outcome: ORR  #!\n")
    report = run(tmp_path, **{"a.yaml": text})
    problem = only(report, "error", "groups[0].outcomes[0].note")
    assert problem.line == marked_line(text)
    assert "needs a note" in problem.message
    only(report, "warning", "groups[0].outcomes[0].percent")


def test_duplicate_group_id(tmp_path: Path) -> None:
    group = base().split("groups:\n", 1)[1]
    second = group.replace("  - id: tec\n", "  - id: tec  #!\n")
    expect(tmp_path, base() + second, "error", "groups[1].id", "duplicate group id 'tec'")


def test_component_naming_an_unknown_group(tmp_path: Path) -> None:
    text = edit(base(), "    unit: patients\n", "    unit: patients\n    components: [tce]  #!\n")
    expect(tmp_path, text, "error", "groups[0].components[0]", "did you mean 'tec'?")


def test_duplicate_study_ids_across_files(tmp_path: Path) -> None:
    second = edit(base(), "id: alpha-2023\n", "id: alpha-2023  #!\n")
    report = run(tmp_path, **{"a.yaml": base(cohort="one"), "b.yaml": second})
    problem = only(report, "error", "id")
    assert problem.file == (tmp_path / "b.yaml").as_posix()
    assert problem.line == marked_line(second)
    assert (tmp_path / "a.yaml").as_posix() in problem.message


def test_every_error_of_every_file_is_raised(tmp_path: Path) -> None:
    bad_a = edit(base(), "    target: [BCMA]\n", "    target: [BCNA]\n")
    bad_b = edit(base("beta-2024", "beta"), "        responders: 5\n", "        responders: 9\n")
    run(tmp_path, **{"a.yaml": bad_a, "b.yaml": bad_b})
    with pytest.raises(InputError) as info:
        load_extractions(tmp_path)
    problems = info.value.problems
    assert len(problems) == 2
    assert problems[0].startswith(f"{(tmp_path / 'a.yaml').as_posix()}:13: groups[0].target[0]: ")
    assert problems[1].startswith(
        f"{(tmp_path / 'b.yaml').as_posix()}:18: groups[0].outcomes[0].responders: "
    )


# ---------------------------------------------------------------- warnings


def test_percentage_no_whole_count_reproduces_is_a_warning_with_a_note(tmp_path: Path) -> None:
    text = edit(
        base(),
        '        responders: 5\n        evaluable: 7\n        percent: "71.4"\n',
        '        responders: 24\n        evaluable: 37\n        percent: "64"  #!\n'
        '        note: "24 is the nearest count"\n',
    )
    problem = expect(
        tmp_path,
        text,
        "warning",
        "groups[0].outcomes[0].percent",
        "no whole count of 37 gives the printed 64%",
    )
    assert "23/37 = 62.2%, 24/37 = 64.9%" in problem.message
    assert len(load_extractions(tmp_path).warnings) == 1


def test_non_derived_count_disagreeing_with_its_percentage(tmp_path: Path) -> None:
    text = edit(base(), '        percent: "71.4"\n', '        percent: "85.7"  #!\n')
    expect(
        tmp_path,
        text,
        "warning",
        "groups[0].outcomes[0].percent",
        "printed 85.7% disagrees with 5/7 = 71.4%",
    )


def test_two_records_of_one_cohort(tmp_path: Path) -> None:
    second = edit(
        base("beta-2024", "alpha"), "      - outcome: ORR\n", "      - outcome: ORR  #!\n"
    )
    report = run(tmp_path, **{"a.yaml": base(), "b.yaml": second})
    problem = only(report, "warning", "groups[0].outcomes[0]")
    assert problem.file == (tmp_path / "b.yaml").as_posix()
    assert problem.line == marked_line(second)
    assert "cohort 'alpha'" in problem.message
    assert "'alpha-2023'" in problem.message
    # A different cohort is not a duplicate.
    (tmp_path / "b.yaml").write_text(base("beta-2024", "beta"), encoding="utf-8")
    assert check_extractions(tmp_path).problems == ()


def test_components_that_do_not_add_up(tmp_path: Path) -> None:
    group = base().split("groups:\n", 1)[1]
    part = group.replace("id: tec", "id: part").replace("responders: 5", "responders: 2")
    part = part.replace("evaluable: 7", "evaluable: 3").replace('percent: "71.4"', "percent: null")
    whole = edit(base(), "    unit: patients\n", "    unit: patients\n    components: [part]\n")
    whole = edit(whole, "        evaluable: 7\n", "        evaluable: 7  #!\n")
    report = run(tmp_path, **{"a.yaml": whole + part})
    problem = only(report, "warning", "groups[0].outcomes[0].evaluable")
    assert problem.line == marked_line(whole + part)
    assert "add up to 3 = 3, the group says 7" in problem.message


def test_misspelt_agent(tmp_path: Path) -> None:
    text = edit(base(), "    agents: [teclistamab]\n", "    agents: [teclistimab]  #!\n")
    expect(tmp_path, text, "warning", "groups[0].agents[0]", "did you mean 'teclistamab'?")


# ---------------------------------------------------------------- command line


def test_validate_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(tmp_path, **{"a.yaml": base()})
    assert main(["validate", "--extractions", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "1 study, 1 record: 0 errors, 0 warnings"

    warn = edit(base("beta-2024", "beta"), '        percent: "71.4"\n', '        percent: "85.7"\n')
    (tmp_path / "b.yaml").write_text(warn, encoding="utf-8")
    assert main(["validate", "--extractions", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "2 studies, 2 records: 0 errors, 1 warning"
    assert out[0].startswith(f"warning: {(tmp_path / 'b.yaml').as_posix()}:20: ")

    bad = edit(base("gamma-2024", "gamma"), "        responders: 5\n", "        responders: 8\n")
    (tmp_path / "c.yaml").write_text(bad, encoding="utf-8")
    assert main(["validate", "--extractions", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "3 studies, 3 records: 1 error, 1 warning"
    assert (
        f"error: {(tmp_path / 'c.yaml').as_posix()}:18: groups[0].outcomes[0].responders: "
        "responders 8 > evaluable 7"
    ) in out


def test_validate_command_on_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "--extractions", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "no such file or folder" in err
    assert "Traceback" not in err
