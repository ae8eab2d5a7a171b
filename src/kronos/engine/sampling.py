"""Drawing tokens: temperature, top-k and top-p filters, and counter-based seeded draws.

`Sampling` holds the settings; with a seed, `SeriesRandom` gives every series its own stream of
uniforms, so a series' draws do not depend on what it is batched with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def top_k_top_p_filtering(
    logits: torch.Tensor,
    top_k: int = 0,
    top_p: float = 1.0,
    filter_value: float = -float("inf"),
    min_tokens_to_keep: int = 1,
) -> torch.Tensor:
    """Set logits outside the top-k (if top_k > 0) or else outside the nucleus top_p to filter_value.

    Top-k keeps every token tied with the k-th largest logit. Top-p keeps the smallest set of most
    probable tokens whose cumulative probability reaches top_p; the most probable is always kept.
    """
    if top_k > 0:
        k = min(max(top_k, min_tokens_to_keep), logits.size(-1))
        kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth_largest, filter_value)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        beyond = cumulative > top_p
        if min_tokens_to_keep > 1:
            beyond[..., :min_tokens_to_keep] = False
        remove = torch.zeros_like(beyond)
        remove[..., 1:] = beyond[..., :-1]
        return logits.masked_fill(remove.scatter(-1, order, remove), filter_value)
    return logits


def sample_from_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    sample_logits: bool = True,
) -> torch.Tensor:
    """One token per row, [B, 1]: logits / temperature, top-k or top-p filter, then a multinomial draw.

    `top_k=1` is greedy. With `sample_logits=False` the most probable token is taken instead.
    """
    logits = logits / temperature
    top_k = top_k or 0
    top_p = 1.0 if top_p is None else top_p
    if top_k > 0 or top_p < 1.0:
        logits = top_k_top_p_filtering(logits, top_k=top_k, top_p=top_p)
    probs = F.softmax(logits, dim=-1)
    if sample_logits:
        return torch.multinomial(probs, num_samples=1)
    return torch.topk(probs, k=1, dim=-1).indices


MIN_TEMPERATURE = 1e-4  # logits of a few hundred divided by less overflow float32
MAX_SAMPLE_COUNT = 10_000
# The one set of sampling defaults, chosen by measurement (docs/calibration.md): every forecast of
# the package samples so unless told otherwise. Upstream's predict, predict_batch and
# auto_regressive_inference keep their own defaults in their signatures (kronos.forecasting.upstream).
PATHS = 20
TEMPERATURE = 1.0
TOP_P = 0.9


@dataclass(frozen=True)
class Sampling:
    """How tokens are drawn: temperature, top-k and top-p filters, and paths per series.

    `seed=None` draws from torch's global generator, in upstream's order. With a seed, every
    series' draws come from (seed, the series' key) alone (`SeriesRandom`), so a series gets the
    same paths whatever it is batched with, in any engine and on any thread.
    """

    T: float = TEMPERATURE
    top_k: int = 0
    top_p: float = TOP_P
    sample_count: int = PATHS
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.T, bool) or not isinstance(self.T, (int, float)) or not self.T > 0:
            raise ValueError(f"temperature T must be positive (a number), got {self.T!r}")
        if not MIN_TEMPERATURE <= self.T < float("inf"):
            raise ValueError(
                f"temperature T must be finite and at least {MIN_TEMPERATURE:g}, got {self.T!r}: logits / T "
                "overflow float32 below it (for the most probable token every step, use top_k=1)"
            )
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, (int, np.integer)) or self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (an integer), got {self.top_k!r}")
        if (
            isinstance(self.top_p, bool)
            or not isinstance(self.top_p, (int, float))
            or not 0 < self.top_p <= 1
        ):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        count = self.sample_count
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(f"sample_count must be >= 1 (an integer), got {count!r}")
        if count > MAX_SAMPLE_COUNT:
            raise ValueError(
                f"sample_count must be at most {MAX_SAMPLE_COUNT:,} paths per series, got {count:,}: every "
                "path is a row of every generation step, and quantiles need far fewer"
            )
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))
        ):
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")


def series_key(seed: int, *parts: object) -> int:
    """A 64-bit key from a seed and what names a series (its id, a forecast origin, ...).

    Stable across processes and platforms (no Python `hash`): ints and strings are spelled out, so
    `series_key(0, "AAPL", 17)` is the same number everywhere.
    """
    words = [f"{type(v).__name__}:{v}" for v in _flat((int(seed), *parts))]
    digest = hashlib.blake2b("\x1f".join(words).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _flat(parts: Sequence[object]) -> list[object]:
    """Tuples unpacked, numpy scalars as Python ones (np.int64(3) and 3 name the same series)."""
    out: list[object] = []
    for part in parts:
        if isinstance(part, tuple):
            out.extend(_flat(part))
        else:
            out.append(part.item() if isinstance(part, np.generic) else part)
    return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 that scatters nearby inputs."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = z ^ (z >> np.uint64(31))
    return mixed


class SeriesRandom:
    """Counter-based uniform draws: row (series s, path p) at (step, token) reads
    mix(key_s + golden * (p * 2^32 + 2 * step + token)), a splitmix64 stream per series and path.

    Nothing is stateful, so the draws of a series depend on its key alone, not on the rows
    beside it. Rows are series-major, as in generation.
    """

    def __init__(self, keys: Sequence[int], n_paths: int, device: torch.device):
        self.keys = np.repeat(np.asarray([int(k) for k in keys], dtype=np.uint64), n_paths)
        self.paths = np.tile(np.arange(n_paths, dtype=np.uint64), len(keys)) << np.uint64(32)
        self.device = device

    def uniforms(self, step: int, token: int) -> torch.Tensor:
        """One uniform in [0, 1) per row, float64."""
        counter = self.paths + np.uint64(2 * step + token + 1)
        with np.errstate(over="ignore"):
            bits = _mix64(self.keys + _GOLDEN * counter)
        return torch.from_numpy((bits >> np.uint64(11)).astype(np.float64) * 2.0**-53).to(self.device)


def draw_tokens(logits: torch.Tensor, sampling: Sampling, uniforms: torch.Tensor | None) -> torch.Tensor:
    """One token per row [B]: `sample_from_logits`, or with `uniforms` [B] the inverse-CDF draw."""
    if uniforms is None:
        return sample_from_logits(logits, sampling.T, sampling.top_k, sampling.top_p)[:, 0]
    filtered = top_k_top_p_filtering(logits / sampling.T, sampling.top_k, sampling.top_p)
    cdf = F.softmax(filtered, dim=-1).double().cumsum(dim=-1)
    target = (uniforms * cdf[:, -1]).unsqueeze(-1)
    # the first token whose cumulative probability passes the target: never one of zero probability
    return torch.searchsorted(cdf, target, right=True)[:, 0].clamp_max(logits.shape[-1] - 1)
