"""Key/value caches and the cached forward passes behind fast generation.

The cache of each attention layer is split into a *prefix* (the history, one row per series,
shared by that series' paths) and a *suffix* (each path's generated tokens). While the window
grows, a step runs one token per path through weights packed for few-row products. Once the
window slides, every hidden state changes (the oldest token drops out and positions restart
at 0), so the window is recomputed exactly: the history part once per series, then each path's
generated part on top of it. The dependency-aware layer keeps its keys and values in the same
kind of cache.

Rows are laid out series-major (row = series * n_paths + path).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .model import Kronos
from .modules import TransformerBlock, apply_rotary

# Up to this many rows, products on CPU cut their weights into slabs (PackedLinear), and a
# window's suffix pass attends over per-row copies of the prefix (SegmentKV.attend).
FEW_ROWS = 16
SLABS = 4


class PackedLinear:
    """Linear maps of the same input fused into one product, split into row slabs for few rows.

    For a handful of rows on CPU, F.linear runs a matrix-vector product on a single thread at a
    third of the memory bandwidth. Cutting the weight [out, in] into `slabs` blocks of rows and
    multiplying them by the transposed input in one batched matmul streams every block on its
    own thread: about 3x faster for one row, 2x for five. With one slab it is F.linear.
    """

    def __init__(self, *linears: nn.Linear, slabs: int = 1):
        def joined(tensors: list[torch.Tensor]) -> torch.Tensor:
            return tensors[0] if len(tensors) == 1 else torch.cat(tensors)

        self.weight = joined([lin.weight for lin in linears])
        self.bias = None if linears[0].bias is None else joined([lin.bias for lin in linears])
        self.slabs = slabs if self.weight.shape[0] % slabs == 0 else 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [rows, in] -> [rows, out]; slabs only for up to FEW_ROWS rows."""
        if self.slabs == 1 or x.shape[0] > FEW_ROWS:
            return F.linear(x, self.weight, self.bias)
        weight = self.weight.view(self.slabs, -1, self.weight.shape[1])
        inputs = x.t().expand(self.slabs, -1, -1)
        if self.bias is None:
            y = torch.bmm(weight, inputs)
        else:
            y = torch.baddbmm(self.bias.view(self.slabs, -1, 1), weight, inputs)
        # Row-major out: a column-major input would send the next product down a slow path.
        return y.permute(2, 0, 1).reshape(x.shape[0], -1).contiguous()


class BlockWeights:
    """A TransformerBlock's projections for one-token steps: q|k|v, out, w1|w3 and w2."""

    def __init__(self, block: TransformerBlock, slabs: int):
        attn, ffn = block.self_attn, block.ffn
        self.qkv = PackedLinear(attn.q_proj, attn.k_proj, attn.v_proj, slabs=slabs)
        self.out = PackedLinear(attn.out_proj, slabs=slabs)
        self.w13 = PackedLinear(ffn.w1, ffn.w3, slabs=slabs)
        self.w2 = PackedLinear(ffn.w2, slabs=slabs)


class SegmentKV:
    """Keys and values of one attention layer: a prefix per series, a suffix per path.

    The prefix is stored once per series, and attention spans both parts in one softmax. With one
    path per series there is nothing to share: the suffix continues the prefix in one buffer,
    and attention is a single fused call.
    """

    def __init__(
        self,
        n_series: int,
        n_paths: int,
        n_heads: int,
        head_dim: int,
        prefix_cap: int,
        suffix_cap: int,
        max_len: int,
        device,
        dtype,
    ):
        self.shared = n_paths > 1
        if self.shared:
            self.pk = torch.empty(n_series, n_heads, max(prefix_cap, 1), head_dim, device=device, dtype=dtype)
            self.sk = torch.empty(
                n_series * n_paths, n_heads, max(suffix_cap, 1), head_dim, device=device, dtype=dtype
            )
            self.sv = torch.empty_like(self.sk)
        else:
            slots = min(prefix_cap + suffix_cap, max_len)
            self.pk = torch.empty(n_series * n_paths, n_heads, slots, head_dim, device=device, dtype=dtype)
        self.pv = torch.empty_like(self.pk)

    def write_prefix(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store the prefix keys and values of each series, k and v [S, H, n, d]."""
        n = k.shape[2]
        self.pk[:, :, :n] = k
        self.pv[:, :, :n] = v

    def write_suffix(self, k: torch.Tensor, v: torch.Tensor, prefix_len: int, start: int) -> None:
        n = k.shape[2]
        if self.shared:
            self.sk[:, :, start : start + n] = k
            self.sv[:, :, start : start + n] = v
        else:
            self.pk[:, :, prefix_len + start : prefix_len + start + n] = k
            self.pv[:, :, prefix_len + start : prefix_len + start + n] = v

    def attend(self, q: torch.Tensor, prefix_len: int, suffix_end: int, causal: bool) -> torch.Tensor:
        """Attention of suffix queries q [R, H, n, d] at suffix slots [suffix_end - n, suffix_end).

        Keys are the series' prefix [0, prefix_len) and the path's own suffix [0, suffix_end),
        causal within the suffix when `causal`. One softmax spans both parts.
        """
        if not self.shared:
            length = prefix_len + suffix_end
            return _fused_attention(q, self.pk[:, :, :length], self.pv[:, :, :length], causal)
        rows, heads, n, d = q.shape
        n_series = self.pk.shape[0]
        paths = rows // n_series
        if n > 1 and rows <= FEW_ROWS:
            # A window's suffix pass with few rows: copying the prefix into each row and one fused
            # call beats materialising the scores.
            keys, values = (
                torch.cat(
                    [prefix[:, :, :prefix_len].repeat_interleave(paths, dim=0), suffix[:, :, :suffix_end]], 2
                )
                for prefix, suffix in ((self.pk, self.sk), (self.pv, self.sv))
            )
            return _fused_attention(q, keys, values, causal)

        def by_series(t: torch.Tensor) -> torch.Tensor:  # [R, H, n, x] -> [S, H, paths * n, x]
            return (
                t.view(n_series, paths, heads, n, -1).transpose(1, 2).reshape(n_series, heads, paths * n, -1)
            )

        def by_row(t: torch.Tensor) -> torch.Tensor:  # [S, H, paths * n, x] -> [R, H, n, x]
            return t.view(n_series, heads, paths, n, -1).transpose(1, 2).reshape(rows, heads, n, -1)

        q = q * d**-0.5
        scores_p = by_series(q) @ self.pk[:, :, :prefix_len].transpose(-1, -2)
        scores_s = q @ self.sk[:, :, :suffix_end].transpose(-1, -2)
        if causal and n > 1:
            scores_s = scores_s.masked_fill(~_visible_keys(suffix_end, n, q.device), -float("inf"))
        weights = torch.cat([scores_p, by_series(scores_s)], dim=-1).float().softmax(dim=-1).to(q.dtype)
        out_p = by_row(weights[..., :prefix_len] @ self.pv[:, :, :prefix_len])
        return out_p + by_row(weights[..., prefix_len:]) @ self.sv[:, :, :suffix_end]


def _fused_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, causal: bool) -> torch.Tensor:
    """Queries q [R, H, n, d] at the last n of the keys' positions, causal when `causal`."""
    n, length = q.shape[2], keys.shape[2]
    if not causal or n == 1:
        return F.scaled_dot_product_attention(q, keys, values)
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=_visible_keys(length, n, q.device))


def _visible_keys(length: int, n: int, device) -> torch.Tensor:
    """Causal mask [n, length] for queries at the last n of `length` positions (True = may attend)."""
    return (
        torch.arange(length, device=device)[None, :]
        <= torch.arange(length - n, length, device=device)[:, None]
    )


def _rotary_tables(rotaries, length: int, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """cos/sin tables for positions [0, length), computed once per distinct inv_freq."""
    positions = torch.arange(length, device=device)
    tables: list[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]] = []
    out = []
    for rotary in rotaries:
        found = next((t for f, t in tables if torch.equal(f, rotary.inv_freq)), None)
        if found is None:
            found = rotary.table(positions)
            tables.append((rotary.inv_freq, found))
        out.append(found)
    return out


class SegmentedStack:
    """Runs a stack of TransformerBlocks over prefix/suffix segments, filling per-layer SegmentKV."""

    def __init__(
        self,
        blocks,
        n_series: int,
        n_paths: int,
        prefix_cap: int,
        suffix_cap: int,
        max_len: int,
        device,
        dtype,
    ):
        self.blocks: list[TransformerBlock] = list(blocks)
        self.n_paths = n_paths
        self.caches = [
            SegmentKV(
                n_series,
                n_paths,
                b.self_attn.n_heads,
                b.self_attn.head_dim,
                prefix_cap,
                suffix_cap,
                max_len,
                device,
                dtype,
            )
            for b in self.blocks
        ]
        self.rotary = _rotary_tables([b.self_attn.rotary for b in self.blocks], max(max_len, 1), device)

    def prefix(self, x: torch.Tensor) -> torch.Tensor:
        """Run the shared prefix x [S, n, D] at positions [0, n)."""
        n = x.shape[1]
        for block, cache, (cos, sin) in zip(self.blocks, self.caches, self.rotary):
            attn = block.self_attn
            q, k, v = attn.qkv(block.norm1(x), cos[:n], sin[:n])
            cache.write_prefix(k, v)
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + attn.out_proj(attn.merge_heads(out))
            x = x + block.ffn(block.norm2(x))
        return x

    def suffix(self, x: torch.Tensor, prefix_len: int, start: int) -> torch.Tensor:
        """Run per-path tokens x [R, n, D] at suffix slots [start, start + n) after a prefix of prefix_len."""
        n = x.shape[1]
        pos = slice(prefix_len + start, prefix_len + start + n)
        for block, cache, (cos, sin) in zip(self.blocks, self.caches, self.rotary):
            attn = block.self_attn
            q, k, v = attn.qkv(block.norm1(x), cos[pos], sin[pos])
            cache.write_suffix(k, v, prefix_len, start)
            out = cache.attend(q, prefix_len, start + n, causal=True)
            x = x + attn.out_proj(attn.merge_heads(out))
            x = x + block.ffn(block.norm2(x))
        return x

    def step(self, x: torch.Tensor, weights: list[BlockWeights], prefix_len: int, start: int) -> torch.Tensor:
        """Run one token per path x [R, D] at suffix slot `start`, with packed weights."""
        rows = x.shape[0]
        pos = prefix_len + start
        for block, cache, (cos, sin), w in zip(self.blocks, self.caches, self.rotary, weights):
            attn = block.self_attn
            qkv = w.qkv(block.norm1(x)).view(rows, 3, attn.n_heads, 1, attn.head_dim)
            qk = apply_rotary(qkv[:, :2], cos[pos], sin[pos])
            cache.write_suffix(qk[:, 1], qkv[:, 2], prefix_len, start)
            out = cache.attend(qk[:, 0], prefix_len, start + 1, causal=True)
            x = x + w.out(out.reshape(rows, attn.d_model))
            gate, up = w.w13(block.norm2(x)).chunk(2, dim=-1)
            x = x + w.w2(F.silu(gate) * up)
        return x

    def window(self, x_prefix: torch.Tensor | None, x_suffix: torch.Tensor | None):
        """Run a whole window: the shared prefix then every path's suffix on top of it.

        With one path per series the two parts are one sequence, run in a single pass.
        """
        if x_prefix is None or x_suffix is None or self.n_paths > 1:
            prefix_len = 0 if x_prefix is None else x_prefix.shape[1]
            y_prefix = None if x_prefix is None else self.prefix(x_prefix)
            y_suffix = None if x_suffix is None else self.suffix(x_suffix, prefix_len, 0)
            return y_prefix, y_suffix
        y = self.prefix(torch.cat([x_prefix, x_suffix], dim=1))
        return y.split([x_prefix.shape[1], x_suffix.shape[1]], dim=1)


class ModelWeights:
    """Kronos's projections outside the Transformer blocks, packed for one-token steps."""

    def __init__(self, model: Kronos, slabs: int):
        cross = model.dep_layer.cross_attn
        self.blocks = [BlockWeights(block, slabs) for block in model.blocks()]
        self.fusion = PackedLinear(model.embedding.fusion_proj, slabs=slabs)
        self.dep_q = PackedLinear(cross.q_proj, slabs=slabs)
        self.dep_kv = PackedLinear(cross.k_proj, cross.v_proj, slabs=slabs)
        self.dep_out = PackedLinear(cross.out_proj, slabs=slabs)
        self.s1_head = PackedLinear(model.head.proj_s1, slabs=slabs)
        self.s2_head = PackedLinear(model.head.proj_s2, slabs=slabs)


class CachedDecoder:
    """Kronos over a growing or sliding window, with segmented KV caches for the Transformer and
    the dependency-aware layer. It holds the history tokens and the time embedding of every
    stamp (computed once); each step reads the generated tokens so far."""

    def __init__(
        self, model: Kronos, history, full_stamp: torch.Tensor, n_paths: int, max_context: int, pred_len: int
    ):
        self.model = model
        self.history = history
        self.n_series, self.hist_len = history[0].shape
        self.n_paths = n_paths
        self.max_context = max_context
        self.stamp_emb = model.time_emb(full_stamp)
        device, dtype = history[0].device, model.norm.weight.dtype
        self.weights = ModelWeights(model, SLABS if device.type == "cpu" else 1)
        prefix_cap, suffix_cap = min(self.hist_len, max_context), min(pred_len, max_context)
        self.stack = SegmentedStack(
            model.transformer, self.n_series, n_paths, prefix_cap, suffix_cap, max_context, device, dtype
        )
        self.cross = model.dep_layer.cross_attn
        self.dep_kv = SegmentKV(
            self.n_series,
            n_paths,
            self.cross.n_heads,
            self.cross.head_dim,
            prefix_cap,
            suffix_cap,
            max_context,
            device,
            dtype,
        )
        self.prefix_len = 0
        self.suffix_len = 0

    def _dep_keys(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values [B, H, n, d] of the dependency-aware layer for context [B, n, D].

        A single query makes the cross-attention's rotary table one row long: the identity.
        """
        b, n, _ = context.shape
        kv = self.weights.dep_kv(context.flatten(0, 1)).view(b, n, 2, self.cross.n_heads, self.cross.head_dim)
        return kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)

    def last_hidden(self, step: int, gen1: torch.Tensor, gen2: torch.Tensor) -> torch.Tensor:
        """Normed hidden state [R, D] of the last token before generated token `step`."""
        seq_len = self.hist_len + step
        start, prefix_len, gen_start = window_bounds(seq_len, self.hist_len, self.max_context)
        if step > 0 and start == 0:
            return self._append(gen1[:, step - 1], gen2[:, step - 1], seq_len - 1)
        h1, h2 = self.history
        prefix = (h1[:, start:], h2[:, start:], slice(start, self.hist_len)) if prefix_len else None
        suffix = None
        if step > gen_start:
            suffix = (gen1[:, gen_start:step], gen2[:, gen_start:step], slice(start + prefix_len, seq_len))
        return self._window(prefix, suffix)

    def _window(self, prefix, suffix) -> torch.Tensor:
        """Recompute a whole window from its prefix and suffix tokens."""
        model = self.model
        x_prefix = None
        if prefix is not None:
            x_prefix = model.embedding(prefix[0], prefix[1]) + self.stamp_emb[:, prefix[2]]
        x_suffix = None
        if suffix is not None:
            stamp_emb = self.stamp_emb[:, suffix[2]].repeat_interleave(self.n_paths, dim=0)
            x_suffix = model.embedding(suffix[0], suffix[1]) + stamp_emb
        y_prefix, y_suffix = self.stack.window(x_prefix, x_suffix)
        self.prefix_len = 0 if y_prefix is None else y_prefix.shape[1]
        self.suffix_len = 0 if y_suffix is None else y_suffix.shape[1]
        if y_prefix is not None:
            ctx = model.norm(y_prefix)
            self.dep_kv.write_prefix(*self._dep_keys(ctx))
            last = ctx[:, -1].repeat_interleave(self.n_paths, dim=0)
        if y_suffix is not None:
            ctx = model.norm(y_suffix)
            self.dep_kv.write_suffix(*self._dep_keys(ctx), self.prefix_len, 0)
            last = ctx[:, -1]
        return last

    def _append(self, s1: torch.Tensor, s2: torch.Tensor, seq_index: int) -> torch.Tensor:
        """Run one new token per path (s1, s2 [R]) at sequence index seq_index on top of the cache."""
        model, w = self.model, self.weights
        stamp_emb = self.stamp_emb[:, seq_index].repeat_interleave(self.n_paths, dim=0)
        x = w.fusion(model.embedding.scaled_pair(s1, s2)) + stamp_emb
        ctx = model.norm(self.stack.step(x, w.blocks, self.prefix_len, self.suffix_len))
        self.dep_kv.write_suffix(*self._dep_keys(ctx[:, None]), self.prefix_len, self.suffix_len)
        self.suffix_len += 1
        return ctx

    def s1_logits(self, last_hidden: torch.Tensor) -> torch.Tensor:
        return self.weights.s1_head(last_hidden)

    def s2_logits(self, last_hidden: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        """decode_s2 at the last position: norm(context + cross_attn(emb_s1(s1), context)) -> proj_s2."""
        model, cross, w = self.model, self.cross, self.weights
        rows = s1.shape[0]
        q = w.dep_q(model.embedding.emb_s1(s1)).view(rows, cross.n_heads, 1, cross.head_dim)
        out = self.dep_kv.attend(q, self.prefix_len, self.suffix_len, causal=False)
        attn = w.dep_out(out.reshape(rows, cross.d_model))
        return w.s2_head(model.dep_layer.norm(last_hidden + attn))


def window_bounds(seq_len: int, history_len: int, max_context: int):
    """For the last `max_context` of seq_len tokens: (start, prefix length, first generated index)."""
    start = max(0, seq_len - max_context)
    return start, max(0, history_len - start), max(0, start - history_len)
