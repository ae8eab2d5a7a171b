"""`kronos forecast`: files to CSV, Parquet and PNG, the shipped model, long tables, decoding
options, calibration, the library's numbers for the same seed, output files, and errors on one line."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import calm_bars, file_size_limit, make_bars, random_bars

from kronos import KronosPredictor
from kronos.commands.main import main
from kronos.forecasting.calibration import fit_origins, required_rows
from kronos.forecasting.pretrained import DEFAULT_MODEL, shipped_dir
from kronos.forecasting.series import FEATURE_COLUMNS

torch.set_num_threads(1)
EXAMPLES = shipped_dir().parents[3] / "examples"
EXAMPLE = EXAMPLES / "sp500_daily.csv"


@pytest.fixture
def five_minute_csv(tmp_path):
    path = tmp_path / "bars.csv"
    calm_bars(200, "5min").to_csv(path, index=False)
    return path


def tiny_forecast_args(csv, model_dir) -> list[str]:
    """`kronos forecast` arguments for 12 steps of 8 paths of the tiny model, on CPU."""
    return [str(csv), "--steps", "12", "--model", str(model_dir), "--paths", "8", "--device", "cpu"]


@pytest.fixture
def forecast(kronos_command):
    """`kronos forecast ARGS`: (exit status, stderr lines)."""

    def run(args: list[str]) -> tuple[int, list[str]]:
        status, _, err = kronos_command("forecast", *args)
        return status, err

    return run


def test_forecast_writes_csv_and_plot(tiny_dir, five_minute_csv, tmp_path, capsys):
    out, png = tmp_path / "f.csv", tmp_path / "f.png"
    args = tiny_forecast_args(five_minute_csv, tiny_dir)
    assert main(["forecast", *args, "--out", str(out), "--plot", str(png)]) == 0
    forecast = pd.read_csv(out, parse_dates=["timestamps"])
    assert list(forecast.columns[:3]) == ["timestamps", "open_mean", "open_q0.025"]
    assert {"close_mean", "close_q0.1", "close_q0.9", "prob_close_above_last", "realized_vol"} <= set(
        forecast
    )
    assert len(forecast) == 12
    expected = pd.date_range(
        pd.Timestamp("2024-03-04 09:30") + pd.Timedelta(minutes=5 * 200), periods=12, freq="5min"
    )
    assert (forecast["timestamps"] == expected).all()
    assert np.isfinite(forecast.iloc[:, 1:].to_numpy()).all()
    assert (
        (forecast["close_q0.1"] <= forecast["close_q0.5"])
        & (forecast["close_q0.5"] <= forecast["close_q0.9"])
    ).all()
    assert forecast["close_mean"].between(30, 80).all()  # the model's own output range, around a price of ~50
    assert png.stat().st_size > 20_000 and png.read_bytes()[:4] == b"\x89PNG"
    err = capsys.readouterr().err
    assert f"model: {tiny_dir}" in err and "12 steps (frequency 5min)" in err
    # The same seed gives the same forecast.
    assert main(["forecast", *args, "--out", str(tmp_path / "g.csv")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "g.csv"), pd.read_csv(out))


def test_forecast_uses_the_shipped_model_by_default(tmp_path, capsys):
    if not (shipped_dir() / "model" / "model.safetensors").is_file():
        pytest.fail(f"the shipped model is missing from {shipped_dir()}")
    out = tmp_path / "f.csv"
    assert main(["forecast", str(EXAMPLES / "sp500_daily.csv"), "--steps", "20", "--out", str(out)]) == 0
    forecast = pd.read_csv(out, parse_dates=["timestamps"])
    history = pd.read_csv(EXAMPLES / "sp500_daily.csv", parse_dates=["timestamps"])
    assert len(forecast) == 20 and (forecast["timestamps"].dt.day_of_week < 5).all()
    assert forecast["timestamps"].iloc[0] > history["timestamps"].iloc[-1]
    last = history["close"].iloc[-1]
    assert forecast["close_mean"].between(0.7 * last, 1.3 * last).all()
    assert f"model: {DEFAULT_MODEL} (shipped with the package)" in capsys.readouterr().err


def test_forecast_of_a_long_table_and_of_one_symbol_in_it(tiny_dir, tmp_path, capsys):
    table = pd.concat(
        [calm_bars(120, "h", seed=1).assign(sym="A"), calm_bars(120, "h", seed=2).assign(sym="B")]
    )
    path = tmp_path / "long.csv"
    table.rename(columns={"close": "Last"}).to_csv(path, index=False)
    args = [
        "forecast",
        str(path),
        "--steps",
        "5",
        "--model",
        str(tiny_dir),
        "--paths",
        "4",
        "--columns",
        "close=Last",
    ]
    out = tmp_path / "all.parquet"
    assert main([*args, "--id-column", "sym", "--out", str(out)]) == 0
    both = pd.read_parquet(out)
    assert (
        list(both.columns[:2]) == ["symbol", "timestamps"]
        and both["symbol"].tolist() == ["A"] * 5 + ["B"] * 5
    )
    assert "2 series: 5 steps" in capsys.readouterr().err
    assert main([*args, "--id-column", "sym", "--symbol", "B"]) == 0
    captured = capsys.readouterr()
    printed = pd.read_csv(pd.io.common.StringIO(captured.out))
    assert len(printed) == 5 and "long.csv[sym=B]: 5 steps" in captured.err
    # a series' forecast does not depend on the others in the table: B alone equals B among A and B
    b_alone = printed.drop(columns="timestamps").to_numpy()
    b_in_table = both[both["symbol"] == "B"].drop(columns=["symbol", "timestamps"]).to_numpy()
    np.testing.assert_array_equal(b_alone, b_in_table.astype(np.float64))
    assert main([*args, "--id-column", "sym", "--plot", str(tmp_path / "p.png")]) == 2
    assert "--plot draws one series" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        (lambda df: df.drop(columns="low"), [], r"missing price column\(s\) \['low'\]"),
        (
            lambda df: df.assign(
                timestamps=df["timestamps"].sample(frac=1, random_state=0).sort_values().values
                + pd.to_timedelta(np.random.default_rng(0).integers(0, 3600, 200), "s")
            ),
            [],
            "cannot infer the bar frequency",
        ),
        (lambda df: df, ["--steps", "0"], "--steps must be a positive number"),
        (
            lambda df: df,
            ["--model", "/no/such-dir"],
            "'/no/such-dir' is neither a checkpoint directory nor a Hugging Face Hub id",
        ),
    ],
    ids=["missing-column", "irregular-time", "zero-steps", "bad-model"],
)
def test_forecast_errors_are_one_clear_line(tiny_dir, tmp_path, capsys, change, extra, message):
    path = tmp_path / "bars.csv"
    change(calm_bars(200, "h")).to_csv(path, index=False)
    args = [
        "forecast",
        str(path),
        "--steps",
        "5",
        "--model",
        str(tiny_dir),
        "--out",
        str(tmp_path / "f.csv"),
        *extra,
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("kronos forecast: error:")
    assert re.search(message, err)
    assert not (tmp_path / "f.csv").exists()


def test_forecast_decoding_options(tiny_dir, five_minute_csv, tmp_path):
    args = tiny_forecast_args(five_minute_csv, tiny_dir)
    frames = {}
    for name, extra in {
        "exact": [],
        "streaming": ["--window", "streaming"],
        "bfloat16": ["--dtype", "bfloat16"],
        "anchor": ["--anchor"],
        "center": ["--center"],
    }.items():
        out = tmp_path / f"{name}.csv"
        assert main(["forecast", *args, *extra, "--out", str(out)]) == 0
        frames[name] = pd.read_csv(out)
    # 200 bars + 12 steps stay within the context: streaming never slides and is exact
    pd.testing.assert_frame_equal(frames["streaming"], frames["exact"])
    median = frames["exact"]["close_q0.5"]
    assert np.allclose(frames["bfloat16"]["close_q0.5"], median, rtol=0.05)
    assert not np.array_equal(frames["bfloat16"]["close_q0.5"], median)  # it did run in bfloat16
    # --anchor moves every close path, hence every quantile, by one amount; volume stays
    moved = frames["anchor"]["close_q0.5"] - median
    assert abs(moved.iloc[0]) > 1e-6 and np.allclose(moved, moved.iloc[0], rtol=1e-3, atol=1e-4)
    volume = [c for c in frames["exact"] if c.startswith("volume")]
    assert volume
    pd.testing.assert_frame_equal(frames["anchor"][volume], frames["exact"][volume])
    # --center keeps the median close at the last close; volume stays
    last = np.float32(pd.read_csv(five_minute_csv)["close"].iloc[-1])
    np.testing.assert_allclose(frames["center"]["close_q0.5"], last, rtol=1e-5)
    assert not np.allclose(median, last, rtol=1e-5)
    pd.testing.assert_frame_equal(frames["center"][volume], frames["exact"][volume])
    # with a context of 100 bars the window slides: streaming then differs from exact, a little
    slid = {}
    for window in ("exact", "streaming"):
        out = tmp_path / f"slid-{window}.csv"
        assert main(["forecast", *args, "--max-context", "100", "--window", window, "--out", str(out)]) == 0
        slid[window] = pd.read_csv(out)["close_q0.5"]
    assert not np.array_equal(slid["streaming"], slid["exact"])
    assert np.allclose(slid["streaming"], slid["exact"], rtol=0.05)


def test_forecast_refuses_an_unknown_window(tiny_dir, five_minute_csv, capsys):
    assert main(["forecast", str(five_minute_csv), "--model", str(tiny_dir), "--window", "sliding"]) == 2
    assert "--window: invalid choice: 'sliding'" in capsys.readouterr().err


def test_the_command_refuses_what_used_to_come_back_as_nan_with_exit_0(tiny_dir, tmp_path, forecast):
    path, out = tmp_path / "bars.csv", tmp_path / "f.csv"
    random_bars(60, "h").assign(volume=lambda f: f["volume"] * 1e20).to_csv(path, index=False)
    status, err = forecast([str(path), "--steps", "3", "--model", str(tiny_dir), "--out", str(out)])
    assert status == 2 and len(err) == 1
    assert err[0].startswith("kronos forecast: error: series symbol='bars' column 'volume'")
    assert not out.exists()


def test_the_shipped_model_forecasts_129_steps(tmp_path, forecast):
    path, out = tmp_path / "bars.csv", tmp_path / "f.csv"
    random_bars(200).to_csv(path, index=False)
    status, err = forecast([str(path), "--steps", "129", "--paths", "2", "--out", str(out)])
    assert status == 0, err
    table = pd.read_csv(out)
    assert len(table) == 129 and np.isfinite(table.drop(columns="timestamps").to_numpy()).all()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--threads", "-1"], "--threads must be a positive number"),
        (["--steps", "10001"], "--steps must be at most 10,000"),
        (["--freq=-1D"], "does not step forward in time"),
        (["--temperature", "1e-40"], "at least 0.0001"),
        (["--lookback", "9"], "--lookback must be at least 10 bars"),
        (["--plot", "f.jpg"], "must end in .png"),
        (["--out", "no/such/folder/f.csv"], "does not exist"),
        (["--paths", "two"], "argument --paths: invalid int value"),
    ],
)
def test_command_arguments_are_checked_on_one_line(tiny_dir, tmp_path, forecast, extra, message):
    path = tmp_path / "bars.csv"
    random_bars(60, "h").to_csv(path, index=False)
    status, err = forecast([str(path), "--steps", "3", "--model", str(tiny_dir), *extra])
    assert status == 2 and len(err) == 1 and err[0].startswith("kronos forecast: error:"), err
    assert message in err[0]


def test_timestamps_with_their_offsets_across_daylight_saving_changes_forecast(tiny_dir, tmp_path, forecast):
    """Written with their UTC offsets, hourly bars across a clock change load and forecast: as local
    wall-clock times into summer time, in UTC out of it (where local times repeat an hour)."""
    for start, read in (("2024-03-08 00:00", "local wall-clock times"), ("2024-11-01 00:00", "in UTC")):
        path, out = tmp_path / "bars.csv", tmp_path / "f.csv"
        frame = random_bars(120, "h", start=start, tz="America/New_York")
        frame.to_csv(path, index=False)
        status, err = forecast([str(path), "--steps", "3", "--model", str(tiny_dir), "--out", str(out)])
        assert status == 0, err
        assert err[0].startswith("kronos forecast: warning:") and read in err[0]
        last = frame["timestamps"].iloc[-1]
        last = last.tz_localize(None) if read.startswith("local") else last.tz_convert("UTC")
        expected = pd.date_range(last + pd.Timedelta(hours=1), periods=3, freq="h")
        assert list(pd.to_datetime(pd.read_csv(out)["timestamps"])) == list(expected)


def test_a_close_only_file_is_offered_a_clearly_labelled_way_forward(tiny_dir, tmp_path, forecast):
    path, out = tmp_path / "closes.csv", tmp_path / "f.csv"
    random_bars(60, "h")[["timestamps", "close"]].to_csv(path, index=False)
    args = [str(path), "--steps", "3", "--model", str(tiny_dir), "--out", str(out)]
    status, err = forecast(args)
    assert status == 2 and "kronos --ohlc-from-close" in err[0]
    status, err = forecast([*args, "--ohlc-from-close"])
    assert status == 0 and "open, high and low of 1 series are synthesised from the close" in err[0]
    table = pd.read_csv(out)
    assert table["synthetic_ohlc"].all() and len(table) == 3


def test_cli_bands_equal_predict_quantiles_for_the_same_seed(tmp_path, capsys):
    data = tmp_path / "bars.csv"
    make_bars(400, seed=3, freq="D").to_csv(data, index=False)
    out = tmp_path / "f.csv"
    assert main(["forecast", str(data), "--steps", "7", "--seed", "11", "--out", str(out)]) == 0
    cli = pd.read_csv(out, parse_dates=["timestamps"]).set_index("timestamps")
    assert "lookback 108 bars, context 128" in capsys.readouterr().err
    predictor = KronosPredictor.from_pretrained("kronos-default", device="cpu")
    bars = pd.read_csv(data, parse_dates=["timestamps"]).iloc[-108:]
    bars["amount"] = bars["volume"] * bars[["open", "high", "low", "close"]].mean(axis=1)
    library = predictor.predict_quantiles(
        bars[FEATURE_COLUMNS],
        bars["timestamps"],
        cli.index,
        7,
        quantile_levels=(0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975),
        sampling=predictor.sampling_with(sample_count=20, seed=11),  # the CLI samples as the model says
        series_id="bars",  # the CLI keys a file's draws by its name, as in a folder of files
    )
    assert list(cli.columns) == list(library.columns)
    np.testing.assert_allclose(cli.to_numpy(), library.to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("bad", ["missing-folder", "folder", "under-a-file"])
def test_forecast_refuses_a_bad_output_path_before_anything_else(tmp_path, capsys, bad):
    """The data file and the model do not exist either: the output paths are checked first."""
    (tmp_path / "a_file").write_text("x")
    path = {
        "missing-folder": tmp_path / "no" / "f.csv",
        "folder": tmp_path,
        "under-a-file": tmp_path / "a_file" / "f.csv",
    }[bad]
    for flag in ("--out", "--plot"):
        args = ["forecast", str(tmp_path / "no.csv"), "--steps", "3", "--model", str(tmp_path / "no-model")]
        if flag == "--plot":
            path = path.with_suffix(".png") if path != tmp_path else path
        assert main([*args, flag, str(path)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        assert err.startswith(f"kronos forecast: error: {flag} ")


def test_forecast_under_a_file_size_limit_keeps_the_previous_output(tmp_path, capsys):
    out = tmp_path / "forecast.csv"
    out.write_text("the previous forecast\n")
    args = ["forecast", str(EXAMPLE), "--steps", "20", "--paths", "4", "--out", str(out)]
    with file_size_limit(2048):
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"kronos forecast: error: could not write --out '{out}' (File too large)")
    assert out.read_text() == "the previous forecast\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast.csv"]
    assert main(args) == 0
    assert out.read_text().startswith("timestamps,") and len(out.read_text().splitlines()) == 21


def tiny_model_options(tiny_dir) -> list[str]:
    """The command options of the tiny compatibility model, at a context of 64 bars."""
    return [
        "--model",
        str(tiny_dir / "model"),
        "--tokenizer",
        str(tiny_dir / "tokenizer"),
        "--max-context",
        "64",
    ]


def test_forecast_and_evaluate_commands_calibrate(tmp_path, tiny_dir, tiny_ohlcv, capsys):
    data = tmp_path / "bars.csv"
    tiny_ohlcv.to_csv(data, index=False)
    model = tiny_model_options(tiny_dir)
    common = ["--lookback", "32", "--steps", "4", "--paths", "8", *model]
    out = tmp_path / "f.csv"
    assert main(["forecast", str(data), *common, "--calibrate", "--out", str(out)]) == 0
    assert (
        f"calibrated on {len(fit_origins(len(tiny_ohlcv), 32, 4))} past forecasts" in capsys.readouterr().err
    )
    forecast = pd.read_csv(out)
    assert len(forecast) == 4 and (forecast["close_q0.975"] >= forecast["close_q0.025"]).all()
    short = tmp_path / "short.csv"
    tiny_ohlcv.iloc[:50].to_csv(short, index=False)
    assert main(["forecast", str(short), *common, "--calibrate"]) == 2
    error = capsys.readouterr().err.strip()
    assert (
        error.count("\n") == 0
        and f"--calibrate needs at least {required_rows(32, 4)} bars" in error
        and "short (50 bars)" in error
    )

    report = tmp_path / "report"
    argv = ["evaluate", str(data), *common, "--origins", "6", "--calibrate", "--out", str(report), "--quiet"]
    assert main([*argv, "--bootstrap", "50", "--html"]) == 0
    summary = pd.read_csv(report / "summary.csv", index_col=0)
    assert list(summary.index[:2]) == ["kronos", "kronos-calibrated"]
    assert summary.loc["kronos-calibrated", ["crps_ratio", "coverage_80", "brier"]].notna().all()
    for name in ("by_horizon", "by_column", "pit_histogram", "reliability"):
        table = pd.read_csv(report / f"{name}.csv")
        assert {"kronos", "kronos-calibrated"} <= set(table.iloc[:, 0]), name
    assert (report / "plots" / "reliability.png").stat().st_size > 1000
    text = (report / "report.md").read_text()
    assert "**kronos-calibrated** CRPS is" in text and "## Reliability of P(up) (close)" in text


def test_an_output_naming_an_input_or_a_fifo_is_refused_and_the_input_kept(tmp_path, capsys):
    data = tmp_path / "bars.csv"
    data.write_bytes(EXAMPLE.read_bytes())
    folder = tmp_path / "universe"
    folder.mkdir()
    (folder / "spx.csv").write_bytes(EXAMPLE.read_bytes())
    os.mkfifo(tmp_path / "pipe.csv")
    cases = [
        (["forecast", str(data), "--steps", "2", "--out", str(data)], "--out"),
        (["forecast", str(folder), "--steps", "2", "--out", str(folder / "spx.csv")], "--out"),
        (["forecast", str(data), "--steps", "2", "--out", str(tmp_path / "pipe.csv")], "--out"),
        (["evaluate", str(data), "--steps", "2", "--out", str(data)], "--out"),
    ]
    for argv, flag in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"kronos {argv[0]}: error: {flag} "), err
    assert data.read_bytes() == EXAMPLE.read_bytes() == (folder / "spx.csv").read_bytes()


def test_calibrate_shows_its_progress_on_stderr_unless_quiet(tmp_path, tiny_dir, tiny_ohlcv, capsys):
    data = tmp_path / "bars.csv"
    tiny_ohlcv.to_csv(data, index=False)
    model = tiny_model_options(tiny_dir)
    argv = [
        "forecast",
        str(data),
        "--lookback",
        "32",
        "--steps",
        "4",
        "--paths",
        "4",
        "--batch-size",
        "8",
        *model,
    ]
    past = len(fit_origins(len(tiny_ohlcv), 32, 4))
    assert main([*argv, "--calibrate", "--out", str(tmp_path / "f.csv")]) == 0
    captured = capsys.readouterr()
    assert (
        f"forecasts: 100%|██████████| {past}/{past}" in captured.err and "bars: calibrating" in captured.err
    )
    assert "forecasts:" not in captured.out
    assert main([*argv, "--calibrate", "--quiet", "--out", str(tmp_path / "g.csv")]) == 0
    quiet = capsys.readouterr().err
    assert "forecasts:" not in quiet and f"calibrated on {past} past forecasts" in quiet


# --- the data people have ----------------------------------------------------------------------------


def test_a_split_is_a_warning_line_and_adjust_splits_takes_it_out(tmp_path, kronos_command):
    frame = random_bars(300, "B")
    frame.loc[299:, ["open", "high", "low", "close"]] /= 2  # a 2:1 split on the last bar
    path, out = tmp_path / "split.csv", tmp_path / "f.csv"
    frame.to_csv(path, index=False)
    # the model's own paths (--no-center): centered, the median stays at the last close, reverting or not
    status, _, err = kronos_command("forecast", str(path), "--steps", "5", "--out", str(out), "--no-center")
    assert status == 0
    (warned,) = [line for line in err if line.startswith("kronos forecast: warning:")]
    assert warned.startswith(
        "kronos forecast: warning: split- or jump-like bars in the history of series symbol='split': "
    )
    assert f"bar 108 of 108 ({frame['timestamps'].iloc[-1]})" in warned and "like a 2:1 split" in warned
    assert (pd.read_csv(out)["close_q0.5"] / frame["close"].iloc[-1]).min() > 1.3  # it reverts
    status, _, err = kronos_command(
        "forecast", str(path), "--steps", "5", "--out", str(out), "--adjust-splits"
    )
    assert status == 0
    (warned,) = [line for line in err if line.startswith("kronos forecast: warning:")]
    assert warned.startswith(
        "kronos forecast: warning: split: prices before 1 split-like bar(s) back-adjusted: bar 300 of 300"
    )
    assert (pd.read_csv(out)["close_q0.5"] / frame["close"].iloc[-1]).between(0.8, 1.25).all()


def test_files_that_are_not_csv_text_are_one_line(tmp_path, forecast):
    (tmp_path / "book.csv").write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00[Content_Types].xml")
    random_bars(300).to_csv(tmp_path / "whole.csv.gz", index=False)
    (tmp_path / "cut.csv.gz").write_bytes((tmp_path / "whole.csv.gz").read_bytes()[:900])
    for name, said in (
        ("book.csv", "book.csv is an Excel workbook (.xlsx), but its name says CSV: save it as CSV"),
        ("cut.csv.gz", "cut.csv.gz: its gzip data is truncated or corrupt"),
    ):
        status, err = forecast([str(tmp_path / name), "--steps", "3"])
        assert (
            status == 2 and len(err) == 1 and err[0].startswith(f"kronos forecast: error: {tmp_path / name}")
        ), err
        assert said in err[0]


def test_date_and_time_columns_and_an_adj_close_with_the_quoting_people_type(tiny_dir, tmp_path, forecast):
    frame = calm_bars(120, "30min")
    frame = frame[frame["timestamps"].dt.hour.between(9, 16)]
    table = frame.assign(
        Date=frame["timestamps"].dt.strftime("%m/%d/%Y"), Time=frame["timestamps"].dt.strftime("%H:%M")
    )
    table = table.drop(columns="timestamps").rename(columns={"close": "Adj Close"})
    path = tmp_path / "ES.csv"
    table[["Date", "Time", "open", "high", "low", "Adj Close", "volume"]].to_csv(path, index=False)
    status, err = forecast([str(path), "--steps", "3", "--model", str(tiny_dir)])
    assert status == 2 and "close could be ['Adj Close']: pass --columns 'close=Adj Close'" in err[0]
    for mapping in ("close=Adj Close", "close='Adj Close'", 'close="adj close"', " Close = Adj Close "):
        out = tmp_path / "f.csv"
        status, err = forecast(
            [str(path), "--steps", "3", "--model", str(tiny_dir), "--columns", mapping, "--out", str(out)]
        )
        assert status == 0, err
        stamps = pd.to_datetime(pd.read_csv(out)["timestamps"])
        assert stamps[0] > frame["timestamps"].iloc[-1] and stamps.dt.hour.between(9, 16).all()
    status, err = forecast([str(path), "--steps", "3", "--columns", "close='Adj Close"])
    assert status == 2 and "No closing quotation" in err[0]


def test_calendar_holidays_get_no_bar(tiny_dir, tmp_path, forecast):
    pytest.importorskip("exchange_calendars")
    frame = random_bars(60, "B", start="2024-10-01")
    path, out = tmp_path / "bars.csv", tmp_path / "f.csv"
    frame[frame["timestamps"] != "2024-11-28"].to_csv(path, index=False)  # ends Monday 2024-12-23
    status, err = forecast(
        [str(path), "--steps", "6", "--model", str(tiny_dir), "--calendar", "XNYS", "--out", str(out)]
    )
    assert status == 0, err
    stamps = pd.to_datetime(pd.read_csv(out)["timestamps"]).dt.strftime("%m-%d").tolist()
    assert stamps == ["12-24", "12-26", "12-27", "12-30", "12-31", "01-02"]  # not Christmas, not New Year
    assert any("every 1 day, weekdays only, XNYS sessions" in line for line in err)
    status, err = forecast([str(path), "--steps", "6", "--calendar", "NYZE"])
    assert status == 2 and err[0].startswith(
        "kronos forecast: error: --calendar: unknown exchange calendar 'NYZE'"
    )


def test_no_volume_gives_no_volume_and_a_short_history_says_so(tiny_dir, tmp_path, kronos_command):
    frame = calm_bars(40, "5min").drop(columns="volume")
    path, out, plot = tmp_path / "fx.csv", tmp_path / "f.csv", tmp_path / "f.png"
    frame.to_csv(path, index=False)
    status, _, err = kronos_command(
        "forecast",
        str(path),
        "--steps",
        "4",
        "--model",
        str(tiny_dir),
        "--out",
        str(out),
        "--plot",
        str(plot),
    )
    assert status == 0, err
    table = pd.read_csv(out)
    volume = table[[c for c in table if c.startswith(("volume", "amount"))]].to_numpy()
    assert (volume == 0).all()
    lookback = KronosPredictor.from_pretrained(str(tiny_dir), device="cpu").lookback
    assert (
        f"kronos forecast: warning: series symbol='fx': 40 bars of history, fewer than the {lookback} the model was "
        f"trained with (its lookback): it forecasts from less than it expects, and its bands are less reliable; give "
        f"{lookback} bars or more"
    ) in err
    assert any(line.startswith("fx: 4 steps (frequency 5min) from 40 bars") for line in err), err
    frame.iloc[:9].to_csv(path, index=False)
    status, _, err = kronos_command("forecast", str(path), "--steps", "4", "--model", str(tiny_dir))
    assert status == 2 and err == [
        "kronos forecast: error: a forecast needs at least 10 bars of history; too short: fx (9 bars)"
    ]


def test_forecast_samples_with_the_models_defaults_unless_told(tiny_dir, five_minute_csv, tmp_path):
    """No --top-p: the top_p of the model's kronos.json (1.0), not the package's 0.9."""
    from helpers import checkpoint_with_metadata

    model = checkpoint_with_metadata(tmp_path, tiny_dir, {"max_context": 64, "sampling": {"top_p": 1.0}})
    tables = {}
    for name, extra in [("model", []), ("explicit", ["--top-p", "1.0"]), ("package", ["--top-p", "0.9"])]:
        out = tmp_path / f"{name}.csv"
        args = [*tiny_forecast_args(five_minute_csv, model), "--out", str(out), "--quiet"]
        assert main(["forecast", *args, *extra]) == 0
        tables[name] = pd.read_csv(out)
    pd.testing.assert_frame_equal(tables["model"], tables["explicit"])
    assert not np.allclose(tables["model"]["close_q0.975"], tables["package"]["close_q0.975"])
