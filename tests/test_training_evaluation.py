"""kronos.training.evaluation: the held-out check scores the paths the core samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


def test_the_held_out_check_scores_the_paths_the_core_samples(tiny_predictor, tiny_ohlcv):
    from kronos.engine.sampling import Sampling
    from kronos.forecasting.series import CLOSE, Series
    from kronos.training.evaluation import forecast_errors

    series = Series.from_frame(tiny_ohlcv, key="tiny", name="tiny")
    torch.manual_seed(4)
    errors = forecast_errors(
        tiny_predictor, series, split=150, history=40, horizon=5, origins=4, sample_count=6
    )
    starts = np.unique(np.linspace(150, len(series) - 5, 4).round().astype(int))
    torch.manual_seed(4)  # the same draws from torch's global generator
    paths = tiny_predictor.sample(
        [series.window(t - 40, t) for t in starts],
        5,
        Sampling(sample_count=6),
        future=[series.timestamps[t : t + 5] for t in starts],
    ).paths[..., CLOSE]
    actual = np.stack([series.bars[t : t + 5, CLOSE] for t in starts])
    persistence = np.abs(series.bars[starts - 1, CLOSE][:, None] - actual).mean()
    assert errors["forecasts"] == 4 and paths.shape == (4, 6, 5)
    assert errors["mae_close_model"] == pytest.approx(np.abs(paths.mean(axis=1) - actual).mean(), rel=1e-12)
    assert errors["mae_close_persistence"] == pytest.approx(persistence, rel=1e-12)
    assert errors["mae_ratio"] == pytest.approx(errors["mae_close_model"] / persistence, rel=1e-12)
    assert 0 <= errors["band80_coverage"] <= 1
    with pytest.raises(ValueError, match="no room for a 5-step forecast after bar"):
        forecast_errors(
            tiny_predictor, series, split=len(series), history=40, horizon=5, origins=4, sample_count=6
        )
