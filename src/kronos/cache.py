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

A row's numbers never depend on the other rows: one packed product for every row count, and
attention per series. So a series gets bitwise the same paths whatever it is batched with.

Rows are laid out series-major (row = series * n_paths + path).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .model import Kronos
from .modules import RotaryAttention, RotaryPositionalEmbedding, TransformerBlock

ATTENTION_BLOCK = 64


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """Scaled dot-product attention of queries q [B, H, n, d] standing at the last n of the L
    positions of k and v [B, H, L, d], written out: scores, softmax in float32, weighted values.

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
        end = length - n + stop if causal else length
        scores = q[:, :, start:stop] @ k[:, :, :end].transpose(-1, -2)
        if causal and stop - start > 1:
            scores = scores.masked_fill(~visible_keys(end, stop - start, q.device), -float("inf"))
        out.append(scores.float().softmax(dim=-1).to(q.dtype) @ v[:, :, :end])
    return out[0] if len(out) == 1 else torch.cat(out, dim=2)


def visible_keys(length: int, n: int, device: torch.device) -> torch.Tensor:
    """Causal mask [n, length] for queries at the last n of `length` positions (True = may attend)."""
    return (
        torch.arange(length, device=device)[None, :]
        <= torch.arange(length - n, length, device=device)[:, None]
    )


class PackedLinear:
    """Linear layers of one input fused into one product, their weight packed once.

    On CPU in float32 the product is oneDNN's on the packed weight, which spreads even a single
    row over every thread, where F.linear runs a one-row product on one thread. Elsewhere it is
    F.linear on the fused weight.

    A row's numbers must not depend on how many rows are multiplied with it. F.linear changes
    kernels (and rounding) at 1, 2-3 and 4 or more rows, so with it fewer than 4 rows are padded
    with zero rows. The packed oneDNN product under inference mode gave the same numbers for 1 row
    as for any other count (checked at Kronos-small's widths), so it is not padded: padding a
    one-row step to 2 rows made it about 1.5x slower.
    """

    def __init__(self, *layers: nn.Linear):
        self.layers = layers  # keeps them alive: PackedProducts finds them by id
        self.sizes = [layer.out_features for layer in layers]
        weight = _joined([layer.weight for layer in layers])
        self.bias = None if layers[0].bias is None else _joined([layer.bias for layer in layers])
        self.onednn = (
            weight.device.type == "cpu"
            and weight.dtype == torch.float32
            and torch.backends.mkldnn.is_available()
        )
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, None) if self.onednn else weight
        self.min_rows = 1 if self.onednn else 4

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if rows.shape[0] < self.min_rows:
            rows = torch.cat([rows, rows.new_zeros(self.min_rows - rows.shape[0], rows.shape[1])])
        if self.onednn:
            out = torch.ops.mkldnn._linear_pointwise(rows, self.weight, self.bias, "none", [], "")
        else:
            out = F.linear(rows, self.weight, self.bias)
        return out[: x[..., 0].numel()].view(*x.shape[:-1], -1)


def _joined(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


class PackedProducts:
    """The products of cached passes (`modules.Products`): each group of layers multiplied
    together is fused and packed on first use."""

    def __init__(self) -> None:
        self.packed: dict[tuple[int, ...], PackedLinear] = {}

    def __call__(self, x: torch.Tensor, *layers: nn.Linear) -> Sequence[torch.Tensor]:
        key = tuple(id(layer) for layer in layers)
        packed = self.packed.get(key)
        if packed is None:
            packed = self.packed[key] = PackedLinear(*layers)
        out = packed(x)
        return (out,) if len(layers) == 1 else out.split(packed.sizes, dim=-1)


class SegmentKV:
    """Keys and values of one attention layer (a `modules.KVCache`): a prefix per series, a
    suffix per path.

    A path's queries attend over its series' prefix and its own suffix in one softmax. With one
    path per series there is nothing to share: one buffer, and attention is one fused call.
    """

    def __init__(self, stack: SegmentedCache, n_heads: int, head_dim: int):
        self.stack = stack
        self.n_series, n_paths = stack.n_series, stack.n_paths
        self.shared = n_paths > 1
        shape = (n_heads, head_dim)
        if self.shared:
            self.pk = stack.empty(self.n_series, max(stack.prefix_cap, 1), *shape)
            self.sk = stack.empty(self.n_series * n_paths, max(stack.suffix_cap, 1), *shape)
            self.sv = torch.empty_like(self.sk)
        else:
            slots = min(stack.prefix_cap + stack.suffix_cap, stack.max_len)
            self.pk = stack.empty(self.n_series, slots, *shape)
        self.pv = torch.empty_like(self.pk)
        self.prefix_len = 0  # with one path: the length of the one buffer
        self.suffix_len = 0

    @property
    def products(self) -> PackedProducts:
        return self.stack.products

    def clear(self) -> None:
        self.prefix_len = self.suffix_len = 0

    def _in_suffix(self, rows: int) -> bool:
        if not self.shared or rows == self.n_series:
            return False
        if rows != self.stack.n_series * self.stack.n_paths:
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
        window = self.stack.window
        return 0 if window is None else max(0, held - window)

    def attend(self, q: torch.Tensor) -> torch.Tensor:
        if not self._in_suffix(q.shape[0]):
            first = self.dropped(self.prefix_len)
            prefix = self.pk[:, :, first : self.prefix_len], self.pv[:, :, first : self.prefix_len]
            return attention(q, *prefix, causal=True)
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


class SegmentedCache:
    """The SegmentKV of each block's attention in a stack (a `modules.StackCache`), for
    n_series series of n_paths paths each, preallocated, with the products and rotary tables that
    the stack's passes share. `max_len` is the most positions a row holds; `window`, if given,
    how many of the latest a one-token pass attends to (streaming)."""

    def __init__(
        self,
        blocks: nn.ModuleList,
        n_series: int,
        n_paths: int,
        prefix_cap: int,
        suffix_cap: int,
        max_len: int,
        window: int | None = None,
    ):
        attentions: list[RotaryAttention] = [b.self_attn for b in blocks if isinstance(b, TransformerBlock)]
        weight = attentions[0].q_proj.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.n_series, self.n_paths = n_series, n_paths
        self.prefix_cap, self.suffix_cap, self.max_len = prefix_cap, suffix_cap, max_len
        self.window = window
        self.products = PackedProducts()
        self.tables: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.layers = [SegmentKV(self, a.n_heads, a.head_dim) for a in attentions]

    def empty(self, rows: int, slots: int, n_heads: int, head_dim: int) -> torch.Tensor:
        return torch.empty(rows, n_heads, slots, head_dim, device=self.device, dtype=self.dtype)

    def rotary_table(self, rotary: RotaryPositionalEmbedding) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for positions [0, max_len), computed once per rotary module."""
        if id(rotary) not in self.tables:
            self.tables[id(rotary)] = rotary.table(torch.arange(max(self.max_len, 1), device=self.device))
        return self.tables[id(rotary)]

    def clear(self) -> None:
        """Forget every token, to pass a new window."""
        for layer in self.layers:
            layer.clear()


class SegmentedModelCache(SegmentedCache):
    """A SegmentedCache for Kronos's blocks, with one for its dependency-aware layer."""

    def __init__(
        self,
        model: Kronos,
        n_series: int,
        n_paths: int,
        prefix_cap: int,
        suffix_cap: int,
        max_len: int,
        window: int | None = None,
    ):
        super().__init__(model.transformer, n_series, n_paths, prefix_cap, suffix_cap, max_len, window)
        cross = model.dep_layer.cross_attn
        self.dependency = SegmentKV(self, cross.n_heads, cross.head_dim)

    def clear(self) -> None:
        super().clear()
        self.dependency.clear()
