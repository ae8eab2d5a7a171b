"""kronos.nn.config: the parameter count derived from a config, config.json round trips, and the
checks a network built directly makes on its arguments."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
import torch

from kronos import Kronos, KronosTokenizer, ModelConfig, TokenizerConfig
from kronos.nn.checkpoint import MAX_PARAMETERS
from kronos.nn.config import KRONOS_BASE, PUBLISHED_CONFIGS


def test_parameter_count_is_exact_for_every_published_architecture():
    for name, config in PUBLISHED_CONFIGS.items():
        variants = [config, replace(config, learn_te=False)] if isinstance(config, ModelConfig) else [config]
        for variant in variants:
            with torch.device("meta"):  # shapes only, no memory
                built = (Kronos if isinstance(variant, ModelConfig) else KronosTokenizer).from_config(variant)
            assert built.config == variant
            assert variant.parameter_count == sum(p.numel() for p in built.parameters()), name
    assert 100e6 < KRONOS_BASE.parameter_count < MAX_PARAMETERS / 10


def test_configs_round_trip_through_config_json(
    tmp_path, tiny_dir, tiny_model, tiny_tokenizer, tiny_predictor
):
    """config.json holds the constructor's arguments: it reads into the network's config and the
    config's fields are written back unchanged; the predictor reports the config's parameter count."""
    for network, config_class, part in (
        (tiny_model, ModelConfig, "model"),
        (tiny_tokenizer, TokenizerConfig, "tokenizer"),
    ):
        stored = json.loads((tiny_dir / part / "config.json").read_text())
        assert asdict(network.config) == stored
        assert config_class.from_dict(stored, "config.json") == network.config
        network.save_pretrained(tmp_path / part)
        assert json.loads((tmp_path / part / "config.json").read_text()) == stored
        assert network.config.parameter_count == sum(p.numel() for p in network.parameters())
    assert tiny_predictor.n_parameters == tiny_model.config.parameter_count


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_heads": 0}, "'n_heads' must be at least 1, got 0"),
        ({"learn_te": 1}, "'learn_te' must be true or false, got 1"),
        ({"d_model": 36, "n_heads": 5}, r"'d_model' \(36\) divided by 'n_heads' \(5\)"),
        ({"d_model": 36, "n_heads": 2}, "dependency-aware layer's heads"),
    ],
)
def test_networks_built_directly_check_their_arguments(tiny_model, changes, message):
    """The constructor checks what config.json would be checked for (the size cap is the loader's)."""
    with pytest.raises(ValueError, match=message):
        Kronos(**{**asdict(tiny_model.config), **changes})
    with pytest.raises(ValueError, match=message):
        replace(tiny_model.config, **changes)
