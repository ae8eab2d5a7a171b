"""kronos.forecasting.core: `sample` and `fit_calibration` (the one path of every forecast), `Forecast`,
and the predictor's construction: devices, dtypes, clip, threads, memory budget, and what it leaves
alone (the caller's model and tokenizer)."""

from __future__ import annotations

import copy
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import quantiles, random_bars

import kronos.forecasting.core
from kronos import Kronos, KronosPredictor, KronosTokenizer
from kronos.engine.sampling import Sampling
from kronos.engine.threads import AdaptiveThreads
from kronos.forecasting.calibration import Calibration, PastOrigins, history_volatility
from kronos.forecasting.core import Forecast, GenerationCancelled, cpu_has_bf16_kernels, stop_when
from kronos.forecasting.series import FEATURE_COLUMNS, Series
from kronos.forecasting.tables import TableOptions

torch.set_num_threads(1)


def tiny_series(tiny_ohlcv: pd.DataFrame, start: int, stop: int, key: object) -> Series:
    frame = tiny_ohlcv.iloc[start:stop]
    return Series.from_frame(frame[FEATURE_COLUMNS], frame["timestamps"], key=key, name=f"s{key}")


def threads_while_generating(predictor, frame) -> int:
    seen = []
    # the time embedding runs once per generation call, in either engine
    hook = predictor.model.time_emb.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        quantiles(predictor, frame)
    finally:
        hook.remove()
    return seen[0]


def test_sample_gives_predict_paths_batch_bit_for_bit(tiny_predictor, tiny_ohlcv):
    """Histories of different lengths in one call, each seeded by its key: the core's paths are the
    adapter's, and each series' are its own whatever it is sampled with."""
    spans = [(0, 40, "a"), (10, 60, "b"), (30, 70, 7)]
    series = [tiny_series(tiny_ohlcv, *span) for span in spans]
    futures = [pd.DatetimeIndex(tiny_ohlcv["timestamps"].iloc[stop : stop + 5]) for _, stop, _ in spans]
    sampling = Sampling(sample_count=6, seed=13)
    forecast = tiny_predictor.sample(series, 5, sampling, future=futures)
    assert isinstance(forecast, Forecast)
    assert forecast.paths.shape == (3, 6, 5, 6) and forecast.paths.dtype == np.float32
    assert forecast.keys == ["a", "b", 7]
    frames = [tiny_ohlcv.iloc[a:b] for a, b, _ in spans]
    paths = tiny_predictor.predict_paths_batch(
        [f[FEATURE_COLUMNS] for f in frames], [f["timestamps"] for f in frames], futures, 5,
        sampling=Sampling(sample_count=6, seed=13), series_ids=["a", "b", 7],
    )  # fmt: skip
    np.testing.assert_array_equal(forecast.paths, paths)
    alone = tiny_predictor.sample(series[1], 5, sampling, future=futures[1])
    np.testing.assert_array_equal(alone.paths[0], forecast.paths[1])
    np.testing.assert_array_equal(forecast.last_close, [np.float32(f["close"].iloc[-1]) for f in frames])


def test_on_step_counts_every_generation_call_and_changes_no_number(tiny_predictor, tiny_ohlcv):
    """Three histories of two lengths, one series a call: three calls of 4 steps, counted as one
    run of 12; watching changes nothing, and raising from the hook stops generation there."""
    series = [tiny_series(tiny_ohlcv, *span) for span in [(0, 40, "a"), (5, 45, "b"), (10, 60, "c")]]
    sampling = Sampling(sample_count=3, seed=5)
    seen: list[tuple[int, int]] = []
    watched = tiny_predictor.sample(
        series, 4, sampling, batch_size=1, on_step=lambda d, t: seen.append((d, t))
    )
    assert seen == [(d, 12) for d in range(1, 13)]
    np.testing.assert_array_equal(
        watched.paths, tiny_predictor.sample(series, 4, sampling, batch_size=1).paths
    )

    def stop_at_6(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 6:
            raise KeyboardInterrupt

    seen.clear()
    with pytest.raises(KeyboardInterrupt):
        tiny_predictor.sample(series, 4, sampling, batch_size=1, on_step=stop_at_6)
    assert seen[-1] == (6, 12) and len(seen) == 6


def test_stop_when_a_set_event_stops_sample_and_fit_calibration_and_an_unset_one_changes_nothing(
    tiny_predictor, tiny_ohlcv
):
    series = tiny_series(tiny_ohlcv, 0, 160, 0)
    sampling = Sampling(sample_count=4, seed=3)
    cancel = threading.Event()
    kept = tiny_predictor.sample(series.window(100, 160), 6, sampling, on_step=stop_when(cancel))
    plain = tiny_predictor.sample(series.window(100, 160), 6, sampling)
    np.testing.assert_array_equal(kept.paths, plain.paths)
    cancel.set()
    with pytest.raises(GenerationCancelled, match="cancelled after step 1 of 6"):
        tiny_predictor.sample(series.window(100, 160), 6, sampling, on_step=stop_when(cancel))
    with pytest.raises(GenerationCancelled):
        tiny_predictor.fit_calibration(
            series, 3, sampling, PastOrigins(lookback=40), on_step=stop_when(cancel)
        )


def test_sample_infers_the_future_and_summary_equals_predict_quantiles(tiny_predictor, tiny_ohlcv):
    series = tiny_series(tiny_ohlcv, 0, 50, 0)
    forecast = tiny_predictor.sample(series, 4, Sampling(sample_count=9, seed=2))
    table = tiny_predictor.predict_quantiles(
        tiny_ohlcv[FEATURE_COLUMNS].iloc[:50], tiny_ohlcv["timestamps"].iloc[:50], None, 4,
        quantile_levels=(0.2, 0.8), sampling=Sampling(sample_count=9, seed=2),
    )  # fmt: skip
    assert forecast.future[0].equals(table.index)
    summary = forecast.summary((0.2, 0.8))
    assert list(summary) == list(table.columns)
    for column, values in summary.items():
        np.testing.assert_array_equal(values[0], table[column].to_numpy())


def test_fit_calibration_is_calibrate_and_calibrates_sample(tiny_predictor, tiny_ohlcv):
    frame = tiny_ohlcv.iloc[:160]
    series = Series.from_frame(frame[FEATURE_COLUMNS], frame["timestamps"], key="x")
    sampling = Sampling(sample_count=8, seed=1)
    fitted = tiny_predictor.fit_calibration(series, 3, sampling, PastOrigins(lookback=40))
    same = tiny_predictor.calibrate(
        frame[FEATURE_COLUMNS],
        frame["timestamps"],
        3,
        sampling=Sampling(sample_count=8, seed=1),
        past=PastOrigins(lookback=40),
        series_id="x",
    )
    assert isinstance(fitted, Calibration) and fitted.origins == same.origins == 118  # t = 40, 41, ..., 157
    for field in ("shrink", "weight", "misses"):
        np.testing.assert_array_equal(getattr(fitted, field), getattr(same, field))
    history = series.window(120, 160)
    raw = tiny_predictor.sample(history, 3, sampling)
    calibrated = tiny_predictor.sample(history, 3, sampling, fitted)
    assert calibrated.calibrations == [fitted]
    volatility = history_volatility(history.bars[:, 3].astype(np.float32))  # of the closes the model saw
    expected = fitted.apply(raw.paths[0], raw.last_close[0], volatility)
    np.testing.assert_array_equal(calibrated.paths[0], expected.astype(np.float32))
    with pytest.raises(ValueError, match="sampled with"):
        tiny_predictor.sample(history, 3, Sampling(sample_count=8, seed=1, top_p=0.5), fitted)


def test_sample_refuses_what_it_cannot_forecast(tiny_predictor, tiny_ohlcv):
    series = tiny_series(tiny_ohlcv, 0, 30, 0)
    with pytest.raises(TypeError, match=r"series\[0\] must be a kronos.forecasting.series.Series"):
        tiny_predictor.sample([tiny_ohlcv], 3)
    with pytest.raises(ValueError, match="series must hold at least one Series"):
        tiny_predictor.sample([], 3)
    with pytest.raises(TypeError, match="sampling must be"):
        tiny_predictor.sample(series, 3, {"seed": 1})
    with pytest.raises(ValueError, match="future has 2 entries for 1 series"):
        tiny_predictor.sample(series, 3, future=[series.timestamps[:3], series.timestamps[:3]])
    with pytest.raises(ValueError, match="future of s0 starts at .* not after the history's last"):
        tiny_predictor.sample(series, 3, future=series.timestamps[-3:])
    with pytest.raises(ValueError, match="horizon must be a positive integer"):
        tiny_predictor.sample(series, 0)


@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_the_predictor_leaves_the_model_and_tokenizer_it_is_given_as_they_were(
    tiny_model, tiny_tokenizer, tiny_ohlcv, dtype
):
    """A predictor casts a copy where it needs another dtype or device, and works on the caller's own
    modules otherwise: they keep their dtype, weights and training flags."""
    model, tokenizer = copy.deepcopy(tiny_model).train(), copy.deepcopy(tiny_tokenizer)
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    predictor = KronosPredictor(model, tokenizer, device="cpu", max_context=64, dtype=dtype)
    predictor.sample(tiny_series(tiny_ohlcv, 0, 30, 0), 2, Sampling(sample_count=2, seed=0))
    assert model.training  # generation ran in eval mode and restored the flag
    assert (predictor.model is model) == (dtype is None)
    assert (predictor.tokenizer is tokenizer) == (dtype is None)
    if dtype is not None:
        assert next(predictor.model.parameters()).dtype == torch.bfloat16
    for name, value in model.state_dict().items():
        assert value.dtype == before[name].dtype
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    assert all(p.dtype == torch.float32 for p in tokenizer.parameters())


def test_a_bfloat16_predictor_leaves_the_shared_fixture_as_it_was(tiny_model, tiny_tokenizer, tiny_ohlcv):
    """Constructing and using a bfloat16 predictor over the session-wide model and tokenizer changes
    none of their dtypes, weights or training flags."""
    saved = [
        {name: value.detach().clone() for name, value in module.state_dict().items()}
        for module in (tiny_model, tiny_tokenizer)
    ]
    flags = tiny_model.training, tiny_tokenizer.training
    predictor = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64, dtype="bfloat16")
    forecast = predictor.sample(tiny_series(tiny_ohlcv, 0, 30, 0), 2, Sampling(sample_count=2, seed=0))
    table = predictor.predict_quantiles(
        tiny_ohlcv[FEATURE_COLUMNS].iloc[:30], tiny_ohlcv["timestamps"].iloc[:30], None, 2,
        sampling=Sampling(sample_count=2, seed=0),
    )  # fmt: skip
    assert np.isfinite(forecast.paths).all() and len(table) == 2
    assert next(predictor.model.parameters()).dtype == torch.bfloat16  # it did run in bfloat16
    assert (tiny_model.training, tiny_tokenizer.training) == flags
    for module, before in zip((tiny_model, tiny_tokenizer), saved):
        assert all(p.dtype == torch.float32 for p in module.parameters())
        for name, value in module.state_dict().items():
            assert value.dtype == before[name].dtype, name
            torch.testing.assert_close(value, before[name], rtol=0, atol=0)


@pytest.mark.parametrize("clip", [0, -1, float("nan"), float("inf"), True, "5"])
def test_clip_must_be_a_positive_number(tiny_model, tiny_tokenizer, clip):
    with pytest.raises(ValueError, match="clip must be a positive finite number"):
        KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", clip=clip)


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


def test_small_models_generate_on_one_thread_unless_the_user_chose(tiny_model, tiny_tokenizer, monkeypatch):
    """The Python API is as fast as the command: a small model generates on one thread, unless the
    user chose a count (num_threads, torch.set_num_threads after importing kronos, or
    OMP_NUM_THREADS); torch's count is restored after the call."""
    frame = random_bars(40)
    model = copy.deepcopy(tiny_model)  # the test hooks into the model it generates with
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(kronos.forecasting.core, "_TORCH_THREADS", 2)  # as if kronos were imported now
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            monkeypatch.delenv(variable, raising=False)
        predictor = KronosPredictor(model, tiny_tokenizer, device="cpu", max_context=64)
        assert threads_while_generating(predictor, frame) == 1 and torch.get_num_threads() == 2
        chosen = KronosPredictor(model, tiny_tokenizer, device="cpu", max_context=64, num_threads=2)
        assert threads_while_generating(chosen, frame) == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads_while_generating(predictor, frame) == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(kronos.forecasting.core, "_TORCH_THREADS", 4)  # the user changed torch's count
        assert threads_while_generating(predictor, frame) == 2
    finally:
        torch.set_num_threads(before)


def test_larger_models_adapt_their_threads_step_by_step_unless_the_user_chose(
    tiny_model, tiny_tokenizer, monkeypatch
):
    """A model above SMALL_MODEL_PARAMETERS gets the engine's AdaptiveThreads from torch's count
    (it may drop a thread beside a busy core); a count the user chose is kept fixed."""
    given: list[object] = []
    generate = kronos.forecasting.core.generate_tokens

    def recorded(*args, threads=None, **kwargs):
        given.append(threads)
        return generate(*args, threads=threads, **kwargs)

    monkeypatch.setattr(kronos.forecasting.core, "generate_tokens", recorded)
    monkeypatch.setattr(kronos.forecasting.core, "SMALL_MODEL_PARAMETERS", 0)  # the tiny model is "large"
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(variable, raising=False)
    frame = random_bars(40)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(kronos.forecasting.core, "_TORCH_THREADS", 2)
        adapting = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
        quantiles(adapting, frame)
        quantiles(adapting, frame)
        fixed = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64, num_threads=2)
        quantiles(fixed, frame)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    adaptive, again, chosen = given
    assert isinstance(adaptive, AdaptiveThreads) and adaptive.most == 2
    assert again is adaptive  # what it learnt carries over to the predictor's next call
    assert chosen is None


@pytest.mark.parametrize("device", ["gpu", "cuda:0", "tpu"])
def test_unknown_or_unavailable_device(tiny_model, tiny_tokenizer, device):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="device"):
        KronosPredictor(tiny_model, tiny_tokenizer, device=device)


def test_unknown_dtype(tiny_model, tiny_tokenizer):
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", dtype="float8")


def test_bfloat16_predictor_warns_where_the_cpu_lacks_bf16_kernels(tiny_dir):
    # a model and tokenizer of this test's own, loaded from the fixture's files
    tiny_model, tiny_tokenizer = (
        Kronos.from_pretrained(tiny_dir / "model"),
        KronosTokenizer.from_pretrained(tiny_dir / "tokenizer"),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", dtype="bfloat16")
    assert predictor.model.norm.weight.dtype == torch.bfloat16
    lacking = [w for w in caught if "no bfloat16 matrix instructions" in str(w.message)]
    assert len(lacking) == (0 if cpu_has_bf16_kernels() else 1)
    with pytest.raises(ValueError, match="window must be one of"):
        KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", window="rolling")


def test_volume_and_amount_forecasts_are_never_negative(tiny_predictor, tiny_ohlcv):
    frame = tiny_ohlcv.iloc[:60]
    traded = tiny_series(tiny_ohlcv, 0, 60, "traded")
    untraded = Series.from_frame(
        frame[["open", "high", "low", "close"]], frame["timestamps"], key="fx", name="fx"
    )
    forecast = tiny_predictor.sample([traded, untraded], 12, Sampling(sample_count=16, seed=0))
    volume = forecast.paths[..., 4:]
    assert (volume >= 0).all()
    assert (volume[1] == 0).all()  # no volume in the history: none forecast
    assert (volume[0] == 0).any() and (volume[0] > 0).mean() > 0.5  # clipped where the model went below 0
    # upstream's predict keeps upstream's numbers, negative volumes and all
    future = pd.Series(pd.date_range(frame["timestamps"].iloc[-1], periods=13, freq="5min")[1:])
    upstream = tiny_predictor.predict(
        frame[["open", "high", "low", "close"]], frame["timestamps"], future, pred_len=12, verbose=False
    )
    assert (upstream[["volume", "amount"]].to_numpy() != 0).any()


def test_a_history_shorter_than_the_lookback_warns_once_naming_it(tiny_predictor, tiny_ohlcv):
    from kronos.forecasting.core import ContextWarning, ShortHistoryWarning

    short = tiny_series(tiny_ohlcv, 0, 30, "short")
    lookback = tiny_predictor.lookback
    assert lookback > 30 and issubclass(ShortHistoryWarning, ContextWarning)  # evaluate says it once itself
    with pytest.warns(
        ShortHistoryWarning,
        match=f"^sshort and 1 more series: 30 bars of history, fewer than the {lookback} the model",
    ):
        tiny_predictor.sample(
            [short, tiny_series(tiny_ohlcv, 0, 40, "other")], 2, Sampling(sample_count=2, seed=0)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShortHistoryWarning)
        tiny_predictor.sample(
            tiny_series(tiny_ohlcv, 0, lookback, "full"), 2, Sampling(sample_count=2, seed=0)
        )


def test_default_sampling_is_the_models_own(tmp_path, tiny_dir, tiny_ohlcv):
    """A kronos.json with "sampling" sets what every forecast without a sampling draws with; the
    calibration fitted by default is taken by such a forecast."""
    from helpers import checkpoint_with_metadata

    from kronos.engine.sampling import PATHS, TEMPERATURE, TOP_P

    own = checkpoint_with_metadata(tmp_path, tiny_dir, {"max_context": 64, "sampling": {"top_p": 1.0}})
    predictor = KronosPredictor.from_pretrained(str(own), device="cpu")
    assert predictor.default_sampling == Sampling(T=TEMPERATURE, top_p=1.0, sample_count=PATHS, seed=None)
    assert predictor.sampling_with(sample_count=6, seed=3) == Sampling(
        T=1.0, top_p=1.0, sample_count=6, seed=3
    )
    assert predictor.sampling_with(T=None, top_p=0.5).top_p == 0.5
    history = tiny_series(tiny_ohlcv, 0, 200, "s")
    series = history.window(200 - 64, 200)
    torch.manual_seed(5)
    default = predictor.sample(series, 4).paths
    torch.manual_seed(5)
    assert np.array_equal(default, predictor.sample(series, 4, Sampling(top_p=1.0)).paths)
    torch.manual_seed(5)
    assert not np.array_equal(default, predictor.sample(series, 4, Sampling(top_p=TOP_P)).paths)
    calibration = predictor.fit_calibration(history, 3)
    assert calibration.sampling == (1.0, 0, 1.0)
    predictor.sample(series, 3, calibration=calibration)  # the default sampling is the calibration's

    plain = KronosPredictor.from_pretrained(str(checkpoint_with_metadata(tmp_path / "p", tiny_dir, None)))
    assert plain.default_sampling == Sampling() == Sampling(T=TEMPERATURE, top_p=TOP_P, sample_count=PATHS)


def test_a_models_temperature_below_the_floor_is_refused_naming_its_kronos_json(tmp_path, tiny_dir):
    from helpers import checkpoint_with_metadata

    cold = checkpoint_with_metadata(tmp_path, tiny_dir, {"sampling": {"temperature": 1e-6}})
    with pytest.raises(ValueError, match="^the model's kronos.json 'sampling': temperature T must be finite"):
        KronosPredictor.from_pretrained(str(cold), device="cpu")


@pytest.mark.filterwarnings("ignore::kronos.forecasting.core.ShortHistoryWarning")
@pytest.mark.parametrize(
    ("history_len", "steps", "first"),
    [(40, 5, 0), (60, 10, 6), (60, 70, -64)],
    ids=["within the context", "window slid", "window all generated"],
)
def test_anchor_moves_open_high_low_close_by_the_tokenizers_rounding_of_the_last_close(
    tiny_model, tiny_tokenizer, tiny_ohlcv, history_len, steps, first
):
    """Anchored paths are the plain ones with open, high, low and close moved by the last close
    less its reconstruction (decoded from the history tokens the paths' window starts with, or
    from the last 64 where the window holds none), volume and amount as they were."""
    from kronos.forecasting.series import normalize

    plain = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
    anchored = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64, anchor=True)
    assert (plain.anchor, anchored.anchor) == (False, True)
    series = tiny_series(tiny_ohlcv, 0, history_len, "s")
    sampling = Sampling(sample_count=4, seed=3)
    before = plain.sample(series, steps, sampling).paths[0]
    after = anchored.sample(series, steps, sampling).paths[0]

    bars = tiny_ohlcv[FEATURE_COLUMNS].iloc[:history_len].to_numpy(np.float32)
    x, _, std = normalize(bars, 5.0)
    with torch.inference_mode():
        tokens = tiny_tokenizer.encode(torch.from_numpy(x)[None], half=True)
        rebuilt = tiny_tokenizer.decode(tuple(t[:, first:] for t in tokens), half=True)[0, -1, 3].item()
    gap = (x[-1, 3] - rebuilt) * (std[3] + 1e-5)
    assert abs(gap) > 1e-3 * std[3]  # the rounding is there to remove
    np.testing.assert_allclose(after[..., :4] - before[..., :4], gap, rtol=1e-3, atol=1e-4 * std[3])
    np.testing.assert_array_equal(after[..., 4:], before[..., 4:])


def test_center_puts_every_steps_median_close_at_the_last_close_and_keeps_the_paths_order(
    tiny_model, tiny_tokenizer, tiny_ohlcv
):
    """Centered paths are the plain ones with open, high, low and close of every path at a step
    scaled by one factor, the one that moves the step's median close to the last close: bars stay
    consistent, paths keep their order, volume and amount stay; P(up) is a half."""
    plain = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
    centered = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64, center=True)
    assert (plain.center, centered.center) == (False, True)
    series = tiny_series(tiny_ohlcv, 0, 60, "s")
    sampling = Sampling(sample_count=6, seed=3)
    before = plain.sample(series, 8, sampling).paths[0]
    forecast = centered.sample(series, 8, sampling)
    after, last = forecast.paths[0], forecast.last_close[0]
    np.testing.assert_allclose(np.median(after[..., 3], axis=0), last, rtol=1e-6)
    median_before = np.median(before[..., 3].astype(np.float64), axis=0)
    assert np.abs(median_before / last - 1).max() > 1e-3  # the model's median move is there to remove
    np.testing.assert_allclose(after[..., :4], before[..., :4] * (last / median_before)[:, None], rtol=1e-6)
    np.testing.assert_array_equal(after[..., 4:], before[..., 4:])
    np.testing.assert_array_equal(np.argsort(after[..., 3], axis=0), np.argsort(before[..., 3], axis=0))
    assert ((after[..., 3] > last).mean(axis=0) == 0.5).all()
    # a sample may ask for the model's own paths
    np.testing.assert_array_equal(centered.sample(series, 8, sampling, center=False).paths[0], before)


def test_center_leaves_calibrations_and_calibrated_forecasts_alone(tiny_model, tiny_tokenizer, tiny_ohlcv):
    """A calibration is fitted on the model's own paths and fits its own center: with or without
    `center`, the same calibration and the same calibrated forecast."""
    from kronos.forecasting.calibration import PastOrigins

    plain = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
    centered = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64, center=True)
    series = tiny_series(tiny_ohlcv, 0, len(tiny_ohlcv), "s")
    sampling, past = Sampling(sample_count=4, seed=1), PastOrigins(lookback=30)
    fitted = [p.fit_calibration(series, 5, sampling, past) for p in (plain, centered)]
    np.testing.assert_array_equal(fitted[0].misses, fitted[1].misses)
    np.testing.assert_array_equal(fitted[0].shrink, fitted[1].shrink)
    window = series.window(len(series) - 30, len(series), "s")
    calibrated = [p.sample(window, 5, sampling, fitted[0]).paths for p in (plain, centered)]
    np.testing.assert_array_equal(calibrated[0], calibrated[1])


def test_center_shifts_where_a_median_or_the_last_close_is_not_positive():
    from kronos.forecasting.core import center_paths

    paths = np.zeros((3, 2, 6), dtype=np.float32)
    paths[..., 3] = [[-1.0, 2.0], [-0.5, 3.0], [1.0, 4.0]]  # step 0's median close is -0.5, step 1's 3
    paths[..., 0] = paths[..., 3] - 1
    out = center_paths(paths, last_close=2.0)  # a median below zero: every step shifted
    np.testing.assert_allclose(np.median(out[..., 3], axis=0), 2.0)
    np.testing.assert_allclose(out[..., :4] - paths[..., :4], np.broadcast_to([[2.5], [-1.0]], (3, 2, 4)))
    np.testing.assert_allclose(
        center_paths(paths, last_close=-1.0)[1, :, 3], -1.0
    )  # a last close below zero too
    positive = center_paths(paths[:, 1:], last_close=2.0)  # all positive: scaled
    np.testing.assert_allclose(positive[..., :4], paths[:, 1:, :4] * (2.0 / 3.0), rtol=1e-6)


def test_anchor_defaults_to_the_models_kronos_json_and_must_be_a_flag(
    tmp_path, tiny_dir, tiny_model, tiny_tokenizer
):
    from helpers import checkpoint_with_metadata

    own = checkpoint_with_metadata(tmp_path, tiny_dir, {"max_context": 64, "anchor": True})
    assert KronosPredictor.from_pretrained(str(own)).anchor is True
    assert KronosPredictor.from_pretrained(str(own), anchor=False).anchor is False
    plain = checkpoint_with_metadata(tmp_path / "p", tiny_dir, None)
    assert KronosPredictor.from_pretrained(str(plain)).anchor is False
    with pytest.raises(TypeError, match="^anchor must be True or False, got str 'yes'"):
        KronosPredictor(tiny_model, tiny_tokenizer, anchor="yes")
    centered = checkpoint_with_metadata(tmp_path / "c", tiny_dir, {"max_context": 64, "center": True})
    assert KronosPredictor.from_pretrained(str(centered)).center is True
    assert KronosPredictor.from_pretrained(str(centered), center=False).center is False
    assert KronosPredictor.from_pretrained(str(plain)).center is False
    with pytest.raises(TypeError, match="^center must be True or False, got int 1"):
        KronosPredictor(tiny_model, tiny_tokenizer, center=1)
