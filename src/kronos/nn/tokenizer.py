"""KronosTokenizer: normalised OHLCV bars <-> hierarchical (s1, s2) tokens."""

from __future__ import annotations

import math
from typing import Literal, overload

import torch
from torch import nn

from kronos.nn.checkpoint import Network
from kronos.nn.config import TokenizerConfig
from kronos.nn.layers import (
    BinarySphericalQuantizer,
    BSQuantizer,
    StackCache,
    TransformerBlock,
    indices_to_bits,
    linear,
    run_blocks,
)

Tokens = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # ids, or (s1, s2) ids with half=True


class KronosTokenizer(nn.Module, Network[TokenizerConfig]):
    """Causal Transformer encoder, binary spherical quantizer, causal Transformer decoder.

    `encode(x, half=True)` gives (s1, s2) token ids; `decode((s1, s2), half=True)` gives bars back.
    The encoder and decoder each hold `n_*_layers - 1` blocks, as in the published checkpoints.
    The constructor takes upstream's arguments (those of config.json); `config` holds them,
    checked (see `TokenizerConfig`).
    """

    config_class = TokenizerConfig
    part = "tokenizer"

    def __init__(
        self,
        d_in: int,
        d_model: int,
        n_heads: int,
        ff_dim: int,
        n_enc_layers: int,
        n_dec_layers: int,
        ffn_dropout_p: float,
        attn_dropout_p: float,
        resid_dropout_p: float,
        s1_bits: int,
        s2_bits: int,
        beta: float,
        gamma0: float,
        gamma: float,
        zeta: float,
        group_size: int,
    ) -> None:
        super().__init__()
        self.config = TokenizerConfig(
            d_in=d_in, d_model=d_model, n_heads=n_heads, ff_dim=ff_dim, n_enc_layers=n_enc_layers,
            n_dec_layers=n_dec_layers, ffn_dropout_p=ffn_dropout_p, attn_dropout_p=attn_dropout_p,
            resid_dropout_p=resid_dropout_p, s1_bits=s1_bits, s2_bits=s2_bits, beta=beta, gamma0=gamma0,
            gamma=gamma, zeta=zeta, group_size=group_size,
        )  # fmt: skip
        self.d_in, self.d_model = d_in, d_model
        self.s1_bits, self.s2_bits = s1_bits, s2_bits
        self.codebook_dim = self.config.codebook_dim

        def blocks(n: int) -> nn.ModuleList:
            return nn.ModuleList(TransformerBlock(self.config) for _ in range(n - 1))

        self.embed = nn.Linear(d_in, d_model)
        self.encoder = blocks(n_enc_layers)
        self.quant_embed = nn.Linear(d_model, self.codebook_dim)
        self.tokenizer = BSQuantizer(
            s1_bits, BinarySphericalQuantizer(self.codebook_dim, beta, gamma0, gamma, zeta, group_size)
        )
        self.post_quant_embed_pre = nn.Linear(s1_bits, d_model)
        self.post_quant_embed = nn.Linear(self.codebook_dim, d_model)
        self.decoder = blocks(n_dec_layers)
        self.head = nn.Linear(d_model, d_in)

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous code before quantization, [B, L, codebook_dim]."""
        latent: torch.Tensor = self.quant_embed(run_blocks(self.encoder, self.embed(x)))
        return latent

    @overload
    def encode(self, x: torch.Tensor, half: Literal[False] = False) -> torch.Tensor: ...

    @overload
    def encode(self, x: torch.Tensor, half: Literal[True]) -> tuple[torch.Tensor, torch.Tensor]: ...

    def encode(self, x: torch.Tensor, half: bool = False) -> Tokens:
        """Token ids of x [B, L, d_in]: one id per bar, or (s1, s2) with `half=True`."""
        _, _, indices = self.tokenizer(self.encode_latent(x), half=half, collect_metrics=False)
        found: Tokens = indices
        return found

    def indices_to_code(self, indices: Tokens, half: bool = False) -> torch.Tensor:
        """Token ids back to the ±1/sqrt(codebook_dim) code the decoder reads."""
        if half:
            s1, s2 = indices
            n = self.codebook_dim // 2
            bits = torch.cat([indices_to_bits(s1, n), indices_to_bits(s2, n)], dim=-1)
        elif isinstance(indices, torch.Tensor):
            bits = indices_to_bits(indices, self.codebook_dim)
        else:
            raise TypeError("token ids are one tensor, or an (s1, s2) pair with half=True")
        return bits * (1.0 / math.sqrt(self.codebook_dim))

    def decode_code(
        self, code: torch.Tensor, embed: nn.Linear | None = None, cache: StackCache | None = None
    ) -> torch.Tensor:
        """Bars from codes [B, L, codebook_dim]; with a cache, the tokens after those it holds."""
        (z,) = linear(code.to(self.head.weight.dtype), self.post_quant_embed if embed is None else embed)
        (bars,) = linear(
            run_blocks(self.decoder, z, caches=None if cache is None else cache.layers), self.head
        )
        return bars

    def decode(self, x: Tokens, half: bool = False, cache: StackCache | None = None) -> torch.Tensor:
        """Bars [B, L, d_in] from token ids (see `encode`); with a cache, see `decode_code`."""
        return self.decode_code(self.indices_to_code(x, half), cache=cache)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: ((z_pre, z), bsq_loss, quantized, indices).

        z reconstructs x from the full code, z_pre from the s1 bits alone.
        """
        bsq_loss, quantized, indices = self.tokenizer(self.encode_latent(x))
        z_pre = self.decode_code(quantized[..., : self.s1_bits], self.post_quant_embed_pre)
        z = self.decode_code(quantized)
        return (z_pre, z), bsq_loss, quantized, indices
