"""kronos.evaluation.metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kronos.evaluation import metrics


def normal_cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_crps_of_a_small_sample_by_hand():
    # E|X - 4| = (3 + 2 + 1) / 3 = 2; E|X - X'| over the 6 pairs of distinct samples = (1+2+1+1+2+1) / 6 = 4/3
    crps = metrics.crps_from_samples(np.array([1.0, 2.0, 3.0]), np.array(4.0))
    assert crps == pytest.approx(2 - 2 / 3)


def test_crps_is_elementwise_over_trailing_axes():
    samples = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    crps = metrics.crps_from_samples(samples, np.array([2.0, 5.0]))
    assert crps == pytest.approx([0.0, 5.0])  # E|X - 2| = 2/3 = E|X - X'| / 2


def test_crps_of_a_single_value_is_the_absolute_error():
    assert metrics.crps_from_samples(np.array([[4.0, -1.0]]), np.array([1.5, 1.0])) == pytest.approx(
        [2.5, 2.0]
    )


def test_crps_of_a_large_normal_sample_matches_the_closed_form():
    rng = np.random.default_rng(0)
    sigma, y = 2.0, 1.0
    z = y / sigma
    exact = sigma * (
        z * (2 * normal_cdf(z) - 1)
        + 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        - 1 / math.sqrt(math.pi)
    )
    estimate = metrics.crps_from_samples(rng.normal(0, sigma, 200_000), np.array(y))
    assert estimate == pytest.approx(exact, rel=0.01)


def gaussian_crps(sigma: float, y: np.ndarray) -> np.ndarray:
    """Closed-form CRPS of N(0, sigma^2) at y (Gneiting and Raftery 2007)."""
    z = y / sigma
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    pdf = np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return sigma * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def test_fair_crps_of_few_samples_is_unbiased_and_the_plain_one_is_not():
    # 5 paths per forecast, 200,000 forecasts: the mean fair CRPS is the closed form's mean; the plain
    # estimator (pairs over P^2) exceeds it by E|X - X'| / (2P) = sigma / (sqrt(pi) P), 0.113 here
    rng = np.random.default_rng(1)
    sigma, n_paths, n = 1.0, 5, 200_000
    y = rng.normal(0, sigma, n)
    samples = rng.normal(0, sigma, (n_paths, n))
    fair = metrics.crps_from_samples(samples, y)
    exact = gaussian_crps(sigma, y)
    standard_error = (fair - exact).std() / np.sqrt(n)
    assert abs(fair.mean() - exact.mean()) < 4 * standard_error
    to_actual = np.abs(samples - y).mean(axis=0)
    pair_mean = 2 * (to_actual - fair)  # the fair estimator's mean over the P (P - 1) distinct pairs
    plain = to_actual - 0.5 * pair_mean * (n_paths - 1) / n_paths  # the same sum over P^2 pairs
    assert plain.mean() - exact.mean() == pytest.approx(sigma / (math.sqrt(math.pi) * n_paths), rel=0.05)


def test_quantile_loss_by_hand():
    # quantile q of 1..99 is the value of rank 100 q, i.e. 100 q; 2 x pinball at y = 50 for q = .1 ... .9 sums to 80
    loss = metrics.quantile_loss(np.arange(1.0, 100.0), np.array(50.0))
    assert loss == pytest.approx(80 / 9)
    assert metrics.quantile_loss(np.full(7, 3.0), np.array(5.0)) == pytest.approx(
        2 * 2 * np.mean(np.arange(1, 10) / 10)
    )


def test_coverage_of_a_known_band():
    samples = np.arange(
        1.0, 100.0
    )  # quantile q at rank 100 q: 80% interval [10, 90], 95% [2.5, 97.5], 50% [25, 75]
    actual = np.array([10.0, 90.0, 9.9, 95.0, 50.0])
    assert metrics.interval_hits(samples, actual, 0.8).tolist() == [1, 1, 0, 0, 1]
    assert metrics.interval_hits(samples, actual, 0.95).tolist() == [1, 1, 1, 1, 1]
    assert metrics.interval_hits(samples, actual, 0.5).tolist() == [0, 0, 0, 0, 1]


def test_intervals_of_a_few_samples_cover_their_nominal_level():
    rng = np.random.default_rng(6)
    samples, actual = rng.standard_normal((20, 50_000)), rng.standard_normal(50_000)
    assert metrics.interval_hits(samples, actual, 0.8).mean() == pytest.approx(0.8, abs=0.01)
    assert metrics.interval_hits(samples, actual, 0.5).mean() == pytest.approx(0.5, abs=0.01)
    assert metrics.interval_hits(samples, actual, 0.95).mean() == pytest.approx(
        19 / 21, abs=0.01
    )  # the most 20 allow


def test_empirical_cdf_of_a_known_distribution():
    rng = np.random.default_rng(1)
    samples = rng.standard_normal((400_000, 1))
    values = metrics.empirical_cdf_at(samples, np.array([-1.0, 0.0, 1.0, 2.0]))
    assert values == pytest.approx([normal_cdf(-1), 0.5, normal_cdf(1), normal_cdf(2)], abs=0.003)
    assert metrics.empirical_cdf_at(np.array([1.0, 2.0, 2.0, 3.0]), np.array(2.0)) == pytest.approx(0.5)


def test_randomized_pit_spreads_each_rank_uniformly():
    rng = np.random.default_rng(2)
    samples = np.array([1.0, 2.0, 3.0])[:, None].repeat(10_000, axis=1)
    between = metrics.randomized_pit(samples, np.full(10_000, 2.5), rng)
    assert between.min() >= 0.5 and between.max() < 0.75
    assert between.mean() == pytest.approx(0.625, abs=0.005)
    tied = metrics.randomized_pit(samples, np.full(10_000, 2.0), rng)
    assert tied.min() >= 0.25 and tied.max() < 0.75


def test_pit_histogram_flat_when_calibrated_and_u_shaped_when_too_narrow():
    rng = np.random.default_rng(3)
    actual = rng.standard_normal(20_000)
    calibrated = metrics.randomized_pit(rng.standard_normal((20, 20_000)), actual, rng)
    narrow = metrics.randomized_pit(0.4 * rng.standard_normal((20, 20_000)), actual, rng)
    flat = metrics.pit_histogram(calibrated)
    assert flat.mean() == pytest.approx(1.0)
    assert np.abs(flat - 1).max() < 0.1
    u_shape = metrics.pit_histogram(narrow)
    assert u_shape[0] > 2 and u_shape[-1] > 2 and u_shape[4:6].max() < 0.6
    assert np.isnan(metrics.pit_histogram(np.array([np.nan]))).all()


def test_bootstrap_estimate_interval_and_seed():
    rng = np.random.default_rng(4)
    values = rng.normal(5.0, 1.0, 400)
    estimate, low, high = metrics.bootstrap_ratio_of_sums(values, np.ones(400), n_boot=2000, seed=7)
    assert estimate == pytest.approx(values.mean())
    assert low < estimate < high
    assert high - low == pytest.approx(2 * 1.96 / math.sqrt(400), rel=0.15)
    assert metrics.bootstrap_ratio_of_sums(values, np.ones(400), n_boot=2000, seed=7) == (estimate, low, high)


def test_paired_bootstrap_of_a_ratio():
    rng = np.random.default_rng(5)
    base = rng.uniform(1, 3, 300)
    num = np.stack([0.8 * base, base], axis=1)
    ratio = metrics.bootstrap_ratio_of_sums(num, np.ones((300, 2)), seed=0)
    assert ratio == pytest.approx((0.8, 0.8, 0.8))  # perfectly paired: no sampling noise at all
    assert np.isnan(metrics.bootstrap_ratio_of_sums(np.zeros(3), np.zeros(3))).all()


def test_diebold_mariano_by_hand():
    # d = 1, -1, 2, 0, 3 (mean 1), h = 2: centred 0, -2, 1, -1, 2; gamma_0 = 10/5 = 2,
    # gamma_1 = (0 - 2 - 1 - 2) / 5 = -1; Newey-West with 1 lag: 2 + 2 (1/2)(-1) = 1;
    # DM = 1 / sqrt(1/5) = sqrt(5); HLN factor sqrt((5 + 1 - 4 + 2/5) / 5) = sqrt(0.48)
    statistic, p_value = metrics.diebold_mariano([np.array([1.0, -1.0, 2.0, 0.0, 3.0])], horizon=2)
    expected = math.sqrt(5) * math.sqrt(0.48)
    assert statistic == pytest.approx(expected)
    from scipy import stats

    assert p_value == pytest.approx(2 * stats.t.sf(expected, 4))
    # pooled: two series add their long-run variances around the pooled mean
    pooled, _ = metrics.diebold_mariano([np.array([1.0, -1.0, 2.0]), np.array([0.0, 3.0])], horizon=1)
    # mean 1; centred 0, -2, 1 | -1, 2: variances 5/3 and 5/2 times lengths 3 and 2 = 10; var(mean) = 10/25
    assert pooled == pytest.approx(1 / math.sqrt(10 / 25) * math.sqrt((5 + 1 - 2) / 5))


def test_diebold_mariano_has_its_size_under_equal_loss():
    # equal expected loss, MA(1) differentials (overlapping 2-step forecasts), 80 origins: rejects at 5% about 5% of the time
    rng = np.random.default_rng(3)
    e = rng.standard_normal((2000, 81))
    differences = e[:, 1:] + 0.8 * e[:, :-1]
    p_values = np.array([metrics.diebold_mariano([d], horizon=2)[1] for d in differences])
    assert (p_values < 0.05).mean() == pytest.approx(0.05, abs=0.025)
    shifted = np.array([metrics.diebold_mariano([d + 0.5], horizon=2)[1] for d in differences[:200]])
    assert (shifted < 0.05).mean() > 0.8  # and it detects a real difference


def test_diebold_mariano_of_no_difference_is_nan():
    assert np.isnan(metrics.diebold_mariano([np.zeros(10)], horizon=1)).all()
    with pytest.raises(ValueError, match="horizon"):
        metrics.diebold_mariano([np.ones(5)], horizon=0)


def test_mincer_zarnowitz_is_exact_on_a_line():
    forecast = np.array([1.0, 2.0, 3.0, 4.0])
    intercept, slope, r2 = metrics.mincer_zarnowitz(0.5 + 2 * forecast, forecast)
    assert (intercept, slope, r2) == pytest.approx((0.5, 2.0, 1.0))
    # realised 1, 3, 2, 4 on forecast 1..4: slope = cov / var = 4 / 5, intercept 2.5 - 0.8 x 2.5 = 0.5, R^2 = 0.64
    intercept, slope, r2 = metrics.mincer_zarnowitz(np.array([1.0, 3.0, 2.0, 4.0]), forecast)
    assert (intercept, slope, r2) == pytest.approx((0.5, 0.8, 0.64))


def test_qlike_is_zero_when_right_and_punishes_too_low_more():
    assert metrics.qlike(np.array(2.0), np.array(2.0)) == pytest.approx(0.0)
    too_low, too_high = metrics.qlike(np.array([2.0, 2.0]), np.array([1.0, 4.0]))
    assert too_low == pytest.approx(2 - math.log(2) - 1) and too_high == pytest.approx(
        0.5 - math.log(0.5) - 1
    )
    assert too_low > too_high
    assert np.isnan(metrics.qlike(np.array(0.0), np.array(1.0)))
