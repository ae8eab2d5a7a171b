"""Sampling and autoregressive generation.

Two engines compute the same thing:

- `plain`: the reference algorithm. Every step re-runs the Transformer over the whole window
  and the dependency-aware layer over every context position.
- `cached` (default): the same modules over key/value caches (`kronos.engine.cache`) whose history part
  is shared by a series' paths. While the window grows, a step passes one token per path; once
  it slides, every hidden state changes (the oldest token drops out and positions restart at 0),
  so the step passes the whole window again: the history part once per series, then each path's
  generated part on top of it. With `window="streaming"` (opt-in, see `WINDOWS`) it does not:
  the oldest token leaves the attention and the step passes one token per path, as it grows.

Rows are laid out series-major (row = series * sample_count + path), as upstream repeats them,
so both engines draw the same random numbers in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from tqdm.auto import trange

from kronos.engine.cache import CacheLayout, SegmentedCache, SegmentedModelCache
from kronos.engine.sampling import Sampling, SeriesRandom, draw_tokens, series_key
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer


@contextmanager
def eval_mode(*modules: torch.nn.Module) -> Iterator[None]:
    """Run in eval mode (no dropout), then restore each module's training flag."""
    flags = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, flag in zip(modules, flags):
            m.train(flag)


@dataclass
class GeneratedTokens:
    """History tokens per series and generated tokens per path (rows series-major)."""

    history: tuple[torch.Tensor, torch.Tensor]  # s1, s2: [S, H]
    generated: tuple[torch.Tensor, torch.Tensor]  # s1, s2: [S * N, P]
    sample_count: int
    batch_invariant: bool = True  # decode a series the same whatever its batch (seeded paths)


def window_bounds(seq_len: int, history_len: int, max_context: int) -> tuple[int, int, int]:
    """For the last `max_context` of seq_len tokens: (start, prefix length, first generated index)."""
    start = max(0, seq_len - max_context)
    return start, max(0, history_len - start), max(0, start - history_len)


def _generate_cached(
    model, history, full_stamp, max_context, pred_len, sampling, random, progress, streaming
):
    n_series, hist_len = history[0].shape
    n_paths = sampling.sample_count
    generated = tuple(h.new_empty(n_series * n_paths, pred_len) for h in history)
    stamps = (full_stamp, full_stamp.repeat_interleave(n_paths, dim=0))  # per series, per path
    prefix_cap = min(hist_len, max_context)
    if streaming:  # every generated token stays in the cache
        suffix_cap, max_len, window = pred_len, prefix_cap + pred_len, max_context
    else:
        suffix_cap, max_len, window = min(pred_len, max_context), max_context, None
    seeded = random is not None  # a series' paths must then not depend on its batch
    layout = CacheLayout(n_series, n_paths, prefix_cap, suffix_cap, max_len, window, batch_invariant=seeded)
    cache = SegmentedModelCache(model, layout)
    for i in progress(pred_len):
        s1_logits, last = _last_position(model, cache, history, generated, stamps, i, max_context, streaming)
        s1 = draw_tokens(s1_logits.float(), sampling, random and random.uniforms(i, 0))
        s2_logits = model.decode_s2(last, s1[:, None], cache=cache)[:, -1]
        s2 = draw_tokens(s2_logits.float(), sampling, random and random.uniforms(i, 1))
        generated[0][:, i] = s1
        generated[1][:, i] = s2
    return generated


def _last_position(model, cache, history, generated, stamps, step, max_context, streaming):
    """s1 logits [R, vocab] and hidden state [R, 1, D] of the last token before generated token
    `step`: one token per path while the window grows (or streams), else the whole window passed
    again, the history part once per series, then each path's generated part on top of it."""
    (h1, h2), (g1, g2), (series_stamp, path_stamp) = history, generated, stamps
    hist_len = h1.shape[1]
    seq_len = hist_len + step
    start, prefix_len, gen_start = window_bounds(seq_len, hist_len, max_context)
    if step > 0 and (start == 0 or streaming):
        new = slice(step - 1, step)
        logits, context = model.decode_s1(
            g1[:, new], g2[:, new], path_stamp[:, seq_len - 1 : seq_len], cache=cache
        )
        return logits[:, -1], context[:, -1:]
    cache.clear()
    if prefix_len:
        logits, context = model.decode_s1(
            h1[:, start:], h2[:, start:], series_stamp[:, start:hist_len], cache=cache
        )
    if step > gen_start:
        new = slice(gen_start, step)
        logits, context = model.decode_s1(
            g1[:, new], g2[:, new], path_stamp[:, start + prefix_len : seq_len], cache=cache
        )
    else:  # the history alone: one row per series
        n_paths = g1.shape[0] // h1.shape[0]
        logits, context = (t.repeat_interleave(n_paths, dim=0) for t in (logits, context[:, -1:]))
    return logits[:, -1], context[:, -1:]


def _generate_plain(model, history, full_stamp, max_context, pred_len, sampling, random, progress):
    n_paths = sampling.sample_count
    h1, h2 = (t.repeat_interleave(n_paths, dim=0) for t in history)
    stamp = full_stamp.repeat_interleave(n_paths, dim=0)
    hist_len = h1.shape[1]
    seq1 = torch.cat([h1, h1.new_zeros(h1.shape[0], pred_len)], dim=1)
    seq2 = torch.cat([h2, h2.new_zeros(h2.shape[0], pred_len)], dim=1)
    for i in progress(pred_len):
        seq_len = hist_len + i
        start = max(0, seq_len - max_context)
        s1_logits, context = model.decode_s1(
            seq1[:, start:seq_len], seq2[:, start:seq_len], stamp[:, start:seq_len]
        )
        s1 = draw_tokens(s1_logits[:, -1].float(), sampling, random and random.uniforms(i, 0))
        s2_logits = model.decode_s2(context, s1[:, None])
        s2 = draw_tokens(s2_logits[:, -1].float(), sampling, random and random.uniforms(i, 1))
        seq1[:, seq_len] = s1
        seq2[:, seq_len] = s2
    return seq1[:, hist_len:], seq2[:, hist_len:]


@dataclass(frozen=True)
class SeriesBatch:
    """Series to generate for, as the model takes them: normalised histories x [S, H, d_in], their
    time stamps x_stamp [S, H, 5], the stamps of the bars to generate y_stamp [S, P, 5], and
    optionally what names each series (`keys`: its seeded draws come from `series_key(seed, key)`;
    default: its position)."""

    x: torch.Tensor
    x_stamp: torch.Tensor
    y_stamp: torch.Tensor
    keys: Sequence[object] | None = None

    def __post_init__(self) -> None:
        x, x_stamp, y_stamp = self.x, self.x_stamp, self.y_stamp
        if x.dim() != 3:
            raise ValueError(f"x must be [batch, seq_len, features], got shape {tuple(x.shape)}")
        if x.shape[1] < 1:
            raise ValueError("x must hold at least one bar of history")
        if tuple(x_stamp.shape[:2]) != tuple(x.shape[:2]):
            raise ValueError(f"x_stamp shape {tuple(x_stamp.shape)} does not match x shape {tuple(x.shape)}")
        if y_stamp.dim() != 3 or y_stamp.shape[0] != x.shape[0] or y_stamp.shape[1] < 1:
            raise ValueError(
                f"y_stamp must be [batch={x.shape[0]}, pred_len >= 1, 5], got shape {tuple(y_stamp.shape)}"
            )
        if self.keys is not None and len(self.keys) != x.shape[0]:
            raise ValueError(f"keys has {len(self.keys)} keys for {x.shape[0]} series")

    @property
    def pred_len(self) -> int:
        return self.y_stamp.shape[1]


@torch.inference_mode()
def generate_tokens(
    tokenizer: KronosTokenizer,
    model: Kronos,
    batch: SeriesBatch,
    sampling: Sampling,
    max_context: int,
    clip: float = 5,
    verbose: bool = False,
    use_cache: bool = True,
    window: str = "exact",
) -> GeneratedTokens:
    """Tokenize each series' history once and sample `sampling.sample_count` token paths of
    `batch.pred_len` tokens per series, the model seeing at most `max_context` tokens.

    Runs in eval mode; the modules' training flags are restored afterwards. `window` is how a full
    context window slides (see `WINDOWS`).
    """
    if int(max_context) <= 0:
        raise ValueError(f"max_context must be positive, got {max_context}")
    check_window(window, use_cache)
    x, pred_len = batch.x, batch.pred_len
    random = None
    if sampling.seed is not None:
        keys = range(x.shape[0]) if batch.keys is None else batch.keys
        random = SeriesRandom([series_key(sampling.seed, k) for k in keys], sampling.sample_count, x.device)
    dtype = model.norm.weight.dtype
    x = torch.clip(x, -clip, clip).to(dtype)
    full_stamp = torch.cat([batch.x_stamp, batch.y_stamp], dim=1)
    progress = trange if verbose else range
    with eval_mode(tokenizer, model):
        history = tokenizer.encode(x.to(tokenizer.head.weight.dtype), half=True)
        args = (model, history, full_stamp, max_context, pred_len, sampling, random, progress)
        generated = _generate_cached(*args, window == "streaming") if use_cache else _generate_plain(*args)
    return GeneratedTokens(history, generated, sampling.sample_count, batch_invariant=random is not None)


@torch.inference_mode()
def decode_tokens(
    tokenizer: KronosTokenizer, tokens: GeneratedTokens, max_context: int, use_cache: bool = True
):
    """Decode history + each path, [S, N, max(min(H + P, max_context), P), d_in]: the last
    `max_context` tokens, as upstream, and before them any generated tokens that fall outside
    that window (a horizon P longer than the context; `_decode_before_window`).

    The cached way decodes the history part of the last window once per series and each path's
    tokens on top of it. Runs in eval mode, as `generate_tokens`.
    """
    (h1, h2), (g1, g2), n = tokens.history, tokens.generated, tokens.sample_count
    n_series, hist_len = h1.shape
    pred_len = g1.shape[1]
    start, prefix_len, gen_start = window_bounds(hist_len + pred_len, hist_len, max_context)
    with eval_mode(tokenizer):
        if not use_cache:
            full1 = torch.cat([h1.repeat_interleave(n, dim=0), g1], dim=1)[:, start:]
            full2 = torch.cat([h2.repeat_interleave(n, dim=0), g2], dim=1)[:, start:]
            z = tokenizer.decode((full1, full2), half=True)
            window = z.view(n_series, n, z.shape[1], z.shape[2])
        else:
            window = _decode_window_cached(tokenizer, tokens, start, prefix_len, gen_start)
        if gen_start == 0:
            return window
        return torch.cat([_decode_before_window(tokenizer, tokens, gen_start, max_context), window], dim=2)


def _decode_window_cached(tokenizer, tokens: GeneratedTokens, start: int, prefix_len: int, gen_start: int):
    (h1, h2), (g1, g2), n = tokens.history, tokens.generated, tokens.sample_count
    n_series, hist_len = h1.shape
    pred_len = g1.shape[1]
    window_len = hist_len + pred_len - start
    invariant = tokens.batch_invariant
    layout = CacheLayout(n_series, n, prefix_len, pred_len - gen_start, window_len, batch_invariant=invariant)
    cache = SegmentedCache(tokenizer.decoder, layout)
    if n == 1:  # one path a series: nothing to share, the window is passed as one sequence
        window = [torch.cat([h[:, start:], g[:, gen_start:]], dim=1) for h, g in ((h1, g1), (h2, g2))]
        return tokenizer.decode(tuple(window), half=True, cache=cache)[:, None]
    parts = []
    if prefix_len:
        z_prefix = tokenizer.decode((h1[:, start:], h2[:, start:]), half=True, cache=cache)
        parts.append(z_prefix[:, None].expand(n_series, n, *z_prefix.shape[1:]))
    z_suffix = tokenizer.decode((g1[:, gen_start:], g2[:, gen_start:]), half=True, cache=cache)
    parts.append(z_suffix.view(n_series, n, pred_len - gen_start, -1))
    return torch.cat(parts, dim=2)


def _decode_before_window(tokenizer, tokens: GeneratedTokens, n_generated: int, max_context: int):
    """The first `n_generated` generated tokens of each path, decoded: [S, N, n_generated, d_in].

    The decoder sees at most `max_context` tokens, so they are decoded block by block, each block
    of max_context // 2 tokens at the end of a window of `max_context` tokens (or of all tokens
    from the first): every token is decoded with at least half a context of tokens before it.
    """
    (h1, h2), (g1, g2), n = tokens.history, tokens.generated, tokens.sample_count
    n_series, hist_len = h1.shape
    full1 = torch.cat([h1.repeat_interleave(n, dim=0), g1], dim=1)
    full2 = torch.cat([h2.repeat_interleave(n, dim=0), g2], dim=1)
    block = max(1, max_context // 2)
    blocks = []
    for first in range(hist_len, hist_len + n_generated, block):
        end = min(first + block, hist_len + n_generated)
        begin = max(0, end - max_context)
        z = tokenizer.decode((full1[:, begin:end], full2[:, begin:end]), half=True)
        blocks.append(z[:, first - begin :])
    z = torch.cat(blocks, dim=1)
    return z.view(n_series, n, n_generated, z.shape[-1])


WINDOWS = ("exact", "streaming")
"""How a full context window slides. "exact" (the default: upstream's numbers) passes the whole
window again at every step once it is full, as the model was trained: positions restart at 0 and
the oldest token leaves. "streaming" keeps the cached keys and values of the tokens that stay and
stops attending to the oldest, so a sliding step costs what a growing one does; the kept tokens'
hidden states still carry what they saw of the tokens that left, which changes the forecast a
little (measured in docs/performance.md). Use it when history + steps exceed the context and
speed matters more than matching upstream token for token; below the context it is exact."""


def check_window(window: str, use_cache: bool = True) -> None:
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    if window == "streaming" and not use_cache:
        raise ValueError("window='streaming' needs use_cache=True (the plain loop is the exact reference)")
