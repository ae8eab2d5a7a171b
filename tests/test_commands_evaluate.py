"""`kronos evaluate` end to end with the tiny fixture model: the full report, baselines only, context
warnings, and errors on one line."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import make_bars, random_bars, universe_table

from kronos.commands.main import main
from kronos.forecasting.core import ContextWarning

torch.set_num_threads(1)


def test_evaluate_command_writes_the_full_report(tmp_path, tiny_dir, tiny_ohlcv, capsys):
    data = tmp_path / "bars.csv"
    tiny_ohlcv.to_csv(data, index=False)
    out = tmp_path / "report"
    argv = [
        "evaluate",
        str(data),
        "--model",
        str(tiny_dir / "model"),
        "--tokenizer",
        str(tiny_dir / "tokenizer"),
        "--lookback",
        "48",
        "--steps",
        "5",
        "--origins",
        "12",
        "--paths",
        "6",
        "--out",
        str(out),
        "--html",
        "--bootstrap",
        "200",
        "--max-context",
        "64",
        "--quiet",
    ]
    assert main(argv) == 0
    assert "report:" in capsys.readouterr().out
    for name in (
        "report.md",
        "report.html",
        "records.csv",
        "records.parquet",
        "volatility.csv",
        "summary.csv",
    ):
        assert (out / name).is_file(), name
    for name in ("calibration.png", "error_by_horizon.png", "examples.png"):
        assert (out / "plots" / name).stat().st_size > 1000, name
    report = (out / "report.md").read_text()
    for heading in (
        "## Summary (close)",
        "## Ratio to the best baseline",
        "## Error by horizon",
        "## Calibration",
    ):
        assert heading in report
    assert "**kronos** CRPS is" in report and "![Example forecasts](plots/examples.png)" in report
    page = (out / "report.html").read_text()
    assert page.count("<img") == 4 and "<table" in page and "Summary (close)" in page
    records = pd.read_csv(out / "records.csv")
    methods = ["kronos", "persistence", "drift", "gaussian_rw", "ewma", "garch11"]
    assert len(records) == len(methods) * 12 * 5 * 6  # methods x origins x steps x columns
    assert set(records["method"]) == set(methods)
    assert records.groupby("method")["origin"].nunique().eq(12).all()
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert summary.index.tolist() == methods
    best = summary["crps_best_baseline"].iloc[0]
    assert best in methods[1:] and summary.loc[best, "crps_ratio"] == 1.0
    for metric in ("crps", "mae"):  # the model's Diebold-Mariano p-value against the best baseline
        assert 0 <= summary.loc["kronos", f"{metric}_dm_p"] <= 1
    assert np.isnan(summary.loc[best, "crps_dm_p"])  # the best baseline against itself: no difference
    significance = pd.read_csv(out / "significance.csv")
    assert set(significance["series"]) == {"pooled", "bars"}
    assert set(significance["verdict"]) <= {"better", "worse", "not distinguishable"}
    volatility = pd.read_csv(out / "volatility.csv")
    assert set(volatility["method"]) == {"kronos", "historical", "ewma", "garch11"}  # daily bars: no HAR-RV
    assert (volatility["qlike"] >= 0).all() and volatility.groupby("method").size().eq(12).all()
    assert "## Volatility forecasts (close)" in report and "Garman-Klass" in report
    assert not any(p.name.startswith(".report-partial") for p in tmp_path.iterdir())


def test_baselines_only_and_errors(tmp_path, tiny_ohlcv, capsys):
    data = tmp_path / "bars.csv"
    tiny_ohlcv.drop(columns=["amount"]).to_csv(data, index=False)
    out = tmp_path / "r"
    common = ["evaluate", str(data), "--lookback", "30", "--steps", "4", "--quiet", "--out", str(out)]
    assert main([*common, "--baselines-only", "--every", "50", "--no-plots"]) == 0
    records = pd.read_csv(out / "records.csv")
    assert set(records["column"]) == {"open", "high", "low", "close", "volume"}  # amount was not in the data
    assert not (out / "plots").exists()
    assert main([*common, "--baselines-only", "--baselines", "naive"]) == 2
    assert "unknown ['naive']" in capsys.readouterr().err
    assert main([*common, "--model", str(tmp_path / "missing")]) == 2
    assert "is neither a checkpoint directory nor a Hugging Face Hub id" in capsys.readouterr().err
    (tmp_path / "lonely").mkdir()
    assert main([*common, "--model", str(tmp_path / "lonely")]) == 2
    assert "--tokenizer" in capsys.readouterr().err
    assert main(["evaluate", str(data), "--lookback", "30"]) == 2  # argparse's error, on one line
    assert capsys.readouterr().err.count("\n") == 1


def test_evaluate_checks_its_bootstrap(tmp_path, capsys):
    path = tmp_path / "bars.csv"
    random_bars(60).to_csv(path, index=False)
    assert (
        main(
            [
                "evaluate",
                str(path),
                "--steps",
                "3",
                "--baselines-only",
                "--lookback",
                "10",
                "--bootstrap",
                "0",
            ]
        )
        == 2
    )
    assert "--bootstrap must be a positive number" in capsys.readouterr().err


def test_evaluate_beyond_the_context_warns_and_says_so_in_the_report(tmp_path, capsys):
    data = tmp_path / "long.csv"
    make_bars(1040, seed=4, freq="h").to_csv(data, index=False)
    out = tmp_path / "report"
    args = ["evaluate", str(data), "--lookback", "1024", "--steps", "4", "--origins", "2", "--paths", "4"]
    with pytest.warns(
        ContextWarning, match="lookback of 1024 bars is longer than the model's context of 128"
    ):
        assert main([*args, "--quiet", "--no-plots", "--bootstrap", "50", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "The lookback of 1024 bars is longer than the model's context of 128" in report


def test_evaluate_and_train_refuse_a_bad_output_folder_before_reading_data(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    missing_data = str(tmp_path / "no.csv")
    evaluate = ["evaluate", missing_data, "--steps", "3", "--out", str(tmp_path / "a_file")]
    train = ["train", "tokenizer", "--data", missing_data, "--out", str(tmp_path / "a_file")]
    for args, message in (
        (evaluate, "--out .*a_file' exists and is not a folder"),
        (train, "train.out_dir .*a_file' is not a folder"),
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        assert re.search(message, err), err


CROSS_SECTION_COLUMNS = [
    "rank_ic_mean",
    "rank_ic_t",
    "ic_mean",
    "icir",
    "turnover",
    "long_short_return_net",
    "long_short_sharpe_net",
]


def test_cross_section_writes_one_row_per_method_with_the_required_columns(tmp_path, tiny_dir, capsys):
    data = tmp_path / "universe.csv"
    universe_table(6, 80, seed=1).to_csv(data, index=False)
    out = tmp_path / "xs"
    argv = [
        "evaluate",
        str(data),
        "--id-column",
        "symbol",
        "--cross-section",
        "--horizon",
        "3",
        "--rebalance",
        "2",
    ]
    argv += [
        "--top-k",
        "2",
        "--cost-bps",
        "5",
        "--model",
        str(tiny_dir / "model"),
        "--tokenizer",
        str(tiny_dir / "tokenizer"),
    ]
    argv += ["--lookback", "24", "--paths", "3", "--start", "2020-03-02", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out
    summary = pd.read_csv(out / "cross_section.csv", index_col="method")
    assert list(summary.index) == [
        "kronos", "kronos_median", "kronos_p_up", "kronos_return_over_vol",
        "momentum_5", "momentum_20", "reversal_1", "low_vol_20", "random",
    ]  # fmt: skip
    assert set(CROSS_SECTION_COLUMNS) <= set(summary.columns)
    assert summary[CROSS_SECTION_COLUMNS].notna().all().all()
    dates = pd.read_csv(out / "cross_section_dates.csv", parse_dates=["date"])
    assert dates["date"].min() >= pd.Timestamp("2020-03-02") and (dates.groupby("date").size() == 9).all()
    assert (summary["n_dates"] == dates["date"].nunique()).all()
    for name in ("cumulative_ic.png", "quantiles.png", "equity.png"):
        assert (out / "plots" / name).stat().st_size > 1000, name
    report = (out / "report.md").read_text()
    assert "## Verdict" in report and "Against the best baseline" in report


def test_cross_section_baselines_only_and_its_one_line_errors(tmp_path, capsys):
    data = tmp_path / "universe.csv"
    universe_table(8, 120, seed=2).to_csv(data, index=False)
    base = [
        "evaluate",
        str(data),
        "--cross-section",
        "--horizon",
        "5",
        "--out",
        str(tmp_path / "xs"),
        "--quiet",
    ]
    assert main([*base, "--id-column", "symbol", "--baselines-only", "--no-plots"]) == 0
    summary = pd.read_csv(tmp_path / "xs" / "cross_section.csv", index_col="method")
    assert list(summary.index) == ["momentum_5", "momentum_20", "reversal_1", "low_vol_20", "random"]
    capsys.readouterr()
    for extra, message in [
        (["--id-column", "ticker"], "--id-column 'ticker': universe.csv has no id column 'ticker'"),
        (["--id-column", "symbol", "--rebalance", "0"], "--rebalance must be a positive number, got 0"),
        (
            ["--id-column", "symbol", "--top-k", "5"],
            "--top-k 5 is too large: .* the universe has 8; give --top-k at most 4",
        ),
        (["--id-column", "symbol", "--cost-bps", "-2"], "--cost-bps must be a finite number"),
        (["--id-column", "symbol", "--end", "someday"], "--end 'someday' is not a date"),
        (
            ["--id-column", "symbol", "--every", "3"],
            "--every: single-series options, not used by --cross-section",
        ),
        ([], "--cross-section needs --id-column"),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and re.search(message, err), err
    few = tmp_path / "few.csv"
    universe_table(4, 120).to_csv(few, index=False)
    assert main(["evaluate", str(few), "--id-column", "symbol", *base[2:], "--baselines-only"]) == 2
    assert "universe has 4 series (by 'symbol'); a cross-section needs at least 5" in capsys.readouterr().err


def test_evaluate_scores_only_between_start_and_end(tmp_path, capsys):
    path = tmp_path / "bars.csv"
    bars = random_bars(120)
    bars.to_csv(path, index=False)
    out = tmp_path / "r"
    common = ["evaluate", str(path), "--steps", "3", "--baselines-only", "--lookback", "20", "--quiet"]
    dates = ["--start", str(bars["timestamps"][60]), "--end", str(bars["timestamps"][90])]
    assert main([*common, *dates, "--baselines", "persistence", "--no-plots", "--out", str(out)]) == 0
    origins = pd.read_csv(out / "records.csv")["origin"]
    assert origins.min() >= 60 and origins.max() + 3 <= 91
    assert "Only origins whose forecast bars lie within" in (out / "report.md").read_text()
    assert main([*common, "--start", "2024-02-01", "--end", "2024-01-01"]) == 2
    assert "--end 2024-01-01 is before --start 2024-02-01" in capsys.readouterr().err
    assert main([*common, "--start", "someday"]) == 2
    assert "--start 'someday' is not a date" in capsys.readouterr().err
    assert main([*common, "--start", "2100-01-01", "--out", str(tmp_path / "late")]) == 2
    assert "after the last bar of every series" in capsys.readouterr().err
