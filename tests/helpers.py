"""Plain functions shared by several test files: bars to forecast, tiny training configs, random
networks and inputs for the engine, an offline Hugging Face cache, and a file-size limit."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import resource
import shutil
import signal
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import torch

from kronos import Kronos, KronosTokenizer
from kronos.engine.sampling import Sampling
from kronos.forecasting.series import FEATURE_COLUMNS
from kronos.nn.config import KRONOS_MINI, KRONOS_TOKENIZER_BASE
from kronos.training.config import config_from_dict


def random_bars(
    n: int, freq: str = "D", start: str = "2024-01-01", seed: int = 0, tz: str | None = None
) -> pd.DataFrame:
    """`n` bars of a random walk around 50 (1% a bar), daily from 2024-01-01 unless told, with volume."""
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


def calm_bars(n: int, freq: str, start: str = "2024-03-04 09:30", seed: int = 0) -> pd.DataFrame:
    """`n` bars of a calm random walk around 50 (0.2% a bar) from 2024-03-04 09:30, with volume."""
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


def random_walk_bars(n: int, seed: int = 0, sigma: float = 0.01, start="2024-01-01") -> pd.DataFrame:
    """`n` five-minute bars of a random walk around 100 with volume and amount."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(sigma * rng.standard_normal(n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    volume = rng.uniform(100, 200, n)
    return pd.DataFrame(
        {
            "timestamps": pd.date_range(start, periods=n, freq="5min"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": volume,
            "amount": volume * close,
        }
    )


def universe_table(
    n_series: int, n_bars: int, seed: int = 0, persistence: float = 0.0, id_column: str = "symbol"
) -> pd.DataFrame:
    """A long table of `n_series` daily business-day series with volume, one `id_column` value each.

    Log returns are noise (1% a bar) plus, with `persistence` > 0, a drift per series that follows
    an AR(1) with that coefficient (shocks of 0.05%): planted momentum, which past returns predict.
    With `persistence` 0 every series is a pure random walk.
    """
    rng = np.random.default_rng(seed)
    drift = np.zeros((n_series, n_bars))
    if persistence:
        for t in range(1, n_bars):
            drift[:, t] = persistence * drift[:, t - 1] + rng.normal(0, 0.0005, n_series)
    close = rng.uniform(20, 200, (n_series, 1)) * np.exp(
        np.cumsum(drift + rng.normal(0, 0.01, drift.shape), axis=1)
    )
    open_ = np.hstack([close[:, :1], close[:, :-1]])
    return pd.DataFrame(
        {
            id_column: np.repeat([f"S{i:02d}" for i in range(n_series)], n_bars),
            "timestamps": np.tile(pd.bdate_range("2020-01-01", periods=n_bars), n_series),
            "open": open_.ravel(),
            "high": np.maximum(open_, close).ravel() * 1.002,
            "low": np.minimum(open_, close).ravel() * 0.998,
            "close": close.ravel(),
            "volume": rng.lognormal(8, 0.3, close.shape).round().ravel(),
        }
    )


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


def tiny_config(tmp_path, paths, **train):
    """A training config for two small stages on `paths`, run in tmp_path/run; `train` overrides the [train] section."""
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


def random_pair(seed: int, bits: int = 10, n_heads: int = 8, learn_te: bool = False):
    """A randomly initialised tokenizer and model of shapes the shared fixture does not cover."""
    torch.manual_seed(seed)
    tokenizer_config = replace(
        KRONOS_TOKENIZER_BASE,
        d_model=32,
        ff_dim=64,
        n_enc_layers=3,
        n_dec_layers=3,
        s1_bits=bits,
        s2_bits=bits,
    )
    model_config = replace(
        KRONOS_MINI,
        s1_bits=bits,
        s2_bits=bits,
        n_layers=3,
        d_model=64,
        n_heads=n_heads,
        ff_dim=96,
        learn_te=learn_te,
    )
    tokenizer = KronosTokenizer.from_config(tokenizer_config).eval()
    model = Kronos.from_config(model_config).eval()
    with torch.no_grad():  # spread the logits so that greedy choices are well separated
        model.head.proj_s1.weight.mul_(4)
        model.head.proj_s2.weight.mul_(4)
    return tokenizer, model


def random_inputs(n_series: int, hist_len: int, pred_len: int, seed: int = 0):
    """Normalised bars and minute-by-minute time features of `n_series` random histories and their futures."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_series, hist_len, 6, generator=gen).cumsum(1) / 5
    minutes = torch.arange(hist_len + pred_len)
    stamp = torch.stack(
        [minutes % 60, (minutes // 60) % 24, (minutes // 1440) % 7, 1 + minutes % 28, 1 + minutes % 12]
    )
    stamp = stamp.T.float().expand(n_series, -1, -1)
    return x, stamp[:, :hist_len].contiguous(), stamp[:, hist_len:].contiguous()


def checkpoint_with_metadata(tmp_path: Path, tiny_dir: Path, metadata: dict | None) -> Path:
    """A copy of the tiny compatibility checkpoint in tmp_path/model, its tokenizer beside it
    (model/tokenizer) and `metadata` as its kronos.json (none for None)."""
    model = tmp_path / "model"
    shutil.copytree(tiny_dir / "model", model)
    shutil.copytree(tiny_dir / "tokenizer", model / "tokenizer")
    if metadata is not None:
        (model / "kronos.json").write_text(json.dumps(metadata))
    return model


REPOS = {"NeoQuasar/Kronos-small": "model", "NeoQuasar/Kronos-Tokenizer-base": "tokenizer"}
COMMIT = "0" * 40


def make_offline_cache(hf_home: Path, tiny_dir: Path) -> None:
    """Lay out HF_HOME/hub as huggingface_hub does: models--owner--name/{refs/main, snapshots/<commit>/...}."""
    for repo_id, sub in REPOS.items():
        repo_dir = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
        snapshot = repo_dir / "snapshots" / COMMIT
        snapshot.mkdir(parents=True)
        for name in ("config.json", "model.safetensors"):
            shutil.copy(tiny_dir / sub / name, snapshot / name)
        (repo_dir / "refs").mkdir()
        (repo_dir / "refs" / "main").write_text(COMMIT)


@contextlib.contextmanager
def file_size_limit(max_bytes: int):
    """`ulimit -f` for this process: writes past `max_bytes` fail with EFBIG (SIGXFSZ ignored)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def history(ohlcv: pd.DataFrame, rows: slice) -> tuple[pd.DataFrame, pd.Series]:
    """The bars and timestamps of some rows of the fixture, as the predictor's methods take them."""
    part = ohlcv.iloc[rows]
    return part[FEATURE_COLUMNS], part["timestamps"]


def quantiles(predictor, frame: pd.DataFrame, steps: int = 3, top_k: int = 0) -> pd.DataFrame:
    """`predict_quantiles` of a frame with a timestamps column: two seeded paths, future stamps inferred."""
    return predictor.predict_quantiles(
        frame.drop(columns="timestamps"),
        frame["timestamps"],
        None,
        steps,
        sampling=Sampling(top_k=top_k, sample_count=2, seed=0),
    )


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py as a module, with scripts/ on sys.path while it loads (its sibling imports)."""
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    sys.path.insert(0, str(scripts))
    try:
        spec = importlib.util.spec_from_file_location(name, scripts / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(scripts))
    return module
