"""kronos.evaluation.volatility: EWMA, GARCH(1,1) and HAR-RV fitted on each origin's past, and realised variance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos.engine.sampling import Sampling
from kronos.evaluation import Backtest, evaluate, fit_garch
from kronos.evaluation.volatility import (
    GarchFit,
    ewma_variance,
    har_variance,
    realised_variance,
)


def garch_bars(n: int, seed: int = 0, omega=2e-6, alpha=0.08, beta=0.9, nu=6.0) -> pd.DataFrame:
    """Daily bars whose close follows a GARCH(1,1) with Student-t shocks."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(nu, n) * np.sqrt((nu - 2) / nu)
    returns, variance = np.empty(n), omega / (1 - alpha - beta)
    for k in range(n):
        returns[k] = np.sqrt(variance) * z[k]
        variance = omega + alpha * returns[k] ** 2 + beta * variance
    close = 100 * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[100.0], close[:-1]])
    return pd.DataFrame(
        {
            "timestamps": pd.bdate_range("2015-01-01", periods=n),
            "open": open_,
            "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998,
            "close": close,
            "volume": rng.uniform(100, 200, n),
        }
    )


def test_ewma_variance_recursion_by_hand():
    returns = np.array([0.01, -0.02, 0.03])
    variance = (1e-4 + 4e-4 + 9e-4) / 3  # started at the mean square
    for r in returns:
        variance = 0.94 * variance + 0.06 * r * r
    assert ewma_variance(returns) == pytest.approx(variance, rel=1e-12)
    assert ewma_variance(np.array([0.02, np.nan])) == pytest.approx(4e-4)  # NaN returns are left out


def test_garch_variance_path_by_hand():
    fit = GarchFit(omega=1.0, alpha=0.1, beta=0.8, nu=np.inf, next_variance=20.0, shocks="normal")
    assert fit.variance_path(3).tolist() == pytest.approx([20.0, 19.0, 18.1])  # 1 + 0.9 h


def test_garch_fit_recovers_a_simulated_garch_and_falls_back_when_it_cannot_fit():
    closes = garch_bars(4000, seed=2)["close"].to_numpy()
    fit = fit_garch(np.diff(np.log(closes)))
    assert fit.shocks == "t"
    assert fit.alpha == pytest.approx(0.08, abs=0.04) and fit.beta == pytest.approx(0.9, abs=0.05)
    assert fit.nu == pytest.approx(6, abs=3)
    assert fit.omega / (1 - fit.alpha - fit.beta) == pytest.approx(1e-4, rel=0.5)  # unconditional variance
    few = np.diff(np.log(closes[:50]))
    fallback = fit_garch(few)
    assert fallback.shocks == "ewma" and fallback.next_variance == pytest.approx(ewma_variance(few))


def test_har_of_a_constant_realised_variance_forecasts_it_per_bar():
    assert har_variance(pd.Series([3e-4] * 40), bars_per_day=10) == pytest.approx(3e-5)
    assert np.isnan(har_variance(pd.Series([3e-4] * 29), bars_per_day=10))  # too few days


def test_realised_variance_range_based_by_hand_and_close_to_close_without_ranges():
    last = np.array([[100.0, 100.0, 100.0, 100.0, 0.0, 0.0]])
    bar = np.array([[[101.0, 104.0, 99.0, 102.0, 0.0, 0.0]]])  # open, high, low, close
    gap, high_low, close_open = np.log(1.01), np.log(104 / 99), np.log(102 / 101)
    expected = gap**2 + 0.5 * high_low**2 - (2 * np.log(2) - 1) * close_open**2
    assert realised_variance(bar, last, range_based=True) == pytest.approx([expected])
    assert realised_variance(bar, last, range_based=False) == pytest.approx([np.log(1.02) ** 2])
    flat = np.array(
        [[[102.0, 102.0, 102.0, 102.0, 0.0, 0.0]]]
    )  # OHLC from closes: the same as close to close
    assert realised_variance(flat, last, True) == pytest.approx(realised_variance(flat, last, False))


def test_changing_every_bar_after_a_date_leaves_earlier_fits_and_forecasts_unchanged():
    bars = garch_bars(700, seed=4)
    backtest = Backtest(steps=5, lookback=60, every=40, sampling=Sampling(sample_count=10, seed=0))
    before = evaluate(bars, None, backtest, progress=False).volatility
    changed = bars.copy()
    cut = 500
    changed.loc[cut:, ["open", "high", "low", "close"]] *= np.exp(np.linspace(0, 1, len(bars) - cut))[:, None]
    after = evaluate(changed, None, backtest, progress=False).volatility
    fitted = ["forecast_variance", "garch_omega", "garch_alpha", "garch_beta", "garch_nu"]
    earlier = before["origin"] <= cut
    assert earlier.sum() > 3 * 4 and (~earlier).sum() > 0
    pd.testing.assert_frame_equal(
        before.loc[earlier, ["method", "origin", *fitted]], after.loc[earlier, ["method", "origin", *fitted]]
    )
    later = before["origin"] > cut + 1
    assert not np.allclose(before.loc[later, "forecast_variance"], after.loc[later, "forecast_variance"])
    garch = before[before["method"] == "garch11"]
    assert set(garch["garch_shocks"]) <= {"t", "normal", "ewma"} and (garch["garch_shocks"] != "ewma").any()
    assert set(before["method"]) == {"historical", "ewma", "garch11"}  # daily bars: no HAR-RV
