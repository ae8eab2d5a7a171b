"""Defaults that follow the model's metadata, seeded draws per series, and the CLI's bands."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from test_training import make_bars, tiny_config

from kronos import Kronos, KronosPredictor, KronosTokenizer, load_pretrained
from kronos.commands.main import main
from kronos.engine.sampling import Sampling, SeriesRandom, series_key
from kronos.evaluation import Backtest, evaluate
from kronos.forecasting.predictor import ContextWarning
from kronos.nn.metadata import ModelMetadata
from kronos.training import train

torch.set_num_threads(1)
COLUMNS = ["open", "high", "low", "close", "volume", "amount"]


def test_the_shipped_model_loads_by_name_with_its_metadata():
    model, tokenizer = load_pretrained("kronos-default")
    assert model.metadata is not None
    assert (model.metadata.max_context, model.metadata.history) == (128, 108)
    assert isinstance(tokenizer, KronosTokenizer) and tokenizer.config.s1_bits == model.config.s1_bits == 8
    predictor = KronosPredictor.from_pretrained("kronos-default", device="cpu")
    assert predictor.max_context == 128 and predictor.lookback == 108
    narrow = KronosPredictor.from_pretrained(device="cpu", max_context=64)
    assert narrow.max_context == 64 and narrow.lookback == 64


def test_metadata_round_trip_through_training_saving_and_loading(tmp_path):
    paths = []
    for i, freq in enumerate(("h", "D")):
        paths.append(tmp_path / f"s{i}.csv")
        make_bars(300, seed=i, freq=freq).to_csv(paths[-1], index=False)
    config = tiny_config(tmp_path, paths, epochs=1)
    train(config, "tokenizer")
    result = train(config, "predictor")
    saved = json.loads((result.best_dir / "kronos.json").read_text())
    assert saved["max_context"] == 24 and saved["history"] == 20
    assert saved["frequencies"] == ["D", "h"] and saved["series"] == 2
    tokenizer_dir = tmp_path / "run" / "tokenizer" / "best"
    predictor = KronosPredictor.from_pretrained(str(result.best_dir), str(tokenizer_dir), device="cpu")
    assert predictor.max_context == 24 and predictor.lookback == 20
    # and the defaults of evaluate follow: the lookback is the history the model was trained with
    data = make_bars(120, seed=5).set_index("timestamps").reset_index()
    outcome = evaluate(
        data,
        predictor,
        Backtest(steps=3, origins=2, sampling=Sampling(sample_count=2, seed=0)),
        progress=False,
    )
    assert outcome.settings["lookback"] == 20 and outcome.settings["notes"] == []
    # saving the loaded model keeps the metadata
    predictor.model.save_pretrained(tmp_path / "copy")
    assert Kronos.from_pretrained(tmp_path / "copy").metadata == predictor.metadata


def test_metadata_files_are_checked(tmp_path):
    with pytest.raises(ValueError, match="'history' must be a positive integer"):
        ModelMetadata.from_dict({"max_context": 64, "history": -3}, "kronos.json")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        ModelMetadata.from_dict([64], "kronos.json")  # type: ignore[arg-type]


def test_series_keys_are_stable_names():
    assert series_key(0, "AAPL", 17) == series_key(0, "AAPL", np.int64(17)) == series_key(0, ("AAPL", 17))
    assert series_key(0, "AAPL", 17) != series_key(1, "AAPL", 17) != series_key(0, "AAPL", 18)
    # pinned: the same seed names the same draws on every machine and in every version
    assert series_key(3, 0) == 0x7ACFD22EA8EF5E51
    draws = SeriesRandom([series_key(3, 0)], 2, torch.device("cpu"))
    np.testing.assert_allclose(
        draws.uniforms(0, 0).numpy(), [0.7299755611921817, 0.8670831807449176], rtol=1e-15
    )
    np.testing.assert_allclose(
        draws.uniforms(5, 1).numpy(), [0.49112532220083394, 0.2537259492354572], rtol=1e-15
    )


def parts(ohlcv: pd.DataFrame, starts, length: int = 50, steps: int = 5):
    frames = [ohlcv.iloc[s : s + length] for s in starts]
    futures = [ohlcv["timestamps"].iloc[s + length : s + length + steps] for s in starts]
    return [f[COLUMNS] for f in frames], [f["timestamps"] for f in frames], futures


def test_seeded_paths_do_not_depend_on_the_global_generator_or_on_each_other(
    tiny_model, tiny_tokenizer, tiny_ohlcv
):
    predictor = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
    dfs, stamps, futures = parts(tiny_ohlcv, (0, 100, 200))
    torch.manual_seed(1)
    together = predictor.predict_paths_batch(
        dfs, stamps, futures, 5, sampling=Sampling(sample_count=4, seed=7), series_ids="abc"
    )
    torch.manual_seed(2)
    alone = predictor.predict_paths(
        dfs[2], stamps[2], futures[2], 5, sampling=Sampling(sample_count=4, seed=7), series_id="c"
    )
    np.testing.assert_array_equal(together[2], alone)
    assert np.ptp(alone[:, :, 3], axis=0).max() > 0  # the paths differ from one another
    other_seed = predictor.predict_paths(
        dfs[2], stamps[2], futures[2], 5, sampling=Sampling(sample_count=4, seed=8), series_id="c"
    )
    assert not np.array_equal(alone, other_seed)
    # the cached engine draws the same tokens from the same numbers
    cached = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
    np.testing.assert_allclose(
        cached.predict_paths_batch(
            dfs, stamps, futures, 5, sampling=Sampling(sample_count=4, seed=7), series_ids="abc"
        ),
        together,
        rtol=1e-4,
        atol=0.05,  # amount swings through zero on a scale of 1e4
    )


def test_histories_beyond_the_context_warn_and_can_be_trimmed(tiny_model, tiny_tokenizer, tiny_ohlcv):
    predictor = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
    frame, future = tiny_ohlcv.iloc[:100], tiny_ohlcv["timestamps"].iloc[100:104]
    with pytest.warns(ContextWarning, match="history of 100 bars is longer than the model's context of 64"):
        predictor.predict_paths(
            frame[COLUMNS], frame["timestamps"], future, 4, sampling=Sampling(sample_count=2, seed=0)
        )
    trimmed = KronosPredictor(
        tiny_model, tiny_tokenizer, device="cpu", max_context=64, normalize_on="context"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContextWarning)
        full = trimmed.predict_paths(
            frame[COLUMNS], frame["timestamps"], future, 4, sampling=Sampling(sample_count=2, seed=0)
        )
    last = frame.iloc[-64:]
    expected = predictor.predict_paths(
        last[COLUMNS], last["timestamps"], future, 4, sampling=Sampling(sample_count=2, seed=0)
    )
    np.testing.assert_array_equal(full, expected)


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
        bars[COLUMNS],
        bars["timestamps"],
        cli.index,
        7,
        quantile_levels=(0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975),
        sampling=Sampling(sample_count=20, seed=11),
        series_id="bars",  # the CLI keys a file's draws by its name, as in a folder of files
    )
    assert list(cli.columns) == list(library.columns)
    np.testing.assert_allclose(cli.to_numpy(), library.to_numpy(), rtol=1e-6)


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
