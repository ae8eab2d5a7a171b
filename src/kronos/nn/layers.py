"""Building blocks shared by the tokenizer and the model.

Module and parameter names are part of the checkpoint format: they must produce exactly the
state-dict keys of the published checkpoints (docs/architecture.md, "Checkpoints").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

ModuleT = TypeVar("ModuleT", bound=type[nn.Module])


class _Registered:
    """A submodule, parameter or buffer `name`, read straight from nn.Module's registries."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __get__(self, module: nn.Module | None, owner: type | None = None) -> Any:
        if module is None:
            return self
        for registry in (module._modules, module._parameters, module._buffers):
            found = registry.get(self.name)
            if found is not None:
                return found
        raise AttributeError(self.name)  # then nn.Module.__getattr__ says what is missing


def registry_attributes(*names: str) -> Callable[[ModuleT], ModuleT]:
    """Class decorator: `module.name` reads these submodules, parameters and buffers from the
    registries of nn.Module directly.

    nn.Module keeps them out of the instance dict, so each read first fails Python's lookup and
    then runs Module.__getattr__, a few microseconds; a one-token generation step reads a few
    hundred. A class-level descriptor finds them at once, and cannot go stale: assignment, `.to()`
    and `load_state_dict` all change the registries it reads.
    """

    def decorate(cls: ModuleT) -> ModuleT:
        for name in names:
            setattr(cls, name, _Registered(name))
        return cls

    return decorate


@registry_attributes("weight")
class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 and cast back, as the checkpoints expect."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        mean_square = x32.square().mean(-1, keepdim=True).add_(self.eps)
        return (x32 * mean_square.rsqrt_()).type_as(x) * self.weight


def dropout(layer: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    """layer(x) in training; in eval, where dropout is the identity, x without the call (a
    one-token generation step would make about twenty of them)."""
    return layer(x) if layer.training else x


Products = Callable[[torch.Tensor, tuple[nn.Linear, ...]], Sequence[torch.Tensor]]
"""`products(x, (a, b, ...))` gives `(a(x), b(x), ...)` for linear layers a, b that take the same input."""

PACKED_PRODUCTS: ContextVar[Products | None] = ContextVar("kronos_packed_products", default=None)
"""The products of linear layers in this thread: None outside generation, and there the packed
weights of `kronos.engine.packing.packed_products` (which sets it, for the cached passes only)."""


def linear(x: torch.Tensor, *layers: nn.Linear) -> Sequence[torch.Tensor]:
    """`(a(x), b(x), ...)` for linear layers a, b, ... that take the same input x.

    Each layer on its own, except inside `kronos.engine.packing.packed_products`: there the
    layers are multiplied together, by one product on their packed weights.
    """
    products = PACKED_PRODUCTS.get()
    return [layer(x) for layer in layers] if products is None else products(x, layers)


@registry_attributes("w1", "w3", "w2", "dropout")
class FeedForward(nn.Module):
    """SwiGLU feed-forward: w2(silu(w1 x) * w3 x)."""

    def __init__(self, d_model: int, ff_dim: int, dropout_p: float = 0.0):
        super().__init__()
        self.w1 = nn.Linear(d_model, ff_dim, bias=False)
        self.w3 = nn.Linear(d_model, ff_dim, bias=False)
        self.w2 = nn.Linear(ff_dim, d_model, bias=False)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = linear(x, self.w1, self.w3)
        (out,) = linear(F.silu(gate) * up, self.w2)
        return dropout(self.dropout, out)


class RotaryPositionalEmbedding(nn.Module):
    """Rotary embedding with the half-split rotation; `inv_freq` is saved in checkpoints."""

    inv_freq: torch.Tensor

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq)

    def table(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and signed sin, shape [len(positions), head_dim], for integer positions, in float32.

        The half-split rotation is x * cos + (-x2, x1) * sin; the sign of its first half is
        folded into the sin table, so it is x * cos + (x2, x1) * signed sin (`apply_rotary`), the
        same numbers in fewer operations.
        """
        freqs = positions.to(self.inv_freq.dtype)[:, None] * self.inv_freq[None, :]
        angles = freqs.float()
        sin = angles.sin()
        return torch.cat((angles, angles), dim=-1).cos(), torch.cat((-sin, sin), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [..., L, head_dim] by the per-position cos and signed sin [L, head_dim] of
    `RotaryPositionalEmbedding.table`."""
    if cos.dtype != x.dtype:
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * sin


def padding_to_attn_mask(padding_mask: torch.Tensor, q_len: int, causal: bool) -> torch.Tensor:
    """Boolean SDPA mask (True = may attend) from a key padding mask (nonzero = padded)."""
    keep = (padding_mask == 0)[:, None, None, :]
    if causal:
        k_len = padding_mask.shape[-1]
        tri = torch.ones(q_len, k_len, dtype=torch.bool, device=padding_mask.device).tril()
        keep = keep & tri
    return keep


class LayerCache(Protocol):
    """One attention layer's keys and values of earlier tokens (`kronos.engine.cache.KVCache`).

    A cached pass gives an attention layer only its new tokens; the cache was told where they
    stand. It keeps their keys and values beside those it holds and attends their queries over
    everything it holds.
    """

    def rotary(self, rotary: RotaryPositionalEmbedding, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin [n, head_dim] at the positions of the pass's n new tokens."""
        ...

    def store(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Keep the keys and values [B, H, n, head_dim] of the pass's n new tokens."""
        ...

    def attend(self, q: torch.Tensor) -> torch.Tensor:
        """Causal attention [B, H, n, head_dim] of the new tokens' queries over every key held."""
        ...


@registry_attributes("q_proj", "k_proj", "v_proj", "out_proj", "rotary", "resid_dropout")
class RotaryAttention(nn.Module):
    """Projections, heads and rotary table shared by the self- and the cross-attention."""

    def __init__(self, d_model: int, n_heads: int, attn_dropout_p: float = 0.0, resid_dropout_p: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.rotary = RotaryPositionalEmbedding(self.head_dim)
        self.attn_dropout_p = attn_dropout_p
        self.resid_dropout = nn.Dropout(resid_dropout_p)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, D] -> [B, H, L, head_dim]."""
        b, n, _ = x.shape
        return x.view(b, n, self.n_heads, self.head_dim).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, H, L, head_dim] -> [B, L, D]."""
        b, _, n, _ = x.shape
        return x.transpose(1, 2).reshape(b, n, self.d_model)

    def output(self, attended: torch.Tensor) -> torch.Tensor:
        """The heads [B, H, L, head_dim] merged and projected back to [B, L, D]."""
        (out,) = linear(self.merge_heads(attended), self.out_proj)
        return dropout(self.resid_dropout, out)

    def attention(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        causal: bool,
    ) -> torch.Tensor:
        """Attention over whole sequences, PyTorch's fused kernel (a cached pass attends through
        its cache instead)."""
        dropout_p = self.attn_dropout_p if self.training else 0.0
        if key_padding_mask is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=causal)
        mask = padding_to_attn_mask(key_padding_mask, q.shape[2], causal=causal)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


class MultiHeadAttentionWithRoPE(RotaryAttention):
    """Causal self-attention with rotary positions counted from 0 at the sequence start."""

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None, cache: LayerCache | None = None
    ) -> torch.Tensor:
        """x [B, L, D]. With a cache, x holds the tokens that follow those the cache holds for its
        rows: they stand where the cache says, and attend over everything it holds."""
        q, k, v = (self.split_heads(t) for t in linear(x, self.q_proj, self.k_proj, self.v_proj))
        if cache is None:
            cos, sin = self.rotary.table(torch.arange(x.shape[1], device=x.device))
        else:
            cos, sin = cache.rotary(self.rotary, x.shape[1])
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is None:
            return self.output(self.attention(q, k, v, key_padding_mask, causal=True))
        if key_padding_mask is not None:
            raise ValueError("a cached pass takes no key_padding_mask")
        cache.store(k, v)
        return self.output(cache.attend(q))


class MultiHeadCrossAttentionWithRoPE(RotaryAttention):
    """Cross-attention of the dependency-aware layer.

    The rotary table is as long as the query and is applied to queries and keys alike, so with
    a single query (inference) both are rotated by position 0, the identity. It is causal only
    in training mode.
    """

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cos, sin = self.rotary.table(torch.arange(query.shape[1], device=query.device))
        q = apply_rotary(self.split_heads(self.q_proj(query)), cos, sin)
        k = apply_rotary(self.split_heads(self.k_proj(key)), cos, sin)
        v = self.split_heads(self.v_proj(value))
        return self.output(self.attention(q, k, v, key_padding_mask, causal=self.training))

    def remember(self, context: torch.Tensor, cache: LayerCache) -> None:
        """Keep the keys and values of new context positions [B, n, D] in the cache.

        Cached generation asks one query per row, so the rotary table is position 0, the
        identity: the keys are stored unrotated.
        """
        k, v = linear(context, self.k_proj, self.v_proj)
        cache.store(self.split_heads(k), self.split_heads(v))

    def recall(self, query: torch.Tensor, cache: LayerCache) -> torch.Tensor:
        """One query per row [B, 1, D] over every position the cache holds (see `remember`)."""
        (q,) = linear(query, self.q_proj)
        return self.output(cache.attend(self.split_heads(q)))


@dataclass(frozen=True, kw_only=True)
class BlockShape:
    """The shape of a Transformer block, shared by the model's and the tokenizer's configs."""

    d_model: int
    n_heads: int
    ff_dim: int
    ffn_dropout_p: float
    attn_dropout_p: float
    resid_dropout_p: float


@registry_attributes("norm1", "self_attn", "norm2", "ffn")
class TransformerBlock(nn.Module):
    """Pre-norm residual block: x += attn(norm1(x)); x += ffn(norm2(x))."""

    def __init__(self, shape: BlockShape):
        super().__init__()
        d_model = shape.d_model
        self.norm1 = RMSNorm(d_model)
        self.self_attn = MultiHeadAttentionWithRoPE(
            d_model, shape.n_heads, shape.attn_dropout_p, shape.resid_dropout_p
        )
        self.norm2 = RMSNorm(d_model)
        self.ffn = FeedForward(d_model, shape.ff_dim, shape.ffn_dropout_p)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None, cache: LayerCache | None = None
    ) -> torch.Tensor:
        """x [B, L, D]; with a cache, the tokens after those it holds (see MultiHeadAttentionWithRoPE)."""
        x = x + self.self_attn(self.norm1(x), key_padding_mask, cache)
        out: torch.Tensor = x + self.ffn(self.norm2(x))
        return out


class StackCache(Protocol):
    """The caches of a stack's attention layers for a cached pass, one LayerCache each, in order."""

    @property
    def layers(self) -> Sequence[LayerCache]: ...


def run_blocks(
    blocks: nn.ModuleList,
    x: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    caches: Sequence[LayerCache] | None = None,
) -> torch.Tensor:
    """x through every block in turn; with caches, block i uses caches[i]."""
    layers: Sequence[LayerCache | None] = [None] * len(blocks) if caches is None else caches
    for block, layer in zip(blocks, layers, strict=True):
        x = block(x, key_padding_mask, layer)
    return x


class BinarySphericalQuantizer(nn.Module):
    """Binary spherical quantization (arXiv 2406.07548) with its soft entropy regulariser."""

    basis: torch.Tensor
    group_basis: torch.Tensor
    group_codebook: torch.Tensor

    def __init__(
        self, embed_dim: int, beta: float, gamma0: float, gamma: float, zeta: float, group_size: int
    ):
        super().__init__()
        if embed_dim % group_size:
            raise ValueError(f"codebook dimension {embed_dim} must be divisible by group_size {group_size}")
        self.embed_dim = embed_dim
        self.beta, self.gamma0, self.gamma, self.zeta = beta, gamma0, gamma, zeta
        self.group_size = group_size
        self.register_buffer("basis", 2 ** torch.arange(embed_dim - 1, -1, -1))
        self.register_buffer("group_basis", 2 ** torch.arange(group_size - 1, -1, -1))
        codes = torch.arange(2**group_size)[:, None]
        group_codebook = torch.remainder(torch.div(codes, self.group_basis, rounding_mode="floor"), 2) * 2 - 1
        self.register_buffer("group_codebook", group_codebook.float(), persistent=False)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Sign of each coordinate (+1 where > 0), with a straight-through gradient."""
        zhat = torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z))
        return z + (zhat - z).detach()

    def entropy_terms(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample entropy (analytical, per bit) and codebook entropy of the bit marginals."""
        p = torch.sigmoid(-4 * z / math.sqrt(self.embed_dim))
        prob = torch.stack([p, 1 - p], dim=-1)
        per_sample = _entropy(prob).sum(dim=-1).mean()
        avg_prob = prob.reshape(-1, self.embed_dim, 2).mean(dim=0)
        return per_sample, _entropy(avg_prob).sum()

    def forward(self, z: torch.Tensor, collect_metrics: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        zq = self.quantize(z) / math.sqrt(self.embed_dim)
        if not collect_metrics:
            return zq, zq.new_zeros(())
        per_sample, codebook = self.entropy_terms(z)
        commit = self.beta * torch.mean(((zq.detach() - z) ** 2).sum(dim=-1))
        return zq, commit + self.zeta * (self.gamma0 * per_sample - self.gamma * codebook)


def _entropy(prob: torch.Tensor) -> torch.Tensor:
    return -(prob * torch.log(prob + 1e-8)).sum(dim=-1)


def bits_to_indices(bits: torch.Tensor) -> torch.Tensor:
    """Index = sum of 2^i over positive coordinates i, least significant bit first."""
    weights = 2 ** torch.arange(bits.shape[-1], device=bits.device, dtype=torch.long)
    return ((bits >= 0).long() * weights).sum(-1)


def indices_to_bits(indices: torch.Tensor, n_bits: int) -> torch.Tensor:
    """Inverse of bits_to_indices: ±1 per bit, float32."""
    weights = 2 ** torch.arange(n_bits, device=indices.device, dtype=torch.long)
    return ((indices.unsqueeze(-1) & weights) != 0).float() * 2 - 1


class BSQuantizer(nn.Module):
    """L2-normalise, binarise with `bsq`, and index the code as hierarchical (s1, s2) tokens: the
    first `s1_bits` bits and the rest."""

    def __init__(self, s1_bits: int, bsq: BinarySphericalQuantizer):
        super().__init__()
        self.s1_bits = s1_bits
        self.bsq = bsq

    def forward(
        self, z: torch.Tensor, half: bool = False, collect_metrics: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        z = F.normalize(z, dim=-1)
        quantized, bsq_loss = self.bsq(z, collect_metrics=collect_metrics)
        if half:
            s1_s2 = (
                bits_to_indices(quantized[..., : self.s1_bits]),
                bits_to_indices(quantized[..., self.s1_bits :]),
            )
            return bsq_loss, quantized, s1_s2
        return bsq_loss, quantized, bits_to_indices(quantized)


@registry_attributes("emb_s1", "emb_s2", "fusion_proj")
class HierarchicalEmbedding(nn.Module):
    """Embeds an (s1, s2) token pair: scaled lookups, concatenated, fused by a linear layer."""

    def __init__(self, s1_bits: int, s2_bits: int, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.emb_s1 = nn.Embedding(2**s1_bits, d_model)
        self.emb_s2 = nn.Embedding(2**s2_bits, d_model)
        self.fusion_proj = nn.Linear(2 * d_model, d_model)
        nn.init.normal_(self.emb_s1.weight, std=d_model**-0.5)
        nn.init.normal_(self.emb_s2.weight, std=d_model**-0.5)

    def scaled_pair(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor) -> torch.Tensor:
        """The two lookups, each scaled by sqrt(d_model), side by side: the fusion's input."""
        scale = math.sqrt(self.d_model)
        s1 = torch.embedding(self.emb_s1.weight, s1_ids)  # as emb_s1(s1_ids), without the module call
        s2 = torch.embedding(self.emb_s2.weight, s2_ids)
        return torch.cat([s1 * scale, s2 * scale], dim=-1)

    def forward(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor) -> torch.Tensor:
        (fused,) = linear(self.scaled_pair(s1_ids, s2_ids), self.fusion_proj)
        return fused


class FixedEmbedding(nn.Module):
    """A frozen sinusoidal table, stored as `emb.weight` like a learned one."""

    def __init__(self, n_rows: int, d_model: int):
        super().__init__()
        position = torch.arange(n_rows).float()[:, None]
        freq = torch.exp(torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model))
        table = torch.zeros(n_rows, d_model)
        table[:, 0::2] = torch.sin(position * freq)
        table[:, 1::2] = torch.cos(position * freq)
        self.emb = nn.Embedding(n_rows, d_model)
        self.emb.weight = nn.Parameter(table, requires_grad=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        looked_up: torch.Tensor = self.emb(x)
        return looked_up.detach()


TIME_FEATURES = ("minute", "hour", "weekday", "day", "month")
TIME_FEATURE_SIZES = (60, 24, 7, 32, 13)


@registry_attributes(*(f"{name}_embed" for name in TIME_FEATURES))
class TemporalEmbedding(nn.Module):
    """Sum of embeddings of [minute, hour, weekday, day, month] stamps."""

    def __init__(self, d_model: int, learn_te: bool):
        super().__init__()
        table = nn.Embedding if learn_te else FixedEmbedding
        for name, size in zip(TIME_FEATURES, TIME_FEATURE_SIZES):
            setattr(self, f"{name}_embed", table(size, d_model))

    def forward(self, stamp: torch.Tensor) -> torch.Tensor:
        """Looked up in the tables' weights directly: five module calls cost more than the
        lookups in a one-token step. The tables are fixed or learned as a whole (learn_te)."""
        tables = [getattr(self, f"{name}_embed").weight for name in TIME_FEATURES]
        columns = stamp.long().unbind(-1)
        out = torch.embedding(tables[0], columns[0])
        for table, column in zip(tables[1:], columns[1:]):
            out = out + torch.embedding(table, column)
        return out


DEPENDENCY_HEADS = 4  # the dependency-aware layer's cross-attention heads, whatever the model's n_heads


@registry_attributes("cross_attn", "norm")
class DependencyAwareLayer(nn.Module):
    """Conditions the context on the sampled s1 token: norm(context + cross_attn(s1_emb, context))."""

    def __init__(
        self,
        d_model: int,
        n_heads: int = DEPENDENCY_HEADS,
        attn_dropout_p: float = 0.0,
        resid_dropout_p: float = 0.0,
    ):
        super().__init__()
        self.cross_attn = MultiHeadCrossAttentionWithRoPE(d_model, n_heads, attn_dropout_p, resid_dropout_p)
        self.norm = RMSNorm(d_model)

    def forward(
        self, hidden: torch.Tensor, sibling_embed: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Every position of hidden conditioned on its s1 embedding, attending over all of hidden."""
        attn = self.cross_attn(sibling_embed, hidden, hidden, key_padding_mask=key_padding_mask)
        out: torch.Tensor = self.norm(hidden + attn)
        return out

    def remember(self, hidden: torch.Tensor, cache: LayerCache) -> None:
        """Keep the keys and values of new positions of the context, for `recall`."""
        self.cross_attn.remember(hidden, cache)

    def recall(self, hidden: torch.Tensor, sibling_embed: torch.Tensor, cache: LayerCache) -> torch.Tensor:
        """`forward` for the positions in hidden (generation's last), with the keys of every
        position kept by `remember`."""
        out: torch.Tensor = self.norm(hidden + self.cross_attn.recall(sibling_embed, cache))
        return out


@registry_attributes("proj_s1", "proj_s2")
class DualHead(nn.Module):
    """Logits for s1 from the context, and for s2 from the s1-conditioned context."""

    def __init__(self, s1_bits: int, s2_bits: int, d_model: int):
        super().__init__()
        self.vocab_s1, self.vocab_s2 = 2**s1_bits, 2**s2_bits
        self.proj_s1 = nn.Linear(d_model, self.vocab_s1)
        self.proj_s2 = nn.Linear(d_model, self.vocab_s2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (logits,) = linear(x, self.proj_s1)
        return logits

    def cond_forward(self, x: torch.Tensor) -> torch.Tensor:
        (logits,) = linear(x, self.proj_s2)
        return logits

    def compute_loss(
        self,
        s1_logits: torch.Tensor,
        s2_logits: torch.Tensor,
        s1_targets: torch.Tensor,
        s2_targets: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean of the s1 and s2 cross-entropies, returned with each; padded positions (nonzero) are skipped."""
        if padding_mask is not None:
            valid = padding_mask == 0
            s1_logits, s2_logits = s1_logits[valid], s2_logits[valid]
            s1_targets, s2_targets = s1_targets[valid], s2_targets[valid]
        ce_s1 = F.cross_entropy(s1_logits.reshape(-1, self.vocab_s1), s1_targets.reshape(-1))
        ce_s2 = F.cross_entropy(s2_logits.reshape(-1, self.vocab_s2), s2_targets.reshape(-1))
        return (ce_s1 + ce_s2) / 2, ce_s1, ce_s2
