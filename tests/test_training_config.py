"""kronos.training.config: each network's defaults, overrides and unknown keys."""

from __future__ import annotations

import pytest
import torch

from kronos import ModelConfig, TokenizerConfig
from kronos.training import load_config
from kronos.training.config import config_from_dict

torch.set_num_threads(1)


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


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "train.batch_size=0",
            r"config train.batch_size must be at least 1 \(windows per step and process\), got 0",
        ),
        ("train.predictor.batch_size=-2", "config train.predictor.batch_size must be at least 1"),
        ("train.epochs=0", "config train.epochs must be at least 1, got 0"),
        ("train.lr=-1e-3", r"config train.lr must be at least 0 \(0 trains nothing\), got -0.001"),
        ("train.lr=nan", "config train.lr must be at least 0 .*, got nan"),
        ("train.betas=[0.9, 1.5]", r"config train.betas must be at least 0 and below 1, got \[0.9, 1.5\]"),
        ("train.betas=[0.9]", r"config train.betas must be two numbers"),
        ("train.warmup_fraction=2", "config train.warmup_fraction must be at least 0 and at most 1"),
        ("train.log_every=0", "config train.log_every must be at least 1"),
        ("train.patience=-1", r"config train.patience must be at least 0 \(0: no early stop\)"),
        ("data.window=100000000", "config data.window must be at least 2 and at most 16384"),
        ("data.clip=0", "config data.clip must be above 0"),
        ("data.val_fraction=1", "config data.val_fraction must be at least 0 and below 1"),
        (
            "model.ffn_dropout_p=1",
            r"config model.ffn_dropout_p must be at least 0 and below 1 \(a dropout probability\)",
        ),
        ("tokenizer.resid_dropout_p=-0.1", "config tokenizer.resid_dropout_p must be at least 0"),
        (
            "sampling.top_p=0",
            r"config sampling.top_p must be above 0 and at most 1 \(nucleus sampling threshold\)",
        ),
        ("sampling.top_p=1.5", "config sampling.top_p must be above 0 and at most 1"),
        ("sampling.temperature=0", "config sampling.temperature must be at least 0.0001"),
        (
            "sampling.temperatures=[1.0, 0]",
            r"config sampling.temperatures must be at least 0.0001 \(the temperatures the best checkpoint is "
            r"scored at\), got \[1.0, 0\]",
        ),
        ("sampling.temperatures=[1.0, inf]", r"config sampling.temperatures must be at least 0.0001 .*inf"),
        ("sampling.temperatures=[1.0, true]", "config sampling.temperatures must be at least 0.0001"),
        ("sampling.temperatures=['hot']", "config sampling.temperatures must be at least 0.0001"),
        ("sampling.temperatures=1.2", "config sampling.temperatures must be a list, got 1.2"),
    ],
)
def test_every_numeric_setting_is_range_checked_naming_it(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_forecast_anchor_is_a_flag_on_by_default():
    assert load_config(None, []).forecast.anchor is True
    assert load_config(None, ["forecast.anchor=false"]).forecast.anchor is False
    with pytest.raises(ValueError, match="^config forecast.anchor must be a bool, got 1"):
        load_config(None, ["forecast.anchor=1"])


def test_forecast_center_is_a_flag_off_by_default():
    assert load_config(None, []).forecast.center is False
    assert load_config(None, ["forecast.center=true"]).forecast.center is True


def test_sampling_temperatures_are_absent_unless_listed():
    """Empty (the default, and what a written config holds) keeps `temperature`, so a config read
    back from its dict (as the distributed workers do) is the same config."""
    assert load_config(None, []).sampling.temperatures == []
    assert load_config(None, ["sampling.temperatures=[]"]).sampling.temperatures == []
    assert config_from_dict(load_config(None, []).to_dict()).sampling == load_config(None, []).sampling
    config = load_config(None, ["sampling.temperatures=[0.9, 1, 1.2]"])
    assert config.sampling.temperatures == [0.9, 1, 1.2] and config.sampling.temperature == 1.0


def test_the_default_settings_are_within_their_ranges():
    config = load_config(None, ["train.grad_clip=0", "train.samples_per_epoch=0", "data.history=0"])
    assert (config.train.batch_size, config.train.grad_clip, config.data.history) == (32, 0.0, 0)
