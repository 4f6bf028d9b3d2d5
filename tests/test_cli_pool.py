"""``metaresp pool`` on CSV and XLSX tables: results, JSON, plots and one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import metaresp
from factories import DEFAULT_MODEL_JSON
from metaresp.cli import main

ROWS = [
    ("Merz 2024 talquetamab", 22, 28, "GPRC5D"),
    ("MCARH109", 7, 10, "GPRC5D"),
    ("Merz 2024 teclistamab", 24, 37, "BCMA"),
    ("MajesTEC-1 C", 5, 11, "BCMA"),
    ("Tec RWE", 7, 21, "BCMA"),
]


def write_csv(
    path: Path,
    rows: list[tuple[object, ...]] = ROWS,
    header: str = "study,responders,evaluable,target",
) -> Path:
    path.write_text(
        header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n", encoding="utf-8"
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["pool", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_matches_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = write_csv(tmp_path / "t.csv")
    code, out, err = run(
        capsys,
        str(table),
        "--events",
        "responders",
        "--totals",
        "evaluable",
        "--labels",
        "study",
        "--json",
    )
    assert (code, err) == (0, "")
    data = json.loads(out)
    direct = metaresp.pool([r[1] for r in ROWS], [r[2] for r in ROWS])
    assert data["pooled"]["proportion"] == direct.proportion
    assert data["pooled"]["ci_low"] == direct.ci_low
    assert [s["label"] for s in data["studies"]] == [r[0] for r in ROWS]
    # the default model is the Bayesian one, its priors written out
    assert data["model"] == DEFAULT_MODEL_JSON


def test_text_by_subgroup_and_model_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = write_csv(tmp_path / "t.csv")
    code, out, _ = run(
        capsys,
        str(table),
        "--events",
        "responders",
        "--totals",
        "evaluable",
        "--labels",
        "study",
        "--by",
        "target",
        "--estimator",
        "REML",
    )
    assert code == 0
    direct = metaresp.pool([24, 5, 7], [37, 11, 21], estimator="REML", ci="hksj")
    assert "target = BCMA" in out
    assert "target = GPRC5D" in out
    assert "pooled: k = 3, 36/69\ncommon effect (inverse variance):" in out
    assert f"random effects (REML τ²):         {100 * direct.proportion:.1f}% (95% CI" in out
    assert "Hartung-Knapp" in out
    assert "test for subgroup differences: Q = " in out
    assert "overall (all rows)\npooled: k = 5, 65/107" in out


def test_xlsx_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["study", "x", "n"])
    for label, x, n, _ in ROWS:
        sheet.append([label, x, n])
    book.save(tmp_path / "t.xlsx")
    png = tmp_path / "forest.png"
    code, out, err = run(
        capsys,
        str(tmp_path / "t.xlsx"),
        "--events",
        "x",
        "--totals",
        "n",
        "--labels",
        "study",
        "--estimator",
        "DL",
        "--ci",
        "z",
        "--plot",
        str(png),
        "--json",
    )
    assert (code, err) == (0, "")
    direct = metaresp.pool([r[1] for r in ROWS], [r[2] for r in ROWS], estimator="DL", ci="z")
    assert json.loads(out)["pooled"]["proportion"] == direct.proportion
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "rows", "expected"),
    [
        (
            ["--events", "resp", "--totals", "evaluable"],
            ROWS,
            [
                "{t}: --events: no column 'resp' (columns: 'study', 'responders', 'evaluable', "
                "'target')"
            ],
        ),
        (
            ["--events", "responders", "--totals", "evaluable"],
            [
                ("A", "five", 7, "x"),
                ("B", 3, "", "x"),
                ("C", 4.5, 9, "x"),
                ("D", 9, 8, "x"),
                ("E", -1, 4, "x"),
            ],
            [
                "{t}: row 2, column 'responders': 'five' is not a whole number",
                "{t}: row 3, column 'evaluable': empty cell",
                "{t}: row 4, column 'responders': '4.5' is not a whole number",
                "{t}: row 5: events 9 > total 8 (columns 'responders', 'evaluable')",
                "{t}: row 6, column 'responders': -1 is negative",
            ],
        ),
        (
            ["--events", "responders", "--totals", "evaluable", "--transform", "probit"],
            ROWS,
            ["--transform: 'probit' is not one of logit, freeman-tukey, arcsine, raw, log"],
        ),
        (
            [
                "--events",
                "responders",
                "--totals",
                "evaluable",
                "--transform",
                "arcsine",
                "--estimator",
                "GLMM",
            ],
            ROWS,
            [
                'model options: --estimator: "GLMM" is a logit model and needs --transform logit; '
                "got --transform arcsine"
            ],
        ),
    ],
)
def test_bad_input_one_line_each(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    rows: list[tuple[object, ...]],
    expected: list[str],
) -> None:
    table = write_csv(tmp_path / "t.csv", rows)
    code, out, err = run(capsys, str(table), *args)
    assert code == 1
    assert out == ""
    assert err.splitlines() == ["error: " + e.format(t=table) for e in expected]


def test_wrong_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.csv"
    code, _, err = run(capsys, str(missing), "--events", "a", "--totals", "b")
    assert (code, err) == (1, f"error: {missing}: file not found\n")
    other = tmp_path / "t.xls"
    other.write_bytes(b"\xd0\xcf\x11\xe0")
    code, _, err = run(capsys, str(other), "--events", "a", "--totals", "b")
    assert (code, err) == (
        1,
        f"error: {other}: not a CSV or XLSX file (suffix '.xls'); save it as .csv or .xlsx\n",
    )
    fake = tmp_path / "t.xlsx"
    fake.write_text("not a zip", encoding="utf-8")
    code, _, err = run(capsys, str(fake), "--events", "a", "--totals", "b")
    assert code == 1
    assert err.startswith(f"error: {fake}: cannot read the table (")
    assert len(err.splitlines()) == 1


def test_json_and_text_say_which_model_was_fitted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zeros = [("A", 0, 5, "x"), ("B", 0, 7, "x"), ("C", 0, 9, "x")]
    table = write_csv(tmp_path / "z.csv", zeros)
    args = (
        *(str(table), "--events", "responders", "--totals", "evaluable", "--labels", "study"),
        *("--estimator", "GLMM"),
    )
    code, out, err = run(capsys, *args, "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["model"]["estimator"] == "GLMM"  # what was asked for
    assert data["fallback"] is True
    assert data["fitted"]["estimator"] == data["pooled"]["estimator"] != "GLMM"
    assert data["q_kind"] == "cochran"
    assert data["fallback_reason"]
    code, out, _ = run(capsys, *args)
    assert code == 0
    # the header names the model fitted, then why and what to try, in command-line words
    assert out.splitlines()[0].startswith("Model: Random effects, inverse variance, REML")
    assert "could not be fitted: every study has 0 or all events" in out
    assert "--estimator REML --ci hksj" in out
    assert "estimator=" not in out
    assert "weight" in out.splitlines()[5]
    glmm = write_csv(tmp_path / "t.csv")
    code, out, _ = run(
        capsys,
        *(str(glmm), "--events", "responders", "--totals", "evaluable", "--json"),
        *("--estimator", "GLMM"),
    )
    data = json.loads(out)
    assert (data["fallback"], data["q_kind"], data["fitted"]["estimator"]) == (
        False,
        "wald",
        "GLMM",
    )
    assert all(s["weight"] is None for s in data["studies"])
    code, out, _ = run(
        capsys, str(glmm), "--events", "responders", "--totals", "evaluable", "--estimator", "GLMM"
    )
    assert "Wald Q = " in out
    assert " n/a" in out  # the GLMM gives no weights: said, not left blank


def test_plot_takes_a_title_and_an_axis_label(tmp_path: Path) -> None:
    from metaresp.poolcli import run_pool

    table = write_csv(tmp_path / "my-table.csv")
    svg = tmp_path / "forest.svg"
    run_pool(
        table,
        events="responders",
        totals="evaluable",
        labels="study",
        plot=svg,
        title="Response to talquetamab",
        xlabel="Responders (%)",
    )
    text = svg.read_text(encoding="utf-8")
    assert "Response to talquetamab" in text
    assert "Responders (%)" in text
    assert "my-table" not in text  # the file name is not a title
    run_pool(table, events="responders", totals="evaluable", plot=svg)
    assert "Proportion (%)" in svg.read_text(encoding="utf-8")


@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_same_column_for_events_and_totals_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], json_flag: tuple[str, ...]
) -> None:
    table = write_csv(tmp_path / "t.csv")
    code, out, err = run(
        capsys, str(table), "--events", "responders", "--totals", "responders", *json_flag
    )
    assert (code, out) == (1, "")
    assert err == (
        f"error: {table}: --events and --totals both name the column 'responders'; "
        "give each its own column\n"
    )


def test_sheet_for_a_csv_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = write_csv(tmp_path / "t.csv")
    code, _, err = run(
        capsys, str(table), "--events", "responders", "--totals", "evaluable", "--sheet", "S"
    )
    assert code == 1
    assert "--sheet 'S' is for XLSX workbooks" in err
    assert len(err.splitlines()) == 1


def test_empty_table_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = write_csv(tmp_path / "t.csv", [])
    code, out, err = run(capsys, str(table), "--events", "responders", "--totals", "evaluable")
    assert (code, out) == (1, "")
    assert "the table has no rows" in err


@pytest.mark.parametrize("header", ["Study", "LABEL", "author"])
def test_labels_come_from_a_study_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str
) -> None:
    table = write_csv(tmp_path / "t.csv", header=f"{header},responders,evaluable,target")
    code, out, _ = run(capsys, str(table), "--events", "responders", "--totals", "evaluable")
    assert code == 0
    assert "Merz 2024 talquetamab" in out
    assert "Row 2" not in out


def test_rows_are_labelled_without_a_label_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = write_csv(tmp_path / "t.csv", header="name,responders,evaluable,target")
    code, out, _ = run(capsys, str(table), "--events", "responders", "--totals", "evaluable")
    assert code == 0
    assert "Row 2" in out


def test_glmm_weights_are_na_with_a_footnote_and_iv_weights_are_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = write_csv(tmp_path / "t.csv")
    args = (str(table), "--events", "responders", "--totals", "evaluable")
    code, out, _ = run(capsys, *args, "--estimator", "GLMM")
    assert code == 0
    assert out.count(" n/a\n") == len(ROWS)
    assert "n/a: the GLMM gives the studies no inverse-variance weights" in out
    code, out, _ = run(capsys, *args, "--estimator", "DL")
    weights = metaresp.pool([r[1] for r in ROWS], [r[2] for r in ROWS], estimator="DL").weights
    assert weights is not None
    assert f"{weights[0]:.1f}%" in out
    assert "n/a" not in out


def test_fe_gets_a_z_interval_and_no_prediction_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = write_csv(tmp_path / "t.csv")
    code, out, _ = run(
        capsys, str(table), "--events", "responders", "--totals", "evaluable", "--estimator", "FE"
    )
    assert code == 0
    assert (
        out.splitlines()[0] == "Model: Common effect, inverse variance (logit), 95% Wald z interval"
    )
    assert "prediction interval:              not shown" in out
    assert "Hartung" not in out


def test_one_interval_style_in_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    table = write_csv(tmp_path / "t.csv")
    for est in ("GLMM", "REML", "BAYES"):
        code, out, _ = run(
            capsys,
            str(table),
            "--events",
            "responders",
            "--totals",
            "evaluable",
            "--estimator",
            est,
        )
        assert code == 0
        assert not re.search(r"\d–\d|\d% to \d", out), out
        if est == "BAYES":
            assert "95% CrI" in out
            assert "95% CI " not in out.split("\n", 7)[-1]


def test_model_errors_speak_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = write_csv(tmp_path / "t.csv")
    args = (str(table), "--events", "responders", "--totals", "evaluable")
    code, _, err = run(capsys, *args, "--transform", "arcsine", "--estimator", "GLMM")
    assert code == 1
    assert "--transform logit" in err
    assert 'transform="' not in err
    code, _, err = run(capsys, *args, "--estimator", "BAYES", "--tau-prior", "foo(1)")
    assert code == 1
    assert err.startswith("error: model options: --tau-prior: cannot read 'foo(1)'")


def test_prediction_interval_for_fe_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = write_csv(tmp_path / "t.csv")
    args = (str(table), "--events", "responders", "--totals", "evaluable")
    fe = metaresp.pool([r[1] for r in ROWS], [r[2] for r in ROWS], estimator="FE")
    code, out, _ = run(capsys, *args, "--estimator", "FE", "--prediction")
    assert code == 0
    assert f"{100 * fe.pi_low:.1f} to {100 * fe.pi_high:.1f} (t, 3 df)" in out  # type: ignore[operator]
    code, out, _ = run(capsys, *args, "--no-prediction")
    assert re.search(r"prediction interval: +not shown \(--no-prediction\)", out)
