"""The ``metaresp`` command line.

This module stays light (no numpy, pandas or matplotlib at import) so that
``metaresp --help`` is quick; each command imports what it needs when it runs.
Every command exits 0 on success and 1 on bad input, printing one plain line per
problem on standard error, never a traceback. An internal error (a bug) is one line
too; ``metaresp --debug ...`` (or ``METARESP_DEBUG=1``) prints its traceback first.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from metaresp.cli import (
    cmd_add,
    cmd_corpus,
    cmd_diff,
    cmd_pool,
    cmd_run,
    cmd_simulate,
    cmd_workbook,
)

app = typer.Typer(
    name="metaresp",
    help="Evidence synthesis of response rates: validate extractions, pool, plot, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

__all__ = ["DEBUG_VARIABLE", "app", "main"]

DEBUG_VARIABLE = "METARESP_DEBUG"
"""Environment variable that, set to 1, shows the traceback of an internal error."""

_debug = {"on": False}
_INTERRUPTED = 130
"""What typer returns for a command ended by Ctrl-C (KeyboardInterrupt)."""


def _show_version(value: bool) -> None:
    if value:
        from metaresp import __version__

        typer.echo(f"metaresp {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help=f"Show the traceback of an internal error (also: {DEBUG_VARIABLE}=1)."
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Evidence synthesis of response rates: validate extractions, pool, plot, report."""
    _debug["on"] = debug


def _debugging() -> bool:
    return _debug["on"] or os.environ.get(DEBUG_VARIABLE, "").strip() not in ("", "0")


app.command("run")(cmd_run.run)
app.command("validate")(cmd_corpus.validate)
app.command("schema")(cmd_corpus.schema)
app.command("pool")(cmd_pool.pool)
app.command("template")(cmd_workbook.template)
app.command("import")(cmd_workbook.import_)
app.command("export")(cmd_workbook.export)
app.command("diff")(cmd_diff.diff)
app.command("add")(cmd_add.add)
app.command("simulate")(cmd_simulate.simulate)


_MAX_LINE = 2000
"""No error line is longer (a message never repeats a large input)."""


def _fail(lines: tuple[str, ...] | list[str]) -> None:
    for line in lines:
        if len(line) > _MAX_LINE:
            line = f"{line[: _MAX_LINE - 40]}... ({len(line)} characters)"
        sys.stderr.write(f"error: {line}\n")


def _unknown_option(exc: Exception) -> str | None:
    """For an unknown option, ``No such option: --extractoins (did you mean
    --extractions?)``: suggestions from the command's visible options close to what was
    typed (difflib), never hidden (deprecated) spellings; ``None`` for other errors."""
    import difflib

    option = getattr(exc, "option_name", None)
    if not isinstance(option, str) or not hasattr(exc, "possibilities"):
        return None
    ctx: Any = getattr(exc, "ctx", None)
    command: Any = getattr(ctx, "command", None)
    names: list[str] = []
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") == "option" and not param.hidden:
            names.extend(n for n in (*param.opts, *param.secondary_opts) if n.startswith("--"))
    names.extend(n for n in getattr(ctx, "help_option_names", []) if n.startswith("--"))
    # compare without the leading dashes, which every name shares
    bare = {n.lstrip("-"): n for n in names}
    close = [bare[c] for c in difflib.get_close_matches(option.lstrip("-"), bare, n=3, cutoff=0.75)]
    if close:
        return f"No such option: {option} (did you mean {' or '.join(close)}?)"
    name = getattr(command, "name", None)
    where = f"metaresp {name}" if name and getattr(ctx, "parent", None) is not None else "metaresp"
    return f"No such option: {option} (see {where} --help)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    from metaresp.errors import InputError

    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        args = ["--help"]
    if "--version" in args[: args.index("--") if "--" in args else len(args)]:
        args = ["--version"]  # works after any command too: metaresp pool --version
    _debug["on"] = False
    try:
        result = app(args=args, prog_name="metaresp", standalone_mode=False)
    except InputError as exc:
        _fail(exc.problems)
        return 1
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("error: interrupted; nothing was changed\n")
        return 1
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument
        unknown = _unknown_option(exc)
        _fail([unknown or exc.format_message()])
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted; nothing was changed\n")
        return 1
    except OSError as exc:  # the machine's, not the input's: permissions, space, mounts
        from metaresp._environment import environment_message

        if _debugging():
            import traceback

            traceback.print_exc(file=sys.stderr)
        _fail([environment_message(exc)])
        return 1
    except Exception as exc:  # a bug of ours: one line, the traceback only when asked
        if _debugging():
            import traceback

            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(
            f"error: internal error ({type(exc).__name__}: {exc}); "
            "please report it with the command you ran\n"
        )
        return 1
    if result == _INTERRUPTED:  # typer turns Ctrl-C into the exit code 130
        sys.stderr.write("error: interrupted; nothing was changed\n")
        return 1
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
