"""The key/value cache of generation, and the one attention function over it.

A cached pass gives the model only new tokens; the cache holds the keys and values of the
earlier ones, for every attention layer of a stack (a model's blocks and its dependency-aware
layer, or a tokenizer's decoder). Before each pass the caller says where its tokens stand:

- `cache.prefill(n)`: n tokens per *series* at positions [0, n), the history that a series'
  paths share (held once per series: the *prefix*); anything held before is forgotten;
- `cache.extend(start, n)`: n tokens per *path* at positions [start, start + n) after the
  prefix (each path's own tokens: the *suffix*).

A path's queries attend over its series' prefix and its own suffix in one softmax (`attention`).
With one path per series the two are one buffer.

With a `window` (the opt-in streaming mode), a one-token pass attends over the last `window`
tokens the cache holds and not over the older ones, which stay stored: a full context window
slides without being passed again. That is sliding-window attention over the whole sequence;
rotary attention sees only relative positions, so the positions growing past the window change
nothing else.

Rows are laid out series-major (row = series * n_paths + path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kronos.nn.layers import RotaryAttention, RotaryPositionalEmbedding, TransformerBlock
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer

ATTENTION_BLOCK = 64

KeysValues = tuple[torch.Tensor, torch.Tensor]  # keys and values [rows, heads, positions, head_dim]


def attention(q: torch.Tensor, shared: KeysValues, own: KeysValues | None, fused: bool) -> torch.Tensor:
    """Causal scaled dot-product attention of queries q [R, H, n, d] over the keys and values held
    for them: `shared` [S, H, L, d], one row per series (R = S * paths, rows series-major), then,
    if given, `own` [R, H, M, d], each row's own. The queries stand at the last n positions.

    Written out (scores, softmax in float32, weighted values), a row's arithmetic depends on its
    own inputs alone, so a row gets the same numbers alone or batched, on any number of threads.
    Queries go in blocks of ATTENTION_BLOCK, each over the keys it may see. `fused` takes
    PyTorch's fused kernel instead (with an own part, on CPU only: `_fused_two_parts`): faster, above all for one query, but rounded
    in a way that may depend on the batch and the threads (PyTorch's fused CPU kernel rounds
    short queries differently on different threads).
    """
    if fused and own is None:
        return _fused(q, *shared)
    if (
        fused
        and own is not None
        and q.device.type == "cpu"
        and min(q.shape[2], shared[0].shape[2], own[0].shape[2])
    ):
        return _fused_two_parts(q, shared, own)  # (the fused kernel takes no empty part)
    n = q.shape[2]
    q = q * q.shape[-1] ** -0.5
    out = []
    for start in range(0, n, ATTENTION_BLOCK):
        stop = min(start + ATTENTION_BLOCK, n)
        block, later = q[:, :, start:stop], n - stop  # `later`: queries of the pass after this block
        out.append(_one_part(block, shared, later) if own is None else _two_parts(block, shared, own, later))
    return out[0] if len(out) == 1 else torch.cat(out, dim=2)


def _one_part(q: torch.Tensor, keys_values: KeysValues, later: int) -> torch.Tensor:
    """Scaled queries q [R, H, m, d] over one buffer of keys [R, H, L, d] (all but the last `later`)."""
    k, v = keys_values
    end = k.shape[2] - later
    scores = q @ k[:, :, :end].transpose(-1, -2)
    if q.shape[2] > 1:
        scores = scores.masked_fill(~visible_keys(end, q.shape[2], q.device), -float("inf"))
    return scores.float().softmax(dim=-1).to(q.dtype) @ v[:, :, :end]


def _two_parts(q: torch.Tensor, shared: KeysValues, own: KeysValues, later: int) -> torch.Tensor:
    """Scaled queries q [R, H, m, d] of paths over their series' keys [S, H, L, d], all visible,
    and their own [R, H, M, d] (all but the last `later`), in one softmax."""
    (pk, pv), (sk, sv) = shared, own
    rows, heads, m, _ = q.shape
    n_series = pk.shape[0]
    paths, end = rows // n_series, sk.shape[2] - later

    def by_series(t: torch.Tensor) -> torch.Tensor:  # [R, H, m, x] -> [S, H, paths * m, x]
        t = t.view(n_series, paths, heads, m, -1).transpose(1, 2)
        return t.reshape(n_series, heads, paths * m, -1)

    def by_row(t: torch.Tensor) -> torch.Tensor:  # [S, H, paths * m, x] -> [R, H, m, x]
        return t.view(n_series, heads, paths, m, -1).transpose(1, 2).reshape(rows, heads, m, -1)

    scores_p = by_series(q) @ pk.transpose(-1, -2)
    scores_s = q @ sk[:, :, :end].transpose(-1, -2)
    if m > 1:
        scores_s = scores_s.masked_fill(~visible_keys(end, m, q.device), -float("inf"))
    weights = torch.cat([scores_p, by_series(scores_s)], dim=-1).float().softmax(dim=-1).to(q.dtype)
    n_p = scores_p.shape[-1]
    out_p = by_row(weights[..., :n_p] @ pv)
    return out_p + by_row(weights[..., n_p:]) @ sv[:, :, :end]


def _fused_two_parts(q: torch.Tensor, shared: KeysValues, own: KeysValues) -> torch.Tensor:
    """`_two_parts` in PyTorch's fused CPU kernel: the paths' queries over their series' keys (one
    call per series, the paths' queries side by side), then over their own (causal), each part
    normalised on its own, the two merged by their log-sum-exps into one softmax over both. A
    window pass of 5 paths attends about 2.5x faster so than written out in blocks."""
    (pk, pv), (sk, sv) = shared, own
    rows, heads, m, d = q.shape
    n_series = pk.shape[0]
    paths = rows // n_series
    by_series = q.view(n_series, paths, heads, m, d).transpose(1, 2).reshape(n_series, heads, paths * m, d)
    out_p, lse_p = _FLASH_CPU(by_series, pk, pv)
    out_p = out_p.view(n_series, heads, paths, m, d).transpose(1, 2).reshape(rows, heads, m, d)
    lse_p = lse_p.view(n_series, heads, paths, m).transpose(1, 2).reshape(rows, heads, m)
    length = sk.shape[2]
    if m == 1:
        out_s, lse_s = _FLASH_CPU(q, sk, sv)
    elif m == length:
        out_s, lse_s = _FLASH_CPU(q, sk, sv, is_causal=True)
    else:
        hidden = q.new_zeros(m, length).masked_fill_(~visible_keys(length, m, q.device), -float("inf"))
        out_s, lse_s = _FLASH_CPU(q, sk, sv, attn_mask=hidden)  # (it takes an additive mask only)
    top = torch.maximum(lse_p, lse_s)
    weight_p, weight_s = (lse_p - top).exp_()[..., None], (lse_s - top).exp_()[..., None]
    merged: torch.Tensor = (out_p.float() * weight_p + out_s.float() * weight_s) / (weight_p + weight_s)
    return merged.to(q.dtype)


_FLASH_CPU = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu  # (out, logsumexp)


def _fused(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """PyTorch's fused kernel, queries at the last n of the L positions of k and v."""
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


@dataclass(frozen=True)
class CacheLayout:
    """What a cache holds: n_series series of n_paths paths each, a prefix of up to `prefix_cap`
    positions per series and a suffix of up to `suffix_cap` per path, at most `max_len` positions
    a row. `window`, if given, is how many of the latest a one-token pass attends to (streaming)."""

    n_series: int
    n_paths: int
    prefix_cap: int
    suffix_cap: int
    max_len: int
    window: int | None = None


class KVCache:
    """Keys and values of every attention layer of a stack, preallocated for `layout`, with the
    rotary tables its passes share. `layers` holds one `LayerKV` per attention layer, in the
    order the stack runs them; `fused` takes the fused attention kernel where it can
    (`attention`).

    Before each pass, `prefill` or `extend` says where its tokens stand (see the module's
    docstring); every layer of the pass writes them there and attends up to them.
    """

    def __init__(self, attentions: Sequence[RotaryAttention], layout: CacheLayout, fused: bool):
        weight = attentions[0].q_proj.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.layout, self.fused = layout, fused
        self.tables: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.prefix_len = 0  # history positions held per series
        self.start, self.end = 0, 0  # the pass's positions, in its segment
        self.on_paths = False  # whether the pass has a row per path (else per series)
        self.layers = [LayerKV(self, a.n_heads, a.head_dim) for a in attentions]

    @classmethod
    def for_model(cls, model: Kronos, layout: CacheLayout, fused: bool) -> KVCache:
        """A cache for Kronos: its blocks' self-attention, then the dependency-aware layer's."""
        blocks = [b.self_attn for b in model.transformer if isinstance(b, TransformerBlock)]
        return cls([*blocks, model.dep_layer.cross_attn], layout, fused)

    @classmethod
    def for_decoder(cls, tokenizer: KronosTokenizer, layout: CacheLayout, fused: bool) -> KVCache:
        """A cache for the tokenizer's decoder blocks."""
        return cls([b.self_attn for b in tokenizer.decoder if isinstance(b, TransformerBlock)], layout, fused)

    def prefill(self, n: int) -> KVCache:
        """The next pass: n history tokens per series at positions [0, n); what was held is forgotten."""
        self.prefix_len, self.start, self.end, self.on_paths = n, 0, n, False
        return self

    def extend(self, start: int, n: int) -> KVCache:
        """The next pass: n tokens per path at positions [start, start + n) after the prefix,
        keeping the path's tokens before `start`. (n = 0: queries of the paths over what is held.)"""
        self.start, self.end, self.on_paths = start, start + n, True
        return self

    def rotary_table(self, rotary: RotaryPositionalEmbedding) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for positions [0, max_len), computed once per rotary module."""
        if id(rotary) not in self.tables:
            positions = torch.arange(max(self.layout.max_len, 1), device=self.device)
            self.tables[id(rotary)] = rotary.table(positions)
        return self.tables[id(rotary)]

    def position(self) -> int:
        """Where the pass's first token stands in the sequence (the prefix counts on a path)."""
        return self.prefix_len + self.start if self.on_paths else self.start

    def dropped(self, held: int) -> int:
        """How many of the oldest of `held` tokens fall outside the streaming window (else 0)."""
        return 0 if self.layout.window is None else max(0, held - self.layout.window)

    def check_rows(self, rows: int) -> None:
        layout = self.layout
        expected = layout.n_series * layout.n_paths if self.on_paths else layout.n_series
        if rows != expected:
            kind = "path" if self.on_paths else "series"
            raise ValueError(f"this cached pass has one row per {kind} ({expected} rows), got {rows} rows")

    @property
    def dependency(self) -> LayerKV:
        """The last layer: for Kronos (`for_model`), the dependency-aware layer's."""
        return self.layers[-1]


class LayerKV:
    """One attention layer's keys and values (a `kronos.nn.layers.LayerCache`): a prefix per series
    and a suffix per path, or with one path per series one buffer for both."""

    def __init__(self, cache: KVCache, n_heads: int, head_dim: int):
        layout = cache.layout
        self.cache = cache
        self.shared = layout.n_paths > 1

        def empty(rows: int, slots: int) -> torch.Tensor:
            return torch.empty(rows, n_heads, slots, head_dim, device=cache.device, dtype=cache.dtype)

        if self.shared:
            self.pk = empty(layout.n_series, max(layout.prefix_cap, 1))
            self.sk = empty(layout.n_series * layout.n_paths, max(layout.suffix_cap, 1))
            self.sv = torch.empty_like(self.sk)
        else:
            self.pk = empty(layout.n_series, min(layout.prefix_cap + layout.suffix_cap, layout.max_len))
        self.pv = torch.empty_like(self.pk)

    def rotary(self, rotary: RotaryPositionalEmbedding, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.cache.position()
        cos, sin = self.cache.rotary_table(rotary)
        return cos[first : first + n], sin[first : first + n]

    def store(self, k: torch.Tensor, v: torch.Tensor) -> None:
        cache = self.cache
        cache.check_rows(k.shape[0])
        if self.shared and cache.on_paths:
            self.sk[:, :, cache.start : cache.end] = k
            self.sv[:, :, cache.start : cache.end] = v
        else:
            first = cache.position()
            self.pk[:, :, first : first + k.shape[2]] = k
            self.pv[:, :, first : first + k.shape[2]] = v

    def attend(self, q: torch.Tensor) -> torch.Tensor:
        cache = self.cache
        if not (self.shared and cache.on_paths):
            end = cache.position() + cache.end - cache.start
            first = cache.dropped(end)
            return attention(q, (self.pk[:, :, first:end], self.pv[:, :, first:end]), None, cache.fused)
        prefix_len, end = cache.prefix_len, cache.end
        drop = cache.dropped(prefix_len + end)  # nonzero only for one-token passes of a streaming window
        kept_p, kept_s = slice(min(drop, prefix_len), prefix_len), slice(max(0, drop - prefix_len), end)
        shared = self.pk[:, :, kept_p], self.pv[:, :, kept_p]
        return attention(q, shared, (self.sk[:, :, kept_s], self.sv[:, :, kept_s]), cache.fused)
