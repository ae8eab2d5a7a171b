"""`kronos evaluate` end to end on a small CSV with the tiny fixture model."""

from __future__ import annotations

import pandas as pd

from kronos.commands.main import main


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
    assert len(records) == 4 * 12 * 5 * 6  # methods x origins x steps x columns
    assert set(records["method"]) == {"kronos", "persistence", "drift", "gaussian_rw"}
    assert records.groupby("method")["origin"].nunique().eq(12).all()
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    best = summary["crps_best_baseline"].iloc[0]
    assert best in ("persistence", "drift", "gaussian_rw") and summary.loc[best, "crps_ratio"] == 1.0
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
