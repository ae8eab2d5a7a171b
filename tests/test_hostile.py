"""Issue 14's findings in the API, the loaders and the command line, one test each: what was
unhandled, silent or lost is now a forecast or a clear error (test_properties.py searches wider)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import kronos.forecasting.predictor
from kronos import KronosPredictor
from kronos.commands.main import main
from kronos.engine.sampling import Sampling
from kronos.evaluation import Backtest, evaluate
from kronos.forecasting.paths import VolatilityWarning, check_quantile_levels
from kronos.forecasting.pretrained import shipped_dir
from kronos.forecasting.schedules import future_timestamps
from kronos.forecasting.series import FEATURE_COLUMNS, SyntheticOHLCWarning, ohlc_from_close
from kronos.forecasting.tables import TableOptions, load_series

PRICES = ["open", "high", "low", "close"]
SHIPPED = shipped_dir()


def bars(
    n: int, freq: str = "D", start: str = "2024-01-01", seed: int = 0, tz: str | None = None
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[50.0, close[:-1]]
    return pd.DataFrame(
        {
            "timestamps": pd.date_range(start, periods=n, freq=freq, tz=tz),
            "open": open_,
            "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998,
            "close": close,
            "volume": rng.integers(100, 1000, n).astype(float),
        }
    )


def quantiles(predictor, frame: pd.DataFrame, steps: int = 3, top_k: int = 0) -> pd.DataFrame:
    return predictor.predict_quantiles(
        frame.drop(columns="timestamps"),
        frame["timestamps"],
        None,
        steps,
        sampling=Sampling(top_k=top_k, sample_count=2, seed=0),
    )


@pytest.fixture
def forecast(kronos_command):
    """`kronos forecast ARGS`: (exit status, stderr lines)."""

    def run(args: list[str]) -> tuple[int, list[str]]:
        status, _, err = kronos_command("forecast", *args)
        return status, err

    return run


# --- silent non-finite output -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1e300, r"df column 'close' has values too large for float32.*1e\+300 at row 5"),
        (1e-300, r"df column 'close' has values too small for float32.*1e-300 at row 5"),
    ],
)
def test_values_float32_cannot_hold_are_refused_naming_column_and_row(tiny_predictor, value, message):
    frame = bars(40)
    frame.loc[5, "close"] = value
    with pytest.raises(ValueError, match=message):
        quantiles(tiny_predictor, frame)


def test_a_column_whose_statistics_overflow_float32_is_refused_naming_it(tiny_predictor):
    frame = bars(40).assign(volume=lambda f: f["volume"] * 1e20)  # its squares overflow float32
    with pytest.raises(ValueError, match=r"df column 'volume': its mean and standard deviation .* float32"):
        quantiles(tiny_predictor, frame)


def test_the_command_refuses_what_used_to_come_back_as_nan_with_exit_0(tiny_dir, tmp_path, forecast):
    path, out = tmp_path / "bars.csv", tmp_path / "f.csv"
    bars(60, "h").assign(volume=lambda f: f["volume"] * 1e20).to_csv(path, index=False)
    status, err = forecast([str(path), "--steps", "3", "--model", str(tiny_dir), "--out", str(out)])
    assert status == 2 and len(err) == 1
    assert err[0].startswith("kronos forecast: error: series symbol='bars' column 'volume'")
    assert not out.exists()


@pytest.mark.parametrize("last", [0.0, -2.0])
def test_a_last_close_without_log_returns_is_refused_before_any_work(tiny_predictor, last):
    frame = bars(40)
    frame.loc[39, ["open", "high", "low", "close"]] = last
    with pytest.raises(
        ValueError, match=f"the last close of df is {last:g}: realised volatility .* log returns"
    ):
        quantiles(tiny_predictor, frame)
    paths = tiny_predictor.predict_paths(
        frame[FEATURE_COLUMNS[:5]],
        frame["timestamps"],
        pd.date_range("2024-03-01", periods=3),
        3,
        sampling=Sampling(seed=0),
    )
    assert np.isfinite(paths).all()  # the raw paths need no log returns


def test_undefined_volatility_comes_with_a_warning_naming_the_step(tiny_predictor):
    """A history that crosses zero: some sampled closes are negative, and where no path has a
    positive close the realised volatility is NaN, said so by a VolatilityWarning."""
    frame = bars(40)
    level = np.where(np.arange(40) < 20, -100.0, 100.0) + np.linspace(0, 1, 40)
    frame[PRICES] = np.repeat(level[:, None], 4, axis=1)
    frame.loc[39, PRICES] = 0.01
    with pytest.warns(VolatilityWarning, match=r"realized_vol is NaN at \d+ steps: from step \d+ of df"):
        table = quantiles(tiny_predictor, frame, steps=8, top_k=1)
    assert table["realized_vol"].isna().any()
    assert np.isfinite(table.drop(columns="realized_vol").to_numpy()).all()


# --- horizons beyond the context --------------------------------------------------------------------


def test_every_method_forecasts_beyond_the_context(tiny_model, tiny_tokenizer, tiny_ohlcv):
    predictor = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=16)
    history, stamps = tiny_ohlcv.iloc[:30][FEATURE_COLUMNS], tiny_ohlcv["timestamps"].iloc[:30]
    future = tiny_ohlcv["timestamps"].iloc[30:70]
    mean = predictor.predict(history, stamps, future, 40, sample_count=3, verbose=False, seed=1)
    paths = predictor.predict_paths(history, stamps, future, 40, sampling=Sampling(sample_count=3, seed=1))
    table = predictor.predict_quantiles(history, stamps, None, 40, sampling=Sampling(sample_count=3, seed=1))
    assert mean.shape == (40, 6) and paths.shape == (3, 40, 6) and len(table) == 40
    assert np.isfinite(mean.to_numpy()).all() and np.isfinite(paths).all()
    np.testing.assert_allclose(mean.to_numpy(), paths.mean(axis=0), rtol=1e-4)  # one seed, one set of paths
    result = evaluate(
        tiny_ohlcv.iloc[:120],
        predictor,
        Backtest(lookback=30, steps=40, origins=2, sampling=Sampling(sample_count=2, seed=0)),
        progress=False,
    )
    assert result.forecasts["kronos"][1].shape == (2, 2, 40, 6)
    assert np.isfinite(result.records["forecast"]).all()


def test_the_shipped_model_forecasts_129_steps(tmp_path, forecast):
    path, out = tmp_path / "bars.csv", tmp_path / "f.csv"
    bars(200).to_csv(path, index=False)
    status, err = forecast([str(path), "--steps", "129", "--paths", "2", "--out", str(out)])
    assert status == 0, err
    table = pd.read_csv(out)
    assert len(table) == 129 and np.isfinite(table.drop(columns="timestamps").to_numpy()).all()


# --- unchecked arguments and caps on work -----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(sample_count=True), "sample_count must be >= 1"),
        (dict(sample_count=10**9), "sample_count must be at most 10,000 paths"),
        (dict(T=1e-40), "temperature T must be finite and at least 0.0001"),
        (dict(T=float("inf")), "temperature T must be finite"),
        (dict(pred_len=10**12), "pred_len must be at most 10,000 steps"),
    ],
)
def test_arguments_are_checked_before_any_work(tiny_predictor, change, message):
    frame = bars(40)
    args = dict(pred_len=3, sample_count=2, seed=0) | change
    pred_len = args.pop("pred_len")
    with pytest.raises(ValueError, match=message):
        tiny_predictor.predict_quantiles(
            frame.drop(columns="timestamps"), frame["timestamps"], None, pred_len, sampling=Sampling(**args)
        )


def test_nat_inside_a_datetime_index_names_it(tiny_predictor):
    frame = bars(40)
    stamps = pd.DatetimeIndex(frame["timestamps"]).insert(3, pd.NaT).delete(4)
    with pytest.raises(ValueError, match="x_timestamp of df must hold timestamps: NaT at row 3"):
        tiny_predictor.predict(frame[FEATURE_COLUMNS[:5]], stamps, pd.date_range("2024-03-01", periods=2), 2)


@pytest.mark.parametrize("clip", [0, -1, float("nan"), float("inf"), True, "5"])
def test_clip_must_be_a_positive_number(tiny_model, tiny_tokenizer, clip):
    with pytest.raises(ValueError, match="clip must be a positive finite number"):
        KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", clip=clip)


@pytest.mark.parametrize("freq", ["-1D", "0h"])
def test_a_freq_that_does_not_step_forward_is_refused(tiny_predictor, freq):
    table = bars(40).assign(id="a")
    with pytest.raises(ValueError, match=f"freq '{freq[:-1]}.*' does not step forward in time"):
        tiny_predictor.predict_df(
            table, prediction_length=3, sampling=Sampling(sample_count=2), table=TableOptions(freq=freq)
        )


def test_caps_on_history_and_returned_paths_name_themselves(tiny_predictor):
    long = bars(20_001, "min")
    with pytest.raises(ValueError, match="20,001 bars of history, more than the 20,000 the tokenizer takes"):
        tiny_predictor.predict_paths(
            long[FEATURE_COLUMNS[:5]], long["timestamps"], pd.date_range("2025-01-01", periods=2), 2
        )
    frame = bars(40)
    with pytest.raises(
        ValueError, match=r"1 series x 10,000 paths x 10,000 steps .* more than the 268,435,456"
    ):
        tiny_predictor.predict_paths(
            frame[FEATURE_COLUMNS[:5]], frame["timestamps"], pd.date_range("2024-03-01", periods=10_000),
            10_000, sampling=Sampling(sample_count=10_000),
        )  # fmt: skip


def test_the_memory_budget_splits_batches_or_refuses_naming_itself(tiny_model, tiny_tokenizer, tiny_ohlcv):
    table = pd.concat([tiny_ohlcv.iloc[k * 50 : k * 50 + 40].assign(id=k) for k in range(4)])
    roomy = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
    one_series = roomy.generation_bytes(40, 3, 4)
    tight = KronosPredictor(
        tiny_model, tiny_tokenizer, device="cpu", max_context=64, memory_budget=one_series
    )
    args = dict(
        prediction_length=3, sampling=Sampling(sample_count=4, seed=7), table=TableOptions(min_history=3)
    )
    pd.testing.assert_frame_equal(tight.predict_df(table, **args), roomy.predict_df(table, **args))
    too_tight = KronosPredictor(
        tiny_model, tiny_tokenizer, device="cpu", max_context=64, memory_budget=one_series - 1
    )
    with pytest.raises(ValueError, match="more than the predictor's memory_budget .* use fewer paths"):
        too_tight.predict_df(table, **args)


def test_quantile_levels_whose_columns_would_share_a_name_are_refused():
    with pytest.raises(ValueError, match=r"print alike \(0.5\)"):
        check_quantile_levels([0.5, 0.5000000001])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--threads", "-1"], "--threads must be a positive number"),
        (["--steps", "10001"], "--steps must be at most 10,000"),
        (["--freq=-1D"], "does not step forward in time"),
        (["--temperature", "1e-40"], "at least 0.0001"),
        (["--lookback", "2"], "--lookback must be at least 3 bars"),
        (["--plot", "f.jpg"], "must end in .png"),
        (["--out", "no/such/folder/f.csv"], "does not exist"),
        (["--paths", "two"], "argument --paths: invalid int value"),
    ],
)
def test_command_arguments_are_checked_on_one_line(tiny_dir, tmp_path, forecast, extra, message):
    path = tmp_path / "bars.csv"
    bars(60, "h").to_csv(path, index=False)
    status, err = forecast([str(path), "--steps", "3", "--model", str(tiny_dir), *extra])
    assert status == 2 and len(err) == 1 and err[0].startswith("kronos forecast: error:"), err
    assert message in err[0]


def test_evaluate_checks_its_bootstrap(tmp_path, capsys):
    path = tmp_path / "bars.csv"
    bars(60).to_csv(path, index=False)
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


# --- threads ----------------------------------------------------------------------------------------


def threads_while_generating(predictor, frame) -> int:
    seen = []
    # the time embedding runs once per generation call, in either engine
    hook = predictor.model.time_emb.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        quantiles(predictor, frame)
    finally:
        hook.remove()
    return seen[0]


def test_small_models_generate_on_one_thread_unless_the_user_chose(tiny_model, tiny_tokenizer, monkeypatch):
    """The Python API is as fast as the command: a small model generates on one thread, unless the
    user chose a count (num_threads, torch.set_num_threads after importing kronos, or
    OMP_NUM_THREADS); torch's count is restored after the call."""
    frame = bars(40)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(
            kronos.forecasting.predictor, "_TORCH_THREADS", 2
        )  # as if kronos were imported now
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            monkeypatch.delenv(variable, raising=False)
        predictor = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
        assert threads_while_generating(predictor, frame) == 1 and torch.get_num_threads() == 2
        chosen = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64, num_threads=2)
        assert threads_while_generating(chosen, frame) == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads_while_generating(predictor, frame) == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(
            kronos.forecasting.predictor, "_TORCH_THREADS", 4
        )  # the user changed torch's count
        assert threads_while_generating(predictor, frame) == 2
    finally:
        torch.set_num_threads(before)


# --- rough edges a new user hit ---------------------------------------------------------------------


def test_timestamps_with_their_offsets_across_daylight_saving_changes_forecast(tiny_dir, tmp_path, forecast):
    """Written with their UTC offsets, hourly bars across a clock change load and forecast: as local
    wall-clock times into summer time, in UTC out of it (where local times repeat an hour)."""
    for start, read in (("2024-03-08 00:00", "local wall-clock times"), ("2024-11-01 00:00", "in UTC")):
        path, out = tmp_path / "bars.csv", tmp_path / "f.csv"
        frame = bars(120, "h", start=start, tz="America/New_York")
        frame.to_csv(path, index=False)
        status, err = forecast([str(path), "--steps", "3", "--model", str(tiny_dir), "--out", str(out)])
        assert status == 0, err
        assert err[0].startswith("kronos forecast: warning:") and read in err[0]
        last = frame["timestamps"].iloc[-1]
        last = last.tz_localize(None) if read.startswith("local") else last.tz_convert("UTC")
        expected = pd.date_range(last + pd.Timedelta(hours=1), periods=3, freq="h")
        assert list(pd.to_datetime(pd.read_csv(out)["timestamps"])) == list(expected)


def test_a_zoned_intraday_session_across_a_clock_change_keeps_its_local_hours(tiny_predictor):
    days = pd.bdate_range("2024-03-01", "2024-03-15")
    local = [
        pd.Timestamp(f"{d.date()} 09:30") + pd.Timedelta(minutes=30 * i) for d in days for i in range(13)
    ]
    frame = bars(len(local)).assign(timestamps=pd.DatetimeIndex(local).tz_localize("America/New_York"))
    table = quantiles(tiny_predictor, frame, steps=14)
    assert table.index[0] == pd.Timestamp("2024-03-18 09:30", tz="America/New_York")
    assert table.index[-1] == pd.Timestamp("2024-03-19 09:30", tz="America/New_York")


def test_a_local_hour_repeated_by_a_clock_change_is_explained(tmp_path):
    stamps = list(pd.date_range("2024-11-02 20:00", periods=8, freq="h"))
    stamps.insert(6, pd.Timestamp("2024-11-03 01:00"))  # 01:00 twice: the clocks went back
    path = tmp_path / "local.csv"
    bars(9).assign(timestamps=stamps).to_csv(path, index=False)
    with pytest.raises(
        ValueError, match="a daylight-saving change repeats that hour: write the timestamps with"
    ):
        load_series([path])


def test_semicolons_tabs_and_decimal_commas_are_read(tmp_path):
    frame = bars(20)
    for name, options in (("semi.csv", dict(sep=";", decimal=",")), ("tab.csv", dict(sep="\t"))):
        frame.to_csv(tmp_path / name, index=False, **options)
        (one,) = load_series([tmp_path / name])
        np.testing.assert_allclose(one.bars[:, 3], frame["close"], rtol=1e-6)


def test_empty_and_header_only_files_are_named(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv is empty: it has no header line and no rows"):
        load_series([tmp_path / "empty.csv"])
    bars(1).iloc[:0].to_csv(tmp_path / "header.csv", index=False)
    with pytest.raises(ValueError, match="header.csv holds no rows"):
        load_series([tmp_path / "header.csv"])


def test_file_rows_are_named_as_a_spreadsheet_counts_them(tmp_path):
    frame = bars(20)
    frame.loc[7, "close"] = np.nan  # the 8th bar: line 9 of the CSV, under its header
    frame.to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(
        ValueError, match=r"a.csv column 'close' has NaN values \(1 in all\), first at line 9"
    ):
        load_series([tmp_path / "a.csv"])
    frame.to_parquet(tmp_path / "a.parquet", index=False)
    with pytest.raises(ValueError, match=r"a.parquet column 'close' has NaN values .*first at row 8"):
        load_series([tmp_path / "a.parquet"])
    frame.loc[7, "close"] = 1.0
    frame["timestamps"] = frame["timestamps"].astype(str)
    frame.loc[3, "timestamps"] = "soon"
    frame.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ValueError, match="'soon' at line 5"):
        load_series([tmp_path / "b.csv"])


def test_a_close_only_file_is_offered_a_clearly_labelled_way_forward(tiny_dir, tmp_path, forecast):
    path, out = tmp_path / "closes.csv", tmp_path / "f.csv"
    bars(60, "h")[["timestamps", "close"]].to_csv(path, index=False)
    args = [str(path), "--steps", "3", "--model", str(tiny_dir), "--out", str(out)]
    status, err = forecast(args)
    assert status == 2 and "kronos --ohlc-from-close" in err[0]
    status, err = forecast([*args, "--ohlc-from-close"])
    assert status == 0 and "open, high and low of 1 series are synthesised from the close" in err[0]
    table = pd.read_csv(out)
    assert table["synthetic_ohlc"].all() and len(table) == 3


def test_ohlc_from_close_builds_bars_by_its_rule_and_warns():
    closes = pd.DataFrame({"close": [10.0, 12.0, 11.0]})
    with pytest.warns(SyntheticOHLCWarning, match="synthesised from the close"):
        built = ohlc_from_close(closes)
    assert built["open"].tolist() == [10.0, 10.0, 12.0]
    assert built["high"].tolist() == [10.0, 12.0, 12.0] and built["low"].tolist() == [10.0, 10.0, 11.0]
    with pytest.raises(ValueError, match="already has"):
        ohlc_from_close(built)


def test_hourly_currencies_skip_the_weekend_they_do_not_trade():
    hours = pd.date_range("2024-01-07 22:00", "2024-02-02 21:00", freq="h")
    weekend = ((hours.day_of_week == 4) & (hours.hour >= 22)) | (hours.day_of_week == 5)
    weekend |= (hours.day_of_week == 6) & (hours.hour < 22)
    fx = hours[~weekend]  # Sunday 22:00 to Friday 21:00, as currencies trade
    future = future_timestamps(fx, 3, "EURUSD")
    assert list(future.timestamps) == list(
        pd.to_datetime(["2024-02-04 22:00", "2024-02-04 23:00", "2024-02-05 00:00"])
    )
    assert future.description == "every 1 hour, 120 bars a week, Sun 22:00 to Fri 21:00"
    assert future.gap is None
