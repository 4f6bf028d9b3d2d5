"""An internal error is one line on the command line; ``--debug`` or ``METARESP_DEBUG=1``
adds its traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

import metaresp.corpus
from metaresp.cli import DEBUG_VARIABLE, main


def _broken(*args: object, **kwargs: object) -> object:
    raise RuntimeError("simulated bug")


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metaresp.corpus, "check_extractions", _broken)
    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)


def test_internal_error_is_one_line(
    broken: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, "validate", "--extractions", str(tmp_path))
    assert code == 1
    assert err.splitlines() == [
        "error: internal error (RuntimeError: simulated bug); please report it with the "
        "command you ran"
    ]


def test_debug_flag_shows_the_traceback(
    broken: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, "--debug", "validate", "--extractions", str(tmp_path))
    assert code == 1
    assert err.startswith("Traceback (most recent call last):")
    assert "RuntimeError: simulated bug" in err
    assert err.splitlines()[-1].startswith("error: internal error (RuntimeError")
    # the flag does not stick to the next call
    assert "Traceback" not in _run(capsys, "validate", "--extractions", str(tmp_path))[1]


def test_debug_variable_shows_the_traceback(
    broken: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(DEBUG_VARIABLE, "1")
    code, err = _run(capsys, "validate", "--extractions", str(tmp_path))
    assert code == 1
    assert "Traceback (most recent call last):" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from metaresp import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"metaresp {__version__}\n"
