"""kronos.engine.cache: cached passes check their rows, and their logits do not depend on the batch."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from helpers import random_inputs, random_pair

from kronos import Kronos
from kronos.engine.cache import CacheLayout, KVCache, attention
from kronos.engine.packing import packed_products
from kronos.nn.config import KRONOS_SMALL

torch.set_num_threads(1)


def test_a_cached_pass_of_the_wrong_rows_is_refused():
    tokenizer, model = random_pair(seed=2)
    cache = KVCache.for_model(model, CacheLayout(2, 3, 8, 4, 12), fused=False)
    ids, stamp = torch.zeros(6, 8, dtype=torch.long), torch.ones(6, 8, 5)
    with torch.inference_mode(), pytest.raises(ValueError, match=r"one row per series \(2 rows\), got 6"):
        model.decode_s1(ids, ids, stamp, cache=cache.prefill(8))
    with torch.inference_mode(), pytest.raises(ValueError, match=r"one row per path \(6 rows\), got 2"):
        model.decode_s1(ids[:2, :1], ids[:2, :1], stamp[:2, :1], cache=cache.extend(0, 1))


@pytest.mark.parametrize("n_paths", [1, 3])
def test_cached_logits_do_not_depend_on_the_batch(n_paths):
    """The logits of cached passes (the history once per series, then one token per path) are
    bitwise the same for a series alone and batched: sampled tokens hide tiny differences. The
    model has Kronos-small's width, where F.linear's rounding changes with the row count (this
    test fails for unpadded F.linear products)."""
    torch.manual_seed(8)
    model = Kronos.from_config(replace(KRONOS_SMALL, n_layers=2, learn_te=False)).eval()
    hist_len, steps, n_series = 12, 4, 6
    gen = torch.Generator().manual_seed(9)
    history = torch.randint(0, 1024, (2, n_series, hist_len), generator=gen)
    generated = torch.randint(0, 1024, (2, n_series * n_paths, steps), generator=gen)
    _, stamp, _ = random_inputs(n_series, hist_len + steps, 0)

    def logits(series: list[int]) -> list[torch.Tensor]:
        """s1 and s2 logits of the first series' paths, batched with the other `series`."""
        rows = [s * n_paths + p for s in series for p in range(n_paths)]
        layout = CacheLayout(len(series), n_paths, hist_len, steps, hist_len + steps)
        cache = KVCache.for_model(model, layout, fused=False)
        s1, context = model.decode_s1(
            *history[:, series], stamp[series, :hist_len], cache=cache.prefill(hist_len)
        )
        out = [s1[:1]]
        path_stamp = stamp[series].repeat_interleave(n_paths, dim=0)
        for t in range(steps):
            g1, g2 = generated[:, rows, t : t + 1]
            if t == 0:
                context = context.repeat_interleave(n_paths, dim=0)
                cache.extend(0, 0)  # the paths' queries over the history alone
            s2 = model.decode_s2(context[:, -1:], g1, cache=cache)
            t_stamp = path_stamp[:, hist_len + t : hist_len + t + 1]
            s1, context = model.decode_s1(g1, g2, t_stamp, cache=cache.extend(t, 1))
            out += [s2[:n_paths], s1[:n_paths]]
        return out

    with torch.inference_mode(), packed_products(batch_invariant=True):
        alone = logits([0])
        for series in ([0, 4], [0, 2, 1], [0, 5, 3, 2, 1]):
            for a, b in zip(alone, logits(series)):
                assert torch.equal(a, b), series


@pytest.mark.parametrize(("queries", "prefix", "own"), [(1, 9, 4), (6, 9, 6), (5, 7, 11), (70, 3, 80)])
def test_fused_attention_over_two_parts_is_one_softmax_over_both(queries, prefix, own):
    """The fused kernel over a series' keys and each path's own, merged by log-sum-exp, gives the
    attention written out as one softmax over both (to float32 rounding)."""
    gen = torch.Generator().manual_seed(queries)
    n_series, paths, heads, dim = 2, 3, 4, 16
    q = torch.randn(n_series * paths, heads, queries, dim, generator=gen)
    shared = tuple(torch.randn(n_series, heads, prefix, dim, generator=gen) for _ in range(2))
    own_kv = tuple(torch.randn(n_series * paths, heads, own, dim, generator=gen) for _ in range(2))
    written_out = attention(q, shared, own_kv, fused=False)
    fused = attention(q, shared, own_kv, fused=True)
    torch.testing.assert_close(fused, written_out, rtol=1e-5, atol=1e-6)
