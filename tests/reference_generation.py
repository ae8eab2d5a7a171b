"""The plain generation loop: the test oracle of the cached engine (kronos.engine.generation).

Every step runs the whole window (the last max_context tokens) through the model, and decoding
runs the whole last window through the tokenizer, one row per path, no cache, no packed weights:
the algorithm written the obvious way. It draws the same random numbers in the same order as
the engine (rows series-major), so for the same inputs and seed both give the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch

from kronos.engine.generation import (
    GeneratedTokens,
    SeriesBatch,
    _decode_before_window,
    check_window,
    eval_mode,
    window_bounds,
)
from kronos.engine.sampling import Sampling, SeriesRandom, draw_tokens, series_key
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer


@torch.inference_mode()
def plain_generate_tokens(
    tokenizer: KronosTokenizer,
    model: Kronos,
    batch: SeriesBatch,
    sampling: Sampling,
    max_context: int,
    clip: float = 5,
    verbose: bool = False,
    window: str = "exact",
    on_step: Callable[[int], None] | None = None,
) -> GeneratedTokens:
    """`generate_tokens`'s tokens by the plain loop ("exact" windows only: the streaming window
    is tested against its own reference in test_engine_generation.py); `on_step(done)` after
    each step, as there."""
    check_window(window)
    if window != "exact":
        raise ValueError("the plain loop is the reference of window='exact'")
    x = batch.x
    random = None
    if sampling.seed is not None:
        keys = range(x.shape[0]) if batch.keys is None else batch.keys
        random = SeriesRandom([series_key(sampling.seed, k) for k in keys], sampling.sample_count, x.device)
    x = torch.clip(x, -clip, clip).to(model.norm.weight.dtype)
    full_stamp = torch.cat([batch.x_stamp, batch.y_stamp], dim=1)
    with eval_mode(tokenizer, model):
        history = tokenizer.encode(x.to(tokenizer.head.weight.dtype), half=True)
        generated = plain_loop(
            model, history, full_stamp, max_context, batch.pred_len, sampling, random, _steps(on_step)
        )
    return GeneratedTokens(history, generated, sampling.sample_count, batch_invariant=random is not None)


def plain_loop(
    model: Kronos,
    history: tuple[torch.Tensor, torch.Tensor],
    full_stamp: torch.Tensor,
    max_context: int,
    pred_len: int,
    sampling: Sampling,
    random: SeriesRandom | None,
    progress: Callable[[int], Iterable[int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated tokens per path [S * N, pred_len]: every step the last max_context tokens of
    every path through the model, the dependency-aware layer over all of their positions."""
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
        s1 = draw_tokens(
            s1_logits[:, -1].float(), sampling, None if random is None else random.uniforms(i, 0)
        )
        s2_logits = model.decode_s2(context, s1[:, None])
        s2 = draw_tokens(
            s2_logits[:, -1].float(), sampling, None if random is None else random.uniforms(i, 1)
        )
        seq1[:, seq_len] = s1
        seq2[:, seq_len] = s2
    return seq1[:, hist_len:], seq2[:, hist_len:]


@torch.inference_mode()
def plain_decode_tokens(
    tokenizer: KronosTokenizer, tokens: GeneratedTokens, max_context: int
) -> torch.Tensor:
    """`decode_tokens`'s bars by the plain way: the last window of every path decoded whole,
    and any generated tokens before it as the engine decodes them (`_decode_before_window`)."""
    (h1, h2), (g1, g2), n = tokens.history, tokens.generated, tokens.sample_count
    n_series, hist_len = h1.shape
    start, _, gen_start = window_bounds(hist_len + g1.shape[1], hist_len, max_context)
    with eval_mode(tokenizer):
        full1 = torch.cat([h1.repeat_interleave(n, dim=0), g1], dim=1)[:, start:]
        full2 = torch.cat([h2.repeat_interleave(n, dim=0), g2], dim=1)[:, start:]
        z = tokenizer.decode((full1, full2), half=True)
        window = z.view(n_series, n, z.shape[1], z.shape[2])
        if gen_start == 0:
            return window
        return torch.cat([_decode_before_window(tokenizer, tokens, gen_start, max_context), window], dim=2)


def _steps(on_step: Callable[[int], None] | None) -> Callable[[int], Iterator[int]]:
    """range, calling on_step(i + 1) once step i is done."""

    def steps(count: int) -> Iterator[int]:
        for i in range(count):
            yield i
            if on_step is not None:
                on_step(i + 1)

    return steps
