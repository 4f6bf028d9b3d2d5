"""One convention across commands (docs/cli.md): option names, help, version, unknown
options, deprecated spellings, no folder created silently, empty inputs refused."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from factories import ROOT, CliResult
from metaresp.cli import app

COMMANDS = sorted(c.name for c in app.registered_commands if c.name)


@pytest.mark.parametrize("command", COMMANDS)
def test_short_and_long_help_everywhere(command: str, cli: Callable[..., CliResult]) -> None:
    short, long = cli(command, "-h"), cli(command, "--help")
    assert short.code == long.code == 0
    assert short.out == long.out
    assert short.out.startswith(f"Usage: metaresp {command}")


def test_version_after_any_command(cli: Callable[..., CliResult]) -> None:
    top = cli("--version")
    assert top.code == 0
    assert re.fullmatch(r"metaresp \d+\.\d+\.\d+\n", top.out)
    for command in ("pool", "run", "validate"):
        assert cli(command, "--version") == top


def test_unknown_option_suggests_what_is_close(cli: Callable[..., CliResult]) -> None:
    res = cli("run", "--extractoins", "x")
    assert res.code == 1
    assert res.err == "error: No such option: --extractoins (did you mean --extractions?)\n"
    res = cli("pool", "t.csv", "--event", "r")
    assert res.err == "error: No such option: --event (did you mean --events?)\n"
    # nothing close: no suggestion (and never a hidden deprecated spelling)
    res = cli("import", "book.xlsx", "--bogus", "x")
    assert res.err == "error: No such option: --bogus (see metaresp import --help)\n"
    res = cli("run", "--ou", "x")
    assert "--out" not in res.err


def test_deprecated_spellings_still_work_with_a_notice(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    res = cli("template", tmp_path / "a.xlsx")
    assert res.code == 0
    assert res.err == "notice: a positional workbook is deprecated; use -o/--out FILE\n"
    assert (tmp_path / "a.xlsx").exists()
    res = cli("validate", ROOT / "extractions")
    assert res.code == 0
    assert res.err.startswith("notice: a positional folder is deprecated")


@pytest.mark.parametrize(
    "args",
    [
        ("template", "-o", "{missing}/t.xlsx"),
        ("schema", "-o", "{missing}/schema.json"),
        ("export", "-o", "{missing}/e.xlsx", "--extractions", str(ROOT / "extractions")),
        ("import", "{missing}.xlsx", "--extractions", "{missing}/x/extractions"),
        ("run", "--results", "{missing}/results", "--plan", str(ROOT / "analysis-plan.yaml")),
    ],
)
def test_no_folder_is_created_silently(
    args: tuple[str, ...], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    missing = tmp_path / "missing"
    res = cli(*(a.format(missing=missing) for a in args))
    assert res.code == 1
    assert len(res.err.splitlines()) == 1
    assert not missing.exists()
    if args[0] != "import":  # import first reports the missing workbook
        assert f"{missing}: folder not found" in res.err


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "--extractions", "{empty}"),
        ("run", "--extractions", "{empty}", "--plan", str(ROOT / "analysis-plan.yaml")),
        ("export", "-o", "{out}", "--extractions", "{empty}"),
    ],
)
def test_an_empty_extractions_folder_is_an_error(
    args: tuple[str, ...],
    tmp_path: Path,
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli(*(a.format(empty=empty, out=tmp_path / "o.xlsx") for a in args))
    assert res.code == 1
    assert res.err.startswith(f"error: {empty}: no extraction files")
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "o.xlsx").exists()


def test_docs_describe_every_command_and_option() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = []
    for command in app.registered_commands:
        if f"## metaresp {command.name}" not in text:
            missing.append(f"section for {command.name}")
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        section = text.split(f"## metaresp {name}", 1)[-1].split("\n## ", 1)[0]
        for param in command.params:
            if getattr(param, "hidden", False) or param.param_type_name != "option":
                continue
            long = next(o for o in param.opts if o.startswith("--"))
            if f"`{long}" not in section:
                missing.append(f"{name} {long}")
    assert not missing, missing
