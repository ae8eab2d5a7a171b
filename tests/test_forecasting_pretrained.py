"""kronos.forecasting.pretrained: the shipped model loads by name with its metadata, and its files
are declared as package data."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from helpers import make_offline_cache

from kronos import KronosPredictor, KronosTokenizer, load_pretrained
from kronos.forecasting.pretrained import shipped_dir

torch.set_num_threads(1)


def test_the_shipped_model_loads_by_name_with_its_metadata():
    model, tokenizer = load_pretrained("kronos-default")
    assert model.metadata is not None
    assert (model.metadata.max_context, model.metadata.history) == (128, 108)
    assert isinstance(tokenizer, KronosTokenizer) and tokenizer.config.s1_bits == model.config.s1_bits == 8
    predictor = KronosPredictor.from_pretrained("kronos-default", device="cpu")
    assert predictor.max_context == 128 and predictor.lookback == 108
    assert predictor.anchor and predictor.center  # its kronos.json: measured (docs/calibration.md)
    narrow = KronosPredictor.from_pretrained(device="cpu", max_context=64)
    assert narrow.max_context == 64 and narrow.lookback == 64


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


OFFLINE_MODELS = """
from kronos.forecasting.pretrained import offline_models
for one in offline_models():
    print(one.name, one.source, one.metadata.max_context, one.metadata.lookback, ",".join(one.metadata.frequencies))
"""


def test_offline_models_are_the_shipped_ones_and_the_cached_hub_ones(tmp_path, tiny_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | {"HF_HUB_OFFLINE": "1"}
    listed = []
    for hf_home in (tmp_path / "empty", tmp_path / "cached"):
        if hf_home.name == "cached":
            make_offline_cache(hf_home, tiny_dir)
        run = subprocess.run(
            [sys.executable, "-c", OFFLINE_MODELS], env=env | {"HF_HOME": str(hf_home)},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        listed.append(run.stdout.splitlines())
    assert listed[0] == ["kronos-default shipped 128 108 5min,D,h,min"]
    # the published model's known context (its cache holds no kronos.json)
    assert listed[1] == listed[0] + ["NeoQuasar/Kronos-small hub cache 512 512 "]


def test_a_context_beyond_the_models_own_warns_and_is_capped(tiny_ohlcv):
    import warnings

    import numpy as np
    import pytest

    from kronos import Sampling
    from kronos.forecasting.core import ContextWarning

    model, tokenizer = load_pretrained("kronos-default")
    with pytest.warns(ContextWarning, match="max_context=400 is beyond the model's own context of 128 bars"):
        predictor = KronosPredictor(model, tokenizer, device="cpu", max_context=400)
    assert predictor.max_context == 128
    bars = tiny_ohlcv.iloc[:395]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ContextWarning)  # the history is longer than the context
        paths = predictor.predict_paths(
            bars,
            bars["timestamps"],
            tiny_ohlcv["timestamps"].iloc[395:],
            5,
            sampling=Sampling(sample_count=4, seed=0),
        )
    assert paths.shape == (4, 5, 6) and np.isfinite(paths).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within the context: no warning
        assert KronosPredictor(model, tokenizer, device="cpu", max_context=128).max_context == 128


def test_a_hub_id_the_hub_does_not_know_is_reported_as_not_found(tmp_path, monkeypatch, capsys):
    """No network: the Hub's one probe is replaced by the error the Hub answers for an unknown repository."""
    import httpx
    import pytest
    from huggingface_hub.errors import RepositoryNotFoundError

    import kronos.nn.checkpoint as checkpoint
    from kronos.commands.main import main

    def unknown(url, **_):
        response = httpx.Response(404, request=httpx.Request("HEAD", url))
        raise RepositoryNotFoundError(
            f"404 Client Error. Repository Not Found for url: {url}", response=response
        )

    monkeypatch.setattr(checkpoint, "get_hf_file_metadata", unknown)
    monkeypatch.setattr(checkpoint.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(checkpoint.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(
        FileNotFoundError, match="'someone/no-such-model' was not found on the Hugging Face Hub"
    ):
        load_pretrained("someone/no-such-model")
    example = shipped_dir().parents[3] / "examples" / "sp500_daily.csv"
    assert main(["forecast", str(example), "--steps", "2", "--model", "someone/no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "was not found on the Hugging Face Hub" in err and "without a tokenizer" not in err
