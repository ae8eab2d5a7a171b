"""Autoregressive generation over key/value caches.

One engine: the model's modules over a key/value cache (`kronos.engine.cache.KVCache`) whose
history part is shared by a series' paths, with packed weights (`kronos.engine.packing`).
While the window grows, a step passes one token per path; once it slides, every hidden state
changes (the oldest token drops out and positions restart at 0), so the step passes the whole
window again: the history part once per series, then each path's generated part on top of it.
With `window="streaming"` (opt-in, see `WINDOWS`) it does not: the oldest token leaves the
attention and the step passes one token per path, as it grows.

`batch_invariant` names the kernels: with it (the default when sampling with a seed), a series
gets bitwise the same paths whatever it is batched with; without it, the fastest kernels run.
The plain algorithm, the whole window through the model at every step, is the test oracle
(tests/reference_generation.py); both give the same tokens.

Rows are laid out series-major (row = series * sample_count + path), as upstream repeats them,
so the draws come in upstream's order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import trange

from kronos.engine.cache import CacheLayout, KVCache
from kronos.engine.packing import packed_products
from kronos.engine.sampling import Sampling, SeriesRandom, draw_tokens, series_key
from kronos.engine.threads import AdaptiveThreads, set_threads
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer

TokenPair = tuple[torch.Tensor, torch.Tensor]  # s1 and s2 token ids
Progress = Callable[[int], Iterable[int]]


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
    """History tokens per series and generated tokens per path (rows series-major), and the
    kernel set they were made with (`decode_tokens` decodes in the same)."""

    history: TokenPair  # s1, s2: [S, H]
    generated: TokenPair  # s1, s2: [S * N, P]
    sample_count: int
    batch_invariant: bool = True


def window_bounds(seq_len: int, history_len: int, max_context: int) -> tuple[int, int, int]:
    """For the last `max_context` of seq_len tokens: (start, prefix length, first generated index)."""
    start = max(0, seq_len - max_context)
    return start, max(0, history_len - start), max(0, start - history_len)


@dataclass(frozen=True)
class Run:
    """What every step of one generation call reads: the model and its cache, the tokens (history
    per series, generated per path, filled step by step), stamps per series and per path."""

    model: Kronos
    cache: KVCache
    history: TokenPair
    generated: TokenPair
    stamps: TokenPair
    max_context: int
    streaming: bool


def _generate(
    model: Kronos,
    history: TokenPair,
    full_stamp: torch.Tensor,
    max_context: int,
    sampling: Sampling,
    random: SeriesRandom | None,
    progress: Progress,
    window: str,
    batch_invariant: bool,
    pred_len: int,
    threads: AdaptiveThreads | None,
) -> TokenPair:
    n_series, hist_len = history[0].shape
    n_paths = sampling.sample_count
    generated = (
        history[0].new_empty(n_series * n_paths, pred_len),
        history[1].new_empty(n_series * n_paths, pred_len),
    )
    stamps = (full_stamp, full_stamp.repeat_interleave(n_paths, dim=0))  # per series, per path
    prefix_cap = min(hist_len, max_context)
    streaming = window == "streaming"
    if streaming:  # every generated token stays in the cache
        suffix_cap, max_len, attended = pred_len, prefix_cap + pred_len, max_context
    else:
        suffix_cap, max_len, attended = min(pred_len, max_context), max_context, None
    layout = CacheLayout(n_series, n_paths, prefix_cap, suffix_cap, max_len, attended)
    cache = KVCache.for_model(model, layout, fused=not batch_invariant)
    run = Run(model, cache, history, generated, stamps, max_context, streaming)
    for i in progress(pred_len):
        if threads is None:
            _step(run, i, sampling, random)
        else:
            one_token = i > 0 and (streaming or hist_len + i <= max_context)
            _step_with_threads(run, i, sampling, random, threads, one_token)
    return run.generated


def _step(run: Run, i: int, sampling: Sampling, random: SeriesRandom | None) -> None:
    """Generated token pair i of every path: s1 from the last position, then s2 conditioned on it."""
    s1_logits, last = _last_position(run, i)
    s1 = draw_tokens(s1_logits.float(), sampling, None if random is None else random.uniforms(i, 0))
    s2_logits = run.model.decode_s2(last, s1[:, None], cache=run.cache)[:, -1]
    s2 = draw_tokens(s2_logits.float(), sampling, None if random is None else random.uniforms(i, 1))
    run.generated[0][:, i] = s1
    run.generated[1][:, i] = s2


def _step_with_threads(
    run: Run,
    i: int,
    sampling: Sampling,
    random: SeriesRandom | None,
    threads: AdaptiveThreads,
    one_token: bool,
) -> None:
    """`_step` at the thread count `threads` asks for: a one-token step's time it records, a pass
    of many tokens it does not compare."""
    if not one_token:
        set_threads(threads.pass_count())
        _step(run, i, sampling, random)
        return
    count = threads.next_count()
    set_threads(count)
    started = time.perf_counter()
    _step(run, i, sampling, random)
    threads.record(count, time.perf_counter() - started)


def _last_position(run: Run, step: int) -> TokenPair:
    """s1 logits [R, vocab] and hidden state [R, 1, D] of the last token before generated token
    `step`: one token per path while the window grows (or streams), else the whole window passed
    again, the history part once per series, then each path's generated part on top of it."""
    model, cache = run.model, run.cache
    (h1, h2), (g1, g2), (series_stamp, path_stamp) = run.history, run.generated, run.stamps
    hist_len = h1.shape[1]
    seq_len = hist_len + step
    start, prefix_len, gen_start = window_bounds(seq_len, hist_len, run.max_context)
    if step > 0 and (start == 0 or run.streaming):  # the suffix holds generated tokens 0 .. step - 2
        new = slice(step - 1, step)
        stamp = path_stamp[:, seq_len - 1 : seq_len]
        logits, context = model.decode_s1(g1[:, new], g2[:, new], stamp, cache=cache.extend(step - 1, 1))
        return logits[:, -1], context[:, -1:]
    cache.prefill(prefix_len)
    if prefix_len:
        logits, context = model.decode_s1(
            h1[:, start:], h2[:, start:], series_stamp[:, start:hist_len], cache=cache
        )
    if step > gen_start:
        new = slice(gen_start, step)
        stamp = path_stamp[:, start + prefix_len : seq_len]
        logits, context = model.decode_s1(
            g1[:, new], g2[:, new], stamp, cache=cache.extend(0, step - gen_start)
        )
    else:  # the history alone, one row per series; the paths ask `decode_s2` over it
        cache.extend(0, 0)
        n_paths = g1.shape[0] // h1.shape[0]
        logits, context = (t.repeat_interleave(n_paths, dim=0) for t in (logits, context[:, -1:]))
    return logits[:, -1], context[:, -1:]


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
    window: str = "exact",
    batch_invariant: bool | None = None,
    on_step: Callable[[int], None] | None = None,
    threads: AdaptiveThreads | None = None,
) -> GeneratedTokens:
    """Tokenize each series' history once and sample `sampling.sample_count` token paths of
    `batch.pred_len` tokens per series, the model seeing at most `max_context` tokens.

    `batch_invariant` chooses the kernels (default: whether `sampling.seed` is given). With it,
    every product and attention computes a row the same way whatever the rows beside it, so a
    seeded series gets bitwise the same paths alone or in any batch; without it, the fastest
    kernels run (one-row products on slabs of the weights, PyTorch's fused attention), whose
    rounding may depend on the batch. `window` is how a full context window slides (`WINDOWS`).
    `on_step(done)` is called after each step with the steps done: a caller watches progress
    through it, and stops generation between two steps by raising from it.
    `threads`, if given, sets torch's CPU thread count step by step (`AdaptiveThreads`: the
    numbers do not change); torch's count is restored afterwards, and `threads.current` holds
    the count it settled on.
    Runs in eval mode; the modules' training flags are restored afterwards.
    """
    if int(max_context) <= 0:
        raise ValueError(f"max_context must be positive, got {max_context}")
    check_window(window)
    x = batch.x
    random = None
    if sampling.seed is not None:
        keys = range(x.shape[0]) if batch.keys is None else batch.keys
        random = SeriesRandom([series_key(sampling.seed, k) for k in keys], sampling.sample_count, x.device)
    invariant = sampling.seed is not None if batch_invariant is None else batch_invariant
    dtype = model.norm.weight.dtype
    x = torch.clip(x, -clip, clip).to(dtype)
    full_stamp = torch.cat([batch.x_stamp, batch.y_stamp], dim=1)
    progress: Progress = trange if verbose else range
    if on_step is not None:
        progress = _watched(progress, on_step)
    before = torch.get_num_threads()
    with eval_mode(tokenizer, model):
        try:
            if threads is not None:
                set_threads(threads.pass_count())
            history = tokenizer.encode(x.to(tokenizer.head.weight.dtype), half=True)
            with packed_products(invariant), _attention_kernels(x.device):
                generated = _generate(
                    model, history, full_stamp, max_context, sampling, random, progress, window,
                    invariant, batch.pred_len, threads,
                )  # fmt: skip
        finally:
            set_threads(before)
    return GeneratedTokens(history, generated, sampling.sample_count, batch_invariant=invariant)


def _attention_kernels(device: torch.device) -> AbstractContextManager[None]:
    """On CUDA, PyTorch's fused attention without its cuDNN kernel: cuDNN plans anew for every key
    length it meets, and a one-token step meets a new one each time (bfloat16 steps of Kronos-small
    took about 100 ms on an H200 so, 15 ms without it: docs/performance.md)."""
    if device.type != "cuda":
        return nullcontext()
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def _watched(steps: Progress, on_step: Callable[[int], None]) -> Progress:
    """`steps`, calling `on_step(i + 1)` once step i is done (before the next begins)."""

    def watched(count: int) -> Iterator[int]:
        for i in steps(count):
            yield i
            on_step(i + 1)

    return watched


@torch.inference_mode()
def decode_tokens(tokenizer: KronosTokenizer, tokens: GeneratedTokens, max_context: int) -> torch.Tensor:
    """Decode history + each path, [S, N, max(min(H + P, max_context), P), d_in]: the last
    `max_context` tokens, as upstream, and before them any generated tokens that fall outside
    that window (a horizon P longer than the context; `_decode_before_window`).

    The last window is decoded over a cache, in the tokens' kernel set: its history part once per
    series and each path's tokens on top of it. Runs in eval mode, as `generate_tokens`.
    """
    (h1, _), (g1, _) = tokens.history, tokens.generated
    start, prefix_len, gen_start = window_bounds(h1.shape[1] + g1.shape[1], h1.shape[1], max_context)
    with eval_mode(tokenizer):
        with packed_products(tokens.batch_invariant):
            window = _decode_window(tokenizer, tokens, start, prefix_len, gen_start)
        if gen_start == 0:
            return window
        return torch.cat([_decode_before_window(tokenizer, tokens, gen_start, max_context), window], dim=2)


@torch.inference_mode()
def decode_history_end(tokenizer: KronosTokenizer, tokens: GeneratedTokens, max_context: int) -> torch.Tensor:
    """The tokenizer's reconstruction of each series' last history bar, [S, d_in]: what the model's
    tokens say the bar it forecasts from was. The decoder is causal, so this is the bar as
    `decode_tokens` decodes it in the window it shares with the paths (the history from that
    window's first token), or from the last `max_context` history tokens where the window holds
    only generated tokens."""
    (h1, h2), (g1, _) = tokens.history, tokens.generated
    hist_len = h1.shape[1]
    start, prefix_len, _ = window_bounds(hist_len + g1.shape[1], hist_len, max_context)
    first = start if prefix_len else max(0, hist_len - max_context)
    with eval_mode(tokenizer), packed_products(tokens.batch_invariant):
        return tokenizer.decode((h1[:, first:], h2[:, first:]), half=True)[:, -1]


def _decode_window(
    tokenizer: KronosTokenizer, tokens: GeneratedTokens, start: int, prefix_len: int, gen_start: int
) -> torch.Tensor:
    (h1, h2), (g1, g2), n = tokens.history, tokens.generated, tokens.sample_count
    n_series, hist_len = h1.shape
    pred_len = g1.shape[1]
    window_len = hist_len + pred_len - start
    layout = CacheLayout(n_series, n, prefix_len, pred_len - gen_start, window_len)
    cache = KVCache.for_decoder(tokenizer, layout, fused=not tokens.batch_invariant)
    if n == 1:  # one path a series: nothing to share, the window is passed as one sequence
        window = (
            torch.cat([h1[:, start:], g1[:, gen_start:]], dim=1),
            torch.cat([h2[:, start:], g2[:, gen_start:]], dim=1),
        )
        return tokenizer.decode(window, half=True, cache=cache.prefill(window_len))[:, None]
    parts = []
    if prefix_len:
        z_prefix = tokenizer.decode(
            (h1[:, start:], h2[:, start:]), half=True, cache=cache.prefill(prefix_len)
        )
        parts.append(z_prefix[:, None].expand(n_series, n, *z_prefix.shape[1:]))
    else:
        cache.prefill(0)
    suffix = cache.extend(0, pred_len - gen_start)
    z_suffix = tokenizer.decode((g1[:, gen_start:], g2[:, gen_start:]), half=True, cache=suffix)
    parts.append(z_suffix.view(n_series, n, pred_len - gen_start, -1))
    return torch.cat(parts, dim=2)


def _decode_before_window(
    tokenizer: KronosTokenizer, tokens: GeneratedTokens, n_generated: int, max_context: int
) -> torch.Tensor:
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


def check_window(window: str) -> None:
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
