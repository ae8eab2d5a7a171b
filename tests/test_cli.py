"""The `kronos` command: forecast files to CSV and PNG, train from the command line, clear errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from kronos.commands.main import main
from kronos.forecasting.pretrained import DEFAULT_MODEL, shipped_dir
from kronos.forecasting.schedules import future_timestamps

torch.set_num_threads(1)
EXAMPLES = shipped_dir().parents[3] / "examples"


def bars(n: int, freq: str, start: str = "2024-03-04 09:30", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.r_[50.0, close[:-1]]
    return pd.DataFrame(
        {
            "timestamps": pd.date_range(start, periods=n, freq=freq),
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": rng.integers(100, 1000, n).astype(float),
        }
    )


@pytest.fixture
def five_minute_csv(tmp_path):
    path = tmp_path / "bars.csv"
    bars(200, "5min").to_csv(path, index=False)
    return path


def tiny_forecast_args(csv, model_dir) -> list[str]:
    """`kronos forecast` arguments for 12 steps of 8 paths of the tiny model, on CPU."""
    return [str(csv), "--steps", "12", "--model", str(model_dir), "--paths", "8", "--device", "cpu"]


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
    table = pd.concat([bars(120, "h", seed=1).assign(sym="A"), bars(120, "h", seed=2).assign(sym="B")])
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
    change(bars(200, "h")).to_csv(path, index=False)
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


def test_future_timestamps_follow_the_data():
    business = pd.Series(pd.bdate_range("2024-01-01", periods=30))
    future = future_timestamps(business, 3, "s")
    assert list(future.timestamps) == list(pd.bdate_range("2024-02-12", periods=3))
    assert future.description == "frequency B"
    daily_with_holidays = business.drop(index=[5, 17]).reset_index(drop=True)  # pandas cannot name this one
    future = future_timestamps(daily_with_holidays, 4, "s")
    assert list(future.timestamps) == list(pd.bdate_range("2024-02-12", periods=4))
    assert future.description == "every 1 day, weekdays only"
    hourly = pd.Series(pd.date_range("2024-01-06", periods=50, freq="h")).drop(index=[3])
    future = future_timestamps(hourly, 2, "s")
    assert list(future.timestamps) == [pd.Timestamp("2024-01-08 02:00"), pd.Timestamp("2024-01-08 03:00")]
    with pytest.raises(ValueError, match="needs 3 or more"):
        future_timestamps(hourly[:2], 2, "s")


def test_train_command_trains_both_stages(tmp_path, capsys):
    for i in range(2):
        bars(260, "h", seed=i).to_csv(tmp_path / f"s{i}.csv", index=False)
    common = [
        "--data", str(tmp_path / "s*.csv"), "--out", str(tmp_path / "run"),
        "--set", "data.window=24", "--set", "data.history=20", "--set", "data.val_fraction=0.2",
        "--set", "train.epochs=1", "--set", "train.batch_size=8", "--set", "train.samples_per_epoch=32",
        "--set", "train.progress=false", "--set", "train.device='cpu'",
        "--set", "tokenizer.d_model=16", "--set", "tokenizer.s1_bits=3", "--set", "tokenizer.s2_bits=3",
        "--set", "tokenizer.group_size=3", "--set", "model.d_model=16", "--set", "model.n_layers=1",
    ]  # fmt: skip
    assert main(["train", "tokenizer", *common]) == 0
    assert main(["train", "predictor", *common]) == 0
    out = capsys.readouterr().out
    assert "tokenizer trained: 4 steps" in out and "predictor trained: 4 steps" in out
    assert (tmp_path / "run" / "predictor" / "best" / "model.safetensors").is_file()
    assert main(["train", "tokenizer", *common]) == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    assert main(["train", "tokenizer", *common, "--set", "train.lrr=1"]) == 2
    assert "unknown key(s) ['train.lrr']" in capsys.readouterr().err


def test_shipped_model_files_are_declared_as_package_data():
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    root = shipped_dir().parents[3]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "kronos.shipped"
    ]
    package = shipped_dir().parent
    declared = {p for pattern in patterns for p in package.glob(pattern)}
    shipped = {p for p in shipped_dir().rglob("*") if p.is_file()}
    assert {p.name for p in shipped} >= {"kronos.json", "config.json", "model.safetensors"}
    assert shipped <= declared


def test_forecast_decoding_options(tiny_dir, five_minute_csv, tmp_path):
    args = tiny_forecast_args(five_minute_csv, tiny_dir)
    frames = {}
    for name, extra in {
        "exact": [],
        "streaming": ["--window", "streaming"],
        "bfloat16": ["--dtype", "bfloat16"],
    }.items():
        out = tmp_path / f"{name}.csv"
        assert main(["forecast", *args, *extra, "--out", str(out)]) == 0
        frames[name] = pd.read_csv(out)
    # 200 bars + 12 steps stay within the context: streaming never slides and is exact
    pd.testing.assert_frame_equal(frames["streaming"], frames["exact"])
    median = frames["exact"]["close_q0.5"]
    assert np.allclose(frames["bfloat16"]["close_q0.5"], median, rtol=0.05)
    assert not np.array_equal(frames["bfloat16"]["close_q0.5"], median)  # it did run in bfloat16
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
