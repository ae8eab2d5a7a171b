"""kronos.nn.layers: attributes read from nn.Module's registries never go stale."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kronos.nn.layers import BlockShape, FeedForward, RMSNorm, TransformerBlock


def test_registry_attributes_follow_every_change_of_the_registry():
    shape = BlockShape(
        d_model=8, n_heads=2, ff_dim=16, ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0
    )
    block = TransformerBlock(shape)
    assert block.norm1 is block._modules["norm1"]
    assert block.ffn.w1.weight is block.ffn._modules["w1"]._parameters["weight"]

    replacement = FeedForward(8, 16)
    block.ffn = replacement  # assignment goes through nn.Module.__setattr__
    assert block.ffn is replacement and dict(block.named_children())["ffn"] is replacement

    norm = RMSNorm(8)
    norm.weight = nn.Parameter(torch.full((8,), 2.0))
    assert torch.equal(norm.weight, torch.full((8,), 2.0))
    norm.load_state_dict({"weight": torch.full((8,), 3.0)}, assign=True)
    assert torch.equal(norm.weight, torch.full((8,), 3.0)) and norm.weight is norm._parameters["weight"]
    norm.to(torch.float64)
    assert (
        norm.weight.dtype == torch.float64
        and norm(torch.ones(1, 8, dtype=torch.float64)).dtype == torch.float64
    )

    del norm.weight
    with pytest.raises(AttributeError, match="weight"):
        norm.weight  # noqa: B018
    norm.register_parameter("weight", nn.Parameter(torch.ones(8)))  # hasattr says absent: allowed
    assert torch.equal(norm.weight, torch.ones(8))


def test_a_registry_attribute_set_to_none_reads_none():
    norm = RMSNorm(4)
    norm.weight = None  # a parameter slot registered as None, as nn.Linear(bias=False) has
    assert norm.weight is None and "weight" in norm._parameters
