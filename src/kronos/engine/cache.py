"""Key/value caches for generation, and how cached passes multiply and attend.

A cached pass gives the modules only new tokens (`modules.KVCache`); the caches here hold the
keys and values of the earlier ones. Each attention layer's cache is split into a *prefix* (the
history, one row per series, shared by that series' paths) and a *suffix* (each path's generated
tokens): a pass of one row per series extends the prefix, a pass of one row per path the suffix.
With one path per series the two are one buffer.

With a `window` (the opt-in streaming mode), a one-token pass attends over the last `window`
tokens the cache holds and not over the older ones, which stay stored: a full context window
slides without being passed again. That is sliding-window attention over the whole sequence;
rotary attention sees only relative positions, so the positions growing past the window change
nothing else.

With `batch_invariant` (seeded generation), a row's numbers never depend on the other rows: one
packed product for every row count, and attention written out per series, so a series gets
bitwise the same paths whatever it is batched with. Without it, the fastest kernels run.

Rows are laid out series-major (row = series * n_paths + path).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kronos.nn.layers import RotaryAttention, RotaryPositionalEmbedding, TransformerBlock
from kronos.nn.model import Kronos

ATTENTION_BLOCK = 64


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal scaled dot-product attention of queries q [B, H, n, d] standing at the last n of
    the L positions of k and v [B, H, L, d], written out: scores, softmax in float32, weighted values.

    A row's arithmetic depends on its own inputs alone, so a row gets the same numbers alone or
    batched, on any number of threads (PyTorch's fused CPU kernel rounds short queries
    differently on different threads). Queries go in blocks of ATTENTION_BLOCK, each over the
    keys it may see, so causal attention skips most of the masked scores and memory stays small.
    """
    n, length = q.shape[2], k.shape[2]
    q = q * q.shape[-1] ** -0.5
    out = []
    for start in range(0, n, ATTENTION_BLOCK):
        stop = min(start + ATTENTION_BLOCK, n)
        end = length - n + stop
        scores = q[:, :, start:stop] @ k[:, :, :end].transpose(-1, -2)
        if stop - start > 1:
            scores = scores.masked_fill(~visible_keys(end, stop - start, q.device), -float("inf"))
        out.append(scores.float().softmax(dim=-1).to(q.dtype) @ v[:, :, :end])
    return out[0] if len(out) == 1 else torch.cat(out, dim=2)


def fused_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """What `attention` computes, by PyTorch's fused kernel: faster, above all for one query,
    but rounded in a way that may depend on the batch and the threads."""
    n, length = q.shape[2], k.shape[2]
    if n == 1:
        return F.scaled_dot_product_attention(q, k, v)
    if n == length:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=visible_keys(length, n, q.device))


def visible_keys(length: int, n: int, device: torch.device) -> torch.Tensor:
    """Causal mask [n, length] for queries at the last n of `length` positions (True = may attend)."""
    return (
        torch.arange(length, device=device)[None, :]
        <= torch.arange(length - n, length, device=device)[:, None]
    )


SLABS = 4


class PackedLinear:
    """Linear layers of one input fused into one product, their weight packed once.

    On CPU in float32 the product is oneDNN's on the packed weight, which spreads even one row
    over every thread (F.linear runs a one-row product on one thread), and gives a row the same
    numbers whatever the row count (checked at Kronos-small's widths). It costs about 50 us a
    call to set up, which one-row steps feel. Unless asked for `batch_invariant` numbers, a single
    row is instead multiplied by SLABS slabs of the weight in one batched product, a slab a
    thread, as fast as the memory streams them; its rounding is not that of many rows.

    Elsewhere (GPU, bfloat16) it is F.linear on the fused weight. F.linear changes kernels and
    rounding at 1, 2-3 and 4 or more rows, so for batch invariance fewer than 4 rows are padded
    with zero rows.
    """

    def __init__(self, *layers: nn.Linear):
        self.layers = [weakref.ref(layer) for layer in layers]
        self.state = _weights_state(layers)
        self.sizes = [layer.out_features for layer in layers]
        weight = _joined([layer.weight for layer in layers])
        self.bias = None if layers[0].bias is None else _joined([layer.bias for layer in layers])
        self.onednn = (
            weight.device.type == "cpu"
            and weight.dtype == torch.float32
            and torch.backends.mkldnn.is_available()
        )
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, None) if self.onednn else weight
        self.slabs: tuple[torch.Tensor, torch.Tensor | None] | None = None  # made on first use
        self.sliceable = self.onednn and weight.shape[0] % SLABS == 0

    def packs(self, layers: Sequence[nn.Linear]) -> bool:
        """Whether this packs these very layers, with the weights they hold now."""
        same = all(ref() is layer for ref, layer in zip(self.layers, layers, strict=True))
        return same and self.state is not None and self.state == _weights_state(layers)

    def __call__(self, x: torch.Tensor, batch_invariant: bool = True) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        n = rows.shape[0]
        if n == 1 and self.sliceable and not batch_invariant:
            weight, bias = self.slabs or self._cut_slabs()
            column = rows.t().expand(SLABS, -1, -1)
            out = torch.bmm(weight, column) if bias is None else torch.baddbmm(bias, weight, column)
        elif self.onednn:
            out = torch.ops.mkldnn._linear_pointwise(rows, self.weight, self.bias, "none", [], "")
        elif n < MIN_ROWS and batch_invariant:
            padded = torch.cat([rows, rows.new_zeros(MIN_ROWS - n, rows.shape[1])])
            out = F.linear(padded, self.weight, self.bias)[:n]
        else:
            out = F.linear(rows, self.weight, self.bias)
        return out.view(*x.shape[:-1], -1)

    def _cut_slabs(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The fused weight [out, in] as SLABS slabs [SLABS, out / SLABS, in], the bias alike."""
        weight = _joined([ref().weight for ref in self.layers])  # type: ignore[union-attr]  # alive: in use
        bias = None if self.bias is None else self.bias.view(SLABS, -1, 1)
        self.slabs = weight.view(SLABS, -1, weight.shape[1]), bias
        return self.slabs


MIN_ROWS = 4  # F.linear computes a row the same way from 4 rows up


def _joined(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _weights_state(layers: Sequence[nn.Linear]) -> tuple | None:
    """Where the layers' weights and biases are and how often they were changed in place; None
    for tensors made under inference mode, which count no changes."""
    tensors = [t for layer in layers for t in (layer.weight, layer.bias) if t is not None]
    if any(t.is_inference() for t in tensors):
        return None
    return tuple((t.device, t.data_ptr(), t._version) for t in tensors)


_PACKED: weakref.WeakKeyDictionary[nn.Linear, dict[tuple[int, ...], PackedLinear]]
_PACKED = weakref.WeakKeyDictionary()


def packed_linear(layers: tuple[nn.Linear, ...]) -> PackedLinear:
    """A PackedLinear of `layers`, kept beside their first layer for as long as it lives and reused
    while they hold the same weights: packing Kronos-small's weights takes about 50 ms, as long as
    a short forecast. The price is a packed copy of the weights in memory (about 100 MB for
    Kronos-small; the slabs of fused layers, made by unseeded one-row steps, add about 60 MB)."""
    kept = _PACKED.setdefault(layers[0], {})
    key = tuple(map(id, layers))
    packed = kept.get(key)
    if packed is None or not packed.packs(layers):
        packed = kept[key] = PackedLinear(*layers)
    return packed


class PackedProducts:
    """The products of cached passes (`modules.Products`): each group of layers multiplied
    together, fused and packed (`packed_linear`)."""

    def __init__(self, batch_invariant: bool = True) -> None:
        self.batch_invariant = batch_invariant
        self.packed: dict[tuple[nn.Linear, ...], PackedLinear] = {}

    def __call__(self, x: torch.Tensor, *layers: nn.Linear) -> Sequence[torch.Tensor]:
        packed = self.packed.get(layers)
        if packed is None:
            packed = self.packed[layers] = packed_linear(layers)
        out = packed(x, self.batch_invariant)
        return (out,) if len(layers) == 1 else out.split_with_sizes(packed.sizes, dim=-1)


class SegmentKV:
    """Keys and values of one attention layer (a `modules.KVCache`): a prefix per series, a
    suffix per path.

    A path's queries attend over its series' prefix and its own suffix in one softmax. With one
    path per series there is nothing to share: one buffer, attended in one call (`attention`, or
    `fused_attention` where batch invariance is not asked for).
    """

    def __init__(self, stack: SegmentedCache, n_heads: int, head_dim: int):
        layout = stack.layout
        self.stack = stack
        self.products = stack.products
        self.n_series, self.window = layout.n_series, layout.window
        self.attention = attention if layout.batch_invariant else fused_attention
        self.shared = layout.n_paths > 1
        shape = (n_heads, head_dim)
        if self.shared:
            self.pk = stack.empty(self.n_series, max(layout.prefix_cap, 1), *shape)
            self.sk = stack.empty(self.n_series * layout.n_paths, max(layout.suffix_cap, 1), *shape)
            self.sv = torch.empty_like(self.sk)
        else:
            slots = min(layout.prefix_cap + layout.suffix_cap, layout.max_len)
            self.pk = stack.empty(self.n_series, slots, *shape)
        self.pv = torch.empty_like(self.pk)
        self.prefix_len = 0  # with one path: the length of the one buffer
        self.suffix_len = 0

    def clear(self) -> None:
        self.prefix_len = self.suffix_len = 0

    def _in_suffix(self, rows: int) -> bool:
        if not self.shared or rows == self.n_series:
            return False
        if rows != self.sk.shape[0]:
            raise ValueError(f"a cached pass has one row per series or per path, got {rows} rows")
        return True

    def rotary(self, rotary: RotaryPositionalEmbedding, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start = self.prefix_len + (self.suffix_len if self._in_suffix(x.shape[0]) else 0)
        cos, sin = self.stack.rotary_table(rotary)
        return cos[start : start + x.shape[1]], sin[start : start + x.shape[1]]

    def store(self, k: torch.Tensor, v: torch.Tensor) -> None:
        n = k.shape[2]
        if self._in_suffix(k.shape[0]):
            self.sk[:, :, self.suffix_len : self.suffix_len + n] = k
            self.sv[:, :, self.suffix_len : self.suffix_len + n] = v
            self.suffix_len += n
        else:
            self.pk[:, :, self.prefix_len : self.prefix_len + n] = k
            self.pv[:, :, self.prefix_len : self.prefix_len + n] = v
            self.prefix_len += n

    def dropped(self, held: int) -> int:
        """How many of the oldest of `held` tokens fall outside the streaming window (else 0)."""
        return 0 if self.window is None else max(0, held - self.window)

    def attend(self, q: torch.Tensor) -> torch.Tensor:
        if not self._in_suffix(q.shape[0]):
            first = self.dropped(self.prefix_len)
            prefix = self.pk[:, :, first : self.prefix_len], self.pv[:, :, first : self.prefix_len]
            return self.attention(q, *prefix)
        n = q.shape[2]
        blocks = [
            self._attend_paths(q[:, :, start : start + ATTENTION_BLOCK], self.suffix_len - n + start)
            for start in range(0, n, ATTENTION_BLOCK)
        ]
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=2)

    def _attend_paths(self, q: torch.Tensor, first: int) -> torch.Tensor:
        """Attention of suffix queries q [R, H, m, d] at suffix slots [first, first + m) over their
        series' prefix and their path's own suffix, causal, in one softmax (as `attention`)."""
        rows, heads, m, d = q.shape
        paths = rows // self.n_series
        prefix_len, end = self.prefix_len, first + m
        drop = self.dropped(prefix_len + end)  # nonzero only for one-token passes of a streaming window
        kept_p, kept_s = slice(min(drop, prefix_len), prefix_len), slice(max(0, drop - prefix_len), end)

        def by_series(t: torch.Tensor) -> torch.Tensor:  # [R, H, m, x] -> [S, H, paths * m, x]
            t = t.view(self.n_series, paths, heads, m, -1).transpose(1, 2)
            return t.reshape(self.n_series, heads, paths * m, -1)

        def by_row(t: torch.Tensor) -> torch.Tensor:  # [S, H, paths * m, x] -> [R, H, m, x]
            return t.view(self.n_series, heads, paths, m, -1).transpose(1, 2).reshape(rows, heads, m, -1)

        q = q * d**-0.5
        scores_p = by_series(q) @ self.pk[:, :, kept_p].transpose(-1, -2)
        scores_s = q @ self.sk[:, :, kept_s].transpose(-1, -2)
        if m > 1:
            scores_s = scores_s.masked_fill(~visible_keys(end, m, q.device)[:, kept_s], -float("inf"))
        weights = torch.cat([scores_p, by_series(scores_s)], dim=-1).float().softmax(dim=-1).to(q.dtype)
        n_p = scores_p.shape[-1]
        out_p = by_row(weights[..., :n_p] @ self.pv[:, :, kept_p])
        return out_p + by_row(weights[..., n_p:]) @ self.sv[:, :, kept_s]


@dataclass(frozen=True)
class CacheLayout:
    """What a cache holds: n_series series of n_paths paths each, a prefix of up to `prefix_cap`
    positions per series and a suffix of up to `suffix_cap` per path, at most `max_len` positions
    a row. `window`, if given, is how many of the latest a one-token pass attends to (streaming);
    `batch_invariant`, whether a row's numbers must not depend on the rows beside it
    (`PackedLinear`)."""

    n_series: int
    n_paths: int
    prefix_cap: int
    suffix_cap: int
    max_len: int
    window: int | None = None
    batch_invariant: bool = True


class SegmentedCache:
    """The SegmentKV of each block's attention in a stack (a `modules.StackCache`), preallocated
    for `layout`, with the products and rotary tables that the stack's passes share."""

    def __init__(self, blocks: nn.ModuleList, layout: CacheLayout):
        attentions: list[RotaryAttention] = [b.self_attn for b in blocks if isinstance(b, TransformerBlock)]
        weight = attentions[0].q_proj.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.layout = layout
        self.products = PackedProducts(layout.batch_invariant)
        self.tables: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.layers = [SegmentKV(self, a.n_heads, a.head_dim) for a in attentions]

    def empty(self, rows: int, slots: int, n_heads: int, head_dim: int) -> torch.Tensor:
        return torch.empty(rows, n_heads, slots, head_dim, device=self.device, dtype=self.dtype)

    def rotary_table(self, rotary: RotaryPositionalEmbedding) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for positions [0, max_len), computed once per rotary module."""
        if id(rotary) not in self.tables:
            positions = torch.arange(max(self.layout.max_len, 1), device=self.device)
            self.tables[id(rotary)] = rotary.table(positions)
        return self.tables[id(rotary)]

    def clear(self) -> None:
        """Forget every token, to pass a new window."""
        for layer in self.layers:
            layer.clear()


class SegmentedModelCache(SegmentedCache):
    """A SegmentedCache for Kronos's blocks, with one for its dependency-aware layer."""

    def __init__(self, model: Kronos, layout: CacheLayout):
        super().__init__(model.transformer, layout)
        cross = model.dep_layer.cross_attn
        self.dependency = SegmentKV(self, cross.n_heads, cross.head_dim)

    def clear(self) -> None:
        super().clear()
        self.dependency.clear()
