"""Training: data validation, windows without look-ahead, both stages, resume, DDP with gloo."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kronos import Kronos, KronosTokenizer, ModelConfig, TokenizerConfig
from kronos.commands.main import main
from kronos.forecasting.tables import TableLayout, load_series
from kronos.training import build_windows, load_config, load_windows, train
from kronos.training.config import config_from_dict
from kronos.training.trainer import read_metrics

torch.set_num_threads(1)

TINY_TOKENIZER = {
    "d_model": 16,
    "n_heads": 2,
    "ff_dim": 32,
    "n_enc_layers": 2,
    "n_dec_layers": 2,
    "s1_bits": 4,
    "s2_bits": 4,
}
TINY_MODEL = {
    "d_model": 16,
    "n_heads": 2,
    "ff_dim": 32,
    "n_layers": 2,
    "ffn_dropout_p": 0.0,
    "resid_dropout_p": 0.0,
}


def make_bars(n: int, seed: int, freq: str = "h", start: str = "2024-01-01") -> pd.DataFrame:
    """A random walk with OHLC bars around it and positive volume."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.005, n)) * close
    return pd.DataFrame(
        {
            "timestamps": pd.date_range(start, periods=n, freq=freq),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.integers(100, 1000, n).astype(float),
        }
    )


@pytest.fixture
def csv_files(tmp_path) -> list[Path]:
    paths = []
    for i in range(2):
        path = tmp_path / f"sym{i}.csv"
        make_bars(300, seed=i).to_csv(path, index=False)
        paths.append(path)
    return paths


def tiny_config(tmp_path, paths, **train):
    raw = {
        "data": {
            "paths": [str(p) for p in paths],
            "window": 24,
            "history": 20,
            "val_fraction": 0.2,
            "stride": 2,
        },
        "tokenizer": TINY_TOKENIZER,
        "model": TINY_MODEL,
        "train": {
            "out_dir": str(tmp_path / "run"),
            "epochs": 3,
            "batch_size": 16,
            "lr": 3e-3,
            "samples_per_epoch": 160,
            "val_samples": 64,
            "patience": 0,
            "device": "cpu",
            "progress": False,
            "log_every": 5,
            **train,
        },
    }
    return config_from_dict(raw)


# --- data -----------------------------------------------------------------------------------------


def test_long_table_with_id_column_and_column_map(tmp_path):
    frames = []
    for symbol, seed in (("AAA", 1), ("BBB", 2)):
        df = make_bars(50, seed).rename(columns={"close": "Last", "timestamps": "Date", "open": "Open"})
        df["ticker"] = symbol
        frames.append(df)
    table = pd.concat(frames).sample(frac=1.0, random_state=0)  # shuffled rows: each series is sorted by time
    path = tmp_path / "long.csv"
    table.to_csv(path, index=False)
    series = load_series([path], TableLayout(id_column="ticker", column_map={"close": "Last"}))
    assert [s.name for s in series] == ["long.csv[ticker=AAA]", "long.csv[ticker=BBB]"]
    expected = make_bars(50, 2)
    np.testing.assert_allclose(series[1].bars[:, 3], expected["close"], rtol=1e-6)
    np.testing.assert_allclose(series[1].bars[:, 0], expected["open"], rtol=1e-6)
    assert series[1].timestamps.is_monotonic_increasing


def test_a_table_layout_names_what_is_wrong_with_it(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"column_map names unknown field\(s\) \['shut'\]"):
        TableLayout(column_map={"shut": "Close"})
    with pytest.raises(
        TypeError, match="layout must be a kronos.forecasting.tables.TableLayout.*got str 'ticker'"
    ):
        load_series([tmp_path / "long.csv"], "ticker")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"data.columns: column_map names unknown field\(s\) \['shut'\]"):
        config_from_dict({"data": {"columns": {"shut": "Close"}}})
    make_bars(30, 1).to_csv(tmp_path / "bars.csv", index=False)
    assert main(["forecast", str(tmp_path / "bars.csv"), "--steps", "2", "--columns", "shut=Close"]) == 2
    assert "--columns 'shut=Close': column_map names unknown field(s) ['shut']" in capsys.readouterr().err


def test_parquet_is_read_like_csv(tmp_path):
    pytest.importorskip("pyarrow")
    df = make_bars(40, 3)
    df.to_parquet(tmp_path / "x.parquet")
    df.to_csv(tmp_path / "x.csv", index=False)
    a, b = load_series([tmp_path / "x.parquet"])[0], load_series([tmp_path / "x.csv"])[0]
    np.testing.assert_allclose(a.bars, b.bars, rtol=1e-6)


def test_windows_split_by_time_and_normalised_on_history_only(csv_files):
    series = load_series(csv_files)
    cfg = config_from_dict({"data": {"window": 24, "history": 20, "val_fraction": 0.2, "stride": 1}})
    train_set, val_set = build_windows(series, cfg.data)
    split = 300 - 60
    assert train_set.index[:, 1].max() + 24 <= split
    assert val_set.index[:, 1].min() >= split
    assert len(train_set) == 2 * (split - 24 + 1)
    row = int(np.nonzero((train_set.index[:, 0] == 1) & (train_set.index[:, 1] == 100))[0][0])
    x, stamp = train_set.batch(np.array([row]))
    raw = series[1].bars[100:124].astype(np.float32)  # the model computes in float32
    mean, std = raw[:20].mean(axis=0), raw[:20].std(axis=0)
    np.testing.assert_allclose(x[0], np.clip((raw - mean) / (std + 1e-5), -5, 5), rtol=1e-5, atol=1e-5)
    # Changing the bars after the history part leaves the history's normalised values unchanged.
    train_set.bars[1][120:124] *= 3
    x2, _ = train_set.batch(np.array([row]))
    np.testing.assert_array_equal(x2[0, :20], x[0, :20])
    assert stamp[0, 0, 1] == series[1].timestamps[100].hour


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda df: df.drop(columns="close"), r"missing price column\(s\) \['close'\]"),
        (
            lambda df: df.assign(close=df["close"].where(df.index != 7)),
            r"column 'close' has NaN values .*line 9",  # the file's line: the header is line 1
        ),
        (
            lambda df: df.assign(high=df["high"].astype(object).where(df.index != 5, "12.5x")),
            r"'high' must be numeric.*'12.5x'",
        ),
        (lambda df: df.iloc[:30], r"too short: 30 bars"),
        (lambda df: df.drop(columns="timestamps"), r"no timestamp column"),
        (
            lambda df: df.assign(timestamps=df["timestamps"].where(df.index != 3, df["timestamps"][2])),
            r"occurs more than once",
        ),
    ],
    ids=["missing-column", "nan", "non-numeric", "too-short", "no-timestamps", "duplicate-time"],
)
def test_bad_files_stop_training_before_any_checkpoint(tmp_path, mutate, message):
    good = tmp_path / "good.csv"
    make_bars(300, 0).to_csv(good, index=False)
    bad = tmp_path / "bad.csv"
    mutate(make_bars(300, 1)).to_csv(bad, index=False)
    cfg = tiny_config(tmp_path, [good, bad])
    with pytest.raises(ValueError, match=message) as info:
        train(cfg, "tokenizer")
    assert "bad" in str(info.value)
    assert not (tmp_path / "run").exists()


def test_each_network_config_has_its_own_defaults():
    cfg = config_from_dict({"tokenizer": {"n_heads": 2}, "model": {"d_model": 64}})
    assert cfg.tokenizer.network() == TokenizerConfig(
        d_in=6, d_model=64, n_heads=2, ff_dim=128, ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0,
        n_enc_layers=3, n_dec_layers=3, s1_bits=6, s2_bits=6, beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05,
        group_size=4,
    )  # fmt: skip
    assert cfg.model.network(6, 5) == ModelConfig(
        s1_bits=6, s2_bits=5, d_model=64, n_heads=4, ff_dim=256, ffn_dropout_p=0.1, attn_dropout_p=0.0,
        resid_dropout_p=0.1, n_layers=4, token_dropout_p=0.0, learn_te=True,
    )  # fmt: skip
    assert (cfg.tokenizer.pretrained, cfg.model.pretrained, cfg.model.tokenizer) == ("", "", "")
    bad = config_from_dict({"tokenizer": {"group_size": 5}, "model": {"n_heads": 3}})
    with pytest.raises(ValueError, match=r"config \[tokenizer\]: 'group_size' \(5\) must divide"):
        bad.tokenizer.network()
    with pytest.raises(ValueError, match=r"config \[model\]: 'd_model' \(128\) divided by 'n_heads' \(3\)"):
        bad.model.network(6, 6)


def test_config_overrides_and_unknown_keys(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[data]\npaths = ["a.csv"]\nwindow = 64\n[train]\nlr = 1e-3\n[train.predictor]\nepochs = 7\n'
    )
    cfg = load_config(path, ["train.lr=5e-4", "data.window=32", "train.predictor.batch_size=8"])
    assert cfg.train.lr == 5e-4 and cfg.data.window == 32
    assert cfg.train_for("predictor").epochs == 7 and cfg.train_for("predictor").batch_size == 8
    assert cfg.train_for("tokenizer").epochs == cfg.train.epochs
    assert cfg.train_for("tokenizer").out_dir == str(tmp_path / "runs" / "kronos" / "tokenizer")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['train.lrr'\]"):
        load_config(path, ["train.lrr=1"])
    with pytest.raises(ValueError, match="train.epochs must be a int"):
        load_config(path, ["train.epochs=abc"])


# --- training -------------------------------------------------------------------------------------


def first_and_last_train_loss(out_dir: Path) -> tuple[float, float]:
    records = [r for r in read_metrics(out_dir / "metrics.jsonl") if r["split"] == "train"]
    return records[0]["loss"], records[-1]["loss"]


def test_tokenizer_then_predictor_training_lowers_the_loss(tmp_path, csv_files):
    cfg = tiny_config(tmp_path, csv_files)
    tok = train(cfg, "tokenizer")
    first, last = first_and_last_train_loss(tok.out_dir)
    assert last < 0.7 * first
    assert tok.history[-1]["val_loss"] < tok.history[0]["val_loss"]
    loaded = KronosTokenizer.from_pretrained(tok.best_dir)
    assert loaded.s1_bits == 4 and (tok.out_dir / "loss.png").stat().st_size > 10_000
    assert sorted(p.name for p in (tok.out_dir / "checkpoints").iterdir()) == [
        "epoch-0001",
        "epoch-0002",
        "epoch-0003",
    ]

    pred = train(cfg, "predictor")  # finds the tokenizer stage's best checkpoint in the same out_dir
    first, last = first_and_last_train_loss(pred.out_dir)
    assert first > np.log(16) * 0.9  # starts near the uniform cross-entropy over 16 tokens
    assert last < first - 0.3
    assert pred.history[-1]["val_loss"] < pred.history[0]["val_loss"]
    model = Kronos.from_pretrained(pred.out_dir / "checkpoints" / "epoch-0003")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, pred.module.state_dict()[name])
    # config.json holds the constructor's arguments, as upstream writes them
    assert json.loads((tok.best_dir / "config.json").read_text()) == {
        **TINY_TOKENIZER, "d_in": 6, "ffn_dropout_p": 0.0, "attn_dropout_p": 0.0, "resid_dropout_p": 0.0,
        "beta": 0.05, "gamma0": 1.0, "gamma": 1.1, "zeta": 0.05, "group_size": 4,
    }  # fmt: skip
    assert json.loads((pred.best_dir / "config.json").read_text()) == {
        **TINY_MODEL, "s1_bits": 4, "s2_bits": 4, "attn_dropout_p": 0.0, "token_dropout_p": 0.0, "learn_te": True,
    }  # fmt: skip


def test_fine_tuning_a_pretrained_model_lowers_its_validation_loss(tmp_path, tiny_dir):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"m{i}.csv")
        make_bars(400, seed=10 + i, freq="5min").to_csv(paths[-1], index=False)
    cfg = tiny_config(tmp_path, paths, epochs=2, lr=1e-3)
    cfg.model.pretrained = str(tiny_dir)  # a directory holding model/ and tokenizer/
    cfg.model.tokenizer = str(tiny_dir)
    pretrained = Kronos.from_pretrained(tiny_dir / "model")
    result = train(cfg, "predictor")
    assert result.module.d_model == 32 and result.module.s1_bits == 4
    changed = [
        k for k, v in pretrained.state_dict().items() if not torch.equal(v, result.module.state_dict()[k])
    ]
    assert changed  # the pretrained weights were the starting point and were trained
    from kronos.training.evaluation import window_losses

    _, _, val_set = load_windows(cfg)
    rows = np.arange(len(val_set))
    tokenizer = KronosTokenizer.from_pretrained(tiny_dir / "tokenizer")
    before = window_losses(tokenizer, pretrained, val_set, rows)["token_ce"]
    assert result.best_val_loss == pytest.approx(
        window_losses(tokenizer, Kronos.from_pretrained(result.best_dir), val_set, rows)["token_ce"], rel=1e-4
    )
    assert result.best_val_loss < before - 0.05


def test_resume_continues_from_the_saved_step(tmp_path, csv_files):
    straight = train(tiny_config(tmp_path, csv_files, epochs=3), "tokenizer")
    steps_per_epoch = straight.step // 3
    # Simulate a run interrupted during epoch 3: drop its last checkpoint and its last logged lines.
    shutil.rmtree(straight.out_dir / "checkpoints" / "epoch-0003")
    metrics = straight.out_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines[:-2]) + "\n")
    resumed = train(tiny_config(tmp_path, csv_files, epochs=3), "tokenizer", resume="auto")
    assert resumed.step == 3 * steps_per_epoch and resumed.epochs_done == 3
    records = read_metrics(metrics)
    steps = [r["step"] for r in records if r["split"] == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps))
    assert min(s for s in steps if s > 2 * steps_per_epoch) > 2 * steps_per_epoch
    assert [r["epoch"] for r in records if r["split"] == "val"] == [1, 2, 3]
    assert [h["train_loss"] for h in resumed.history] == pytest.approx(
        [h["train_loss"] for h in straight.history]
    )
    for name, value in straight.module.state_dict().items():
        torch.testing.assert_close(resumed.module.state_dict()[name], value)


def test_fresh_run_into_used_directory_is_refused(tmp_path, csv_files):
    train(tiny_config(tmp_path, csv_files, epochs=1), "tokenizer")
    with pytest.raises(FileExistsError, match="--resume auto"):
        train(tiny_config(tmp_path, csv_files, epochs=1), "tokenizer")


def test_early_stopping_on_validation_loss(tmp_path, csv_files):
    cfg = tiny_config(tmp_path, csv_files, epochs=6, lr=0.0, patience=2, warmup_fraction=0.0)
    result = train(cfg, "tokenizer")
    assert result.stopped_early and result.epochs_done == 3
    # resumed, a stopped run stays stopped: no epoch more, none counted twice
    again = train(cfg, "tokenizer", resume="auto")
    assert again.stopped_early and (again.epochs_done, again.step) == (3, result.step)
    assert again.history == result.history


# --- distributed ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, config_dict: dict, out: str) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    result = train(config_from_dict(config_dict), "tokenizer")
    torch.save({"state": result.module.state_dict(), "history": result.history}, Path(out) / f"rank{rank}.pt")


def test_two_process_gloo_training_keeps_ranks_in_sync(tmp_path, csv_files):
    cfg = tiny_config(tmp_path, csv_files, epochs=2, batch_size=8)
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, _free_port(), cfg.to_dict(), str(tmp_path)), nprocs=2, join=True
    )
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for name, value in rank0["state"].items():
        torch.testing.assert_close(rank1["state"][name], value, rtol=0, atol=0)

    def losses(history):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]

    assert losses(rank0["history"]) == losses(rank1["history"])  # losses are reduced over both ranks
    first, last = first_and_last_train_loss(tmp_path / "run" / "tokenizer")
    assert last < 0.7 * first
    # Two ranks of 8 windows take the same steps as one process with batches of 16.
    single = train(tiny_config(tmp_path / "single", csv_files, epochs=2, batch_size=16), "tokenizer")
    for name, value in single.module.state_dict().items():
        torch.testing.assert_close(rank0["state"][name], value, rtol=1e-3, atol=1e-3)
    assert [h["val_loss"] for h in rank0["history"]] == pytest.approx(
        [h["val_loss"] for h in single.history], rel=1e-4
    )
    assert json.loads((tmp_path / "run" / "tokenizer" / "best" / "config.json").read_text())["d_model"] == 16


def test_the_held_out_check_scores_the_paths_the_core_samples(tiny_predictor, tiny_ohlcv):
    from kronos.engine.sampling import Sampling
    from kronos.forecasting.series import CLOSE, Series
    from kronos.training.evaluation import forecast_errors

    series = Series.from_frame(tiny_ohlcv, key="tiny", name="tiny")
    torch.manual_seed(4)
    errors = forecast_errors(
        tiny_predictor, series, split=150, history=40, horizon=5, origins=4, sample_count=6
    )
    starts = np.unique(np.linspace(150, len(series) - 5, 4).round().astype(int))
    torch.manual_seed(4)  # the same draws from torch's global generator
    paths = tiny_predictor.sample(
        [series.window(t - 40, t) for t in starts],
        5,
        Sampling(sample_count=6),
        future=[series.timestamps[t : t + 5] for t in starts],
    ).paths[..., CLOSE]
    actual = np.stack([series.bars[t : t + 5, CLOSE] for t in starts])
    persistence = np.abs(series.bars[starts - 1, CLOSE][:, None] - actual).mean()
    assert errors["forecasts"] == 4 and paths.shape == (4, 6, 5)
    assert errors["mae_close_model"] == pytest.approx(np.abs(paths.mean(axis=1) - actual).mean(), rel=1e-12)
    assert errors["mae_close_persistence"] == pytest.approx(persistence, rel=1e-12)
    assert errors["mae_ratio"] == pytest.approx(errors["mae_close_model"] / persistence, rel=1e-12)
    assert 0 <= errors["band80_coverage"] <= 1
    with pytest.raises(ValueError, match="no room for a 5-step forecast after bar"):
        forecast_errors(
            tiny_predictor, series, split=len(series), history=40, horizon=5, origins=4, sample_count=6
        )
