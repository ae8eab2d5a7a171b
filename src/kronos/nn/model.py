"""Kronos: a decoder-only Transformer predicting the next (s1, s2) token pair."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from kronos.nn.checkpoint import CheckpointFiles, Network
from kronos.nn.config import ModelConfig
from kronos.nn.layers import (
    DependencyAwareLayer,
    DualHead,
    HierarchicalEmbedding,
    LayerCache,
    RMSNorm,
    StackCache,
    TemporalEmbedding,
    TransformerBlock,
    dropout,
    registry_attributes,
    run_blocks,
)
from kronos.nn.metadata import ModelMetadata, read_metadata


class ModelCache(StackCache, Protocol):
    """A cached pass through Kronos: a layer cache per Transformer block, then (last, and as
    `dependency`) the dependency-aware layer's."""

    @property
    def dependency(self) -> LayerCache: ...


@registry_attributes("embedding", "time_emb", "token_drop", "transformer", "norm", "dep_layer", "head")
class Kronos(nn.Module, Network[ModelConfig]):
    """The autoregressive model.

    s1 logits come from the causal Transformer's last hidden state; s2 logits from that state
    conditioned on the chosen s1 token by the dependency-aware layer. The constructor takes
    upstream's arguments (those of config.json); `config` holds them, checked (see `ModelConfig`).
    """

    config_class = ModelConfig
    part = "model"

    def __init__(
        self,
        s1_bits: int,
        s2_bits: int,
        n_layers: int,
        d_model: int,
        n_heads: int,
        ff_dim: int,
        ffn_dropout_p: float,
        attn_dropout_p: float,
        resid_dropout_p: float,
        token_dropout_p: float,
        learn_te: bool,
    ) -> None:
        super().__init__()
        self.config = ModelConfig(
            s1_bits=s1_bits, s2_bits=s2_bits, n_layers=n_layers, d_model=d_model, n_heads=n_heads,
            ff_dim=ff_dim, ffn_dropout_p=ffn_dropout_p, attn_dropout_p=attn_dropout_p,
            resid_dropout_p=resid_dropout_p, token_dropout_p=token_dropout_p, learn_te=learn_te,
        )  # fmt: skip
        self.s1_bits, self.s2_bits = s1_bits, s2_bits
        self.d_model, self.n_layers, self.n_heads = d_model, n_layers, n_heads
        self.s1_vocab_size, self.s2_vocab_size = 2**s1_bits, 2**s2_bits
        self.embedding = HierarchicalEmbedding(s1_bits, s2_bits, d_model)
        self.time_emb = TemporalEmbedding(d_model, learn_te)
        self.token_drop = nn.Dropout(token_dropout_p)
        self.transformer = nn.ModuleList(TransformerBlock(self.config) for _ in range(n_layers))
        self.norm = RMSNorm(d_model)
        self.dep_layer = DependencyAwareLayer(d_model)
        self.head = DualHead(s1_bits, s2_bits, d_model)
        self.apply(self._init_weights)
        self.metadata: ModelMetadata | None = None

    def loaded_from(self, name: str, checkpoint: CheckpointFiles) -> None:
        """The model's `metadata`: the `kronos.json` beside its weights, or the known values of a
        published Hub model."""
        self.metadata = read_metadata(name, checkpoint.directory)

    def _save_pretrained(self, save_directory: Path) -> None:
        """Weights and config as upstream writes them, plus kronos.json when the model has metadata."""
        super()._save_pretrained(save_directory)
        if self.metadata is not None:
            self.metadata.write(save_directory)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and module.weight.requires_grad:
            nn.init.normal_(module.weight, std=module.embedding_dim**-0.5)

    def blocks(self) -> list[TransformerBlock]:
        """The Transformer blocks, typed."""
        return [block for block in self.transformer if isinstance(block, TransformerBlock)]

    def embed(
        self,
        s1_ids: torch.Tensor,
        s2_ids: torch.Tensor,
        stamp: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.embedding(s1_ids, s2_ids)
        if stamp is not None:
            x = x + self.time_emb(stamp)
        return dropout(self.token_drop, x)

    def decode_s1(
        self,
        s1_ids: torch.Tensor,
        s2_ids: torch.Tensor,
        stamp: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        *,
        cache: ModelCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(s1 logits, normed hidden states) for every position.

        With a cache, the tokens follow those the cache holds for their rows; the logits are the
        last position's only, [B, 1, vocab], and the dependency-aware layer keeps its keys of the
        new positions for `decode_s2`.
        """
        x = self.embed(s1_ids, s2_ids, stamp)
        caches = None if cache is None else cache.layers[:-1]
        x = self.norm(run_blocks(self.transformer, x, padding_mask, caches))
        if cache is None:
            return self.head(x), x
        self.dep_layer.remember(x, cache.dependency)
        return self.head(x[:, -1:]), x

    def decode_s2(
        self,
        context: torch.Tensor,
        s1_ids: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        *,
        cache: ModelCache | None = None,
    ) -> torch.Tensor:
        """s2 logits given the hidden states and the s1 ids (the query is the unscaled s1 embedding).

        With a cache, context is the positions to condition (the last) and the keys are the cache's.
        """
        s1_embed = self.embedding.emb_s1(s1_ids)
        if cache is None:
            conditioned = self.dep_layer(context, s1_embed, padding_mask)
        else:
            conditioned = self.dep_layer.recall(context, s1_embed, cache.dependency)
        logits: torch.Tensor = self.head.cond_forward(conditioned)
        return logits

    def forward(
        self,
        s1_ids: torch.Tensor,
        s2_ids: torch.Tensor,
        stamp: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        use_teacher_forcing: bool = False,
        s1_targets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(s1 logits, s2 logits); s2 is conditioned on `s1_targets` or on s1 ids sampled from s1 logits."""
        s1_logits, context = self.decode_s1(s1_ids, s2_ids, stamp, padding_mask)
        if use_teacher_forcing:
            if s1_targets is None:
                raise ValueError("use_teacher_forcing=True needs s1_targets")
            s1_cond = s1_targets
        else:
            probs = F.softmax(s1_logits.detach(), dim=-1)
            s1_cond = torch.multinomial(probs.reshape(-1, self.s1_vocab_size), 1).view(s1_ids.shape)
        return s1_logits, self.decode_s2(context, s1_cond, padding_mask)
