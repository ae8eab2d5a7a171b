"""What a backtest produced, and the tables and report read off it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kronos.evaluation import metrics
from kronos.evaluation.report import write_report
from kronos.evaluation.tables import (
    column_table,
    horizon_table,
    reliability_table,
    significance_table,
    summary_table,
    volatility_table,
)
from kronos.forecasting.calibration import Calibration

MODEL_NAME = "kronos"
CALIBRATED = "-calibrated"  # the calibrated model's name: MODEL_NAME + CALIBRATED


@dataclass
class EvaluationResult:
    """Everything a backtest produced; tables are computed from `records` on demand.

    records: one row per method, series, origin, horizon step and column, with the actual, the
    point forecast and every score. volatility: one row per volatility forecaster (the models and
    `kronos.evaluation.volatility.VOLATILITY_BASELINES`), series and origin, with the forecast and
    realised variance and volatility of close per bar over the horizon and their losses. forecasts: method -> (point
    [O, H, 6], paths [O, P, H, 6]) in FEATURE_COLUMNS order; histories [O, L, 6]; actuals [O, H, 6].
    calibrations: (series, origin) -> the calibration applied there (with `calibrate`).
    """

    records: pd.DataFrame
    volatility: pd.DataFrame
    origins: pd.DataFrame
    forecasts: dict[str, tuple[np.ndarray, np.ndarray]]
    histories: np.ndarray
    actuals: np.ndarray
    columns: list[str]
    models: list[str]
    baselines: list[str]
    settings: dict
    skipped: dict[str, str] = field(default_factory=dict)
    calibrations: dict[tuple[str, int], Calibration] = field(default_factory=dict)
    _summaries: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def methods(self) -> list[str]:
        return self.models + self.baselines

    @property
    def calibrated(self) -> list[str]:
        """The models whose forecasts were calibrated at each origin."""
        return [m for m in self.models if m.endswith(CALIBRATED)]

    def summary(
        self, column: str = "close", n_boot: int = 1000, confidence: float = 0.95, seed: int | None = None
    ) -> pd.DataFrame:
        """One row per method: each metric over all origins and horizons with a bootstrap CI
        (origins resampled), and for error metrics the ratio to the best baseline with a paired CI."""
        seed = self.settings.get("seed", 0) if seed is None else seed
        key = (column, n_boot, confidence, seed)
        if key not in self._summaries:
            self._summaries[key] = summary_table(self, column, n_boot, confidence, seed)
        return self._summaries[key].copy()

    def significance(self, column: str = "close") -> pd.DataFrame:
        """Diebold-Mariano tests of each model's CRPS and MAE against the best baseline, per series and pooled."""
        return significance_table(self, column)

    def volatility_summary(self) -> pd.DataFrame:
        """Per volatility forecaster: QLIKE, MSE, MAE, Mincer-Zarnowitz regression, DM test of QLIKE."""
        return volatility_table(self)

    def by_horizon(self, column: str = "close") -> pd.DataFrame:
        """Mean scores per method and horizon step."""
        return horizon_table(self, column)

    def by_column(self) -> pd.DataFrame:
        """Mean error scores per method and column (wQL: summed quantile loss over summed |actual|)."""
        return column_table(self)

    def reliability(self, column: str = "close", bins: int = 10) -> pd.DataFrame:
        """The models' P(up) against the observed frequency of ending above the last value, by bin."""
        return reliability_table(self, column, bins)

    def pit_histogram(self, column: str = "close", bins: int = 10) -> pd.DataFrame:
        """PIT density per method (rows) and bin (columns); 1.0 everywhere when calibrated."""
        rows = self.records[self.records["column"] == column]
        return pd.DataFrame(
            {
                m: metrics.pit_histogram(g["pit"].to_numpy(), bins)
                for m, g in rows.groupby("method", sort=False)
            },
            index=[f"{i / bins:.1f}-{(i + 1) / bins:.1f}" for i in range(bins)],
        ).T.loc[self.methods]

    def write_report(
        self, out_dir: str | Path, html: bool = False, plots: bool = True, n_boot: int = 1000
    ) -> dict:
        """Write report.md (and report.html), plots and raw results into out_dir; returns the paths written."""
        return write_report(self, out_dir, html=html, plots=plots, n_boot=n_boot)
