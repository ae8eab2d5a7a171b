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
    assert listed[0] == ["kronos-default shipped 128 108 D,h,min"]
    # the published model's known context (its cache holds no kronos.json)
    assert listed[1] == listed[0] + ["NeoQuasar/Kronos-small hub cache 512 512 "]
