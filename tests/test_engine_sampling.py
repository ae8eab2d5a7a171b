"""kronos.engine.sampling: the Sampling defaults, temperature, top-k and top-p on hand-made logits,
and the stable keys that seed each series' draws."""

from __future__ import annotations

import math

import numpy as np
import torch

from kronos import sample_from_logits, top_k_top_p_filtering
from kronos.engine.sampling import PATHS, TEMPERATURE, TOP_P, Sampling, SeriesRandom, series_key

torch.set_num_threads(1)


def test_sampling_has_one_set_of_defaults():
    assert Sampling() == Sampling(TEMPERATURE, 0, TOP_P, PATHS, None)
    assert (TEMPERATURE, TOP_P, PATHS) == (1.0, 0.9, 20)


def test_temperature_scales_logits():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    torch.manual_seed(0)
    draws = torch.cat([sample_from_logits(logits.expand(4000, -1), temperature=0.5) for _ in range(5)])
    freq = torch.bincount(draws.flatten(), minlength=4).float() / draws.numel()
    expected = torch.softmax(logits[0] / 0.5, dim=-1)
    torch.testing.assert_close(freq, expected, atol=0.01, rtol=0)


def test_top_k_keeps_the_k_largest_and_ties():
    logits = torch.tensor([[0.5, 3.0, -1.0, 2.0, 2.0, 0.0]])
    kept = torch.isfinite(top_k_top_p_filtering(logits.clone(), top_k=2))
    assert kept.tolist() == [[False, True, False, True, True, False]]
    kept = torch.isfinite(top_k_top_p_filtering(logits.clone(), top_k=1, top_p=0.1))
    assert kept.tolist() == [[False, True, False, False, False, False]]
    assert torch.isfinite(top_k_top_p_filtering(logits.clone(), top_k=100)).all()


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.05, 0.5, 0.2, 0.25]])
    logits = probs.log()
    kept = lambda p: torch.isfinite(top_k_top_p_filtering(logits.clone(), top_p=p))[0].tolist()  # noqa: E731
    assert kept(0.49) == [False, True, False, False]
    assert kept(0.51) == [False, True, False, True]
    assert kept(0.74) == [False, True, False, True]
    assert kept(0.76) == [False, True, True, True]
    assert kept(0.01) == [False, True, False, False]  # the most probable always stays
    assert kept(1.0) == [True, True, True, True]


def test_filtered_tokens_are_never_drawn():
    logits = torch.tensor([[0.05, 0.5, 0.2, 0.25]]).log().expand(5000, -1)
    torch.manual_seed(0)
    draws = sample_from_logits(logits, temperature=1.0, top_k=0, top_p=0.7)
    assert set(draws.flatten().tolist()) == {1, 3}
    share_of_1 = float((draws == 1).float().mean())
    assert math.isclose(share_of_1, 0.5 / 0.75, abs_tol=0.02)


def test_greedy_is_argmax():
    logits = torch.randn(64, 1024)
    assert torch.equal(sample_from_logits(logits, top_k=1)[:, 0], logits.argmax(-1))
    assert torch.equal(sample_from_logits(logits, sample_logits=False)[:, 0], logits.argmax(-1))


def test_series_keys_are_stable_names():
    assert series_key(0, "AAPL", 17) == series_key(0, "AAPL", np.int64(17)) == series_key(0, ("AAPL", 17))
    assert series_key(0, "AAPL", 17) != series_key(1, "AAPL", 17) != series_key(0, "AAPL", 18)
    # pinned: the same seed names the same draws on every machine and in every version
    assert series_key(3, 0) == 0x7ACFD22EA8EF5E51
    draws = SeriesRandom([series_key(3, 0)], 2, torch.device("cpu"))
    np.testing.assert_allclose(
        draws.uniforms(0, 0).numpy(), [0.7299755611921817, 0.8670831807449176], rtol=1e-15
    )
    np.testing.assert_allclose(
        draws.uniforms(5, 1).numpy(), [0.49112532220083394, 0.2537259492354572], rtol=1e-15
    )
