"""kronos.engine.generation: the cached engine against the plain reference loop
(tests/reference_generation.py), batch invariance, independent paths, bfloat16, horizons beyond
the context, and the streaming window against sliding-window attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import random_inputs, random_pair
from reference_generation import plain_decode_tokens, plain_generate_tokens

from kronos import auto_regressive_inference
from kronos.engine.generation import SeriesBatch, decode_tokens, generate_tokens
from kronos.engine.sampling import Sampling
from kronos.engine.threads import AdaptiveThreads
from kronos.nn.layers import apply_rotary

torch.set_num_threads(1)
SHAPES = {
    "grows": dict(n_series=2, hist_len=20, pred_len=10, max_context=40),
    "fills_exactly": dict(n_series=1, hist_len=30, pred_len=11, max_context=40),
    "slides": dict(n_series=2, hist_len=30, pred_len=25, max_context=40),
    "history_longer_than_window": dict(n_series=3, hist_len=50, pred_len=12, max_context=40),
    "generated_fill_window": dict(n_series=1, hist_len=8, pred_len=30, max_context=16),
    # a horizon longer than the context: generated tokens before the last window are decoded too
    "horizon_beyond_context": dict(n_series=2, hist_len=10, pred_len=45, max_context=16),
    # 18 rows with 3 paths
    "many_rows": dict(n_series=6, hist_len=30, pred_len=14, max_context=40),
    "many_rows_history_longer_than_window": dict(n_series=6, hist_len=50, pred_len=12, max_context=40),
}


def greedy_case(cfg: dict, sample_count: int):
    """The seed-1 random pair and greedy generate_tokens arguments (batch, sampling, context) for a shape."""
    tokenizer, model = random_pair(seed=1)
    x, x_stamp, y_stamp = random_inputs(cfg["n_series"], cfg["hist_len"], cfg["pred_len"])
    greedy = Sampling(T=1.0, top_k=1, top_p=1.0, sample_count=sample_count, seed=None)
    return tokenizer, model, (SeriesBatch(x, x_stamp, y_stamp), greedy, cfg["max_context"])


def sliding_window_greedy(model, history, full_stamp, max_context: int, pred_len: int, span: int):
    """Greedy tokens of the model over the whole sequence (from the first history token the
    window holds), each token attending to the last `span` tokens: with span = max_context,
    what a streaming window computes, written the plain way."""
    h1, h2 = (t[:, -max_context:] for t in history)
    stamp = full_stamp[:, history[0].shape[1] - h1.shape[1] :]
    for _ in range(pred_len):
        n = h1.shape[1]
        i = torch.arange(n)
        band = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - span)
        x = model.embed(h1, h2, stamp[:, :n])
        for block in model.blocks():
            attn = block.self_attn
            h, (cos, sin) = block.norm1(x), attn.rotary.table(i)
            q, k, v = (attn.split_heads(proj(h)) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=band)
            x = x + attn.out_proj(attn.merge_heads(out))
            x = x + block.ffn(block.norm2(x))
        context = model.norm(x)[:, -span:]
        s1 = model.head(context[:, -1]).argmax(-1)
        s2 = model.decode_s2(context, s1[:, None])[:, -1].argmax(-1)
        h1, h2 = torch.cat([h1, s1[:, None]], 1), torch.cat([h2, s2[:, None]], 1)
    return h1[:, -pred_len:], h2[:, -pred_len:]


STREAMING_SHAPES = {
    "slides": SHAPES["slides"],
    "history_longer_than_window": SHAPES["history_longer_than_window"],
    "generated_fill_window": SHAPES["generated_fill_window"],
    "many_rows_slides": dict(n_series=6, hist_len=30, pred_len=25, max_context=40),
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("sample_count", [1, 3])
@pytest.mark.parametrize("batch_invariant", [False, True], ids=["fastest", "invariant"])
def test_cached_equals_plain_greedy(shape, sample_count, batch_invariant):
    cfg = SHAPES[shape]
    tokenizer, model, args = greedy_case(cfg, sample_count)
    plain = plain_generate_tokens(tokenizer, model, *args)
    cached = generate_tokens(tokenizer, model, *args, batch_invariant=batch_invariant)
    assert cached.batch_invariant is batch_invariant
    for a, b in zip(plain.generated, cached.generated):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    z_plain = plain_decode_tokens(tokenizer, plain, cfg["max_context"])
    z_cached = decode_tokens(tokenizer, cached, cfg["max_context"])
    assert z_cached.shape == (
        cfg["n_series"],
        sample_count,
        max(min(cfg["hist_len"] + cfg["pred_len"], cfg["max_context"]), cfg["pred_len"]),
        6,
    )
    torch.testing.assert_close(z_cached, z_plain, rtol=1e-4, atol=1e-5)


def test_the_kernel_set_follows_the_seed_unless_named():
    tokenizer, model = random_pair(seed=2)
    x, x_stamp, y_stamp = random_inputs(1, 10, 2)
    batch = SeriesBatch(x, x_stamp, y_stamp)
    for seed, asked, expected in [
        (None, None, False),
        (3, None, True),
        (None, True, True),
        (3, False, False),
    ]:
        sampling = Sampling(T=1.0, top_k=0, top_p=0.99, sample_count=2, seed=seed)
        assert (
            generate_tokens(tokenizer, model, batch, sampling, 16, batch_invariant=asked).batch_invariant
            is expected
        )


@pytest.mark.parametrize("shape", ["slides", "history_longer_than_window"])
def test_cached_equals_plain_when_sampling_with_one_seed(shape):
    """Both engines consume random numbers in the same order, so one seed gives the same paths."""
    cfg = SHAPES[shape]
    tokenizer, model = random_pair(seed=2, bits=6, n_heads=2, learn_te=True)
    x, x_stamp, y_stamp = random_inputs(cfg["n_series"], cfg["hist_len"], cfg["pred_len"], seed=3)
    torch.manual_seed(1234)
    sampling = Sampling(T=1.0, top_k=0, top_p=0.9, sample_count=4, seed=None)
    plain = plain_generate_tokens(
        tokenizer, model, SeriesBatch(x, x_stamp, y_stamp), sampling, cfg["max_context"]
    )
    plain_mean = plain_decode_tokens(tokenizer, plain, cfg["max_context"]).numpy().mean(axis=1)
    torch.manual_seed(1234)
    cached = auto_regressive_inference(
        tokenizer,
        model,
        x,
        x_stamp,
        y_stamp,
        cfg["max_context"],
        cfg["pred_len"],
        T=1.0,
        top_p=0.9,
        sample_count=4,
    )
    np.testing.assert_allclose(cached, plain_mean, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sample_count", [1, 3])
def test_seeded_cached_paths_do_not_depend_on_the_batch(sample_count):
    """A series' seeded paths are bitwise the same alone or batched with any other series: every
    product and attention of a row is computed the same way whatever the row count (7 series of
    3 paths are 21 rows, past the row counts where CPU matrix products change kernels)."""
    tokenizer, model = random_pair(seed=6)
    hist_len, pred_len, max_context = 30, 16, 36  # grows, then slides
    x, x_stamp, y_stamp = random_inputs(8, hist_len, pred_len, seed=7)
    sampling = Sampling(T=1.0, top_k=0, top_p=0.9, sample_count=sample_count, seed=11)

    def paths(rows: list[int]):
        """Tokens and decoded bars of the first series when batched with the others in `rows`."""
        batch = SeriesBatch(x[rows], x_stamp[rows], y_stamp[rows], keys=[f"series-{r}" for r in rows])
        tokens = generate_tokens(tokenizer, model, batch, sampling, max_context)
        bars = decode_tokens(tokenizer, tokens, max_context)
        return tokens.generated[0][:sample_count], tokens.generated[1][:sample_count], bars[0]

    torch.set_num_threads(2)  # row blocks split over threads too
    try:
        alone = paths([0])
        for rows in ([0, 5], [0, 1, 2], [0, 7, 3, 6, 4], [0, 6, 5, 4, 3, 2, 1]):
            batched = paths(rows)
            for a, b in zip(alone, batched):
                assert torch.equal(a, b), rows
    finally:
        torch.set_num_threads(1)
    assert len({tuple(p.tolist()) for p in alone[0]}) == sample_count  # the paths differ


def test_paths_of_one_series_are_independent_draws():
    tokenizer, model = random_pair(seed=4, bits=4)
    with torch.no_grad():  # a flat next-token distribution: every path should go its own way
        model.head.proj_s1.weight.zero_()
        model.head.proj_s2.weight.zero_()
    x, x_stamp, y_stamp = random_inputs(1, 16, 6)
    torch.manual_seed(0)
    flat = Sampling(T=1.0, top_k=0, top_p=1.0, sample_count=32, seed=None)
    first = generate_tokens(tokenizer, model, SeriesBatch(x, x_stamp, y_stamp), flat, 32)
    torch.manual_seed(0)
    again = generate_tokens(tokenizer, model, SeriesBatch(x, x_stamp, y_stamp), flat, 32)
    s1 = first.generated[0]
    assert torch.equal(s1, again.generated[0])
    assert len({tuple(row.tolist()) for row in s1}) == 32
    counts = torch.bincount(s1.flatten(), minlength=16).float()
    expected = s1.numel() / 16
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 45.0  # 15 degrees of freedom: p < 1e-4 for a fair draw


def test_bfloat16_generation_runs_and_stays_close():
    tokenizer, model = random_pair(seed=5)
    x, x_stamp, y_stamp = random_inputs(1, 24, 6)
    ref = auto_regressive_inference(tokenizer, model, x, x_stamp, y_stamp, 32, 6, top_k=1, sample_count=1)
    out = auto_regressive_inference(
        tokenizer.to(torch.bfloat16),
        model.to(torch.bfloat16),
        x,
        x_stamp,
        y_stamp,
        32,
        6,
        top_k=1,
        sample_count=1,
    )
    assert out.dtype == np.float32 and np.isfinite(out).all()
    history_part = slice(0, 24)  # the history decodes through bf16 weights: close, not equal
    assert (
        np.abs(out[:, history_part] - ref[:, history_part]).mean() < 0.1 * np.abs(ref[:, history_part]).mean()
    )


def test_a_horizon_beyond_the_context_is_decoded_window_by_window():
    """The last max_context tokens decode as upstream's window; the generated tokens before it
    decode in blocks of max_context // 2, each at the end of a window of max_context tokens."""
    tokenizer, model = random_pair(seed=5)
    hist_len, pred_len, context = 10, 45, 16
    x, x_stamp, y_stamp = random_inputs(2, hist_len, pred_len)
    sampling = Sampling(T=1.0, top_k=0, top_p=0.9, sample_count=2, seed=3)
    tokens = generate_tokens(tokenizer, model, SeriesBatch(x, x_stamp, y_stamp), sampling, context)
    z = decode_tokens(tokenizer, tokens, context)
    assert z.shape == (2, 2, pred_len, 6)
    (h1, h2), (g1, g2) = tokens.history, tokens.generated
    full1 = torch.cat([h1.repeat_interleave(2, dim=0), g1], dim=1)
    full2 = torch.cat([h2.repeat_interleave(2, dim=0), g2], dim=1)
    with torch.no_grad():
        last = tokenizer.decode((full1[:, -context:], full2[:, -context:]), half=True)
        torch.testing.assert_close(z[:, :, -context:].reshape(4, context, 6), last, rtol=1e-4, atol=1e-5)
        for first in range(hist_len, hist_len + pred_len - context, context // 2):
            end = min(first + context // 2, hist_len + pred_len - context)
            window = tokenizer.decode(
                (full1[:, end - context : end], full2[:, end - context : end]), half=True
            )
            block = z[:, :, first - hist_len : end - hist_len].reshape(4, end - first, 6)
            torch.testing.assert_close(block, window[:, first - end :], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", list(STREAMING_SHAPES))
@pytest.mark.parametrize("sample_count", [1, 3])
@torch.inference_mode()
def test_streaming_window_is_sliding_window_attention(shape, sample_count):
    cfg = STREAMING_SHAPES[shape]
    tokenizer, model, args = greedy_case(cfg, sample_count)
    streaming = generate_tokens(tokenizer, model, *args, window="streaming")
    full_stamp = torch.cat([args[0].x_stamp, args[0].y_stamp], 1)
    ref_args = (model, streaming.history, full_stamp, cfg["max_context"], cfg["pred_len"])
    for got, want in zip(streaming.generated, sliding_window_greedy(*ref_args, span=cfg["max_context"])):
        torch.testing.assert_close(got, want.repeat_interleave(sample_count, 0), rtol=0, atol=0)
    # the oldest tokens matter: attending to every token gives other tokens
    unbounded = sliding_window_greedy(*ref_args, span=10**6)
    assert any((a != b[::sample_count]).any() for a, b in zip(unbounded, streaming.generated))


@pytest.mark.parametrize("shape", ["grows", "fills_exactly", "many_rows_grows"])
def test_streaming_window_equals_exact_until_it_slides(shape):
    cfg = dict(SHAPES, many_rows_grows=dict(n_series=6, hist_len=30, pred_len=10, max_context=40))[shape]
    tokenizer, model = random_pair(seed=2)
    x, x_stamp, y_stamp = random_inputs(cfg["n_series"], cfg["hist_len"], cfg["pred_len"])
    sampling = Sampling(T=1.0, top_k=0, top_p=0.99, sample_count=3, seed=4)
    args = (SeriesBatch(x, x_stamp, y_stamp), sampling, cfg["max_context"])
    exact = generate_tokens(tokenizer, model, *args)
    streaming = generate_tokens(tokenizer, model, *args, window="streaming")
    for a, b in zip(exact.generated, streaming.generated):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_unknown_window_is_refused():
    tokenizer, model = random_pair(seed=2)
    x, x_stamp, y_stamp = random_inputs(1, 10, 2)
    args = (
        SeriesBatch(x, x_stamp, y_stamp),
        Sampling(T=1.0, top_k=0, top_p=0.99, sample_count=1, seed=None),
        16,
    )
    with pytest.raises(ValueError, match="window must be one of"):
        generate_tokens(tokenizer, model, *args, window="sliding")


def test_adaptive_threads_change_no_token_and_leave_torchs_count_as_it_was():
    tokenizer, model, args = greedy_case(SHAPES["slides"], 3)
    fixed = generate_tokens(tokenizer, model, *args)
    seen: list[int] = []
    hook = model.head.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        threads = AdaptiveThreads(
            2, load=None, probe_steps=1, first_wait=1
        )  # a trial at the second one-token step
        adapted = generate_tokens(tokenizer, model, *args, threads=threads)
    finally:
        hook.remove()
    assert {1, 2} <= set(seen) and torch.get_num_threads() == 1
    for a, b in zip(fixed.generated, adapted.generated):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_cuda_generation_leaves_out_cudnn_attention_and_restores_it():
    """cuDNN's fused attention plans anew for every key length (38 ms an attention call in bfloat16
    on an H200): generation on CUDA turns it off for its own steps only; CPU runs are untouched."""
    from kronos.engine.generation import _attention_kernels

    before = torch.backends.cuda.cudnn_sdp_enabled()
    with _attention_kernels(torch.device("cuda", 0)):
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled() == before
    with _attention_kernels(torch.device("cpu")):
        assert torch.backends.cuda.cudnn_sdp_enabled() == before
